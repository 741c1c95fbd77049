//! PostgreSQL for tests: the private cluster of [`standins::postgres`] (or the server in
//! `DATABASE_URL`), and [`TestDb`], which gives each test its own database, cloned from a
//! template that was migrated once per test binary, and drops it when the test ends.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::Context;
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
pub use standins::postgres::{ClusterInfo, ensure_cluster, replace_database, running_as_root, stop_cluster};

/// The workspace's `target/` folder (or `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    // crates/testkit → the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target")
}

/// The admin URL of the server tests use: `DATABASE_URL` when set (any database on it; we
/// connect to `postgres`), otherwise the private cluster under `target/testkit-pg`.
fn admin_url() -> anyhow::Result<String> {
    static ADMIN: OnceLock<Result<String, String>> = OnceLock::new();
    ADMIN
        .get_or_init(|| match std::env::var("DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => Ok(replace_database(&url, "postgres")),
            _ => ensure_cluster(&target_dir().join("testkit-pg"), None)
                .map(|c| c.url("postgres"))
                .map_err(|e| format!("{e:#}")),
        })
        .clone()
        .map_err(|e| anyhow::anyhow!(e))
}

#[derive(QueryableByName)]
struct Datname {
    #[diesel(sql_type = diesel::sql_types::Text)]
    datname: String,
}

async fn admin_conn() -> anyhow::Result<AsyncPgConnection> {
    let url = admin_url()?;
    AsyncPgConnection::establish(&url).await.with_context(|| format!("cannot connect to {url}"))
}

/// Drops databases left by test processes that no longer run (killed or crashed runs).
async fn drop_stale(conn: &mut AsyncPgConnection) -> anyhow::Result<()> {
    let names: Vec<Datname> =
        diesel::sql_query("SELECT datname FROM pg_database WHERE datname LIKE 'tk\\_%'").load(conn).await?;
    for Datname { datname } in names {
        let pid = datname.split('_').nth(1).and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid
            && pid != std::process::id()
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ =
                diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{datname}\" WITH (FORCE)")).execute(conn).await;
        }
    }
    Ok(())
}

type TemplateCell = Arc<tokio::sync::OnceCell<String>>;

fn template_cell(key: &str) -> TemplateCell {
    static CELLS: OnceLock<Mutex<HashMap<String, TemplateCell>>> = OnceLock::new();
    let mut cells = CELLS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    cells.entry(key.to_owned()).or_default().clone()
}

/// A database of its own for one test, dropped when the value is dropped.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// A fresh database cloned from the template of `service`, which `migrate` (given the
    /// template's URL) brings up to date once per test binary.
    pub async fn new<F, Fut>(service: &str, migrate: F) -> anyhow::Result<TestDb>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        let pid = std::process::id();
        let key: String =
            service.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
        let template = template_cell(&key)
            .get_or_try_init(|| async {
                let name = format!("tk_{pid}_tpl_{key}");
                let mut conn = admin_conn().await?;
                drop_stale(&mut conn).await?;
                diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut conn)
                    .await?;
                diesel::sql_query(format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).await?;
                migrate(replace_database(&admin_url()?, &name)).await.context("migrating the template database")?;
                Ok::<_, anyhow::Error>(name)
            })
            .await?
            .clone();

        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = format!("tk_{pid}_{}_{key}", COUNTER.fetch_add(1, Ordering::Relaxed));
        let mut conn = admin_conn().await?;
        let mut attempt = 0;
        loop {
            // Cloning fails while another session is connected to the template (a migration
            // connection that is still closing); that passes quickly.
            match diesel::sql_query(format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""))
                .execute(&mut conn)
                .await
            {
                Ok(_) => break,
                Err(e) if attempt < 100 && e.to_string().contains("being accessed by other users") => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e).context("creating the test database"),
            }
        }
        Ok(TestDb { url: replace_database(&admin_url()?, &name), name })
    }

    /// A connection to the server's `postgres` database, as superuser (to cut this database off,
    /// for instance).
    pub async fn admin_conn(&self) -> anyhow::Result<AsyncPgConnection> {
        admin_conn().await
    }

    /// A new connection to this test's database, for assertions on what was left behind.
    pub async fn conn(&self) -> anyhow::Result<AsyncPgConnection> {
        AsyncPgConnection::establish(&self.url).await.context("connecting to the test database")
    }

    /// Runs `SELECT count(*) AS n …` on this database and returns `n`; panics with the SQL on
    /// failure (a test helper).
    pub async fn count(&self, sql: &str) -> i64 {
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.conn().await.unwrap_or_else(|e| panic!("{e:#}"));
        diesel::sql_query(sql).get_result::<Count>(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}")).n
    }

    /// The text of the first row's column `t` (for a test's diagnostics, e.g.
    /// `SELECT row_to_json(j)::text AS t FROM jobs j`); panics with the SQL on failure.
    pub async fn text(&self, sql: &str) -> String {
        #[derive(QueryableByName)]
        struct Text {
            #[diesel(sql_type = diesel::sql_types::Text)]
            t: String,
        }
        let mut conn = self.conn().await.unwrap_or_else(|e| panic!("{e:#}"));
        diesel::sql_query(sql).get_result::<Text>(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}")).t
    }

    /// Runs a statement on this database; panics with the SQL on failure (a test helper).
    pub async fn execute(&self, sql: &str) {
        let mut conn = self.conn().await.unwrap_or_else(|e| panic!("{e:#}"));
        diesel::sql_query(sql).execute(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop may run inside a runtime; do the async work on a thread of its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async {
                let mut conn = admin_conn().await?;
                diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut conn)
                    .await?;
                Ok::<_, anyhow::Error>(())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("testkit: could not drop test database {}: {e:#}", self.name);
        }
    }
}
