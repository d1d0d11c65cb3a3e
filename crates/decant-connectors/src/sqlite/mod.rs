//! SQLite: introspection, rowid-chunked source, prepared-insert target, DDL and the type mapping
//! table. rusqlite is blocking, so every call runs on a blocking thread with its own connection.

mod ddl;
mod hazards;
mod introspect;
mod source;
mod target;
pub mod types;

pub use source::SqliteSource;
pub use target::SqliteTarget;

use std::time::Duration;

use decant_core::{ConnectionUrl, Dialect};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::error::ConnectorError;

/// How long a connection waits for another one's lock: parallel chunk writers queue for
/// SQLite's single write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// The file path of a `sqlite://` URL.
fn path_of(url: &ConnectionUrl) -> Result<String, ConnectorError> {
    match url.sqlite_path() {
        Some(p) if !p.is_empty() => Ok(p.to_string()),
        _ => Err(ConnectorError::Config(format!(
            "{url}: expected sqlite://PATH, e.g. sqlite://examples/shop.db"
        ))),
    }
}

fn open_error(path: &str, e: rusqlite::Error) -> ConnectorError {
    ConnectorError::Connection {
        system: Dialect::Sqlite,
        message: format!("cannot open {path}: {e}"),
    }
}

/// A read-only connection for the source.
fn open_read(path: &str) -> Result<Connection, ConnectorError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| open_error(path, e))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// A read-write connection for the target (the file is created if missing), in WAL mode.
/// Foreign keys are off: they are declared inline, and chunks load in any order.
fn open_write(path: &str) -> Result<Connection, ConnectorError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| open_error(path, e))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(path, mode, "sqlite target is not in WAL mode");
    }
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF; PRAGMA cache_size = -32768;",
    )?;
    Ok(conn)
}

/// Runs blocking SQLite work off the async runtime.
async fn blocking<T, F>(f: F) -> Result<T, ConnectorError>
where
    F: FnOnce() -> Result<T, ConnectorError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await?
}

/// How a table's rows are addressed in key order: its `INTEGER PRIMARY KEY` column, else the
/// first of `rowid`, `_rowid_`, `oid` that no column shadows; `None` for `WITHOUT ROWID` tables
/// (and the odd table whose columns shadow all three).
fn row_key(conn: &Connection, table: &str) -> Result<Option<String>, ConnectorError> {
    let without_rowid: bool = conn
        .query_row(
            "SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = ?1",
            [table],
            |r| r.get(0),
        )
        .optional()?
        .ok_or_else(|| ConnectorError::Config(format!("sqlite: no table named {table}")))?;
    if without_rowid {
        return Ok(None);
    }
    let mut stmt = conn.prepare("SELECT name, type, pk FROM pragma_table_xinfo(?1)")?;
    let columns: Vec<(String, String, i64)> = stmt
        .query_map([table], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    if let Some(alias) = rowid_alias(conn, table, &columns)? {
        return Ok(Some(alias));
    }
    Ok(["rowid", "_rowid_", "oid"]
        .into_iter()
        .find(|n| !columns.iter().any(|(c, _, _)| c.eq_ignore_ascii_case(n)))
        .map(str::to_string))
}

/// The column that is an alias of the rowid: a lone `INTEGER` primary key column with no
/// separate key index (`INTEGER PRIMARY KEY DESC` is SQLite's one exception, and has one).
fn rowid_alias(
    conn: &Connection,
    table: &str,
    columns: &[(String, String, i64)],
) -> Result<Option<String>, ConnectorError> {
    let pk: Vec<&(String, String, i64)> = columns.iter().filter(|c| c.2 > 0).collect();
    let [(name, ty, _)] = pk.as_slice() else {
        return Ok(None);
    };
    if !ty.trim().eq_ignore_ascii_case("INTEGER") {
        return Ok(None);
    }
    let pk_index: bool = conn.query_row(
        "SELECT count(*) > 0 FROM pragma_index_list(?1) WHERE origin = 'pk'",
        [table],
        |r| r.get(0),
    )?;
    Ok((!pk_index).then(|| name.clone()))
}
