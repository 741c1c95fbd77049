//! What taking a link's next events costs as the link's delivered backlog grows
//! (`cargo run --release -p docora-watcher --example take_backlog`; figures in
//! `bench/RESULTS.md`).
//!
//! One app watching one repository; `BACKLOG` events (default 100,000) go through the outbox the
//! way deliveries leave them: inserted pending, then marked delivered in batches (each update
//! leaves a dead row version and dead index entries; autovacuum is off for the table, the worst
//! case), the link's `delivered_seq` moved along. At 0, 1,000, 10,000 and `BACKLOG` delivered
//! events, with 10 events pending behind them, the delivery take ([`TAKE_SQL`], a batch of up
//! to 200) runs under `EXPLAIN (ANALYZE, BUFFERS)` in a transaction that is rolled back, and so
//! does the head probe as it was before the cursor (the link's oldest pending or failed event,
//! from the link's first event). The take's buffers and time stay flat; the old probe's grow
//! with the backlog when it walks the delivered events. The last plans are printed whole.
//!
//! PostgreSQL: a private cluster under `BENCH_DATA_DIR` (default `target/bench-docora-backlog`),
//! stopped at the end.

// An example reports to the person at the terminal.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;

use anyhow::Context;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use docora_watcher::deliver::TAKE_SQL;

const DATABASE: &str = "docora_backlog";
const APP: &str = "app_00000000000000000000000000000001";
const REPO: &str = "repo_000000000000000000000001";

/// The head probe before `delivered_seq`: from the link's first event.
const OLD_HEAD_PROBE: &str = "SELECT h.id FROM docora.app_repositories l \
     CROSS JOIN LATERAL (SELECT p.id, p.status FROM docora.events p \
                         WHERE p.app_id = l.app_id AND p.repository_id = l.repository_id \
                           AND p.status IN ('pending', 'failed') ORDER BY p.seq LIMIT 1) h";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let data = PathBuf::from(std::env::var("BENCH_DATA_DIR").unwrap_or_else(|_| "target/bench-docora-backlog".into()));
    let port: u16 = std::env::var("BENCH_POSTGRES_PORT").ok().and_then(|v| v.parse().ok()).unwrap_or(54371);
    let pg_dir = data.join("pg");
    let cluster = {
        let pg_dir = pg_dir.clone();
        tokio::task::spawn_blocking(move || testkit::postgres::ensure_cluster(&pg_dir, Some(port)))
            .await?
            .context("starting PostgreSQL")?
    };
    let outcome = run(&cluster).await;
    if let Err(e) = testkit::postgres::stop_cluster(&pg_dir) {
        eprintln!("could not stop PostgreSQL: {e:#}");
    }
    outcome
}

async fn run(cluster: &testkit::postgres::ClusterInfo) -> anyhow::Result<()> {
    let backlog: i64 = std::env::var("BACKLOG").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let mut admin = AsyncPgConnection::establish(&cluster.url("postgres")).await?;
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")).await?;
    admin.batch_execute(&format!("CREATE DATABASE {DATABASE}")).await?;
    drop(admin);
    let url = cluster.url(DATABASE);
    docora_watcher::migrate(&url).await?;
    let mut db = AsyncPgConnection::establish(&url).await?;
    // As the service's take runs (see `Deliverer::take_up_to`): without JIT, which the planner's
    // high estimates would otherwise turn on (`BENCH_JIT=on` to see it).
    let jit = std::env::var("BENCH_JIT").unwrap_or_else(|_| "off".into());
    db.batch_execute(&format!("SET jit = {}", if jit == "on" { "on" } else { "off" })).await?;
    db.batch_execute(&format!(
        "ALTER TABLE docora.events SET (autovacuum_enabled = false); \
         INSERT INTO docora.apps (id, app_name, base_url, email, client_auth_key_enc, token_digest) \
           VALUES ('{APP}', 'backlog', 'http://127.0.0.1:9/hooks', 'a@example.com', '\\x00', '\\x01'); \
         INSERT INTO docora.repositories (id, github_repo_id, owner, name, is_private, default_branch) \
           VALUES ('{REPO}', 1, 'octo', 'docs', false, 'main'); \
         INSERT INTO docora.app_repositories (app_id, repository_id) VALUES ('{APP}', '{REPO}');"
    ))
    .await?;
    println!(
        "| delivered before the pending ones | take: buffers | take: planning + execution | old head probe: buffers | old head probe: execution |"
    );
    println!("|---|---|---|---|---|");
    let mut delivered = 0;
    let mut plans = (String::new(), String::new());
    for target in [0, 1_000, 10_000, backlog] {
        // Deliver up to `target`: the events pending behind the last step first, then new ones,
        // 1,000 per statement, as deliveries record them.
        while delivered < target {
            let n = (target - delivered).min(1_000);
            db.batch_execute(&format!(
                "INSERT INTO docora.events (id, app_id, repository_id, event, path, payload) \
                   SELECT gen_random_uuid(), '{APP}', '{REPO}', 'create', 'f' || g, '{{}}' FROM generate_series(1, {n}) g; \
                 WITH d AS (UPDATE docora.events SET status = 'delivered', delivered_at = now(), attempts = 1 \
                            WHERE status = 'pending' RETURNING seq) \
                 UPDATE docora.app_repositories SET delivered_seq = (SELECT max(seq) FROM d) \
                   WHERE EXISTS (SELECT 1 FROM d);"
            ))
            .await?;
            delivered += n;
        }
        db.batch_execute(&format!(
            "DELETE FROM docora.events WHERE status = 'pending'; \
             INSERT INTO docora.events (id, app_id, repository_id, event, path, payload) \
               SELECT gen_random_uuid(), '{APP}', '{REPO}', 'create', 'pending' || g, '{{}}' FROM generate_series(1, 10) g; \
             ANALYZE docora.events;"
        ))
        .await?;
        let take = TAKE_SQL.replace("$1", "(now() + interval '90 seconds')").replace("$2", "200");
        let (take_plan, taken) = explain(&mut db, &take).await?;
        let (old_plan, _) = explain(&mut db, OLD_HEAD_PROBE).await?;
        anyhow::ensure!(taken == 10, "the take should lease the 10 pending events, leased {taken}");
        println!(
            "| {delivered} | {} | {:.2} + {:.2} ms | {} | {:.2} ms |",
            buffers(&take_plan),
            timing(&take_plan, "Planning Time"),
            timing(&take_plan, "Execution Time"),
            buffers(&old_plan),
            timing(&old_plan, "Execution Time"),
        );
        plans = (take_plan, old_plan);
    }
    println!("\nThe take with {delivered} delivered events behind the pending ones:\n{}", plans.0);
    println!("The old head probe, same data:\n{}", plans.1);
    Ok(())
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of `sql` in a transaction rolled back: the plan, and how many
/// rows the top node returned.
async fn explain(db: &mut AsyncPgConnection, sql: &str) -> anyhow::Result<(String, u64)> {
    #[derive(diesel::QueryableByName)]
    struct Line {
        #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
        line: String,
    }
    db.batch_execute("BEGIN").await?;
    let lines: Vec<Line> = diesel::sql_query(format!("EXPLAIN (ANALYZE, BUFFERS) {sql}")).load(db).await?;
    db.batch_execute("ROLLBACK").await?;
    let plan: String = lines.iter().map(|l| format!("{}\n", l.line)).collect();
    let rows = plan
        .lines()
        .next()
        .and_then(|l| l.split("rows=").nth(2))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    Ok((plan, rows))
}

/// The statement's buffers (the top node's, which include every node below it).
fn buffers(plan: &str) -> String {
    plan.lines().find_map(|l| l.trim().strip_prefix("Buffers: ")).map_or_else(|| "none".to_owned(), str::to_owned)
}

/// A `Planning Time` or `Execution Time` line, in ms.
fn timing(plan: &str, what: &str) -> f64 {
    plan.lines()
        .find_map(|l| l.trim().strip_prefix(what)?.strip_prefix(": ")?.strip_suffix(" ms")?.parse().ok())
        .unwrap_or(0.0)
}
