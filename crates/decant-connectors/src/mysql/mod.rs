//! MySQL/MariaDB: introspection, streaming source, `LOAD DATA LOCAL INFILE` target, DDL and the
//! type mapping table.

mod ddl;
mod decode;
mod encode;
mod hazards;
mod introspect;
mod source;
mod target;
pub mod types;
mod upsert_keys;

pub use source::MysqlSource;
pub use target::{LoadMethod, MysqlTarget};

use decant_core::ident::quote_qualified;
use decant_core::{ConnectionUrl, Dialect, TableName};
use mysql_async::prelude::Queryable;
use mysql_async::{Opts, OptsBuilder, Pool};

use crate::error::ConnectorError;

/// Session settings of every connection: TIMESTAMP values travel in UTC whatever the server's
/// zone (DATETIME is naive and unaffected), and text in full UTF-8.
const SESSION_SETUP: &[&str] = &["SET time_zone = '+00:00'", "SET NAMES utf8mb4"];

/// What the server said about itself when the pool was opened.
#[derive(Debug, Clone)]
pub(crate) struct ServerInfo {
    /// `MariaDB 10.11.19` or `MySQL 8.0.36`.
    pub version: String,
    pub mariadb: bool,
    /// The database the URL names.
    pub database: String,
}

/// Opens a pool for `url` whose connections run `extra` after the common session setup, and
/// checks that the server answers.
pub(crate) async fn open_pool(
    url: &ConnectionUrl,
    extra: &[&str],
) -> Result<(Pool, ServerInfo), ConnectorError> {
    let database = url.database().ok_or_else(|| {
        ConnectorError::Config(format!(
            "{url}: the MySQL URL must name a database, e.g. mysql://user@host:3306/shop"
        ))
    })?;
    // mysql_async knows only the `mysql` scheme; `mariadb://` is the same protocol.
    let raw = url.expose();
    let raw = match raw.strip_prefix("mariadb://") {
        Some(rest) => format!("mysql://{rest}"),
        None => raw.to_string(),
    };
    let opts = Opts::from_url(&raw)
        .map_err(|e| ConnectorError::Config(format!("{url}: invalid MySQL connection URL: {e}")))?;
    let setup: Vec<String> = SESSION_SETUP
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect();
    let pool = Pool::new(OptsBuilder::from_opts(opts).setup(setup));
    let mut conn = pool.get_conn().await?;
    let version: String = conn
        .query_first("SELECT VERSION()")
        .await?
        .unwrap_or_default();
    drop(conn);
    let mariadb = version.to_ascii_lowercase().contains("mariadb");
    let number = version.split('-').next().unwrap_or(&version);
    let info = ServerInfo {
        version: format!("{} {number}", if mariadb { "MariaDB" } else { "MySQL" }),
        mariadb,
        database,
    };
    Ok((pool, info))
}

/// `` `db`.`name` `` (or `` `name` ``), quoted.
pub(crate) fn qualified(table: &TableName) -> String {
    quote_qualified(Dialect::Mysql, table.schema.as_deref(), &table.name)
}

/// `` `name` ``, quoted.
pub(crate) fn ident(name: &str) -> String {
    decant_core::quote_ident(Dialect::Mysql, name)
}
