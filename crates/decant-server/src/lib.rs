//! Decant as a service: the HTTP API over the engine, with a job manager (concurrency limit,
//! queue, pause/resume/cancel, resume at start), SSE progress and an OpenAPI document.

pub mod error;
pub mod jobs;
pub mod openapi;
pub mod retention;
pub mod routes;
pub mod status;

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Router;
use axum::routing::{get, post};
use decant_store::Store;

pub use jobs::JobManager;

/// How the service runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// The control store: a SQLite file, or a `postgres://` URL.
    pub state_path: PathBuf,
    /// The staging root of the extract and transform phases.
    pub staging: PathBuf,
    /// Jobs loading at once; further jobs queue.
    pub max_concurrent: usize,
    /// How often expired jobs are finalized (`load.swap_retention`).
    pub retention_sweep: std::time::Duration,
}

/// Errors of starting the service.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The control store could not be opened.
    #[error(transparent)]
    Store(#[from] decant_store::StoreError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The server stopped with an I/O error.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// The API's routes over `manager`.
pub fn router(manager: JobManager) -> Router {
    Router::new()
        .route("/migration/initialize", post(routes::create_migration))
        .route("/migration/run", post(routes::run_migration))
        .route("/migration/extract", post(routes::extract_migration))
        .route("/migration/transform", post(routes::transform_migration))
        .route("/migration/load", post(routes::load_migration))
        .route("/migration/validate", post(routes::validate_migration))
        .route("/migration/pause", post(routes::pause_migration))
        .route("/migration/resume", post(routes::resume_migration))
        .route("/migration/cancel", post(routes::cancel_migration))
        .route("/migration/rollback", post(routes::rollback_migration))
        .route("/migration/finalize", post(routes::finalize_migration))
        .route("/migration/status", get(routes::get_status))
        .route("/migration/status/stream", get(routes::stream_status))
        .route("/api/v1/jobs", get(routes::list_jobs))
        .route("/api/v1/jobs/{id}", get(routes::get_job))
        .route("/api/v1/jobs/{id}/chunks", get(routes::list_chunks))
        .route("/api/v1/jobs/{id}/progress", get(routes::get_progress))
        .route("/api/v1/jobs/{id}/errors", get(routes::list_errors))
        .route("/api/v1/jobs/{id}/results", get(routes::list_results))
        .route("/api/v1/openapi.json", get(openapi::get_openapi))
        .route("/healthz", get(routes::get_health))
        .fallback(|| async {
            error::ApiError {
                status: axum::http::StatusCode::NOT_FOUND,
                code: "not_found",
                message: "no such endpoint; GET /api/v1/openapi.json lists them".into(),
                details: vec![],
            }
        })
        .with_state(manager)
}

/// A bound, running service.
pub struct Server {
    pub addr: SocketAddr,
    pub manager: JobManager,
    listener: tokio::net::TcpListener,
    retention_sweep: std::time::Duration,
}

impl Server {
    /// Opens the store, binds the address and puts jobs that were running back in the queue.
    pub async fn bind(config: &ServerConfig) -> Result<Server, ServerError> {
        let store = Store::open(&config.state_path).await?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServerError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() {
            tracing::warn!(%addr, "listening beyond loopback: the API has no authentication yet; anyone who reaches this address can run and roll back migrations");
        }
        let manager = JobManager::new(
            store,
            config.state_path.clone(),
            config.staging.clone(),
            config.max_concurrent,
        );
        let resumed = manager.resume_unfinished().await?;
        if resumed > 0 {
            tracing::info!(jobs = resumed, "resumed unfinished jobs");
        }
        Ok(Server {
            addr,
            manager,
            listener,
            retention_sweep: config.retention_sweep,
        })
    }

    /// Serves until `shutdown` completes. Requests are answered on a thread of their own
    /// (`decant-api`, a single-threaded runtime) while the jobs stay on the caller's runtime:
    /// ten loads saturating the job workers then do not queue status requests behind them.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        // The listener moves to the API runtime's reactor, so accepting does not wait for a
        // busy job worker to poll for I/O.
        let listener = self.listener.into_std()?;
        // On the jobs' runtime: a finalize drops tables on the target, like a job.
        let sweeper = retention::spawn(self.manager.clone(), self.retention_sweep);
        let app = router(self.manager);
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("decant-api".into())
            .spawn(move || {
                let result = (|| -> Result<(), ServerError> {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    runtime.block_on(async move {
                        let listener = tokio::net::TcpListener::from_std(listener)?;
                        axum::serve(listener, app)
                            .with_graceful_shutdown(shutdown)
                            .await?;
                        Ok(())
                    })
                })();
                let _ = done_tx.send(result);
            })?;
        let result = done_rx
            .await
            .map_err(|_| ServerError::Io(std::io::Error::other("the API thread stopped")))?;
        sweeper.abort();
        result
    }
}
