//! Files as sources: CSV and TSV, JSON Lines and JSON arrays, plain or gzip/zstd compressed, and
//! Parquet, named by a `file://` URL that
//! is one file, a glob (all matching files are one table) or a directory (each file a table).
//!
//! `introspect` infers the schema from a sample, `plan_chunks` splits plain files into byte
//! ranges that start at a record (compressed files are one chunk each), `read_chunk` streams one
//! range into Arrow batches and puts malformed records into the quarantine.
//!
//! Files as targets: `target` writes CSV, JSON Lines or Parquet files into a directory
//! (`encode` holds the text forms of values, `write` the atomic, compressed file writers).

mod csv;
mod encode;
mod input;
pub(crate) mod json;
mod json_records;
pub(crate) mod json_values;
mod parquet;
mod parquet_rows;
mod records;
mod target;
pub(crate) mod values;
mod write;

pub use csv::CsvSource;
pub use json::JsonSource;
pub use parquet::ParquetSource;
pub use target::FileTarget;

use std::path::{Path, PathBuf};

use crate::error::ConnectorError;

/// The chunk of `rows` records of `file` from byte `start` (line `line`) to `end` (the file's
/// end when `None`), as the CSV and JSON Lines sources plan them.
pub(crate) fn file_chunk(
    file: &str,
    start: u64,
    end: Option<u64>,
    line: u64,
    rows: u64,
) -> decant_core::ChunkSpec {
    decant_core::ChunkSpec {
        id: format!("{file}@{start}"),
        range: decant_core::ChunkRange::FileBytes {
            file: file.to_string(),
            start,
            end,
            line,
        },
        estimated_rows: rows,
    }
}

/// One table of a file source: its name and its files, in name order.
#[derive(Debug, Clone)]
pub(crate) struct FileTable {
    pub name: String,
    pub files: Vec<String>,
}

/// Extensions of files a directory contributes as CSV tables.
pub(crate) const CSV_EXTENSIONS: &[&str] = &["csv", "tsv", "txt"];
/// Extensions of files a directory contributes as JSON tables.
pub(crate) const JSON_EXTENSIONS: &[&str] = &["jsonl", "ndjson", "json"];
/// Extensions of files a directory contributes as Parquet tables.
pub(crate) const PARQUET_EXTENSIONS: &[&str] = &["parquet"];

/// The file name without `.gz`/`.zst` and without the format extension.
fn stem(name: &str) -> &str {
    let mut s = name;
    for ext in [".gz", ".gzip", ".zst", ".zstd"] {
        if let Some(rest) = s.strip_suffix(ext) {
            s = rest;
            break;
        }
    }
    match s.rfind('.') {
        Some(i) if i > 0 => &s[..i],
        _ => s,
    }
}

fn is_table_file(path: &Path, extensions: &[&str]) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let inner = stem_ext(name).to_ascii_lowercase();
    path.is_file() && extensions.contains(&inner.as_str())
}

/// The files a `file://` path names: a glob's matches, a directory's entries, or the path.
fn listed(path: &str) -> Vec<PathBuf> {
    let p = Path::new(path);
    if has_glob(path) {
        glob::glob(path)
            .map(|g| g.filter_map(Result::ok).collect())
            .unwrap_or_default()
    } else if p.is_dir() {
        std::fs::read_dir(p)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    } else {
        vec![p.to_path_buf()]
    }
}

/// Whether any of `files` has one of the format `extensions` (under any compression).
fn any_with(files: &[PathBuf], extensions: &[&str]) -> bool {
    files.iter().any(|f| {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
        extensions.contains(&stem_ext(name).to_ascii_lowercase().as_str())
    })
}

/// Whether `path` names JSON files: a file, glob or directory whose files include JSON
/// (`.jsonl`, `.ndjson`, `.json`, compressed or not) and no CSV.
pub(crate) fn is_json_path(path: &str) -> bool {
    let files = listed(path);
    any_with(&files, JSON_EXTENSIONS) && !any_with(&files, CSV_EXTENSIONS)
}

/// Whether `path` names Parquet files: a path or glob ending in `.parquet`, or a directory
/// holding `.parquet` files and no CSV or JSON file.
pub(crate) fn is_parquet_path(path: &str) -> bool {
    if path.to_ascii_lowercase().ends_with(".parquet") {
        return true;
    }
    if has_glob(path) || !Path::new(path).is_dir() {
        return false;
    }
    let files = listed(path);
    any_with(&files, PARQUET_EXTENSIONS)
        && !any_with(&files, CSV_EXTENSIONS)
        && !any_with(&files, JSON_EXTENSIONS)
}

/// The format extension under any compression extension (`a.csv.gz` → `csv`).
fn stem_ext(name: &str) -> &str {
    let mut s = name;
    for ext in [".gz", ".gzip", ".zst", ".zstd"] {
        if let Some(rest) = s.strip_suffix(ext) {
            s = rest;
            break;
        }
    }
    s.rsplit_once('.').map_or("", |(_, e)| e)
}

fn has_glob(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

/// The table of `tables` named `name`.
pub(crate) fn find_table(
    tables: &[FileTable],
    name: &decant_core::TableName,
) -> Result<FileTable, ConnectorError> {
    tables
        .iter()
        .find(|t| t.name == name.name)
        .cloned()
        .ok_or_else(|| ConnectorError::Config(format!("no file table named {name}")))
}

/// Runs blocking file I/O off the async workers.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, ConnectorError>
where
    F: FnOnce() -> Result<T, ConnectorError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await?
}

/// The tables a `file://` path names.
/// `extensions` are the formats a directory contributes.
pub(crate) fn tables_of(
    path: &str,
    name: Option<&str>,
    extensions: &[&str],
) -> Result<Vec<FileTable>, ConnectorError> {
    let cfg = |m: String| ConnectorError::Config(m);
    let mut tables = if has_glob(path) {
        let mut files: Vec<String> = glob::glob(path)
            .map_err(|e| cfg(format!("file://{path}: bad glob: {e}")))?
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(cfg(format!("file://{path}: no file matches")));
        }
        let pattern_name = Path::new(path)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("");
        let mut table: String = stem(pattern_name)
            .chars()
            .filter(|c| !matches!(c, '*' | '?' | '[' | ']'))
            .collect();
        table = table.trim_matches(['_', '-', '.', ' ']).to_string();
        if table.is_empty() {
            table = Path::new(path)
                .parent()
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str())
                .unwrap_or("data")
                .to_string();
        }
        vec![FileTable { name: table, files }]
    } else {
        let p = PathBuf::from(path);
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&p)
                .map_err(|e| cfg(format!("file://{path}: {e}")))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| is_table_file(p, extensions))
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(cfg(format!(
                    "file://{path}: the directory holds no .{} file (compressed or not)",
                    extensions.join(", .")
                )));
            }
            files
                .into_iter()
                .map(|f| FileTable {
                    name: stem(&f.file_name().unwrap_or_default().to_string_lossy()).to_string(),
                    files: vec![f.to_string_lossy().into_owned()],
                })
                .collect()
        } else if p.is_file() {
            vec![FileTable {
                name: stem(&p.file_name().unwrap_or_default().to_string_lossy()).to_string(),
                files: vec![path.to_string()],
            }]
        } else {
            return Err(cfg(format!("file://{path}: no such file or directory")));
        }
    };
    if let Some(name) = name {
        if tables.len() != 1 {
            return Err(cfg(format!(
                "the table option names one table, but file://{path} holds {} files; use a glob for one table",
                tables.len()
            )));
        }
        tables[0].name = name.to_string();
    }
    Ok(tables)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_come_from_files_and_globs() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "orders_2023.csv",
            "orders_2024.csv.gz",
            "customers.tsv",
            "notes.md",
        ] {
            std::fs::write(dir.path().join(f), "a\n1\n").unwrap();
        }
        let d = dir.path().to_string_lossy().to_string();
        let all = tables_of(&d, None, CSV_EXTENSIONS).unwrap();
        let names: Vec<&str> = all.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["customers", "orders_2023", "orders_2024"]);
        let glob = tables_of(&format!("{d}/orders_*.csv*"), None, CSV_EXTENSIONS).unwrap();
        assert_eq!(glob.len(), 1);
        assert_eq!(glob[0].name, "orders");
        assert_eq!(glob[0].files.len(), 2);
        let star = tables_of(&format!("{d}/*.csv"), Some("t"), CSV_EXTENSIONS).unwrap();
        assert_eq!(star[0].name, "t");
        assert!(tables_of(&format!("{d}/none*.csv"), None, CSV_EXTENSIONS).is_err());
        assert!(tables_of(&d, Some("x"), CSV_EXTENSIONS).is_err());
        assert!(!is_json_path(&d), "CSV files in the directory");
        assert!(is_json_path(&format!("{d}/x.NDJSON")));
        let j = tempfile::tempdir().unwrap();
        std::fs::write(j.path().join("a.jsonl"), "{}\n").unwrap();
        std::fs::write(j.path().join("b.json.zst"), "").unwrap();
        let jd = j.path().to_string_lossy().to_string();
        assert!(is_json_path(&jd));
        assert!(is_json_path(&format!("{jd}/*")));
        assert!(is_json_path(&format!("{jd}/a.jsonl")));
        assert_eq!(tables_of(&jd, None, JSON_EXTENSIONS).unwrap().len(), 2);
    }
}
