//! The OpenAPI document, generated from the handlers and types.

use axum::Json;
use utoipa::OpenApi;

use crate::routes;

/// The API as OpenAPI 3.1.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Decant",
        description = "Decant's migration service: initialize, run, validate, control and roll back migration jobs"
    ),
    paths(
        routes::create_migration,
        routes::run_migration,
        routes::extract_migration,
        routes::transform_migration,
        routes::load_migration,
        routes::validate_migration,
        routes::pause_migration,
        routes::resume_migration,
        routes::cancel_migration,
        routes::rollback_migration,
        routes::finalize_migration,
        routes::get_status,
        routes::stream_status,
        routes::list_jobs,
        routes::get_job,
        routes::list_chunks,
        routes::get_progress,
        routes::list_errors,
        routes::list_results,
        routes::get_health,
    ),
    components(schemas(
        routes::JobRef,
        routes::Accepted,
        routes::InitializeResponse,
        routes::JobSummary,
        routes::Health,
        crate::status::JobStatus,
        crate::status::TableStatus,
        crate::error::ErrorBody,
        crate::error::ErrorContent,
    ))
)]
pub struct ApiDoc;

/// `GET /api/v1/openapi.json`.
pub async fn get_openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
