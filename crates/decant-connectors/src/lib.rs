//! Sources and targets for PostgreSQL, MySQL/MariaDB, SQLite and files (CSV/TSV/Parquet sources;
//! CSV, JSON Lines and Parquet targets), and HTTP JSON APIs as sources, behind two small traits.
//!
//! Each system lives in its own folder, split by role: `introspect`, `source`, `target`, `types`
//! (the type mapping table) and `ddl`. `registry` is the one place that names them all.

pub mod batch;
pub mod chunking;
#[cfg(test)]
mod doc_table;
pub mod error;
pub mod files;
pub mod http;
pub mod mysql;
pub mod postgres;
pub mod preimage;
pub mod registry;
pub mod sqlite;
pub mod staged;
pub mod testkit;
pub mod tls;
pub mod traits;

pub use error::ConnectorError;
pub use registry::{connect_source, connect_source_with, connect_target, connect_target_with};
pub use traits::{
    ChunkMarker, ChunkReceiver, ChunkSender, DdlSet, HazardBound, HazardCheck, HazardCount,
    InPlaceDigest, KeyBuckets, ReadColumn, ReadRequest, Source, Target, TargetColumn, TargetTable,
    UpsertTarget, chunk_channel,
};

/// Name of the table on every target that records committed chunks (see DESIGN.md, exactly once).
pub const MARKER_TABLE: &str = "_decant_chunks";
