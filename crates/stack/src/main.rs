//! The local stack: `cargo run -p stack`.
//!
//! Starts a private PostgreSQL cluster under the data folder (`STACK_DATA_DIR`, default
//! `.stack-data`, kept between runs), then every service on its fixed port, in this one process:
//!
//! | service      | port |
//! |--------------|------|
//! | giistr-tags  | 8084 |
//!
//! Settings in the environment pass through to the services (`GITHUB_API_URL`, `RUST_LOG`, …);
//! `DATABASE_URL` defaults to the private cluster. Ctrl-C (or SIGTERM) stops the services
//! gracefully, then the cluster.

// A launcher talks to the person at the terminal.
#![allow(clippy::print_stdout)]

use std::net::TcpListener;
use std::path::PathBuf;

use anyhow::Context;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use service_kit::Env;

const DATABASE: &str = "platform";

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    service_kit::telemetry::init_from_env();
    let env = Env::process();
    let data_dir = PathBuf::from(env.string_or("STACK_DATA_DIR", ".stack-data"));
    let data_dir = std::path::absolute(&data_dir).unwrap_or(data_dir);
    let pg_dir = data_dir.join("postgres");
    let pg_port: u16 = env.parse_or("STACK_POSTGRES_PORT", 54329)?;
    let bind_host = env.string_or("STACK_BIND_HOST", "127.0.0.1");

    let cluster = {
        let pg_dir = pg_dir.clone();
        tokio::task::spawn_blocking(move || testkit::postgres::ensure_cluster(&pg_dir, Some(pg_port))).await??
    };
    create_database(&cluster.url("postgres"), DATABASE).await?;
    let database_url = cluster.url(DATABASE);
    println!("postgres      {database_url}  (data in {})", pg_dir.display());

    let mut running = Vec::new();
    {
        let addr = format!("{bind_host}:{}", giistr_tags::PORT);
        let env = env.clone().with_default("DATABASE_URL", database_url.clone()).with("LISTEN_ADDR", addr.clone());
        let settings = giistr_tags::Settings::from_env(&env).context("giistr-tags settings")?;
        let listener = TcpListener::bind(&addr).with_context(|| format!("giistr-tags cannot listen on {addr}"))?;
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
    tokio::task::spawn_blocking(move || testkit::postgres::stop_cluster(&pg_dir)).await??;
    println!("stopped");
    Ok(())
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
