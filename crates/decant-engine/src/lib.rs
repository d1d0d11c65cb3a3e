//! Decant's engine: the planner (selection, type mapping, FK order, DDL, chunks) and the runner
//! (parallel chunks over bounded channels, exactly-once commits, resume, verification), and
//! validation (digests over canonical values, row-level diffs, rules on the target).

pub mod control;
pub mod convert;
pub mod dedupe;
pub mod error;
pub mod estimate;
pub mod hazards;
pub mod planner;
pub mod policy;
pub mod preflight;
pub mod progress;
pub mod reference;
pub mod retention;
pub mod retry;
pub mod rollback;
pub mod runner;
pub mod staging;
pub mod swap;
pub mod transform_plan;
pub mod transform_run;
pub mod validate;

pub use control::JobControl;
pub use error::EngineError;
pub use planner::{JobPlan, TableJob, build_plan};
pub use preflight::{Finding, PreflightReport, preflight};
pub use progress::{Progress, TableProgress};
pub use retention::{expired_jobs, finalize_expired};
pub use retry::{RetriedTable, RetryReport, retry_rejects};
pub use rollback::{RollbackReport, rollback};
pub use runner::{Initialized, RunOptions, RunSummary, TableSummary, initialize, run};
pub use staging::{Phase, Staging};
pub use swap::{FinalizeReport, finalize};
pub use validate::{ValidateOptions, ValidationReport, validate_plan};
