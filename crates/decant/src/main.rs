//! The `decant` binary: inspect a database, plan and run a migration, resume after a crash.

mod inspect;
mod plan;
mod render;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Decant moves a database — PostgreSQL, MySQL/MariaDB, SQLite — into another, in parallel
/// chunks that commit exactly once, resumes after any crash, and proves the row counts.
#[derive(Parser)]
#[command(name = "decant", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Log filter (e.g. `info`, `decant=debug`); also read from RUST_LOG.
    #[arg(long, global = true, env = "DECANT_LOG", default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show a database's tables, columns, types, keys, indexes, foreign keys, estimates and sizes.
    ///
    /// URL is postgres://user@host:port/db, mysql://user@host:port/db (MariaDB too) or
    /// sqlite://path/to/file.db.
    Inspect {
        /// The database to inspect.
        url: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// PostgreSQL schemas to include (default: all but the system ones).
        #[arg(long = "schema")]
        schemas: Vec<String>,
    },
    /// Show what a run would do — type mapping, DDL, load order, chunks — touching nothing.
    Plan {
        /// The plan file (TOML, or JSON with a .json extension).
        plan: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Migrate: create tables, copy every chunk exactly once, add keys, indexes and foreign keys
    /// after the data, and verify row counts. Run it again after a crash to resume.
    Run {
        /// The plan file (TOML, or JSON with a .json extension).
        plan: PathBuf,
        /// Drop what an unfinished run of this plan loaded, and start over.
        #[arg(long)]
        restart: bool,
        /// No progress display; errors and the final line only.
        #[arg(long, short)]
        quiet: bool,
        /// Also write the summary as JSON to this file.
        #[arg(long, value_name = "FILE")]
        summary_json: Option<PathBuf>,
        /// Bound the bytes of batches in flight (e.g. 256MB); overrides load.max_memory.
        #[arg(long, value_name = "SIZE")]
        max_memory: Option<String>,
        /// The control store (job and chunk state).
        #[arg(
            long,
            value_name = "FILE",
            env = "DECANT_STATE",
            default_value = ".decant/state.db"
        )]
        state: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Inspect { url, json, schemas } => inspect::inspect(&url, json, &schemas).await,
            Command::Plan { plan, json } => plan::plan(&plan, json).await,
            Command::Run {
                plan,
                restart,
                quiet,
                summary_json,
                max_memory,
                state,
            } => {
                run::run(
                    &plan,
                    run::Flags {
                        restart,
                        quiet,
                        summary_json,
                        max_memory,
                        state,
                    },
                )
                .await
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
