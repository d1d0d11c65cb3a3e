//! The one error shape of the API: `{"error": {"code", "message", "details"}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use decant_core::ErrorDomain;
use decant_engine::EngineError;
use serde::Serialize;

/// An error answered to the caller. 5xx bodies carry no internal detail: the cause is logged.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Vec<String>,
}

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorContent,
}

/// What went wrong and what to fix.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorContent {
    /// Stable, machine-readable: `bad_request`, `invalid_plan`, `not_found`, `conflict`,
    /// `internal`.
    pub code: String,
    pub message: String,
    /// Every problem found, one per entry.
    pub details: Vec<String>,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: message.into(),
            details: vec![],
        }
    }

    pub fn not_found(job: &str) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: format!("there is no job {job}; GET /api/v1/jobs lists them"),
            details: vec![],
        }
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::CONFLICT,
            code: "conflict",
            message: message.into(),
            details: vec![],
        }
    }

    /// A failure of ours: logged with its cause, answered without it.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "internal error");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "internal error; the server log has the cause".into(),
            details: vec![],
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        if e.domain() == ErrorDomain::Internal {
            return ApiError::internal(e);
        }
        let details = match &e {
            EngineError::Plan(p) | EngineError::Hazards(p) | EngineError::Verification(p) => {
                p.clone()
            }
            other => vec![other.to_string()],
        };
        let message = match &e {
            EngineError::Plan(_) => "the plan cannot run; fix every problem in details".to_string(),
            EngineError::Hazards(_) => "the source holds values the target cannot take, and the plan gives them no policy; details name the key that resolves each".to_string(),
            other => other.to_string(),
        };
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_plan",
            message,
            details,
        }
    }
}

impl From<decant_store::StoreError> for ApiError {
    fn from(e: decant_store::StoreError) -> ApiError {
        ApiError::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorContent {
                code: self.code.to_string(),
                message: self.message,
                details: self.details,
            },
        };
        (self.status, Json(body)).into_response()
    }
}
