//! A minimal SQL client for rules on the target: one connection, queries that return numbers.
//! It speaks each dialect through its own driver, outside the connector traits on purpose: a
//! rule is the user's SQL, not a capability of a connector.

use decant_core::{ConnectionUrl, Dialect};

/// One connection to the target.
pub(crate) enum SqlConn {
    Postgres(tokio_postgres::Client),
    Mysql(mysql_async::Conn),
    Sqlite(String),
}

impl SqlConn {
    pub async fn connect(url: &ConnectionUrl) -> Result<SqlConn, String> {
        match url.dialect() {
            Dialect::Postgres => {
                let (client, connection) =
                    tokio_postgres::connect(url.expose(), tokio_postgres::NoTls)
                        .await
                        .map_err(|e| format!("cannot connect to {url}: {e}"))?;
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "rule connection ended");
                    }
                });
                client
                    .batch_execute("SET TIME ZONE 'UTC'; SET default_transaction_read_only = on")
                    .await
                    .map_err(|e| format!("cannot set up the session on {url}: {e}"))?;
                Ok(SqlConn::Postgres(client))
            }
            Dialect::Mysql => {
                let raw = url.expose();
                let raw = match raw.strip_prefix("mariadb://") {
                    Some(rest) => format!("mysql://{rest}"),
                    None => raw.to_string(),
                };
                let opts = mysql_async::Opts::from_url(&raw)
                    .map_err(|e| format!("{url}: invalid MySQL URL: {e}"))?;
                let mut conn = mysql_async::Conn::new(opts)
                    .await
                    .map_err(|e| format!("cannot connect to {url}: {e}"))?;
                use mysql_async::prelude::Queryable;
                for setup in [
                    "SET time_zone = '+00:00', NAMES utf8mb4",
                    "SET SESSION TRANSACTION READ ONLY",
                ] {
                    conn.query_drop(setup)
                        .await
                        .map_err(|e| format!("cannot set up the session on {url}: {e}"))?;
                }
                Ok(SqlConn::Mysql(conn))
            }
            Dialect::Sqlite => match url.sqlite_path() {
                Some(p) if std::path::Path::new(p).is_file() => Ok(SqlConn::Sqlite(p.into())),
                _ => Err(format!("{url}: the SQLite file does not exist")),
            },
            Dialect::File => Err(format!("{url}: files take no SQL rules")),
            Dialect::Http => Err(format!("{url}: an HTTP API takes no SQL rules")),
        }
    }

    /// Runs `sql` and returns the first row's values as integers (`None` for NULL); no row is
    /// an empty list. A value that is no whole number is an error that quotes it.
    pub async fn numbers(&mut self, sql: &str) -> Result<Vec<Option<i64>>, String> {
        match self {
            SqlConn::Postgres(client) => {
                let messages = client.simple_query(sql).await.map_err(pg_error)?;
                for m in messages {
                    if let tokio_postgres::SimpleQueryMessage::Row(row) = m {
                        return (0..row.len()).map(|i| number(row.get(i))).collect();
                    }
                }
                Ok(vec![])
            }
            SqlConn::Mysql(conn) => {
                use mysql_async::Value;
                use mysql_async::prelude::Queryable;
                let row: Option<mysql_async::Row> =
                    conn.query_first(sql).await.map_err(|e| e.to_string())?;
                let Some(row) = row else { return Ok(vec![]) };
                (0..row.len())
                    .map(|i| match row.as_ref(i) {
                        None | Some(Value::NULL) => Ok(None),
                        Some(Value::Int(v)) => Ok(Some(*v)),
                        Some(Value::UInt(v)) => i64::try_from(*v)
                            .map(Some)
                            .map_err(|_| format!("{v} does not fit a 64-bit integer")),
                        Some(Value::Bytes(b)) => number(Some(&String::from_utf8_lossy(b))),
                        Some(Value::Double(v)) => number(Some(&v.to_string())),
                        Some(Value::Float(v)) => number(Some(&v.to_string())),
                        Some(other) => Err(format!("`{other:?}` is not a number")),
                    })
                    .collect()
            }
            SqlConn::Sqlite(path) => {
                let (path, sql) = (path.clone(), sql.to_string());
                tokio::task::spawn_blocking(move || sqlite_numbers(&path, &sql))
                    .await
                    .map_err(|e| e.to_string())?
            }
        }
    }

    pub async fn close(self) {
        if let SqlConn::Mysql(conn) = self {
            let _ = conn.disconnect().await;
        }
    }
}

fn pg_error(e: tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => e.to_string(),
    }
}

fn sqlite_numbers(path: &str, sql: &str) -> Result<Vec<Option<i64>>, String> {
    use rusqlite::types::ValueRef;
    let flags =
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = rusqlite::Connection::open_with_flags(path, flags)
        .map_err(|e| format!("cannot open {path}: {e}"))?;
    conn.busy_timeout(std::time::Duration::from_secs(60))
        .map_err(|e| e.to_string())?;
    let mut stmt = conn.prepare(sql).map_err(|e| e.to_string())?;
    let n = stmt.column_count();
    let mut rows = stmt.query([]).map_err(|e| e.to_string())?;
    let Some(row) = rows.next().map_err(|e| e.to_string())? else {
        return Ok(vec![]);
    };
    (0..n)
        .map(|i| match row.get_ref(i).map_err(|e| e.to_string())? {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(v) => Ok(Some(v)),
            ValueRef::Real(v) => number(Some(&v.to_string())),
            ValueRef::Text(t) => number(Some(&String::from_utf8_lossy(t))),
            ValueRef::Blob(_) => Err("a blob is not a number".to_string()),
        })
        .collect()
}

/// Parses a number's text: an integer, or a decimal or float with no fraction (`3.0`, `3`).
fn number(text: Option<&str>) -> Result<Option<i64>, String> {
    let Some(t) = text.map(str::trim) else {
        return Ok(None);
    };
    if let Ok(v) = t.parse::<i64>() {
        return Ok(Some(v));
    }
    match t.parse::<f64>() {
        Ok(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(f as i64)),
        _ => Err(format!(
            "`{t}` is not a whole number; a rule's query must return a count or another integer"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_from_text() {
        assert_eq!(number(Some("42")), Ok(Some(42)));
        assert_eq!(number(Some(" 3.0 ")), Ok(Some(3)));
        assert_eq!(number(None), Ok(None));
        assert!(
            number(Some("2.5"))
                .unwrap_err()
                .contains("not a whole number")
        );
        assert!(number(Some("t")).is_err());
    }

    #[tokio::test]
    async fn sqlite_rules_read_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE t (v int); INSERT INTO t VALUES (1), (NULL), (3);")
            .unwrap();
        let url = ConnectionUrl::parse(&format!("sqlite://{}", path.display())).unwrap();
        let mut sql = SqlConn::connect(&url).await.unwrap();
        assert_eq!(
            sql.numbers("SELECT count(*), sum(v), max(NULL) FROM t")
                .await
                .unwrap(),
            vec![Some(3), Some(4), None]
        );
        assert!(sql.numbers("SELECT nope FROM t").await.is_err());
        assert_eq!(sql.numbers("SELECT 1 WHERE 0").await.unwrap(), vec![]);
    }
}
