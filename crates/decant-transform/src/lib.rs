//! Decant's transforms: column mapping, computed and constant columns, filters, cleansing
//! functions and masks, and row rules, compiled once per table into DataFusion physical
//! expressions and evaluated on each Arrow batch between reader and writer.

pub mod error;
pub mod functions;
pub mod mask;
pub mod rules;
pub mod table;

pub use error::TransformError;
pub use table::{Applied, ChunkRun, OutputSpec, Step, StepCounts, TableTransform, TransformSpec};
