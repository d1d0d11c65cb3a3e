//! PostgreSQL: introspection, binary COPY source and target, DDL and the type mapping table.

mod codec;
mod ddl;
mod digest;
mod hazards;
mod introspect;
mod source;
mod target;
pub mod types;

pub use source::PostgresSource;
pub use target::{PostgresTarget, json_to_pg_array};

use decant_core::{Dialect, TableName};
use tokio_postgres::{Client, NoTls};

use crate::error::ConnectorError;

/// Opens one connection and drives it on the runtime; sessions run in UTC.
pub(crate) async fn connect(url: &str) -> Result<Client, ConnectorError> {
    let (client, connection) =
        tokio_postgres::connect(url, NoTls)
            .await
            .map_err(|e| ConnectorError::Connection {
                system: Dialect::Postgres,
                message: e.to_string(),
            })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "postgres connection ended");
        }
    });
    client
        .batch_execute("SET TIME ZONE 'UTC'; SET statement_timeout = 0")
        .await?;
    Ok(client)
}

/// `"schema"."name"` (or `"name"`), quoted.
pub(crate) fn qualified(table: &TableName) -> String {
    decant_core::ident::quote_qualified(Dialect::Postgres, table.schema.as_deref(), &table.name)
}
