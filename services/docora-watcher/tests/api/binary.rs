//! The built binary: the operator's onboarding command, configuration errors, and its shutdown
//! on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use testkit::{GitServer, SinkMode, WebhookSink};

use crate::{TestApp, count, test_env};

#[tokio::test]
async fn an_app_onboarded_from_the_command_line_can_use_the_api() {
    let app = TestApp::spawn().await;
    let run = |args: &[&str], without: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_docora-watcher"));
        command.args(args).env_clear().env("RUST_LOG", "warn");
        for (name, value) in test_env(&app.db.url, app.github.url()).vars() {
            if Some(name.as_str()) != without {
                command.env(name, value);
            }
        }
        command.output().expect("the binary runs")
    };
    let out = run(
        &[
            "admin",
            "onboard-app",
            "--name",
            "Reader",
            "--base-url",
            "https://hooks.example.com",
            "--email",
            "dev@example.com",
            "--client-auth-key",
            "0123456789abcdef0123",
        ],
        None,
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let token = stdout
        .lines()
        .find_map(|l| l.strip_prefix("token"))
        .and_then(|l| l.split_whitespace().next())
        .expect("a token line");
    assert!(token.starts_with("docora_") && token.len() == 7 + 64, "{token}");
    let (owner_id, _) = app.github.add_user("octo");
    app.github.add_repo(owner_id, "repo", false);
    let res = app
        .as_token(token)
        .post_json("/api/repositories", &json!({"github_url": "https://github.com/octo/repo"}))
        .await;
    assert_eq!(res.status, 201, "{}", res.text);

    let refused = run(
        &[
            "admin",
            "onboard-app",
            "--name",
            "Bad",
            "--base-url",
            "http://127.0.0.1:9",
            "--email",
            "dev@example.com",
            "--client-auth-key",
            "0123456789abcdef0123",
        ],
        None,
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("base_url"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let no_key = run(&[], Some("ENCRYPTION_KEY"));
    assert!(!no_key.status.success());
    assert!(String::from_utf8_lossy(&no_key.stderr).contains("ENCRYPTION_KEY"));
}

#[tokio::test]
async fn on_sigterm_the_binary_finishes_the_delivery_in_flight_takes_no_other_and_exits() {
    let sink = WebhookSink::start().expect("sink");
    sink.set_mode(SinkMode::Slow(Duration::from_secs(2)));
    let git = GitServer::start().expect("git server");
    // The in-process instance (no workers) onboards the app and registers the repository.
    let app =
        TestApp::spawn_with(|env| env.with("ALLOW_HTTP_WEBHOOKS", "true").with("ALLOW_PRIVATE_WEBHOOKS", "true")).await;
    let (owner_id, _) = app.github.add_user("octo");
    app.github.add_repo(owner_id, "docs", false);
    let repo = git.create_repo("octo", "docs").expect("repo");
    repo.write("a.md", b"a").write("b.md", b"b").commit("first").expect("commit");
    let (_, client) = app.app_at("reader", &sink.url()).await;
    let res = client.post_json("/api/repositories", &json!({"github_url": "https://github.com/octo/docs"})).await;
    assert_eq!(res.status, 201, "{}", res.text);

    // The binary scans and delivers.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let work = std::env::temp_dir().join(format!("docora-binary-{}", uuid::Uuid::new_v4().simple()));
    let env = test_env(&app.db.url, app.github.url())
        .with("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .with("GIT_BASE_URL", git.url())
        .with("GIT_WORK_DIR", work.to_string_lossy().into_owned())
        .with("ALLOW_HTTP_WEBHOOKS", "true")
        .with("ALLOW_PRIVATE_WEBHOOKS", "true")
        .with("SCAN_WORKERS", "1")
        .with("DELIVERY_WORKERS", "1")
        .with("WORKER_POLL_MILLIS", "20")
        .with("WEBHOOK_TIMEOUT_SECS", "10")
        .with("DELIVERY_LEASE_SECS", "600")
        .with("SHUTDOWN_TIMEOUT_SECS", "20")
        .with("LOG_FORMAT", "json");
    let mut command = Command::new(env!("CARGO_BIN_EXE_docora-watcher"));
    command.env_clear().stdout(Stdio::piped()).stderr(Stdio::null());
    // git is run from the PATH.
    for name in ["PATH", "HOME"] {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    for (name, value) in env.vars() {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("the binary starts");
    let in_flight = sink.wait_for_attempts(1, Duration::from_secs(30)).await[0].delivery().expect("an id").to_owned();

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
    assert!(killed.success());
    let output = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().expect("wait").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("still running 30 s after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().expect("output")
    })
    .await
    .expect("joined");
    let _ = std::fs::remove_dir_all(&work);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "exit status {:?}\n{stdout}", output.status);
    let last: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("logged something")).expect("JSON log lines");
    assert_eq!(last["message"], "stopped", "{stdout}");
    // The workers were told to stop at the signal, not after the drain.
    assert!(stdout.contains("SIGTERM received: draining requests, background work told to stop"), "{stdout}");

    assert_eq!(sink.received_count(), 1, "the answer to the delivery in flight was awaited, nothing more was sent");
    assert_eq!(sink.attempts().len(), 1);
    let recorded = format!(
        "SELECT count(*) AS n FROM docora.events WHERE id = '{in_flight}' AND status = 'delivered' \
         AND attempts = 1 AND lease_until IS NULL"
    );
    assert_eq!(count(&app.db, &recorded).await, 1, "the delivery in flight was recorded before the exit");
    let untouched = "SELECT count(*) AS n FROM docora.events \
                     WHERE status = 'pending' AND attempts = 0 AND lease_until IS NULL";
    assert_eq!(count(&app.db, untouched).await, 1, "the other event was not taken");
}
