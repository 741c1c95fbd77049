//! Black-box checks of the real `giistr-tags` binary and of its migrations.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use diesel_async::RunQueryDsl;
use testkit::TestDb;

#[test]
fn a_missing_setting_stops_the_binary_with_a_message_naming_it() {
    let output = Command::new(env!("CARGO_BIN_EXE_giistr-tags"))
        .env_clear()
        .env("GITHUB_API_URL", "https://api.github.com")
        .output()
        .expect("the binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DATABASE_URL: is not set"), "{stderr}");
}

#[tokio::test]
async fn the_binary_serves_then_stops_cleanly_on_sigterm() {
    let db = TestDb::new("giistr", |url| async move { giistr_tags::migrate(&url).await }).await.expect("db");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_giistr-tags"))
        .env("DATABASE_URL", &db.url)
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("HTTP_WORKERS", "1")
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let client = testkit::Client::new(format!("http://127.0.0.1:{port}"));
    let started = Instant::now();
    loop {
        let ready = client.request(reqwest::Method::GET, "/readyz").send().await.is_ok_and(|r| r.status() == 200);
        if ready {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the binary did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(client.get("/healthz").await.status, 200);

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
    assert!(killed.success());
    let output = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().expect("wait").is_none() {
            assert!(Instant::now() < deadline, "still running 20 s after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().expect("output")
    })
    .await
    .expect("joined");
    assert!(output.status.success(), "exit status {:?}", output.status);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("logged something")).expect("JSON log lines");
    assert_eq!(last["message"], "stopped", "{stdout}");
}

#[tokio::test]
async fn concurrent_migrations_do_not_race_and_down_migrations_revert_everything() {
    // An empty database (not cloned from the migrated template).
    let db = TestDb::new("giistr", |url| async move { giistr_tags::migrate(&url).await }).await.expect("db");
    let mut admin = db.admin_conn().await.expect("admin");
    let name = format!("{}_raw", db.name);
    diesel::sql_query(format!("CREATE DATABASE \"{name}\"")).execute(&mut admin).await.expect("create");
    let url = testkit::postgres::replace_database(&db.url, &name);

    // Three replicas starting at once: the advisory lock serialises them, all succeed.
    let (a, b, c) = tokio::join!(giistr_tags::migrate(&url), giistr_tags::migrate(&url), giistr_tags::migrate(&url));
    a.and(b).and(c).expect("every replica migrates");

    let mut conn =
        <diesel_async::AsyncPgConnection as diesel_async::AsyncConnection>::establish(&url).await.expect("conn");
    let tables =
        |schema: &str| format!("SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = '{schema}'");
    assert_eq!(
        crate::count(&mut conn, &tables("giistr")).await,
        5,
        "four tables and diesel's bookkeeping, all in the giistr schema"
    );
    assert_eq!(crate::count(&mut conn, &tables("public")).await, 0, "nothing outside the service's schema");

    let reverted = service_kit::db::revert_all(&url, giistr_tags::SCHEMA, giistr_tags::MIGRATIONS).await.expect("down");
    assert!(reverted >= 1);
    assert_eq!(crate::count(&mut conn, &tables("giistr")).await, 1, "only diesel's bookkeeping table is left");
    giistr_tags::migrate(&url).await.expect("up again after down");
    drop(conn);
    diesel::sql_query(format!("DROP DATABASE \"{name}\" WITH (FORCE)")).execute(&mut admin).await.expect("drop");
}
