//! Fresh, throw-away databases on the test servers, one per test, dropped when the guard goes.
//!
//! Servers come from `DECANT_TEST_PG` (default `postgres://root@127.0.0.1:5432/postgres`) and
//! `DECANT_TEST_MYSQL` (default `mysql://root@127.0.0.1:3306`). A test that cannot reach them
//! fails: it never skips.

use std::sync::atomic::{AtomicU32, Ordering};

/// Admin URL of the PostgreSQL server the tests use.
pub fn pg_admin_url() -> String {
    std::env::var("DECANT_TEST_PG")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/postgres".into())
}

/// Base URL (no database) of the MySQL/MariaDB server the tests use.
pub fn mysql_base_url() -> String {
    let url =
        std::env::var("DECANT_TEST_MYSQL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
    url.trim_end_matches('/').to_string()
}

fn unique_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{nanos:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn replace_db(url: &str, db: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("test url has a path");
    format!("{base}/{db}")
}

/// A PostgreSQL database created for one test and dropped when this guard is dropped.
pub struct PgTestDb {
    pub name: String,
    pub url: String,
    admin: String,
}

impl PgTestDb {
    pub async fn create() -> PgTestDb {
        let admin = pg_admin_url();
        let name = unique_name("decant_t");
        let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| {
                panic!("PostgreSQL at {admin} is not reachable (set DECANT_TEST_PG): {e}")
            });
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        PgTestDb {
            url: replace_db(&admin, &name),
            name,
            admin,
        }
    }

    /// A connected client for set-up and checks.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .expect("connect test db");
        tokio::spawn(conn);
        client
    }
}

impl Drop for PgTestDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
                    .await
                    .ok()?;
                tokio::spawn(conn);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// A MySQL/MariaDB database created for one test and dropped when this guard is dropped.
pub struct MysqlTestDb {
    pub name: String,
    pub url: String,
    base: String,
}

impl MysqlTestDb {
    pub async fn create() -> MysqlTestDb {
        use mysql_async::prelude::Queryable;
        let base = mysql_base_url();
        let name = unique_name("decant_t");
        let mut conn = mysql_async::Conn::from_url(&base)
            .await
            .unwrap_or_else(|e| {
                panic!("MySQL/MariaDB at {base} is not reachable (set DECANT_TEST_MYSQL): {e}")
            });
        conn.query_drop(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
            .await
            .expect("create test database");
        let _ = conn.disconnect().await;
        MysqlTestDb {
            url: format!("{base}/{name}"),
            name,
            base,
        }
    }

    /// A connection for set-up and checks.
    pub async fn conn(&self) -> mysql_async::Conn {
        mysql_async::Conn::from_url(&self.url)
            .await
            .expect("connect test db")
    }
}

impl Drop for MysqlTestDb {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            use mysql_async::prelude::Queryable;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = mysql_async::Conn::from_url(&base).await.ok()?;
                conn.query_drop(format!("DROP DATABASE IF EXISTS `{name}`"))
                    .await
                    .ok()?;
                conn.disconnect().await.ok()
            })
        })
        .join();
    }
}

/// A SQLite file in a temporary directory, removed with the guard.
pub struct SqliteTestDb {
    pub path: std::path::PathBuf,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl SqliteTestDb {
    pub fn create() -> SqliteTestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("test.db");
        SqliteTestDb {
            url: format!("sqlite://{}", path.display()),
            path,
            _dir: dir,
        }
    }
}

impl Default for SqliteTestDb {
    fn default() -> Self {
        Self::create()
    }
}
