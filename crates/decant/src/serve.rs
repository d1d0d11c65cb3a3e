//! `decant serve`: the HTTP API (docs/service.md).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use decant_server::{Server, ServerConfig};

pub struct Flags {
    pub listen: SocketAddr,
    pub store: String,
    pub max_concurrent: usize,
    pub staging: Option<PathBuf>,
    pub retention_sweep: std::time::Duration,
}

/// The default staging root: `staging/` beside a SQLite store, `.decant/staging` with a
/// PostgreSQL one (whose files live on no disk of this machine).
fn default_staging(store: &str) -> PathBuf {
    if decant_store::is_postgres_location(store) {
        return PathBuf::from(".decant/staging");
    }
    store_location(store)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
        .join("staging")
}

/// Where the control store is: a `postgres://` URL as it is, else a SQLite file (a path, or
/// `sqlite://path`).
fn store_location(store: &str) -> PathBuf {
    if decant_store::is_postgres_location(store) {
        return PathBuf::from(store);
    }
    PathBuf::from(
        store
            .strip_prefix("sqlite://")
            .or_else(|| store.strip_prefix("sqlite:"))
            .unwrap_or(store),
    )
}

/// The store for messages: a PostgreSQL URL without its password.
fn shown(store: &str) -> String {
    match url::Url::parse(store) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => store.to_string(),
    }
}

pub async fn serve(flags: Flags) -> anyhow::Result<ExitCode> {
    let config = ServerConfig {
        listen: flags.listen,
        state_path: store_location(&flags.store),
        staging: flags
            .staging
            .clone()
            .unwrap_or_else(|| default_staging(&flags.store)),
        max_concurrent: flags.max_concurrent,
        retention_sweep: flags.retention_sweep,
    };
    let server = Server::bind(&config)
        .await
        .with_context(|| format!("cannot start the service on {}", flags.listen))?;
    if !server.addr.ip().is_loopback() {
        eprintln!(
            "warning: listening on {} beyond loopback; the API has no authentication yet",
            server.addr
        );
    }
    eprintln!(
        "decant serve: listening on http://{} (store {}, staging {}, at most {} jobs at once)",
        server.addr,
        shown(&flags.store),
        config.staging.display(),
        config.max_concurrent
    );
    server
        .serve(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(ExitCode::SUCCESS)
}
