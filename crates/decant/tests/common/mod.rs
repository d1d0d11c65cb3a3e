//! Helpers shared by the end-to-end tests: plans in temp dirs, the CLI, digests of tables.
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use decant_connectors::testkit::{MysqlTestDb, PgTestDb, SqliteTestDb};

pub mod serve;
pub use serve::Service;

/// A temp dir holding a plan file and the control store of one test.
pub struct Workdir {
    pub dir: tempfile::TempDir,
}

impl Workdir {
    pub fn new() -> Workdir {
        Workdir {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `plan.toml` with the two URLs; `extra` (top-level keys or whole sections such as
    /// `[load]`) goes after the job name.
    pub fn plan(&self, source: &str, target: &str, extra: &str) -> PathBuf {
        let path = self.path().join("plan.toml");
        let text = format!(
            "name = \"test\"\n{extra}\n[source]\nurl = \"{source}\"\n[target]\nurl = \"{target}\"\n"
        );
        std::fs::write(&path, text).expect("write plan");
        path
    }

    pub fn state(&self) -> PathBuf {
        self.path().join("state.db")
    }

    /// The report of the newest validation in this dir's control store (`decant validate`, or
    /// the one `decant run` ran itself with `validate.mode = "checksum"`).
    pub fn last_validation_report(&self) -> serde_json::Value {
        let db = rusqlite::Connection::open(self.state()).expect("open the control store");
        let text: String = db
            .query_row(
                "SELECT report_json FROM validation_runs ORDER BY started_at DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .expect("a validation report");
        serde_json::from_str(&text).expect("report JSON")
    }

    /// Runs `decant ARGS` with this dir's control store; returns its output.
    pub fn decant(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run decant")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_decant"));
        cmd.args(args)
            .env("DECANT_STATE", self.state())
            .current_dir(self.path());
        cmd
    }
}

pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "decant failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// md5 of every row's text form in key order: equal digests mean equal tables.
pub async fn pg_digest(
    client: &tokio_postgres::Client,
    table: &str,
    order_by: &str,
) -> (i64, String) {
    let row = client
        .query_one(
            &format!("SELECT count(*), coalesce(md5(string_agg(t::text, chr(10) ORDER BY {order_by})), '') FROM {table} t"),
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("digest of {table}: {e}"));
    (row.get(0), row.get(1))
}

/// Count and md5 of every row of a MySQL table (NULL spelled `\N`), in key order.
pub async fn mysql_digest(
    conn: &mut mysql_async::Conn,
    table: &str,
    order_by: &str,
) -> (i64, String) {
    use mysql_async::prelude::Queryable;
    conn.query_drop("SET SESSION group_concat_max_len = 1073741824")
        .await
        .unwrap();
    let cols: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (table,),
        )
        .await
        .unwrap();
    let row_expr: Vec<String> = cols
        .iter()
        .map(|c| {
            format!(
                "COALESCE(CAST(`{}` AS CHAR), '\\\\N')",
                c.replace('`', "``")
            )
        })
        .collect();
    let sql = format!(
        "SELECT COUNT(*), COALESCE(MD5(GROUP_CONCAT(CONCAT_WS('|', {}) ORDER BY {order_by} SEPARATOR '\\n')), '') FROM `{}`",
        row_expr.join(", "),
        table.replace('`', "``")
    );
    let row: Option<(i64, String)> = conn.query_first(sql).await.unwrap();
    row.unwrap()
}

/// The quarantined records of the run in `w`: (location, rule, reason, raw record).
pub fn rejects(w: &Workdir) -> Vec<(String, String, String, String)> {
    let conn = rusqlite::Connection::open(w.state()).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT location, rule, message, record FROM error_logs WHERE kind = 'reject' ORDER BY location",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}
