//! A private PostgreSQL cluster, for the tests (through the test kit) and the local stack.
//!
//! [`ensure_cluster`] initialises (once) and starts (if not running) a private cluster in a
//! folder, with the machine's `initdb` and `pg_ctl`. PostgreSQL refuses to run as root, so when
//! we are root the folder is handed to the `postgres` user and the commands run as that user
//! through `runuser`. A file lock makes concurrent test binaries share one cluster safely; the
//! cluster keeps running after the tests so the next run starts instantly.

use std::fs::{self, File};
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

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
