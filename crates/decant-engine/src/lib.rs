//! Decant's engine: the planner (selection, type mapping, FK order, DDL, chunks) and the runner
//! (parallel chunks over bounded channels, exactly-once commits, resume, verification).

pub mod convert;
pub mod error;
pub mod planner;
pub mod progress;
pub mod runner;

pub use error::EngineError;
pub use planner::{JobPlan, TableJob, build_plan};
pub use progress::{Progress, TableProgress};
pub use runner::{RunOptions, RunSummary, TableSummary, run};
