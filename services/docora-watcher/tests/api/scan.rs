//! Scans: git repositories served by the test kit, the fake GitHub for registration, and the
//! outbox the scans write.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use testkit::{GitRepo, GitServer};

use crate::{TestApp, count, execute, str_of};
use docora_watcher::scan::{ScanOutcome, Scanner};

pub struct Fixture {
    pub app: TestApp,
    pub git: GitServer,
    pub repo: GitRepo,
    pub scanner: Scanner,
    pub repository_id: String,
    pub app_id: String,
    /// The app's API client.
    pub client: testkit::Client,
}

pub async fn fixture(threshold: &'static str) -> Fixture {
    fixture_with(threshold, "https://hooks.example.com/docora").await
}

/// A watched repository whose app's webhooks go to `base_url`.
pub async fn fixture_with(threshold: &'static str, base_url: &str) -> Fixture {
    fixture_env(threshold, base_url, |env| env).await
}

/// [`fixture_with`] with settings of its own on top.
pub async fn fixture_env(
    threshold: &'static str,
    base_url: &str,
    adjust: impl FnOnce(service_kit::Env) -> service_kit::Env,
) -> Fixture {
    let git = GitServer::start().expect("git server");
    let work = std::env::temp_dir().join(format!("docora-scan-{}", uuid::Uuid::new_v4().simple()));
    let git_url = git.url();
    let admin_hash = auth::password::hash(crate::admin::PASSWORD).expect("hash");
    let app = TestApp::spawn_with(move |env| {
        adjust(
            env.with("GIT_BASE_URL", git_url)
                .with("ADMIN_USERNAME", "root")
                .with("ADMIN_PASSWORD_HASH", admin_hash)
                .with("GIT_WORK_DIR", work.to_string_lossy().into_owned())
                .with("CIRCUIT_THRESHOLD", threshold)
                .with("ALLOW_HTTP_WEBHOOKS", "true")
                .with("ALLOW_PRIVATE_WEBHOOKS", "true")
                .with("DELIVERY_MAX_ATTEMPTS", "3")
                .with("WEBHOOK_TIMEOUT_SECS", "2"),
        )
    })
    .await;
    let (owner_id, _) = app.github.add_user("octo");
    app.github.add_repo(owner_id, "docs", false);
    let repo = git.create_repo("octo", "docs").expect("repo");
    repo.write("README.md", b"# Docs\n")
        .write("guide/intro.md", b"Hello")
        .write("img/logo.png", &[0x89, b'P', b'N', b'G', 0, 1, 2]);
    repo.commit("first").expect("commit");
    let (app_id, client) = app.app_at("reader", base_url).await;
    let res = client.post_json("/api/repositories", &json!({"github_url": "https://github.com/octo/docs"})).await;
    assert_eq!(res.status, 201, "{}", res.text);
    let repository_id = str_of(&res.body, "repository_id").to_owned();
    let scanner = app.settings.scanner(service_kit::db::pool(&app.settings.database).expect("pool")).expect("scanner");
    Fixture { app, git, repo, scanner, repository_id, app_id, client }
}

impl Fixture {
    /// Scans every watched repository now.
    pub async fn scan_all(&self) {
        execute(&self.app.db, "UPDATE docora.repositories SET next_scan_at = now()").await;
        while let Some(claimed) = self.scanner.claim().await.expect("claim") {
            let outcome = self.scanner.scan(&claimed).await.expect("scan");
            assert!(matches!(outcome, ScanOutcome::Scanned { .. }), "{}: {outcome:?}", claimed.name);
        }
    }

    pub async fn scan_now(&self) -> ScanOutcome {
        execute(&self.app.db, "UPDATE docora.repositories SET next_scan_at = now()").await;
        let claimed = self.scanner.claim().await.expect("claim").expect("a repository is due");
        assert_eq!(claimed.id, self.repository_id);
        self.scanner.scan(&claimed).await.expect("scan")
    }

    /// (event, path, payload) of an app's events in delivery order.
    pub async fn events(&self, app_id: &str) -> Vec<(String, Option<String>, Value)> {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            event: String,
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
            path: Option<String>,
            #[diesel(sql_type = diesel::sql_types::Jsonb)]
            payload: Value,
        }
        use diesel_async::RunQueryDsl;
        let mut conn = self.app.db.conn().await.expect("conn");
        diesel::sql_query("SELECT event, path, payload FROM docora.events WHERE app_id = $1 ORDER BY seq")
            .bind::<diesel::sql_types::Text, _>(app_id)
            .load::<Row>(&mut conn)
            .await
            .expect("events")
            .into_iter()
            .map(|r| (r.event, r.path, r.payload))
            .collect()
    }
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[tokio::test]
async fn the_first_scan_sends_every_file_as_a_create() {
    let f = fixture("5").await;
    let outcome = f.scan_now().await;
    assert!(
        matches!(outcome, ScanOutcome::Scanned { created: 3, updated: 0, deleted: 0, events: 3, .. }),
        "{outcome:?}"
    );
    let events = f.events(&f.app_id).await;
    let paths: Vec<&str> = events.iter().map(|(_, p, _)| p.as_deref().unwrap_or_default()).collect();
    assert_eq!(paths, ["README.md", "guide/intro.md", "img/logo.png"]);
    assert!(events.iter().all(|(e, _, _)| e == "create"));
    assert_eq!(events[1].2["sha256"], sha(b"Hello"));
    assert_eq!(events[1].2["size"], 5);
    assert_eq!(events[1].2["is_binary"], false);
    assert_eq!(events[2].2["is_binary"], true, "binary from the content");
    assert_eq!(count(&f.app.db, "SELECT count(*) AS n FROM docora.repository_files").await, 3);
    assert_eq!(
        count(&f.app.db, "SELECT count(*) AS n FROM docora.app_repositories WHERE NOT needs_full_sync").await,
        1
    );
    assert_eq!(count(&f.app.db, &format!("SELECT count(*) AS n FROM docora.repositories WHERE last_commit_sha = '{}' AND scan_lease_until IS NULL AND next_scan_at > now()", f.repo.head())).await, 1);
}

#[tokio::test]
async fn an_unchanged_commit_costs_one_fetch_and_no_walk() {
    let f = fixture("5").await;
    f.scan_now().await;
    let before = f.git.advertisements("octo", "docs");
    let outcome = f.scan_now().await;
    assert_eq!(outcome, ScanOutcome::Unchanged { commit: f.repo.head() });
    assert_eq!(f.git.advertisements("octo", "docs"), before + 1, "one fetch");
    assert_eq!(f.events(&f.app_id).await.len(), 3, "no new events");
}

#[tokio::test]
async fn changes_become_deletes_then_creates_then_updates() {
    let f = fixture("5").await;
    f.scan_now().await;
    f.repo.remove("guide/intro.md").write("guide/new.md", b"new").write("README.md", b"# Docs v2\n");
    f.repo.commit("second").expect("commit");
    let outcome = f.scan_now().await;
    assert!(
        matches!(outcome, ScanOutcome::Scanned { created: 1, updated: 1, deleted: 1, events: 3, .. }),
        "{outcome:?}"
    );
    let events = f.events(&f.app_id).await;
    let latest: Vec<(&str, &str)> =
        events[3..].iter().map(|(e, p, _)| (e.as_str(), p.as_deref().unwrap_or_default())).collect();
    assert_eq!(latest, [("delete", "guide/intro.md"), ("create", "guide/new.md"), ("update", "README.md")]);
    assert_eq!(events[3].2["sha256"], sha(b"Hello"), "a delete carries the file's last sha");
    assert_eq!(events[5].2["previous_sha256"], sha(b"# Docs\n"));
    assert_eq!(events[5].2["sha256"], sha(b"# Docs v2\n"));
}

#[tokio::test]
async fn a_new_watcher_gets_everything_while_the_first_gets_the_change() {
    let f = fixture("5").await;
    f.scan_now().await;
    let (second_id, second) = f.app.app("second").await;
    let res = second.post_json("/api/repositories", &json!({"github_url": "https://github.com/octo/docs"})).await;
    assert_eq!(res.body["repository_id"], f.repository_id.as_str());
    f.repo.write("added.md", b"+").commit("third").expect("commit");
    f.scan_now().await;
    assert_eq!(f.events(&f.app_id).await.len(), 4, "3 creates, then the one new file");
    let theirs = f.events(&second_id).await;
    assert_eq!(theirs.len(), 4, "every file as a create");
    assert!(theirs.iter().all(|(e, _, _)| e == "create"));
}

#[tokio::test]
async fn git_failures_open_the_circuit_once_with_one_sync_failed_per_app() {
    let f = fixture("2").await;
    let (second_id, second) = f.app.app("second").await;
    second.post_json("/api/repositories", &json!({"github_url": "https://github.com/octo/docs"})).await;
    f.git.set_failing(true);
    let first = f.scan_now().await;
    assert!(matches!(first, ScanOutcome::Failed { circuit_opened: false, .. }), "{first:?}");
    let second_failure = f.scan_now().await;
    assert!(matches!(second_failure, ScanOutcome::Failed { circuit_opened: true, .. }), "{second_failure:?}");
    for app_id in [&f.app_id, &second_id] {
        let events = f.events(app_id).await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].0, "sync_failed");
        assert_eq!(events[0].2["circuit_breaker"]["status"], "open");
        assert_eq!(events[0].2["circuit_breaker"]["consecutive_failures"], 2);
        assert_eq!(events[0].2["error"]["type"], "git_failure");
    }
    // While the circuit is open nothing is claimed, even when due.
    execute(&f.app.db, "UPDATE docora.repositories SET next_scan_at = now()").await;
    assert!(f.scanner.claim().await.expect("claim").is_none());
    // When the cooldown ends, scanning resumes by itself and a success closes the circuit.
    f.git.set_failing(false);
    execute(&f.app.db, "UPDATE docora.repositories SET circuit_open_until = now() - interval '1 second'").await;
    let recovered = f.scan_now().await;
    assert!(matches!(recovered, ScanOutcome::Scanned { .. }), "{recovered:?}");
    assert_eq!(count(&f.app.db, "SELECT count(*) AS n FROM docora.repositories WHERE consecutive_failures = 0 AND circuit_open_until IS NULL").await, 1);
}

#[tokio::test]
async fn a_claimed_repository_is_not_claimed_twice() {
    let f = fixture("5").await;
    execute(&f.app.db, "UPDATE docora.repositories SET next_scan_at = now()").await;
    let (a, b) = tokio::join!(f.scanner.claim(), f.scanner.claim());
    let claimed = [a.expect("claim"), b.expect("claim")];
    assert_eq!(claimed.iter().filter(|c| c.is_some()).count(), 1, "{claimed:?}");
}

#[tokio::test]
async fn private_repositories_are_scanned_with_the_app_token() {
    let f = fixture("5").await;
    let (owner_id, owner_token) = f.app.github.add_user("corp");
    f.app.github.add_repo(owner_id, "private", true);
    let private = f.git.create_repo("corp", "private").expect("repo");
    private.write("secret.md", b"s").commit("first").expect("commit");
    f.git.set_private("corp", "private", true);
    f.git.allow_token("corp", "private", &owner_token);
    let (_, client) = f.app.app("corp-reader").await;
    let res = client
        .post_json(
            "/api/repositories",
            &json!({"github_url": "https://github.com/corp/private", "github_token": owner_token}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.text);
    // Scan both due repositories.
    execute(&f.app.db, "UPDATE docora.repositories SET next_scan_at = now()").await;
    while let Some(claimed) = f.scanner.claim().await.expect("claim") {
        let outcome = f.scanner.scan(&claimed).await.expect("scan");
        assert!(matches!(outcome, ScanOutcome::Scanned { .. }), "{}: {outcome:?}", claimed.name);
    }
    assert_eq!(count(&f.app.db, "SELECT count(*) AS n FROM docora.repository_files WHERE path = 'secret.md'").await, 1);
}

/// The service binary as a process of its own on the test's database, so that its memory is
/// measured alone. Killed when dropped.
pub struct ServiceProcess {
    pub child: std::process::Child,
}

impl ServiceProcess {
    pub fn start(app: &TestApp, extra: &[(&str, String)]) -> ServiceProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_docora-watcher"));
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"));
        for (name, value) in crate::test_env(&app.db.url, app.github.url()).vars() {
            command.env(name, value);
        }
        for (name, value) in extra {
            command.env(name, value);
        }
        ServiceProcess { child: command.stdout(std::process::Stdio::null()).spawn().expect("docora-watcher starts") }
    }

    /// The most memory the process has held (VmHWM), in bytes.
    pub fn peak_memory(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_large_file_is_hashed_as_it_streams_and_never_held_whole() {
    const SIZE: usize = 128 << 20;
    let git = GitServer::start().expect("git server");
    let app = TestApp::spawn().await;
    let (owner_id, _) = app.github.add_user("octo");
    app.github.add_repo(owner_id, "big", false);
    let repo = git.create_repo("octo", "big").expect("repo");
    let content: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    repo.write("data/big.bin", &content).write("small.md", b"small").commit("big").expect("commit");
    let expected = sha(&content);
    drop(content);
    let (_, client) = app.app("reader").await;
    let res = client.post_json("/api/repositories", &json!({"github_url": "https://github.com/octo/big"})).await;
    assert_eq!(res.status, 201, "{}", res.text);

    // The scan runs in a process of its own (the in-process server has no workers).
    let work = std::env::temp_dir().join(format!("docora-big-{}", uuid::Uuid::new_v4().simple()));
    let service = ServiceProcess::start(
        &app,
        &[
            ("GIT_BASE_URL", git.url()),
            ("GIT_WORK_DIR", work.to_string_lossy().into_owned()),
            ("SCAN_WORKERS", "1".to_owned()),
            ("WORKER_POLL_MILLIS", "50".to_owned()),
        ],
    );
    let scanned = "SELECT count(*) AS n FROM docora.repository_files WHERE path = 'data/big.bin'";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while count(&app.db, scanned).await == 0 {
        assert!(std::time::Instant::now() < deadline, "the scan did not finish");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let peak = service.peak_memory();
    drop(service);
    let _ = std::fs::remove_dir_all(work);
    assert!(peak < 64 << 20, "the service peaked at {} MiB to hash a {} MiB file", peak >> 20, SIZE >> 20);
    let row = format!(
        "SELECT count(*) AS n FROM docora.repository_files WHERE path = 'data/big.bin' AND sha256 = '{expected}' \
         AND size = {SIZE} AND is_binary"
    );
    assert_eq!(count(&app.db, &row).await, 1, "hashed in pieces, the same digest as whole");
}

#[tokio::test]
async fn a_large_text_file_is_delivered_without_being_held_whole() {
    const SIZE: usize = 96 << 20;
    let git = GitServer::start().expect("git server");
    let sink = testkit::WebhookSink::start().expect("sink");
    let app =
        TestApp::spawn_with(|env| env.with("ALLOW_HTTP_WEBHOOKS", "true").with("ALLOW_PRIVATE_WEBHOOKS", "true")).await;
    let (owner_id, _) = app.github.add_user("octo");
    app.github.add_repo(owner_id, "logs", false);
    let repo = git.create_repo("octo", "logs").expect("repo");
    let line = "2026-11-23T03:00:00Z \"GET /index.html\" 200\tC:\\logs\\caf\u{e9}\n";
    let text = line.repeat(SIZE / line.len() + 1);
    repo.write("access.log", text.as_bytes()).commit("logs").expect("commit");
    let expected = sha(text.as_bytes());
    let (_, client) = app.app_at("reader", &sink.url()).await;
    let res = client.post_json("/api/repositories", &json!({"github_url": "https://github.com/octo/logs"})).await;
    assert_eq!(res.status, 201, "{}", res.text);

    let work = std::env::temp_dir().join(format!("docora-log-{}", uuid::Uuid::new_v4().simple()));
    let service = ServiceProcess::start(
        &app,
        &[
            ("GIT_BASE_URL", git.url()),
            ("GIT_WORK_DIR", work.to_string_lossy().into_owned()),
            ("SCAN_WORKERS", "1".to_owned()),
            ("DELIVERY_WORKERS", "1".to_owned()),
            ("ALLOW_HTTP_WEBHOOKS", "true".to_owned()),
            ("ALLOW_PRIVATE_WEBHOOKS", "true".to_owned()),
            ("WORKER_POLL_MILLIS", "50".to_owned()),
        ],
    );
    let received = sink.wait_for(1, std::time::Duration::from_secs(120)).await;
    let delivered = "SELECT count(*) AS n FROM docora.events WHERE status = 'delivered'";
    crate::eventually_count(&app.db, delivered, 1).await;
    let peak = service.peak_memory();
    drop(service);
    let _ = std::fs::remove_dir_all(work);
    assert!(received[0].signature_valid(crate::SIGNING_KEY));
    let body = received[0].json();
    assert_eq!(body["file"]["sha"], expected);
    assert!(body["file"]["content"] == text.as_str(), "the log whole and unchanged");
    // Held whole, the text alone would be 96 MiB, and its JSON body as much again.
    assert!(peak < 64 << 20, "the service peaked at {} MiB to deliver a {} MiB text", peak >> 20, SIZE >> 20);
}
