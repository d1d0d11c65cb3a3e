//! Connection URLs: `postgres://`, `mysql://` (also MariaDB), `sqlite://PATH`, `file://PATH`
//! (a file, a glob or a directory), `http://` and `https://` (a JSON API).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::ident::Dialect;

/// A parsed connection URL. Its `Debug` and `Display` hide the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConnectionUrl {
    raw: String,
    dialect: Dialect,
}

impl ConnectionUrl {
    pub fn parse(raw: &str) -> Result<Self, CoreError> {
        let err = |reason: &str| CoreError::Url {
            url: redact(raw),
            reason: reason.to_string(),
        };
        let scheme = raw.split_once("://").map(|(s, _)| s).ok_or_else(|| {
            err("expected scheme://..., e.g. postgres://user@host/db, mysql://user@host/db or sqlite://path.db")
        })?;
        let dialect = match scheme {
            "postgres" | "postgresql" => Dialect::Postgres,
            "mysql" | "mariadb" => Dialect::Mysql,
            "sqlite" => Dialect::Sqlite,
            "file" => Dialect::File,
            "http" | "https" => Dialect::Http,
            _ => {
                return Err(err(
                    "unknown scheme: use postgres://, mysql://, sqlite://, file:// or http(s)://",
                ));
            }
        };
        if !matches!(dialect, Dialect::Sqlite | Dialect::File) {
            let parsed = url::Url::parse(raw).map_err(|e| err(&e.to_string()))?;
            if parsed.host_str().is_none_or(str::is_empty) {
                return Err(err("missing host"));
            }
        }
        Ok(ConnectionUrl {
            raw: raw.to_string(),
            dialect,
        })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The URL with its password, for drivers only; never log it.
    pub fn expose(&self) -> &str {
        &self.raw
    }

    /// For `sqlite://PATH`: the file path (`sqlite:///abs/path` and `sqlite://rel/path` both work).
    pub fn sqlite_path(&self) -> Option<&str> {
        let rest = self.raw.strip_prefix("sqlite://")?;
        Some(rest.split('?').next().unwrap_or(rest))
    }

    /// For `file://PATH[?k=v&...]`: the path (a file, a glob or a directory) and the query text.
    pub fn file_path(&self) -> Option<(&str, Option<&str>)> {
        let rest = self.raw.strip_prefix("file://")?;
        Some(match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        })
    }

    /// The database name (last path segment) for server URLs.
    pub fn database(&self) -> Option<String> {
        let parsed = url::Url::parse(&self.raw).ok()?;
        let db = parsed.path().trim_start_matches('/');
        (!db.is_empty()).then(|| {
            percent_encoding::percent_decode_str(db)
                .decode_utf8_lossy()
                .into_owned()
        })
    }
}

/// Hides the password of a URL for display.
pub fn redact(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => raw.to_string(),
    }
}

impl fmt::Display for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.raw))
    }
}

impl fmt::Debug for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnectionUrl({self})")
    }
}

impl TryFrom<String> for ConnectionUrl {
    type Error = CoreError;
    fn try_from(s: String) -> Result<Self, CoreError> {
        ConnectionUrl::parse(&s)
    }
}

impl From<ConnectionUrl> for String {
    fn from(u: ConnectionUrl) -> String {
        u.raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_redacts() {
        let u = ConnectionUrl::parse("postgres://bob:s3cret@localhost:5432/shop").unwrap();
        assert_eq!(u.dialect(), Dialect::Postgres);
        assert!(!u.to_string().contains("s3cret"));
        assert!(!format!("{u:?}").contains("s3cret"));
        assert_eq!(u.database().as_deref(), Some("shop"));
        let s = ConnectionUrl::parse("sqlite://examples/shop.db").unwrap();
        assert_eq!(s.sqlite_path(), Some("examples/shop.db"));
        let f = ConnectionUrl::parse("file://data/*.csv?delimiter=;").unwrap();
        assert_eq!(f.dialect(), Dialect::File);
        assert_eq!(f.file_path(), Some(("data/*.csv", Some("delimiter=;"))));
        let h = ConnectionUrl::parse("https://api.example.com/v1").unwrap();
        assert_eq!(h.dialect(), Dialect::Http);
        assert!(ConnectionUrl::parse("http://").is_err());
        assert!(ConnectionUrl::parse("oracle://x/y").is_err());
        assert!(ConnectionUrl::parse("nonsense").is_err());
    }
}
