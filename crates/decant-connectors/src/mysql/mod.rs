//! Mysql: introspection, source, target and the type mapping table.

use arrow_array::RecordBatch;
use async_trait::async_trait;
use decant_core::{Catalog, ChunkSpec, ConnectionUrl, Dialect, LogicalType, Table, TableName};
use tokio::sync::mpsc;

use crate::error::ConnectorError;
use crate::traits::{ChunkMarker, DdlSet, ReadRequest, Source, Target, TargetTable};

fn pending() -> ConnectorError {
    ConnectorError::Config("mysql connector is being written".into())
}

pub struct MysqlSource;

impl MysqlSource {
    pub async fn connect(_url: &ConnectionUrl) -> Result<Self, ConnectorError> {
        Err(pending())
    }
}

#[async_trait]
impl Source for MysqlSource {
    fn dialect(&self) -> Dialect {
        Dialect::Mysql
    }
    async fn introspect(&self, _schemas: &[String]) -> Result<Catalog, ConnectorError> {
        Err(pending())
    }
    async fn plan_chunks(
        &self,
        _table: &Table,
        _chunk_rows: u64,
    ) -> Result<Vec<ChunkSpec>, ConnectorError> {
        Err(pending())
    }
    async fn read_chunk(
        &self,
        _request: &ReadRequest,
        _tx: mpsc::Sender<RecordBatch>,
    ) -> Result<u64, ConnectorError> {
        Err(pending())
    }
    async fn count_rows(&self, _table: &TableName) -> Result<u64, ConnectorError> {
        Err(pending())
    }
}

pub struct MysqlTarget;

impl MysqlTarget {
    pub async fn connect(_url: &ConnectionUrl) -> Result<Self, ConnectorError> {
        Err(pending())
    }
}

#[async_trait]
impl Target for MysqlTarget {
    fn dialect(&self) -> Dialect {
        Dialect::Mysql
    }
    fn default_schema(&self) -> Option<String> {
        None
    }
    fn native_type(&self, _logical: &LogicalType) -> Result<String, ConnectorError> {
        Err(pending())
    }
    fn parse_native_type(&self, _native: &str) -> Result<LogicalType, ConnectorError> {
        Err(pending())
    }
    fn ddl(&self, _table: &TargetTable, _primary_key_after_load: bool) -> DdlSet {
        DdlSet::default()
    }
    async fn table_exists(&self, _table: &TableName) -> Result<bool, ConnectorError> {
        Err(pending())
    }
    async fn execute(&self, _statements: &[String]) -> Result<(), ConnectorError> {
        Err(pending())
    }
    async fn prepare_markers(&self) -> Result<(), ConnectorError> {
        Err(pending())
    }
    async fn committed_chunks(&self, _job: &str) -> Result<Vec<ChunkMarker>, ConnectorError> {
        Err(pending())
    }
    async fn delete_markers(&self, _job: &str) -> Result<(), ConnectorError> {
        Err(pending())
    }
    async fn write_chunk(
        &self,
        _job: &str,
        _table: &TargetTable,
        _chunk_id: &str,
        _rx: crate::traits::ChunkReceiver,
    ) -> Result<u64, ConnectorError> {
        Err(pending())
    }
    async fn count_rows(&self, _table: &TableName) -> Result<u64, ConnectorError> {
        Err(pending())
    }
}
