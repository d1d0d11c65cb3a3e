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
}

/// The SQLite file a `--store` value names: a path, or `sqlite://path`.
fn store_path(store: &str) -> anyhow::Result<PathBuf> {
    if store.starts_with("postgres://") || store.starts_with("postgresql://") {
        anyhow::bail!(
            "--store {store}: the PostgreSQL control store is not available yet; use a SQLite file (the default, .decant/state.db)"
        );
    }
    Ok(PathBuf::from(
        store
            .strip_prefix("sqlite://")
            .or_else(|| store.strip_prefix("sqlite:"))
            .unwrap_or(store),
    ))
}

pub async fn serve(flags: Flags) -> anyhow::Result<ExitCode> {
    let config = ServerConfig {
        listen: flags.listen,
        state_path: store_path(&flags.store)?,
        max_concurrent: flags.max_concurrent,
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
        "decant serve: listening on http://{} (store {}, at most {} jobs at once)",
        server.addr,
        config.state_path.display(),
        config.max_concurrent
    );
    server
        .serve(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(ExitCode::SUCCESS)
}
