//! The `decant` binary: inspect a database, plan and run a migration, resume after a crash.

/// `println!` that does not panic when standard output is closed early (`decant validate … |
/// head`): the command still finishes its work, writes its report and store records, and exits
/// with its own code; only the lines nobody reads are dropped.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod inspect;
mod plan;
mod preflight;
mod rejects;
mod render;
mod rollback;
mod run;
mod serve;
mod validate;

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
    /// URL is postgres://user@host:port/db, mysql://user@host:port/db (MariaDB too),
    /// sqlite://path/to/file.db, or file://PATH for CSV/TSV or JSON Lines/JSON array files
    /// (.jsonl, .ndjson, .json; a file, a glob such as 'file://data/*.csv', or a directory):
    /// their schema is inferred from a sample; Parquet files (a file or glob ending in .parquet)
    /// take theirs from the file metadata. File options go in the URL's query, e.g.
    /// 'file://data/x.csv?delimiter=;&encoding=latin-1' or
    /// 'file://data/*.jsonl?flatten=true&path.city=customer.address.city' (docs/files.md).
    /// An http:// URL is one JSON API endpoint whose body is the records array, its schema
    /// inferred from it; paged or authenticated APIs are described in a plan's [source.http]
    /// section and shown by `decant plan` (docs/http.md).
    Inspect {
        /// The database (or files) to inspect.
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
    /// Find every hazard before the target is touched: values the target cannot hold (counted on
    /// the source, with sample keys and the plan key that resolves them), tables without keys,
    /// lossy mappings. Exit 0 clean, 1 when a hazard has no policy, 2 on errors.
    Preflight {
        /// The plan file (TOML, or JSON with a .json extension).
        plan: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Prove the target matches the source: row counts, per-chunk digests of every value,
    /// and every differing row listed as missing, extra or changed; then integrity checks and
    /// the plan's [[validate.rules]] on the target.
    ///
    /// Works after `decant run` or on tables another tool migrated: every table of the plan
    /// must exist on both sides. Values are compared after the plan's renames, skips, type
    /// mapping and transforms (filtered and rejected rows are not expected on the target;
    /// masked columns are compared and shown masked, so masks with `key_env` need the run's
    /// key), in a canonical form (docs/validation.md). Exit 0 when everything matches,
    /// 1 when differences or failed rules were found, 2 on errors (like `diff`).
    Validate {
        /// The plan file (TOML, or JSON with a .json extension).
        plan: PathBuf,
        /// Write the full report (every difference, rule and timing) as JSON to this file.
        #[arg(long, value_name = "FILE.json")]
        report: Option<PathBuf>,
        /// Write a standalone HTML report (no external assets) to this file.
        #[arg(long, value_name = "FILE.html")]
        html: Option<PathBuf>,
        /// Print the report as JSON instead of the text summary.
        #[arg(long)]
        json: bool,
        /// No progress display.
        #[arg(long, short)]
        quiet: bool,
        /// Compare row counts only (fast; finds no changed value).
        #[arg(long)]
        count_only: bool,
        /// Relative tolerance for floats, e.g. 1e-6; overrides validate.float_tolerance.
        #[arg(long, value_name = "REL")]
        float_tolerance: Option<f64>,
        /// List at most this many differences per table.
        #[arg(long, value_name = "N", default_value_t = 1000)]
        max_diffs: usize,
        /// Skip integrity checks and business rules.
        #[arg(long)]
        no_rules: bool,
        /// The control store, where the outcome is recorded.
        #[arg(
            long,
            value_name = "FILE",
            env = "DECANT_STATE",
            default_value = ".decant/state.db"
        )]
        state: PathBuf,
    },
    /// List or export a job's quarantine: the records its rules (or the reader) rejected, with
    /// the rule, the reason and where each came from. Masked columns appear masked.
    ///
    /// JOB is a job id (as `decant run` prints it) or a job name (its latest job).
    Rejects {
        /// Job id or job name.
        job: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: rejects::Format,
        /// Write to this file instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Rerun the quarantined rows through this plan's current transforms and rules (the
        /// plan file, fixed, passed again) and load those that now pass, exactly once; rows that
        /// still fail stay quarantined with their new reason. Rows stored with masked columns
        /// and records the reader refused are not retried (see docs/transform.md). Exit 0 when
        /// every record was settled, 1 when some stay in the quarantine, 2 on errors.
        #[arg(long, value_name = "PLAN")]
        retry: Option<PathBuf>,
        /// The control store.
        #[arg(
            long,
            value_name = "FILE",
            env = "DECANT_STATE",
            default_value = ".decant/state.db"
        )]
        state: PathBuf,
    },
    /// Migrate: create tables, copy every chunk exactly once, add keys, indexes and foreign keys
    /// after the data, and verify row counts. Run it again after a crash to resume.
    ///
    /// The target may also be a directory of files: target.url = "file:///exports/" with
    /// [target.file] format = "csv", "jsonl" or "parquet" (or a URL ending in /*.csv.gz,
    /// /*.parquet...), one file per table or per chunk (docs/files.md, "Files as targets").
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
        /// Run one staged phase: `extract` (source → Parquet in the staging dir, target
        /// untouched), `transform` (extracted → transformed Parquet, rejects quarantined),
        /// `load` (staged → target, exactly once). Without it, all at once, nothing staged.
        #[arg(long, value_enum, value_name = "PHASE")]
        phase: Option<run::PhaseArg>,
        /// The staging root of --phase (default: `staging/` beside the control store).
        #[arg(long, value_name = "DIR", env = "DECANT_STAGING")]
        staging: Option<PathBuf>,
    },
    /// Run Decant as an HTTP service: initialize, run, validate, pause, resume, cancel and roll
    /// back jobs over a JSON API, with live status (also as server-sent events) and an OpenAPI
    /// document at /api/v1/openapi.json. Jobs that were running when it stopped resume at start.
    ///
    /// There is no authentication yet: it warns when listening beyond loopback. See
    /// docs/service.md.
    Serve {
        /// The address to listen on.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// The control store: a SQLite file (or sqlite://FILE), or postgres://USER@HOST/DB (the
        /// database must exist; the schema is created or migrated at start).
        #[arg(
            long,
            value_name = "URL",
            env = "DECANT_STATE",
            default_value = ".decant/state.db"
        )]
        store: String,
        /// Jobs that load at once; further jobs queue.
        #[arg(long, value_name = "N", default_value_t = 10)]
        max_concurrent: usize,
        /// Where POST /migration/extract and /transform stage Parquet files
        /// (<DIR>/<job>/<table>/extract/chunk-000012.parquet); default: `staging/` beside a
        /// SQLite store, `.decant/staging` with a PostgreSQL one.
        #[arg(long, value_name = "DIR", env = "DECANT_STAGING")]
        staging: Option<PathBuf>,
        /// How often succeeded jobs whose backups expired (`load.swap_retention`) are finalized
        /// (hidden: tests shorten it).
        #[arg(
            long,
            value_name = "DURATION",
            env = "DECANT_RETENTION_SWEEP",
            default_value = "30s",
            value_parser = decant_core::http::parse_duration,
            hide = true
        )]
        retention_sweep: std::time::Duration,
    },
    /// Undo a job on the target: drop the tables it created, delete the rows an append load
    /// inserted (by the keys it recorded), swap swapped tables back (one transaction) and drop
    /// what was loaded, restore the rows an upsert changed from their pre-images and delete
    /// the rows it inserted. Truncate and drop loads destroyed the old rows and are refused
    /// unless --force; a finalized job is refused. Exit 0 when rolled back, 1 when refused.
    Rollback {
        /// The job id (`decant run` prints it; GET /api/v1/jobs lists them).
        job: String,
        /// Go ahead with truncate and drop loads, whose earlier rows cannot be restored.
        #[arg(long)]
        force: bool,
        /// Print what was undone as JSON.
        #[arg(long)]
        json: bool,
        /// The control store (job and chunk state).
        #[arg(
            long,
            value_name = "FILE",
            env = "DECANT_STATE",
            default_value = ".decant/state.db"
        )]
        state: PathBuf,
    },
    /// Finalize a succeeded job: drop the old tables its swaps kept as backups and the
    /// pre-images its upserts recorded. Frees their space; the job can no longer be rolled
    /// back. With --expired instead of a job, finalize every succeeded job whose backups
    /// expired (`load.swap_retention`), e.g. from cron when `decant serve` does not run.
    /// Exit 0 when finalized (or nothing expired), 1 when refused or one failed.
    Finalize {
        /// The job id (`decant run` prints it; GET /api/v1/jobs lists them).
        #[arg(required_unless_present = "expired", conflicts_with = "expired")]
        job: Option<String>,
        /// Finalize every job whose backups expired, instead of one job.
        #[arg(long)]
        expired: bool,
        /// Print what was dropped as JSON.
        #[arg(long)]
        json: bool,
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
    // The build's one TLS provider, before any HTTP client or TLS connection exists.
    decant_connectors::tls::install_crypto_provider();
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
            Command::Preflight { plan, json } => preflight::preflight(&plan, json).await,
            Command::Validate {
                plan,
                report,
                html,
                json,
                quiet,
                count_only,
                float_tolerance,
                max_diffs,
                no_rules,
                state,
            } => {
                validate::validate(
                    &plan,
                    validate::Flags {
                        report,
                        html,
                        json,
                        quiet,
                        counts_only: count_only,
                        float_tolerance,
                        max_diffs,
                        no_rules,
                        state,
                    },
                )
                .await
            }
            Command::Serve {
                listen,
                store,
                max_concurrent,
                staging,
                retention_sweep,
            } => {
                serve::serve(serve::Flags {
                    listen,
                    store,
                    max_concurrent,
                    staging,
                    retention_sweep,
                })
                .await
            }
            Command::Rollback {
                job,
                force,
                json,
                state,
            } => rollback::rollback(&state, &job, force, json).await,
            Command::Finalize {
                job,
                expired,
                json,
                state,
            } => match job {
                Some(job) if !expired => rollback::finalize(&state, &job, json).await,
                _ => rollback::finalize_expired(&state, json).await,
            },
            Command::Rejects {
                job,
                format,
                output,
                retry,
                state,
            } => {
                rejects::rejects(
                    &job,
                    rejects::Flags {
                        format,
                        output,
                        retry,
                        state,
                    },
                )
                .await
            }
            Command::Run {
                plan,
                restart,
                quiet,
                summary_json,
                max_memory,
                state,
                phase,
                staging,
            } => {
                run::run(
                    &plan,
                    run::Flags {
                        restart,
                        quiet,
                        summary_json,
                        max_memory,
                        state,
                        phase,
                        staging,
                    },
                )
                .await
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            // 2 = could not do the job (bad plan, unreachable database), as `diff` does.
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
