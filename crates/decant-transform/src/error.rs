//! Errors of the transform crate.

/// What can go wrong compiling or running a table's transforms.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    /// A plan key that does not compile: the column (or rule) it belongs to and why.
    #[error("{column}: {message}")]
    Plan { column: String, message: String },
    /// Evaluating a compiled expression on a batch failed.
    #[error("transform failed: {0}")]
    Eval(String),
    /// A rule with `action = "fail"` was broken: the job stops before the chunk commits.
    #[error("rule `{rule}` failed at {location}: {reason}")]
    RuleFailed {
        rule: String,
        location: String,
        reason: String,
    },
}
