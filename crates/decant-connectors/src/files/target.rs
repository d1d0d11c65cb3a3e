//! Files as a target: a directory that receives one CSV, JSON Lines or Parquet file per table
//! (`orders.csv`) or per chunk (`orders/part-k0.csv`).
//!
//! Exactly once: a chunk's file is written under a temporary name, fsynced and renamed; then
//! its marker, a small JSON file under `_decant_chunks/<job>/<table>/`, is written the same way.
//! A crash before the marker leaves a complete file that the resumed job simply writes again
//! under the same name, so no row appears twice and none is missing. In the one-file-per-table
//! layout the chunks are parts under `_decant_parts/<table>/`, joined into `orders.csv` once
//! every chunk is in (the runner's "after the data" step), so that name appears only complete.
//!
//! The "DDL" of a file target is a handful of commands (`create orders`, `drop orders`,
//! `truncate orders`, `finalize orders`) that [`FileTarget::execute`] carries out.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use decant_core::files::{FileCompression, FileFormat, FileLayout, FileTargetOptions};
use decant_core::{ConnectionUrl, Dialect, LogicalType, TableName};
use serde::{Deserialize, Serialize};

use super::blocking;
use super::encode::CsvStyle;
use super::write::{
    FileWriter, TempFile, io_err, join_parts, remove_stale_temps, sync_dir, write_atomic,
};
use crate::error::ConnectorError;
use crate::traits::{ChunkMarker, ChunkReceiver, DdlSet, Target, TargetTable};

/// Where chunk markers live, inside the target directory.
const MARKERS_DIR: &str = "_decant_chunks";
/// Where the parts of one-file-per-table exports wait to be joined.
const PARTS_DIR: &str = "_decant_parts";

/// A directory of exported files; see the module docs.
pub struct FileTarget {
    settings: Settings,
}

/// The resolved options, cloned into blocking tasks.
#[derive(Debug, Clone)]
struct Settings {
    dir: PathBuf,
    format: FileFormat,
    compression: FileCompression,
    layout: FileLayout,
    csv: CsvStyle,
}

/// What a marker file holds.
#[derive(Debug, Serialize, Deserialize)]
struct MarkerFile {
    table: String,
    chunk_id: String,
    rows: u64,
}

impl FileTarget {
    /// Resolves the options (plan section, then the URL's query and `*.ext` pattern); the
    /// directory is created by the first table's `create`.
    pub fn open(
        url: &ConnectionUrl,
        options: Option<&FileTargetOptions>,
    ) -> Result<FileTarget, ConnectorError> {
        let cfg = |m: String| ConnectorError::Config(m);
        let (path, query) = url
            .file_path()
            .ok_or_else(|| cfg(format!("{url}: not a file:// URL")))?;
        let mut o = options.cloned().unwrap_or_default();
        if let Some(q) = query {
            o.apply_query(q).map_err(|e| cfg(e.to_string()))?;
        }
        let dir = o.apply_pattern(path).map_err(|e| cfg(e.to_string()))?;
        let dir = if dir.is_empty() { "." } else { dir };
        let dir = PathBuf::from(dir);
        if dir.exists() && !dir.is_dir() {
            return Err(cfg(format!(
                "file target {}: not a directory; a file target names the directory the files go to (file:///exports/)",
                dir.display()
            )));
        }
        let format = o.format.ok_or_else(|| {
            cfg(format!(
                "file target {url}: say which format to write, with [target.file] format = \"csv\" (or \"jsonl\", \"parquet\"), ?format=csv, or a URL ending in /*.csv"
            ))
        })?;
        let compression = match (format, o.compression) {
            (FileFormat::Parquet, None) => FileCompression::Snappy,
            (_, None) => FileCompression::None,
            (FileFormat::Parquet, Some(FileCompression::Gzip)) => {
                return Err(cfg(
                    "target.file.compression = \"gzip\" is for CSV and JSON Lines; Parquet takes none, snappy or zstd".into(),
                ));
            }
            (FileFormat::Csv | FileFormat::Jsonl, Some(FileCompression::Snappy)) => {
                return Err(cfg(
                    "target.file.compression = \"snappy\" is for Parquet; CSV and JSON Lines take none, gzip or zstd".into(),
                ));
            }
            (_, Some(c)) => c,
        };
        if format != FileFormat::Csv
            && (o.header.is_some() || o.delimiter.is_some() || o.null.is_some())
        {
            return Err(cfg(format!(
                "target.file: header, delimiter and null are CSV options; the format is {}",
                format.extension()
            )));
        }
        let delimiter = match o.delimiter.as_deref() {
            None => b',',
            Some("tab" | "\\t" | "\t") => b'\t',
            Some(d) if d.len() == 1 && d.is_ascii() && !matches!(d, "\"" | "\n" | "\r") => {
                d.as_bytes()[0]
            }
            Some(d) => {
                return Err(cfg(format!(
                    "target.file.delimiter = \"{d}\": one ASCII character other than a quote or line break, or \"tab\""
                )));
            }
        };
        let null = o.null.unwrap_or_default();
        if null.contains(['"', '\n', '\r']) || null.as_bytes().contains(&delimiter) {
            return Err(cfg(format!(
                "target.file.null = {null:?} holds a quote, line break or the delimiter; it would not read back as NULL"
            )));
        }
        Ok(FileTarget {
            settings: Settings {
                dir,
                format,
                compression,
                layout: o.layout,
                csv: CsvStyle {
                    delimiter,
                    null,
                    header: o.header.unwrap_or(true),
                },
            },
        })
    }
}

/// Refuses table names that would leave the directory or clash with decant's own files; the
/// name becomes a file name as it is.
fn checked_name(table: &TableName) -> Result<&str, ConnectorError> {
    let name = table.name.as_str();
    let problem = if name.is_empty() {
        Some("is empty")
    } else if name == "." || name == ".." || name.contains(['/', '\\']) {
        Some("would name a path outside the target directory")
    } else if name.contains('\0') || name.chars().any(char::is_control) {
        Some("holds a NUL or control character")
    } else if name.starts_with('.') {
        Some("starts with a dot (hidden and temporary files do)")
    } else if name.starts_with("_decant_") {
        Some("starts with _decant_, which decant's own files use")
    } else if name.len() > 200 {
        Some("is longer than 200 bytes")
    } else {
        None
    };
    match problem {
        Some(p) => Err(ConnectorError::Config(format!(
            "table name {name:?} {p}, so it cannot be a file name; give it another with [tables.\"...\"] rename = \"...\""
        ))),
        None => Ok(name),
    }
}

/// A chunk id, job id or table name as one safe file-name component: letters, digits and
/// `-_.@#=+` stay, other bytes become `%XX`; long results end in a hash of the original.
fn component(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for (i, b) in raw.bytes().enumerate() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'@' | b'#' | b'=' | b'+')
            || (b == b'.' && i > 0);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.len() > 120 {
        let mut end = 80;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        let hash = xxhash_rust::xxh3::xxh3_64(raw.as_bytes());
        out = format!("{}-{hash:016x}", &out[..end]);
    }
    out
}

/// Orders part names by their numbers (`k-100` < `k-5` < `k0` < `k100`), so a joined file
/// follows the source's key order.
fn natural_key(name: &str) -> Vec<(String, i128)> {
    let bytes = name.as_bytes();
    let mut out = Vec::new();
    let mut text = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let neg = bytes[i] == b'-'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)
            && i > 0
            && !bytes[i - 1].is_ascii_digit();
        if bytes[i].is_ascii_digit() || neg {
            let start = i;
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            let n = name[start..i].parse::<i128>().unwrap_or(i128::MAX);
            out.push((std::mem::take(&mut text), n));
        } else {
            text.push(bytes[i] as char);
            i += 1;
        }
    }
    out.push((text, i128::MIN));
    out
}

impl Settings {
    fn extension(&self) -> String {
        let ext = self.format.extension();
        match (self.format, self.compression) {
            (FileFormat::Parquet, _) => ext.to_string(),
            (_, FileCompression::Gzip) => format!("{ext}.gz"),
            (_, FileCompression::Zstd) => format!("{ext}.zst"),
            _ => ext.to_string(),
        }
    }

    /// Whether each standalone file starts with a header record (CSV only).
    fn has_header(&self) -> bool {
        self.format == FileFormat::Csv && self.csv.header
    }

    /// One file per table: the table's file.
    fn table_file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.{}", self.extension()))
    }

    /// Where the chunk files of a table go: its own directory, or the staging parts.
    fn chunk_dir(&self, name: &str) -> PathBuf {
        match self.layout {
            FileLayout::Chunk => self.dir.join(name),
            FileLayout::Table => self.dir.join(PARTS_DIR).join(name),
        }
    }

    fn chunk_file(&self, name: &str, chunk_id: &str) -> PathBuf {
        self.chunk_dir(name)
            .join(format!("part-{}.{}", component(chunk_id), self.extension()))
    }

    /// The CSV header that starts a joined file (one-file-per-table layout).
    fn header_file(&self, name: &str) -> PathBuf {
        self.chunk_dir(name)
            .join(format!("header.{}", self.extension()))
    }

    fn marker_dir(&self, job: &str) -> PathBuf {
        self.dir.join(MARKERS_DIR).join(component(job))
    }

    /// The committed part files of a table directory, in key order.
    fn parts(&self, dir: &Path) -> Result<Vec<PathBuf>, ConnectorError> {
        if !dir.is_dir() {
            return Ok(vec![]);
        }
        let suffix = format!(".{}", self.extension());
        let mut parts: Vec<(Vec<(String, i128)>, PathBuf)> = fs::read_dir(dir)
            .map_err(io_err(dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                let stem = n.strip_prefix("part-")?.strip_suffix(&suffix)?.to_string();
                Some((natural_key(&stem), e.path()))
            })
            .collect();
        parts.sort();
        Ok(parts.into_iter().map(|(_, p)| p).collect())
    }

    fn exists(&self, name: &str) -> bool {
        match self.layout {
            FileLayout::Chunk => self.chunk_dir(name).exists(),
            FileLayout::Table => self.table_file(name).exists() || self.chunk_dir(name).exists(),
        }
    }

    /// Removes what decant wrote for a table: its file, its part files and temp files. Other
    /// files a person put into a chunk directory stay (and so does the directory then).
    fn remove(&self, name: &str) -> Result<(), ConnectorError> {
        let file = self.table_file(name);
        if self.layout == FileLayout::Table && file.exists() {
            fs::remove_file(&file).map_err(io_err(&file))?;
        }
        let dir = self.chunk_dir(name);
        if dir.is_dir() {
            for e in fs::read_dir(&dir).map_err(io_err(&dir))?.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                let ours = n.starts_with("part-")
                    || n.starts_with("header.")
                    || (n.starts_with('.') && n.ends_with(".tmp"));
                if ours && e.path().is_file() {
                    fs::remove_file(e.path()).map_err(io_err(&e.path()))?;
                }
            }
            if fs::remove_dir(&dir).is_err() {
                tracing::warn!(dir = %dir.display(), "left in place: it holds files decant did not write");
            }
        }
        Ok(())
    }

    fn create(&self, name: &str) -> Result<(), ConnectorError> {
        // `create` runs only while no chunk of the table is committed: whatever parts are
        // there come from an interrupted attempt and go.
        self.remove(name)?;
        let dir = self.chunk_dir(name);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        sync_dir(&self.dir)
    }

    /// Joins the parts into the table's file, then removes them; a second call (a resumed
    /// job whose join already happened) finds no parts and the file in place.
    fn finalize(&self, name: &str) -> Result<(), ConnectorError> {
        if self.layout == FileLayout::Chunk {
            return Ok(());
        }
        let dir = self.chunk_dir(name);
        let file = self.table_file(name);
        if !dir.exists() && file.exists() {
            return Ok(());
        }
        let parts = self.parts(&dir)?;
        let header = self.header_file(name);
        let header = header.exists().then_some(header.as_path());
        join_parts(&file, header, &parts, self.format, self.compression)?;
        fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
        let staging = self.dir.join(PARTS_DIR);
        // The last table's join leaves no staging directory behind.
        let _ = fs::remove_dir(&staging);
        sync_dir(&self.dir)
    }

    fn run(&self, statement: &str) -> Result<(), ConnectorError> {
        let (op, name) = statement.split_once(' ').unwrap_or((statement, ""));
        let table = TableName {
            schema: None,
            name: name.to_string(),
        };
        let name = checked_name(&table)?;
        fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        match op {
            "create" => self.create(name),
            "drop" => self.remove(name),
            "truncate" => {
                self.remove(name)?;
                self.create(name)
            }
            "finalize" => self.finalize(name),
            _ => Err(ConnectorError::Config(format!(
                "a file target runs create, drop, truncate and finalize, not `{statement}`"
            ))),
        }
    }

    /// Writes one chunk's file and then its marker; see the module docs.
    fn write_chunk(
        &self,
        job: &str,
        table: &TargetTable,
        chunk_id: &str,
        rx: &mut ChunkReceiver,
    ) -> Result<u64, ConnectorError> {
        let name = checked_name(&table.name)?;
        let dir = self.chunk_dir(name);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let per_chunk = self.layout == FileLayout::Chunk;
        if !per_chunk && self.has_header() {
            let header = self.header_file(name);
            if !header.exists() {
                let (tmp, file) = TempFile::new(&header)?;
                let w =
                    FileWriter::new(file, self.format, self.compression, &self.csv, table, true)?;
                tmp.commit(w.finish()?)?;
            }
        }
        let path = self.chunk_file(name, chunk_id);
        remove_stale_temps(&path)?;
        let (tmp, file) = TempFile::new(&path)?;
        let header = per_chunk && self.has_header();
        let mut w = FileWriter::new(
            file,
            self.format,
            self.compression,
            &self.csv,
            table,
            header,
        )?;
        let mut rows = 0u64;
        while let Some(batch) = rx.blocking_recv()? {
            w.write(table, &batch)?;
            rows += batch.num_rows() as u64;
        }
        // Only a finished stream gets here: a failed source ends `blocking_recv` with an
        // error, and the temp file goes with `tmp`.
        tmp.commit(w.finish()?)?;
        let marker_dir = self
            .marker_dir(job)
            .join(component(&table.name.to_string()));
        fs::create_dir_all(&marker_dir).map_err(io_err(&marker_dir))?;
        let marker = MarkerFile {
            table: table.name.to_string(),
            chunk_id: chunk_id.to_string(),
            rows,
        };
        let json =
            serde_json::to_vec(&marker).map_err(|e| ConnectorError::Internal(e.to_string()))?;
        write_atomic(
            &marker_dir.join(format!("{}.json", component(chunk_id))),
            &json,
        )?;
        Ok(rows)
    }

    fn committed(&self, job: &str) -> Result<Vec<ChunkMarker>, ConnectorError> {
        let dir = self.marker_dir(job);
        let mut markers = Vec::new();
        if !dir.is_dir() {
            return Ok(markers);
        }
        for table in fs::read_dir(&dir).map_err(io_err(&dir))?.flatten() {
            for m in fs::read_dir(table.path())
                .map_err(io_err(&table.path()))?
                .flatten()
            {
                let path = m.path();
                if path.extension().is_none_or(|e| e != "json") {
                    continue; // a temp file of a marker being written
                }
                let text = fs::read(&path).map_err(io_err(&path))?;
                let marker: MarkerFile = serde_json::from_slice(&text).map_err(|e| {
                    ConnectorError::Config(format!("chunk marker {}: {e}", path.display()))
                })?;
                markers.push(ChunkMarker {
                    table: marker.table,
                    chunk_id: marker.chunk_id,
                    rows: marker.rows,
                });
            }
        }
        Ok(markers)
    }

    /// Counts the records in the table's file (or files) by reading them back.
    fn count(&self, name: &str) -> Result<u64, ConnectorError> {
        let file = self.table_file(name);
        let (files, headers) = if self.layout == FileLayout::Table && file.exists() {
            (vec![file], true)
        } else {
            (
                self.parts(&self.chunk_dir(name))?,
                self.layout == FileLayout::Chunk,
            )
        };
        let mut rows = 0;
        for f in &files {
            rows += self.count_file(f, headers && self.has_header())?;
        }
        Ok(rows)
    }

    fn count_file(&self, path: &Path, header: bool) -> Result<u64, ConnectorError> {
        if self.format == FileFormat::Parquet {
            let f = fs::File::open(path).map_err(io_err(path))?;
            let reader = parquet::file::reader::SerializedFileReader::new(f)
                .map_err(|e| ConnectorError::Config(format!("{}: {e}", path.display())))?;
            use parquet::file::reader::FileReader as _;
            return Ok(reader.metadata().file_metadata().num_rows().max(0) as u64);
        }
        let f = fs::File::open(path).map_err(io_err(path))?;
        let mut input: Box<dyn Read> = match self.compression {
            FileCompression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(
                std::io::BufReader::new(f),
            )),
            FileCompression::Zstd => Box::new(zstd::Decoder::new(f).map_err(io_err(path))?),
            _ => Box::new(f),
        };
        // Records end at a line break outside quotes (JSON Lines escapes its line breaks).
        let quoting = self.format == FileFormat::Csv;
        let (mut lines, mut quoted) = (0u64, false);
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = input.read(&mut buf).map_err(io_err(path))?;
            if n == 0 {
                break;
            }
            for &b in &buf[..n] {
                if quoting && b == b'"' {
                    quoted = !quoted;
                } else if b == b'\n' && !quoted {
                    lines += 1;
                }
            }
        }
        Ok(lines.saturating_sub(header as u64))
    }
}

#[async_trait]
impl Target for FileTarget {
    fn dialect(&self) -> Dialect {
        Dialect::File
    }

    fn default_schema(&self) -> Option<String> {
        None
    }

    /// Files carry decant's logical types as they are (`decimal(12,2)`, `timestamptz(6)`).
    fn native_type(&self, logical: &LogicalType) -> Result<String, ConnectorError> {
        Ok(logical.to_string())
    }

    fn parse_native_type(&self, native: &str) -> Result<LogicalType, ConnectorError> {
        native.parse().map_err(|e: decant_core::CoreError| {
            ConnectorError::Config(format!(
                "`{native}` is not a decant type for a file column ({e}); use int64, decimal(12,2), text, timestamptz(6)..."
            ))
        })
    }

    fn ddl(&self, table: &TargetTable, _primary_key_after_load: bool) -> DdlSet {
        let name = &table.name.name;
        DdlSet {
            create: vec![format!("create {name}")],
            indexes: match self.settings.layout {
                FileLayout::Table => vec![format!("finalize {name}")],
                FileLayout::Chunk => vec![],
            },
            foreign_keys: vec![],
            sequences: vec![],
            drop: format!("drop {name}"),
            truncate: format!("truncate {name}"),
        }
    }

    async fn table_exists(&self, table: &TableName) -> Result<bool, ConnectorError> {
        let name = checked_name(table)?.to_string();
        let s = self.settings.clone();
        blocking(move || Ok(s.exists(&name))).await
    }

    async fn execute(&self, statements: &[String]) -> Result<(), ConnectorError> {
        let (s, statements) = (self.settings.clone(), statements.to_vec());
        blocking(move || statements.iter().try_for_each(|st| s.run(st))).await
    }

    async fn execute_atomically(&self, statements: &[String]) -> Result<(), ConnectorError> {
        // One file command is one rename: atomic on its own. Several have no transaction.
        match statements {
            [] | [_] => self.execute(statements).await,
            _ => Err(ConnectorError::Config(
                "a file target has no transactions: several commands cannot be applied atomically"
                    .into(),
            )),
        }
    }

    async fn rename_tables(&self, _renames: &[(TableName, String)]) -> Result<(), ConnectorError> {
        Err(ConnectorError::Config(
            "files are not swapped: set if_exists to \"drop\" to replace an exported file".into(),
        ))
    }

    async fn dependents(&self, _table: &TableName) -> Result<Vec<String>, ConnectorError> {
        // Nothing reads a file by name inside the target directory.
        Ok(Vec::new())
    }

    async fn prepare_markers(&self) -> Result<(), ConnectorError> {
        Ok(())
    }

    async fn committed_chunks(&self, job: &str) -> Result<Vec<ChunkMarker>, ConnectorError> {
        let (s, job) = (self.settings.clone(), job.to_string());
        blocking(move || s.committed(&job)).await
    }

    async fn delete_markers(&self, job: &str) -> Result<(), ConnectorError> {
        let dir = self.settings.marker_dir(job);
        blocking(move || {
            if dir.exists() {
                fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
            }
            Ok(())
        })
        .await
    }

    async fn write_chunk(
        &self,
        job: &str,
        table: &TargetTable,
        chunk_id: &str,
        mut rx: ChunkReceiver,
    ) -> Result<u64, ConnectorError> {
        let s = self.settings.clone();
        let (job, table, chunk_id) = (job.to_string(), table.clone(), chunk_id.to_string());
        blocking(move || s.write_chunk(&job, &table, &chunk_id, &mut rx)).await
    }

    async fn count_rows(&self, table: &TableName) -> Result<u64, ConnectorError> {
        let name = checked_name(table)?.to_string();
        let s = self.settings.clone();
        blocking(move || s.count(&name)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> TableName {
        TableName {
            schema: None,
            name: n.to_string(),
        }
    }

    #[test]
    fn hostile_table_names_are_refused() {
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "/etc/passwd",
            "a\\b",
            "a\0b",
            ".hidden",
            "_decant_chunks",
            "tab\tname",
        ] {
            assert!(checked_name(&name(bad)).is_err(), "{bad:?} accepted");
        }
        for ok in ["orders", "Order Lines", "ünï.côdé", "a..b"] {
            assert_eq!(checked_name(&name(ok)).unwrap(), ok);
        }
    }

    #[test]
    fn chunk_ids_become_safe_file_names_in_key_order() {
        assert_eq!(component("k-5"), "k-5");
        assert_eq!(component("/data/a b.csv@10"), "%2Fdata%2Fa%20b.csv@10");
        assert_eq!(component(".."), "%2E.");
        let long = component(&"x/".repeat(100));
        assert!(long.len() < 120 && !long.contains('/'), "{long}");
        let mut ids = vec!["k100", "k-5", "k0", "k-100", "k20"];
        ids.sort_by_key(|s| natural_key(s));
        assert_eq!(ids, ["k-100", "k-5", "k0", "k20", "k100"]);
    }
}
