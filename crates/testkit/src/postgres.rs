//! PostgreSQL for tests and the local stack.
//!
//! [`ensure_cluster`] initialises (once) and starts (if not running) a private cluster in a
//! folder, with the machine's `initdb` and `pg_ctl`. PostgreSQL refuses to run as root, so when
//! we are root the folder is handed to the `postgres` user and the commands run as that user
//! through `runuser`. A file lock makes concurrent test binaries share one cluster safely; the
//! cluster keeps running after the tests so the next run starts instantly.
//!
//! [`TestDb`] gives each test its own database, cloned from a template that was migrated once
//! per test binary, and drops it when the test ends.

use std::collections::HashMap;
use std::fs::{self, File};
use std::future::Future;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, bail};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

/// Whether this process runs as root.
pub fn running_as_root() -> bool {
    fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

fn run(mut cmd: Command, what: &str) -> anyhow::Result<()> {
    let output =
        cmd.output().with_context(|| format!("cannot run {what} (are PostgreSQL's server binaries installed?)"))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// `program args…`, as the `postgres` user when we are root.
fn pg_command(program: &str) -> Command {
    if running_as_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--", program]);
        cmd
    } else {
        Command::new(program)
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running cluster: connect as the superuser `postgres` without a password on loopback.
#[derive(Debug, Clone)]
pub struct ClusterInfo {
    pub port: u16,
}

impl ClusterInfo {
    /// The URL of database `db` on this cluster.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

/// Initialises the cluster in `dir` if needed and starts it if it is not running. `port` is used
/// the first time (a free one when `None`) and remembered in `dir/port`.
pub fn ensure_cluster(dir: &Path, port: Option<u16>) -> anyhow::Result<ClusterInfo> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let lock = File::create(dir.with_extension("lock"))?;
    lock.lock()?; // released when `lock` is dropped
    let root = running_as_root();
    if root {
        // The postgres user must be able to reach the folder and own it.
        run(
            {
                let mut c = Command::new("chown");
                c.args(["-R", "postgres:postgres"]).arg(dir);
                c
            },
            "chown",
        )?;
        let mut parent = dir.parent();
        while let Some(p) = parent {
            if let Ok(meta) = fs::metadata(p) {
                use std::os::unix::fs::PermissionsExt;
                let mode = meta.permissions().mode();
                if mode & 0o001 == 0 {
                    let _ = fs::set_permissions(p, fs::Permissions::from_mode(mode | 0o001));
                }
            }
            parent = p.parent();
        }
    }
    let data = dir.join("data");
    if !data.join("PG_VERSION").exists() {
        let _ = fs::remove_dir_all(&data);
        let mut cmd = pg_command("initdb");
        cmd.arg("-D").arg(&data).args(["-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"]);
        run(cmd, "initdb")?;
    }
    let port_file = dir.join("port");
    let mut port = match fs::read_to_string(&port_file).ok().and_then(|p| p.trim().parse().ok()) {
        Some(p) => p,
        None => {
            let p = match port {
                Some(p) => p,
                None => free_port()?,
            };
            fs::write(&port_file, p.to_string())?;
            p
        }
    };
    let mut status = pg_command("pg_ctl");
    status.arg("-D").arg(&data).arg("status");
    let running = status.output().map(|o| o.status.success()).unwrap_or(false);
    if !running {
        let start = |port: u16| {
            let mut cmd = pg_command("pg_ctl");
            cmd.arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.join("postgres.log"))
                .args(["-w", "-t", "60", "-o"])
                .arg(format!(
                    "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c max_connections=300 \
                     -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=128MB"
                ))
                .arg("start");
            run(cmd, "pg_ctl start")
        };
        if let Err(first) = start(port) {
            // The remembered port may have been taken by something else meanwhile.
            let log = fs::read_to_string(dir.join("postgres.log")).unwrap_or_default();
            if !log.contains("Address already in use") {
                return Err(first);
            }
            port = free_port()?;
            fs::write(&port_file, port.to_string())?;
            start(port)?;
        }
    }
    Ok(ClusterInfo { port })
}

/// Stops the cluster in `dir` (fast shutdown).
pub fn stop_cluster(dir: &Path) -> anyhow::Result<()> {
    let mut cmd = pg_command("pg_ctl");
    cmd.arg("-D").arg(dir.join("data")).args(["-m", "fast", "-w", "stop"]);
    run(cmd, "pg_ctl stop")
}

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

/// `url` with its database name replaced by `db` (query string kept).
pub fn replace_database(url: &str, db: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
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

#[cfg(test)]
mod tests {
    #[test]
    fn database_name_is_replaced_keeping_the_query() {
        assert_eq!(
            super::replace_database("postgres://u:p@h:5/app?sslmode=disable", "x"),
            "postgres://u:p@h:5/x?sslmode=disable"
        );
        assert_eq!(super::replace_database("postgres://u@h:5", "x"), "postgres://u@h:5/x");
    }
}
