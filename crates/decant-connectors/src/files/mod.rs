//! Files as sources: CSV and TSV, plain or gzip/zstd compressed, named by a `file://` URL that
//! is one file, a glob (all matching files are one table) or a directory (each file a table).
//!
//! `introspect` infers the schema from a sample, `plan_chunks` splits plain files into byte
//! ranges that start at a record (compressed files are one chunk each), `read_chunk` streams one
//! range into Arrow batches and puts malformed records into the quarantine.

mod csv;
mod input;
mod parquet;
mod records;
pub(crate) mod values;

pub use csv::CsvSource;
pub use parquet::ParquetSource;
pub(crate) use parquet::is_parquet_path;

use std::path::{Path, PathBuf};

use crate::error::ConnectorError;

/// One table of a file source: its name and its files, in name order.
#[derive(Debug, Clone)]
pub(crate) struct FileTable {
    pub name: String,
    pub files: Vec<String>,
}

/// Extensions of files a directory contributes as tables.
const TABLE_EXTENSIONS: [&str; 3] = ["csv", "tsv", "txt"];

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

fn is_table_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let inner = stem_ext(name);
    path.is_file() && TABLE_EXTENSIONS.contains(&inner)
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
pub(crate) fn tables_of(path: &str, name: Option<&str>) -> Result<Vec<FileTable>, ConnectorError> {
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
                .filter(|p| is_table_file(p))
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(cfg(format!(
                    "file://{path}: the directory holds no .csv, .tsv or .txt file (compressed or not)"
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
                "source.csv.table names one table, but file://{path} holds {} files; use a glob for one table",
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
        let all = tables_of(&d, None).unwrap();
        let names: Vec<&str> = all.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["customers", "orders_2023", "orders_2024"]);
        let glob = tables_of(&format!("{d}/orders_*.csv*"), None).unwrap();
        assert_eq!(glob.len(), 1);
        assert_eq!(glob[0].name, "orders");
        assert_eq!(glob[0].files.len(), 2);
        let star = tables_of(&format!("{d}/*.csv"), Some("t")).unwrap();
        assert_eq!(star[0].name, "t");
        assert!(tables_of(&format!("{d}/none*.csv"), None).is_err());
        assert!(tables_of(&d, Some("x")).is_err());
    }
}
