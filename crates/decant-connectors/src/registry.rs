//! The one place that names every connector.

use std::sync::Arc;

use decant_core::{ConnectionUrl, Dialect};

use crate::error::ConnectorError;
use crate::traits::{Source, Target};
use crate::{mysql, postgres, sqlite};

/// Opens a source for `url`.
pub async fn connect_source(url: &ConnectionUrl) -> Result<Arc<dyn Source>, ConnectorError> {
    Ok(match url.dialect() {
        Dialect::Postgres => Arc::new(postgres::PostgresSource::connect(url).await?),
        Dialect::Mysql => Arc::new(mysql::MysqlSource::connect(url).await?),
        Dialect::Sqlite => Arc::new(sqlite::SqliteSource::open(url)?),
    })
}

/// Opens a target for `url`.
pub async fn connect_target(url: &ConnectionUrl) -> Result<Arc<dyn Target>, ConnectorError> {
    Ok(match url.dialect() {
        Dialect::Postgres => Arc::new(postgres::PostgresTarget::connect(url).await?),
        Dialect::Mysql => Arc::new(mysql::MysqlTarget::connect(url).await?),
        Dialect::Sqlite => Arc::new(sqlite::SqliteTarget::open(url)?),
    })
}
