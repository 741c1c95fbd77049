//! The scan benchmark of docora-watcher (`bench/docora-scan.sh`, `just bench-docora`; figures in
//! `bench/RESULTS.md`). It measures, on one machine:
//!
//! 1. registering a repository of `BENCH_FILES` files (default 10,000: text, small binaries and a
//!    few large binaries) until every create delivery was acknowledged by the receiver;
//! 2. a one-file commit, announced through the GitHub push endpoint, until its delivery arrives;
//! 3. a push with no change, until the rescan is recorded;
//!
//! and the service's peak memory (VmHWM) and CPU time. For the first scenario it also reports
//! PostgreSQL's share: the transactions on the service's database (`xact_commit +
//! xact_rollback` of `pg_stat_database`, the benchmark's own polling taken out) and the CPU time
//! of the cluster's processes (user + system, from `/proc`, exited backends included), each
//! per delivered event. The service is the release binary
//! (`DOCORA_WATCHER_BIN`), run as a process of its own with its default settings (any setting in
//! the environment passes through to it, e.g. `DELIVERY_WORKERS=8`). Around it: a private
//! PostgreSQL cluster under `BENCH_DATA_DIR` (started like the local stack's, stopped at the
//! end), and the test kit's git server, fake GitHub and webhook receiver, on loopback.

// A benchmark reports to the person at the terminal.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use diesel::OptionalExtension;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use hmac::{Hmac, Mac};
use serde_json::json;
use service_kit::Env;
use sha2::Sha256;
use testkit::{FakeGithub, GitServer, WebhookSink};

const ENCRYPTION_KEY: &str = "5b1d0c3e7a9f24681357acefbd0246813579bdf02468ace13579bdf02468ace1";
const SIGNING_KEY: &str = "bench-signing-key-of-some-length";
const PUSH_SECRET: &str = "bench-push-secret";
const DATABASE: &str = "docora_bench";
/// Raw bytes per base64 piece of a chunked delivery, and the size above which binaries are chunked.
const PIECE_BYTES: u64 = 524_288 / 4 * 3;
const CHUNK_THRESHOLD: u64 = 1 << 20;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let data = PathBuf::from(std::env::var("BENCH_DATA_DIR").unwrap_or_else(|_| "target/bench-docora".into()));
    let pg_port: u16 = std::env::var("BENCH_POSTGRES_PORT").ok().and_then(|v| v.parse().ok()).unwrap_or(54369);
    // PostgreSQL: a private cluster like the stack's, stopped at the end.
    let pg_dir = data.join("pg");
    let cluster = {
        let pg_dir = pg_dir.clone();
        tokio::task::spawn_blocking(move || testkit::postgres::ensure_cluster(&pg_dir, Some(pg_port)))
            .await?
            .context("starting PostgreSQL")?
    };
    let outcome = run(&data, &cluster, &pg_dir).await;
    if let Err(e) = testkit::postgres::stop_cluster(&pg_dir) {
        eprintln!("could not stop PostgreSQL: {e:#}");
    }
    outcome
}

async fn run(
    data: &std::path::Path,
    cluster: &testkit::postgres::ClusterInfo,
    pg_dir: &std::path::Path,
) -> anyhow::Result<()> {
    let files: usize = std::env::var("BENCH_FILES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let binary =
        PathBuf::from(std::env::var("DOCORA_WATCHER_BIN").unwrap_or_else(|_| "target/release/docora-watcher".into()));

    // A fresh database each run.
    let mut admin = AsyncPgConnection::establish(&cluster.url("postgres")).await?;
    diesel::sql_query(format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")).execute(&mut admin).await?;
    diesel::sql_query(format!("CREATE DATABASE {DATABASE}")).execute(&mut admin).await?;
    drop(admin);
    let database_url = cluster.url(DATABASE);

    // The stand-ins, and the repository.
    let git = GitServer::start()?;
    let github = FakeGithub::start();
    let sink = WebhookSink::start()?;
    let (owner_id, _) = github.add_user("bench");
    let github_id = github.add_repo(owner_id, "corpus", false);
    let repo = git.create_repo("bench", "corpus")?;
    let started = Instant::now();
    let corpus = Corpus::write(&repo, files);
    repo.commit("corpus")?;
    println!(
        "repository: {} files ({} text, {} small binary, {} large binary, {:.1} MiB); generated and committed in {:.1} s",
        files,
        corpus.text,
        corpus.small_binary,
        corpus.large_binary,
        corpus.bytes as f64 / f64::from(1 << 20),
        started.elapsed().as_secs_f64()
    );

    // The service, as a process of its own.
    let work = data.join("git");
    let _ = std::fs::remove_dir_all(&work);
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let url = format!("http://127.0.0.1:{port}");
    let vars = [
        ("DATABASE_URL", database_url),
        ("ENCRYPTION_KEY", ENCRYPTION_KEY.to_owned()),
        ("GITHUB_API_URL", github.url().to_owned()),
        ("GIT_BASE_URL", git.url()),
        ("GIT_WORK_DIR", work.to_string_lossy().into_owned()),
        ("GITHUB_WEBHOOK_SECRET", PUSH_SECRET.to_owned()),
        ("ALLOW_HTTP_WEBHOOKS", "true".to_owned()),
        ("ALLOW_PRIVATE_WEBHOOKS", "true".to_owned()),
        ("LISTEN_ADDR", format!("127.0.0.1:{port}")),
    ];
    let mut command = Command::new(&binary);
    // BENCH_LOG=<file> keeps the service's log.
    let log = match std::env::var_os("BENCH_LOG") {
        Some(file) => Stdio::from(std::fs::File::create(file)?),
        None => Stdio::null(),
    };
    command.envs(vars.iter().map(|(k, v)| (*k, v.as_str()))).stdout(log);
    if std::env::var_os("RUST_LOG").is_none() {
        command.env("RUST_LOG", "warn");
    }
    let service = Service(command.spawn().with_context(|| format!("starting {}", binary.display()))?);
    let http = reqwest::Client::new();
    let ready = Instant::now();
    while !http.get(format!("{url}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
        if ready.elapsed() > Duration::from_secs(30) {
            bail!("docora-watcher did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("service started: {} MiB resident", service.memory("VmRSS") >> 20);

    // The app, onboarded as the operator does.
    let env = vars.iter().fold(Env::default(), |env, (k, v)| env.with(*k, v.clone()));
    let settings = docora_watcher::Settings::from_env(&env)?;
    let pool = service_kit::db::pool(&settings.database)?;
    let mut conn = service_kit::db::conn(&pool).await?;
    let new = docora_watcher::apps::NewApp {
        app_name: "bench".into(),
        base_url: sink.url(),
        email: "bench@example.com".into(),
        website: None,
        description: None,
        client_auth_key: SIGNING_KEY.into(),
    };
    let app = docora_watcher::apps::onboard(&mut conn, &settings.cipher(), &new, settings.url_policy).await?;
    drop(conn);
    let mut db = AsyncPgConnection::establish(settings.database.url.expose()).await?;

    // 1. Registration: clone, hash every file, write the outbox, deliver it all.
    let postmaster = postmaster_pid(pg_dir)?;
    let mut polls = Polls::default();
    let xacts_before = xacts(&mut db, &mut polls).await?;
    let pg_cpu_before = pg_cpu_seconds(postmaster);
    let service_cpu_before = service.cpu_seconds();
    let started = Instant::now();
    let res = http
        .post(format!("{url}/api/repositories"))
        .bearer_auth(&app.token)
        .json(&json!({"github_url": "https://github.com/bench/corpus"}))
        .send()
        .await?;
    if res.status() != 201 {
        bail!("registration answered {}: {}", res.status(), res.text().await?);
    }
    wait_for_scan_counted(&mut db, &mut polls, |(commit, _)| commit.is_some()).await?;
    let scan_time = started.elapsed();
    let requests = corpus.requests;
    wait_until(Duration::from_secs(1800), || sink.received_count() >= requests).await?;
    let all = started.elapsed();
    let pg_cpu = pg_cpu_seconds(postmaster) - pg_cpu_before;
    let service_cpu = service.cpu_seconds() - service_cpu_before;
    // Backends report their counts at most once a second, and an idle one within 10 s: wait,
    // then take out what the idle workers did meanwhile (measured over as long again).
    tokio::time::sleep(STATS_LAG).await;
    let at_end = xacts(&mut db, &mut polls).await?;
    let own = polls.0;
    tokio::time::sleep(STATS_LAG).await;
    let idle = (xacts(&mut db, &mut polls).await? - at_end - 1).max(0);
    let transactions = at_end - xacts_before - own - idle;
    let received = sink.received();
    // The time one delivery takes end to end: the median gap between two acknowledged requests
    // of files sent whole (one link's events go one at a time, in order).
    let mut gaps: Vec<Duration> = received
        .windows(2)
        .filter(|w| w[1].body.len() < 64 * 1024)
        .filter_map(|w| w[1].at.duration_since(w[0].at).ok())
        .collect();
    gaps.sort();
    let median_gap = gaps.get(gaps.len() / 2).copied().unwrap_or_default();
    drop(received);
    println!(
        "register -> scan recorded: {:.2} s; -> all {files} creates acknowledged ({requests} requests): {:.2} s ({:.0} files/s)",
        scan_time.as_secs_f64(),
        all.as_secs_f64(),
        files as f64 / all.as_secs_f64()
    );
    println!(
        "  median time between two deliveries: {:.1} ms; service so far: peak {} MiB, CPU {:.1} s",
        median_gap.as_secs_f64() * 1000.0,
        service.memory("VmHWM") >> 20,
        service.cpu_seconds()
    );
    println!(
        "  PostgreSQL: {transactions} transactions ({:.3} per delivered event; {idle} more while idle for {} s), \
         backend CPU {pg_cpu:.1} s ({:.2} ms per event); service CPU {service_cpu:.1} s ({:.2} ms per event)",
        transactions as f64 / files as f64,
        STATS_LAG.as_secs(),
        pg_cpu * 1000.0 / files as f64,
        service_cpu * 1000.0 / files as f64
    );

    // 2. A one-file commit, announced by GitHub's push webhook.
    repo.write(&corpus.sample_text, b"changed by the benchmark\n");
    let commit = repo.commit("one file")?;
    let started = Instant::now();
    push(&http, &url, github_id).await?;
    wait_for_scan(&mut db, |(scanned, _)| scanned.as_deref() == Some(commit.as_str())).await?;
    let scan_time = started.elapsed();
    wait_until(Duration::from_secs(60), || sink.received_count() > requests).await?;
    let delivered = started.elapsed();
    let last = sink.received().pop().context("a delivery")?;
    if last.event() != "update" || last.json()["file"]["path"] != corpus.sample_text.as_str() {
        bail!("expected the update of {}, got {}", corpus.sample_text, String::from_utf8_lossy(&last.body));
    }
    println!(
        "one-file commit: push -> scan recorded {:.2} s; -> its delivery acknowledged {:.2} s",
        scan_time.as_secs_f64(),
        delivered.as_secs_f64()
    );

    // 3. A push with nothing new: one fetch, no walk.
    let (_, scanned_at) = last_scan(&mut db).await?;
    let started = Instant::now();
    push(&http, &url, github_id).await?;
    wait_for_scan(&mut db, |(_, at)| *at != scanned_at).await?;
    println!("rescan with no change: push -> scan recorded {:.2} s", started.elapsed().as_secs_f64());
    if sink.received_count() != requests + 1 {
        bail!("an unchanged rescan sent something");
    }

    println!(
        "service peak memory (VmHWM): {} MiB; resident now (VmRSS): {} MiB; CPU used: {:.1} s",
        service.memory("VmHWM") >> 20,
        service.memory("VmRSS") >> 20,
        service.cpu_seconds()
    );
    drop(service);
    pool.close();
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// The generated files.
struct Corpus {
    text: usize,
    small_binary: usize,
    large_binary: usize,
    bytes: u64,
    /// Webhook requests their creates take (large binaries go in pieces).
    requests: usize,
    /// A text file's path.
    sample_text: String,
}

impl Corpus {
    /// Writes `files` files into the work tree: 80 % text (200 B to 8 KiB of source-like lines),
    /// the rest binary (1 to 64 KiB of noise), of which eight are large (2 to 24 MiB).
    fn write(repo: &testkit::GitRepo, files: usize) -> Corpus {
        const LARGE_MIB: [u64; 8] = [2, 3, 4, 6, 8, 12, 16, 24];
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut corpus =
            Corpus { text: 0, small_binary: 0, large_binary: 0, bytes: 0, requests: 0, sample_text: String::new() };
        for i in 0..files {
            let (path, content) = if let Some(mib) = LARGE_MIB.get(i) {
                corpus.large_binary += 1;
                (format!("media/large{i}.bin"), rng.bytes((mib << 20) as usize))
            } else if i % 5 == 0 {
                corpus.small_binary += 1;
                let size = 1024 + rng.below(63 * 1024);
                (format!("assets/a{}/blob{i}.bin", i % 50), rng.bytes(size))
            } else {
                corpus.text += 1;
                let size = 200 + rng.below(8 * 1024 - 200);
                let mut text = String::with_capacity(size + 80);
                while text.len() < size {
                    text.push_str(&format!(
                        "let value_{} = compute({}, \"{}\");\n",
                        rng.below(1000),
                        i,
                        rng.below(1 << 20)
                    ));
                }
                let path = format!("src/m{}/file{i}.txt", i % 100);
                if corpus.sample_text.is_empty() {
                    corpus.sample_text = path.clone();
                }
                (path, text.into_bytes())
            };
            let size = content.len() as u64;
            corpus.bytes += size;
            // Binary files over 1 MiB go in pieces (every text file here is small).
            corpus.requests += if size > CHUNK_THRESHOLD { size.div_ceil(PIECE_BYTES) as usize } else { 1 };
            repo.write(&path, &content);
        }
        corpus
    }
}

/// A small deterministic generator, so every run writes the same repository.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(n);
        out
    }
}

/// The service process; killed when dropped.
struct Service(Child);

impl Service {
    /// A memory figure of `/proc/<pid>/status` (`VmHWM`, `VmRSS`), in bytes.
    fn memory(&self, key: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    /// User and system CPU time used so far.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.0.id())).unwrap_or_default();
        // After the command name in parentheses: utime and stime are fields 14 and 15.
        let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
        let ticks: u64 = fields.get(11..13).map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum());
        ticks as f64 / 100.0 // USER_HZ: 100 on Linux
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `(last_commit_sha, last_scan_at)` of the (only) repository.
async fn last_scan(db: &mut AsyncPgConnection) -> anyhow::Result<(Option<String>, Option<String>)> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        last_commit_sha: Option<String>,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        last_scan_at: Option<String>,
    }
    let row: Option<Row> =
        diesel::sql_query("SELECT last_commit_sha, last_scan_at::text AS last_scan_at FROM docora.repositories")
            .get_result(db)
            .await
            .optional()?;
    Ok(row.map_or((None, None), |r| (r.last_commit_sha, r.last_scan_at)))
}

/// GitHub's push webhook for the default branch, signed with the secret.
async fn push(http: &reqwest::Client, url: &str, github_id: u64) -> anyhow::Result<()> {
    let body =
        json!({"ref": "refs/heads/main", "repository": {"id": github_id, "full_name": "bench/corpus"}}).to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(PUSH_SECRET.as_bytes())?;
    mac.update(body.as_bytes());
    let res = http
        .post(format!("{url}/api/github/push"))
        .header("Content-Type", "application/json")
        .header("X-GitHub-Event", "push")
        .header("X-Hub-Signature-256", format!("sha256={}", hex::encode(mac.finalize().into_bytes())))
        .body(body)
        .send()
        .await?;
    if res.status() != 202 {
        bail!("the push endpoint answered {}", res.status());
    }
    Ok(())
}

/// Polls `done` every 10 ms until it holds; fails after `limit`.
async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > limit {
            bail!("gave up after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Polls the repository's scan state every 10 ms until `done` holds (for at most 10 minutes).
async fn wait_for_scan(
    db: &mut AsyncPgConnection,
    done: impl Fn(&(Option<String>, Option<String>)) -> bool,
) -> anyhow::Result<()> {
    let started = Instant::now();
    while !done(&last_scan(db).await?) {
        if started.elapsed() > Duration::from_secs(600) {
            bail!("no scan was recorded within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// How long PostgreSQL may take to report a backend's transactions (an idle one reports within
/// 10 s).
const STATS_LAG: Duration = Duration::from_secs(11);

/// The queries this benchmark sent to the service's database (taken out of its transactions).
#[derive(Default)]
struct Polls(i64);

/// Transactions committed and rolled back so far on the service's database.
async fn xacts(db: &mut AsyncPgConnection, polls: &mut Polls) -> anyhow::Result<i64> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    polls.0 += 1;
    let row: Row = diesel::sql_query(format!(
        "SELECT (xact_commit + xact_rollback)::bigint AS n FROM pg_stat_database WHERE datname = '{DATABASE}'"
    ))
    .get_result(db)
    .await?;
    Ok(row.n)
}

/// The postmaster's process id, from the cluster's `postmaster.pid`.
fn postmaster_pid(pg_dir: &std::path::Path) -> anyhow::Result<u32> {
    let file = std::fs::read_to_string(pg_dir.join("data").join("postmaster.pid")).context("reading postmaster.pid")?;
    file.lines().next().and_then(|l| l.trim().parse().ok()).context("postmaster.pid has no pid")
}

/// CPU time (user + system) of the cluster so far: the postmaster with the children it has
/// reaped (backends that ended) and every process it runs now (backends, background workers).
fn pg_cpu_seconds(postmaster: u32) -> f64 {
    let mut ticks = 0u64;
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0.0 };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // After the command name in parentheses: ppid is field 4, utime 14, stime 15, cutime 16,
        // cstime 17.
        let fields: Vec<u64> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .map(|v| v.parse::<u64>().unwrap_or(0))
            .collect();
        let field = |n: usize| fields.get(n - 3).copied().unwrap_or(0);
        if pid == postmaster {
            ticks += field(14) + field(15) + field(16) + field(17);
        } else if field(4) == u64::from(postmaster) {
            ticks += field(14) + field(15);
        }
    }
    ticks as f64 / 100.0 // USER_HZ: 100 on Linux
}

/// [`wait_for_scan`], counting its queries.
async fn wait_for_scan_counted(
    db: &mut AsyncPgConnection,
    polls: &mut Polls,
    done: impl Fn(&(Option<String>, Option<String>)) -> bool,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        polls.0 += 1;
        if done(&last_scan(db).await?) {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("no scan was recorded within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
