//! Decant's shared vocabulary: plan model, logical types, schema catalog, identifiers and quoting,
//! and the canonical value encoding that validation digests.

pub mod canonical;
pub mod catalog;
pub mod chunk;
pub mod error;
pub mod files;
pub mod hazard;
pub mod http;
pub mod ident;
pub mod plan;
pub mod reject;
pub mod size;
pub mod transform;
pub mod types;
pub mod url;

pub use catalog::{
    Catalog, CheckConstraint, Column, ForeignKey, Index, Table, TableName, Trigger, View,
};
pub use chunk::{ChunkRange, ChunkSpec};
pub use error::{CoreError, ErrorDomain};
pub use ident::{Dialect, quote_ident, quote_literal};
pub use reject::{Reject, RejectLog};
pub use types::LogicalType;
pub use url::ConnectionUrl;
