//! Connector errors, each knowing whether a retry can help.

use decant_core::{Dialect, ErrorDomain};

/// Errors raised by sources and targets.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The database could not be reached or dropped the connection.
    #[error("{system}: connection failed: {message}")]
    Connection { system: Dialect, message: String },
    /// The database refused a statement (constraint, permission, syntax, overflow...).
    #[error("{system}: {message}")]
    Database {
        system: Dialect,
        message: String,
        retriable: bool,
    },
    /// A column's type has no mapping; the message names the column and the plan key to set.
    #[error(
        "column {table}.{column} has type `{native}`, which {system} cannot map; \
         set a type with [tables.\"{table}\".columns.\"{column}\"] type = \"...\" or a [[cast]] rule"
    )]
    UnsupportedType {
        system: Dialect,
        table: String,
        column: String,
        native: String,
    },
    /// A value could not be converted; names the table, column and the chunk's key range.
    #[error("{table}.{column} ({range}): {message}")]
    Value {
        table: String,
        column: String,
        range: String,
        message: String,
    },
    /// Something in the plan does not fit this system.
    #[error("{0}")]
    Config(String),
    /// More records were rejected than the plan tolerates.
    #[error(
        "{rejected} records rejected in all, more than load.max_rejects = {limit}; `decant rejects` \
         lists them with their reasons: fix the data or the rules, or raise the limit, and run again to resume"
    )]
    TooManyRejects { rejected: u64, limit: u64 },
    /// The other end of a batch channel went away (the job was cancelled or a stage failed).
    #[error("pipeline stopped")]
    ChannelClosed,
    /// A blocking task panicked or was cancelled.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ConnectorError {
    /// Whether retrying the chunk may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            ConnectorError::Connection { .. } => true,
            ConnectorError::Database { retriable, .. } => *retriable,
            _ => false,
        }
    }

    pub fn domain(&self) -> ErrorDomain {
        match self {
            ConnectorError::Connection { .. } => ErrorDomain::External,
            ConnectorError::Database {
                retriable: true, ..
            } => ErrorDomain::External,
            ConnectorError::Internal(_) | ConnectorError::ChannelClosed => ErrorDomain::Internal,
            _ => ErrorDomain::User,
        }
    }
}

impl From<tokio_postgres::Error> for ConnectorError {
    fn from(e: tokio_postgres::Error) -> Self {
        let system = Dialect::Postgres;
        if let Some(db) = e.as_db_error() {
            // Class 08 (connection), 40 (serialization / deadlock), 53 (resources), 57P (shutdown).
            let code = db.code().code();
            let retriable = code.starts_with("08")
                || code.starts_with("40")
                || code.starts_with("53")
                || code.starts_with("57P");
            let mut message = db.message().to_string();
            if let Some(detail) = db.detail() {
                message.push_str(": ");
                message.push_str(detail);
            }
            if let Some(w) = db.where_() {
                message.push_str(" (");
                message.push_str(w);
                message.push(')');
            }
            return ConnectorError::Database {
                system,
                message,
                retriable,
            };
        }
        if e.is_closed() || std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>())
        {
            return ConnectorError::Connection {
                system,
                message: e.to_string(),
            };
        }
        ConnectorError::Database {
            system,
            message: e.to_string(),
            retriable: false,
        }
    }
}

impl From<mysql_async::Error> for ConnectorError {
    fn from(e: mysql_async::Error) -> Self {
        let system = Dialect::Mysql;
        match &e {
            mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => {
                ConnectorError::Connection {
                    system,
                    message: e.to_string(),
                }
            }
            mysql_async::Error::Server(s) => {
                // 1205 lock wait timeout, 1213 deadlock, 2006/2013 server gone.
                let retriable = matches!(s.code, 1205 | 1213 | 2006 | 2013);
                ConnectorError::Database {
                    system,
                    message: s.message.clone(),
                    retriable,
                }
            }
            _ => ConnectorError::Database {
                system,
                message: e.to_string(),
                retriable: false,
            },
        }
    }
}

impl From<rusqlite::Error> for ConnectorError {
    fn from(e: rusqlite::Error) -> Self {
        let retriable = matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        );
        ConnectorError::Database {
            system: Dialect::Sqlite,
            message: e.to_string(),
            retriable,
        }
    }
}

impl From<tokio::task::JoinError> for ConnectorError {
    fn from(e: tokio::task::JoinError) -> Self {
        ConnectorError::Internal(e.to_string())
    }
}
