//! Decant's transforms: column mapping, computed and constant columns, filters, cleansing
//! functions and masks, and row rules, compiled once per table into DataFusion physical
//! expressions and evaluated on each Arrow batch between reader and writer.

pub mod dedupe;
pub mod error;
pub mod functions;
pub mod input;
pub mod mask;
pub mod pushdown;
pub mod rules;
pub mod table;

pub use dedupe::DedupeScan;
pub use error::TransformError;
pub use input::{InputRow, decode_rows};
pub use pushdown::{PushKind, Pushdown};
pub use table::{
    Applied, ChunkRun, OutputSpec, ReferenceNeed, Step, StepCounts, TableTransform, TransformSpec,
    key_hash,
};
