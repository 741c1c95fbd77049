//! Idle delivery workers wait for a PostgreSQL notification instead of polling: with the
//! fallback poll set to an hour, only the notification (or the listener's one take when it
//! listens again) can bring these events out within the test.

use std::time::Duration;

use serde_json::json;
use testkit::{GitRepo, GitServer, WebhookSink};

use crate::replicas::live_app;
use crate::{TestApp, count, eventually_count, execute};

const LISTENER: &str = "SELECT count(*) AS n FROM pg_stat_activity \
                        WHERE application_name = 'docora-watcher listener' AND datname = current_database()";

/// `octo/docs` with `a.md`, watched by an app whose webhooks go to `sink`, delivered; the
/// delivery workers then have nothing to do.
async fn first_sync(git: &GitServer, sink: &WebhookSink) -> (TestApp, GitRepo) {
    let app = live_app(git, |env| {
        env.with("SCAN_WORKERS", "1").with("DELIVERY_WORKERS", "2").with("DELIVERY_FALLBACK_POLL_SECS", "3600")
    })
    .await;
    let (owner_id, _) = app.github.add_user("octo");
    app.github.add_repo(owner_id, "docs", false);
    let repo = git.create_repo("octo", "docs").expect("repo");
    repo.write("a.md", b"a").commit("first").expect("commit");
    let (_, client) = app.app_at("reader", &sink.url()).await;
    let res = client.post_json("/api/repositories", &json!({"github_url": "https://github.com/octo/docs"})).await;
    assert_eq!(res.status, 201, "{}", res.text);
    sink.wait_for(1, Duration::from_secs(20)).await;
    eventually_count(&app.db, "SELECT count(*) AS n FROM docora.app_repositories WHERE status = 'synced'", 1).await;
    (app, repo)
}

/// A new commit, scanned now: its event must reach the sink.
async fn next_commit_arrives(app: &TestApp, repo: &GitRepo, sink: &WebhookSink, path: &str) {
    let before = sink.received().len();
    repo.write(path, path.as_bytes()).commit(path).expect("commit");
    execute(&app.db, "UPDATE docora.repositories SET next_scan_at = now()").await;
    let received = sink.wait_for(before + 1, Duration::from_secs(20)).await;
    assert_eq!(received[before].json()["file"]["path"], path);
    assert_eq!(received[before].event(), "create");
}

#[tokio::test]
async fn an_event_a_scan_writes_wakes_an_idle_worker_without_waiting_for_the_poll() {
    let sink = WebhookSink::start().expect("sink");
    let git = GitServer::start().expect("git server");
    let (app, repo) = first_sync(&git, &sink).await;
    assert_eq!(count(&app.db, LISTENER).await, 1, "one listening connection for the replica's two workers");
    next_commit_arrives(&app, &repo, &sink, "b.md").await;
    next_commit_arrives(&app, &repo, &sink, "c.md").await;
    assert_eq!(sink.received().len(), 3, "each event once");
}

#[tokio::test]
async fn a_listener_whose_connection_is_killed_listens_again_and_deliveries_go_on() {
    let sink = WebhookSink::start().expect("sink");
    let git = GitServer::start().expect("git server");
    let (app, repo) = first_sync(&git, &sink).await;
    eventually_count(&app.db, LISTENER, 1).await;
    let killed = format!("SELECT max(pid)::int8 AS n FROM ({}) t", LISTENER.replace("count(*) AS n", "pid"));
    let pid = count(&app.db, &killed).await;
    let terminated = format!("SELECT count(*) AS n FROM (SELECT pg_terminate_backend({pid}) AS done) t WHERE done");
    assert_eq!(count(&app.db, &terminated).await, 1);
    // Listening again on a new connection.
    eventually_count(&app.db, &format!("{LISTENER} AND pid <> {pid} AND query LIKE '%LISTEN%'"), 1).await;
    next_commit_arrives(&app, &repo, &sink, "b.md").await;
}

#[tokio::test]
async fn a_redelivery_the_admin_asks_for_wakes_an_idle_worker() {
    let sink = WebhookSink::start().expect("sink");
    let git = GitServer::start().expect("git server");
    let (app, _repo) = first_sync(&git, &sink).await;
    let (admin, _) = crate::admin::logged_in(&app).await;
    let id = app.db.text("SELECT id::text AS t FROM docora.events").await;
    let res = admin.post(&format!("/admin/api/deliveries/{id}/redeliver")).await;
    assert_eq!(res.status, 201, "{}", res.text);
    let received = sink.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(received[1].delivery(), Some(id.as_str()), "the original's delivery id");
    assert_eq!(received[1].json()["file"]["path"], "a.md");
}
