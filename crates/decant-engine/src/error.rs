//! Engine errors: each says what went wrong and, where the user can act, what to do.

use decant_connectors::ConnectorError;
use decant_core::{CoreError, ErrorDomain};
use decant_store::StoreError;

/// Errors of planning and running a job.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The plan or a URL is invalid.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// A source or target failed.
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    /// The control store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The plan cannot be carried out as written; every problem is listed.
    #[error("the plan cannot run:\n  - {}", .0.join("\n  - "))]
    Plan(Vec<String>),
    /// A chunk failed for good (after its retries).
    #[error("table {table}, chunk {chunk} ({range}) failed: {source}")]
    Chunk {
        table: String,
        chunk: String,
        range: String,
        #[source]
        source: Box<ConnectorError>,
    },
    /// The source holds values the target cannot take and the plan gives them no policy.
    #[error(
        "the source holds values the target cannot take, and the plan gives them no policy (nothing was touched):\n  - {}",
        .0.join("\n  - ")
    )]
    Hazards(Vec<String>),
    /// The rows written do not add up: the run refuses to report success.
    #[error("row counts do not match:\n  - {}", .0.join("\n  - "))]
    Verification(Vec<String>),
    /// A resumed job no longer matches its plan or its source.
    #[error("{0}\nrun again with --restart to drop what this job loaded and start over")]
    Changed(String),
    /// A staged phase was asked for before the phase it reads from finished.
    #[error("{0}")]
    NotReady(String),
    /// The staging directory could not be read or written.
    #[error("staging: {0}")]
    Staging(String),
    /// The run was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// A bug.
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    pub fn domain(&self) -> ErrorDomain {
        match self {
            EngineError::Connector(e) => e.domain(),
            EngineError::Chunk { source, .. } => source.domain(),
            EngineError::Store(_) | EngineError::Internal(_) => ErrorDomain::Internal,
            EngineError::Staging(_) => ErrorDomain::External,
            _ => ErrorDomain::User,
        }
    }
}

impl From<serde_json::Error> for EngineError {
    fn from(e: serde_json::Error) -> Self {
        EngineError::Internal(e.to_string())
    }
}
