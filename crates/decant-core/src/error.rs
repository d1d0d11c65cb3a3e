//! Errors of the core crate, and the error domain every Decant error reports.

/// Who can fix an error, which tells the engine whether a retry can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorDomain {
    /// The user's plan or data: retrying will not help; the message says what to change.
    User,
    /// A remote system (network, server restart, lock timeout): a retry with backoff may help.
    External,
    /// A bug in Decant.
    Internal,
}

/// Errors raised while reading plans, URLs and types.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The plan file could not be parsed.
    #[error("invalid plan: {0}")]
    Plan(String),
    /// A connection URL is malformed or names an unknown system.
    #[error("invalid connection url `{url}`: {reason}")]
    Url { url: String, reason: String },
    /// A `${VAR}` reference names a variable that is not set.
    #[error("environment variable `{0}` referenced in the plan is not set")]
    MissingEnv(String),
    /// A type name could not be understood.
    #[error("unknown type `{0}`")]
    UnknownType(String),
    /// A size such as `64MiB` could not be parsed.
    #[error(
        "invalid size `{0}`: use a number with an optional unit (B, KB, MB, GB, KiB, MiB, GiB)"
    )]
    Size(String),
}
