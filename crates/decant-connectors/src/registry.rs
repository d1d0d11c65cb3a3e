//! The one place that names every connector.

use std::sync::Arc;

use decant_core::files::FileTargetOptions;
use decant_core::plan::SourceConfig;
use decant_core::{ConnectionUrl, Dialect};

use crate::error::ConnectorError;
use crate::traits::{Source, Target};
use crate::{files, http, mysql, postgres, sqlite};

/// Opens a source for `url`, with default file options (a `file://` URL's query may set them).
pub async fn connect_source(url: &ConnectionUrl) -> Result<Arc<dyn Source>, ConnectorError> {
    connect_source_with(url, None).await
}

/// Opens a source for `url`; `source` is the plan's `[source]` section, whose `csv`, `json` and
/// `parquet` options apply to `file://` URLs and `http` options to `http://` ones.
pub async fn connect_source_with(
    url: &ConnectionUrl,
    source: Option<&SourceConfig>,
) -> Result<Arc<dyn Source>, ConnectorError> {
    let csv = source.and_then(|s| s.csv.as_ref());
    let json = source.and_then(|s| s.json.as_ref());
    Ok(match url.dialect() {
        Dialect::Http => Arc::new(http::HttpSource::open(
            url,
            source.and_then(|s| s.http.as_ref()),
        )?),
        Dialect::Postgres => Arc::new(postgres::PostgresSource::connect(url).await?),
        Dialect::Mysql => Arc::new(mysql::MysqlSource::connect(url).await?),
        Dialect::Sqlite => Arc::new(sqlite::SqliteSource::open(url)?),
        Dialect::File => {
            let path = url.file_path().map_or("", |(p, _)| p);
            let parquet = source.and_then(|s| s.parquet.as_ref());
            // `[source.parquet]` says Parquet whatever the extensions; else the files do.
            if parquet.is_some() || files::is_parquet_path(path) {
                let mut options = parquet.cloned().unwrap_or_default();
                if options.table.is_none() {
                    options.table = csv
                        .and_then(|c| c.table.clone())
                        .or(json.and_then(|j| j.table.clone()));
                }
                Arc::new(files::ParquetSource::open(url, &options)?)
            } else if json.is_some() || csv.is_none() && files::is_json_path(path) {
                // `[source.json]` says JSON whatever the extensions; else the files do.
                Arc::new(files::JsonSource::open(url, json)?)
            } else {
                Arc::new(files::CsvSource::open(url, csv)?)
            }
        }
    })
}

/// Opens a target for `url`, with default file options (a `file://` URL's query may set them).
pub async fn connect_target(url: &ConnectionUrl) -> Result<Arc<dyn Target>, ConnectorError> {
    connect_target_with(url, None).await
}

/// Opens a target for `url`; `file` is the plan's `[target.file]` section, for `file://` URLs.
pub async fn connect_target_with(
    url: &ConnectionUrl,
    file: Option<&FileTargetOptions>,
) -> Result<Arc<dyn Target>, ConnectorError> {
    Ok(match url.dialect() {
        Dialect::Postgres => Arc::new(postgres::PostgresTarget::connect(url).await?),
        Dialect::Mysql => Arc::new(mysql::MysqlTarget::connect(url).await?),
        Dialect::Sqlite => Arc::new(sqlite::SqliteTarget::open(url)?),
        Dialect::File => Arc::new(files::FileTarget::open(url, file)?),
        Dialect::Http => {
            return Err(ConnectorError::Config(format!(
                "{url}: an HTTP API is a source only; write to a database"
            )));
        }
    })
}
