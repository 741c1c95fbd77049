//! Webhook delivery from the outbox to a recording receiver.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};
use testkit::{SinkMode, WebhookSink};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::scan::{Fixture, fixture_env, fixture_with};
use crate::{SIGNING_KEY, count, execute};
use docora_watcher::deliver::{Delivered, Deliverer};

pub(crate) async fn setup(sink: &WebhookSink) -> (Fixture, Deliverer) {
    let f = fixture_with("5", &format!("{}/hooks", sink.url())).await;
    let deliverer =
        f.app.settings.deliverer(service_kit::db::pool(&f.app.settings.database).expect("pool")).expect("deliverer");
    (f, deliverer)
}

/// Delivers everything deliverable now, one event per take; returns the outcomes.
pub(crate) async fn drain(deliverer: &Deliverer) -> Vec<Delivered> {
    let mut outcomes = Vec::new();
    while let Some(event) = deliverer.take().await.expect("take") {
        outcomes.push(deliverer.deliver(&event).await.expect("deliver"));
    }
    outcomes
}

/// Delivers everything deliverable now, a batch per take, as the workers do.
pub(crate) async fn drain_batches(deliverer: &Deliverer) -> Vec<Delivered> {
    let mut outcomes = Vec::new();
    loop {
        let batch = deliverer.take_batch().await.expect("take");
        if batch.is_empty() {
            return outcomes;
        }
        outcomes.extend(deliverer.deliver_batch(&batch, || false).await.expect("deliver"));
    }
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[tokio::test]
async fn every_file_arrives_signed_in_order_with_the_exact_payload() {
    let sink = WebhookSink::start().expect("sink");
    let (f, deliverer) = setup(&sink).await;
    f.scan_now().await;
    assert_eq!(drain(&deliverer).await, vec![Delivered::Ok; 3]);
    let received = sink.received();
    assert_eq!(received.len(), 3);
    for r in &received {
        assert!(r.signature_valid(SIGNING_KEY), "signed with the app's key");
        assert!(!r.signature_valid("another key of sixteen+"), "and only that key");
        assert_eq!(r.header("x-docora-app-id"), Some(f.app_id.as_str()));
        assert_eq!(r.header("x-docora-event"), Some("create"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.path, "/hooks/create");
    }
    let first = received[0].json();
    assert_eq!(
        first["repository"],
        json!({"repository_id": f.repository_id, "github_url": "https://github.com/octo/docs", "owner": "octo", "name": "docs"})
    );
    assert_eq!(first["file"], json!({"path": "README.md", "sha": sha(b"# Docs\n"), "size": 7, "content": "# Docs\n"}));
    assert_eq!(first["commit_sha"], f.repo.head());
    let ts = first["timestamp"].as_str().unwrap_or_default();
    assert!(ts.ends_with('Z') && ts.len() == "2026-01-01T00:00:00.000Z".len(), "{ts}");
    let logo = received[2].json();
    assert_eq!(logo["file"]["path"], "img/logo.png");
    assert_eq!(logo["file"]["content_encoding"], "base64");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(logo["file"]["content"].as_str().unwrap_or_default())
        .expect("base64");
    assert_eq!(decoded, [0x89, b'P', b'N', b'G', 0, 1, 2]);
    assert_eq!(count(&f.app.db, "SELECT count(*) AS n FROM docora.app_repositories WHERE status = 'synced'").await, 1);

    // A change: delete, create, update, in that order; the update names the previous sha.
    sink.clear();
    f.repo.remove("guide/intro.md").write("new.md", b"new").write("README.md", b"# Docs v2\n");
    f.repo.commit("second").expect("commit");
    f.scan_now().await;
    drain(&deliverer).await;
    let kinds: Vec<String> = sink.received().iter().map(|r| r.event().to_owned()).collect();
    assert_eq!(kinds, ["delete", "create", "update"]);
    let delete = sink.received()[0].json();
    assert_eq!(delete["file"], json!({"path": "guide/intro.md", "sha": sha(b"Hello")}));
    let update = sink.received()[2].json();
    // `previous_sha` sits at the top level, beside `commit_sha`, as the wire format says.
    assert_eq!(update["previous_sha"], sha(b"# Docs\n"));
    assert_eq!(update["commit_sha"], f.repo.head());
    assert!(update["file"].get("previous_sha").is_none(), "not inside file: {update}");
    assert_eq!(update["file"]["sha"], sha(b"# Docs v2\n"));
    assert_eq!(update["file"]["content"], "# Docs v2\n");
    assert!(sink.received()[1].json().get("previous_sha").is_none(), "a create has none");
}

#[tokio::test]
async fn a_large_binary_file_arrives_in_chunks_that_reassemble() {
    let sink = WebhookSink::start().expect("sink");
    let (f, deliverer) = setup(&sink).await;
    let big: Vec<u8> = (0..1_300_000u32).map(|i| (i % 251) as u8).collect();
    f.repo.write("data/big.bin", &big).commit("big").expect("commit");
    f.scan_now().await;
    drain(&deliverer).await;
    let chunks: Vec<serde_json::Value> =
        sink.received().iter().map(|r| r.json()).filter(|b| b["file"]["path"] == "data/big.bin").collect();
    assert_eq!(chunks.len(), 4, "1.3 MB is 1,733,336 base64 characters: four pieces of at most 524,288");
    let id = chunks[0]["file"]["chunk"]["id"].clone();
    let mut text = String::new();
    for (i, chunk) in chunks.iter().enumerate() {
        assert_eq!(chunk["file"]["chunk"]["index"], i);
        assert_eq!(chunk["file"]["chunk"]["total"], 4);
        assert_eq!(chunk["file"]["chunk"]["id"], id);
        assert_eq!(chunk["file"]["size"], big.len(), "size and sha describe the whole file");
        assert_eq!(chunk["file"]["sha"], sha(&big));
        let piece = chunk["file"]["content"].as_str().unwrap_or_default();
        if i < 3 {
            assert_eq!(piece.len(), 524_288);
        }
        text.push_str(piece);
    }
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(text).expect("base64"), big);
}

/// Text with everything JSON escapes (quotes, backslashes, control characters) and multi-byte
/// characters, `size` bytes long or a little more.
fn awkward_text(size: usize) -> String {
    let line = "line \"quoted\" C:\\path\ttab\r\n\u{1}\u{1f} caf\u{e9} \u{65e5}\u{672c} \u{1f600} </script>\n";
    let mut text = String::with_capacity(size + line.len());
    let mut i = 0;
    while text.len() < size {
        text.push_str(&format!("{i} {line}"));
        i += 1;
    }
    text
}

#[tokio::test]
async fn a_large_text_file_streams_escaped_and_signed() {
    let sink = WebhookSink::start().expect("sink");
    let (f, deliverer) = setup(&sink).await;
    // Over the 1 MiB above which text streams from the clone; 64 KiB pieces cut characters.
    let text = awkward_text(3 << 20);
    f.repo.write("notes/big.md", text.as_bytes()).commit("big text").expect("commit");
    f.scan_now().await;
    drain(&deliverer).await;
    let received = sink.received();
    let big = received.iter().find(|r| r.json()["file"]["path"] == "notes/big.md").expect("the big text arrived");
    assert!(big.signature_valid(SIGNING_KEY), "the streamed body is signed as sent");
    assert_eq!(big.header("content-length"), Some(big.body.len().to_string().as_str()));
    let body = big.json();
    assert!(body["file"]["content"] == text.as_str(), "the text whole and unchanged");
    assert_eq!(body["file"]["size"], text.len());
    assert_eq!(body["file"]["sha"], sha(text.as_bytes()));
    assert_eq!(body["repository"]["repository_id"], f.repository_id.as_str());
    assert!(body["file"].get("content_encoding").is_none() && body["file"].get("chunk").is_none());
}

#[tokio::test]
async fn failures_are_retried_with_a_stable_delivery_id_then_the_link_fails_and_waits() {
    let sink = WebhookSink::start().expect("sink");
    let (f, deliverer) = setup(&sink).await;
    f.scan_now().await;
    sink.set_mode(SinkMode::Fail(500));
    let first = deliverer.take().await.expect("take").expect("an event");
    assert!(matches!(deliverer.deliver(&first).await.expect("deliver"), Delivered::Retry(e) if e.contains("500")));
    assert!(deliverer.take().await.expect("take").is_none(), "not due yet, and the rest waits behind it");
    for _ in 0..2 {
        execute(&f.app.db, "UPDATE docora.events SET next_attempt_at = now()").await;
        let again = deliverer.take().await.expect("take").expect("the same event");
        assert_eq!(again.id, first.id);
        deliverer.deliver(&again).await.expect("deliver");
    }
    let ids: Vec<String> =
        sink.attempts().iter().filter_map(|r| r.header("x-docora-delivery").map(str::to_owned)).collect();
    assert_eq!(ids, vec![first.id.to_string(); 3], "one delivery id across retries");
    assert_eq!(
        count(&f.app.db, "SELECT count(*) AS n FROM docora.events WHERE status = 'failed' AND attempts = 3").await,
        1
    );
    assert_eq!(
        count(
            &f.app.db,
            "SELECT count(*) AS n FROM docora.app_repositories WHERE status = 'failed' AND last_error LIKE '%500%'"
        )
        .await,
        1
    );
    execute(&f.app.db, "UPDATE docora.events SET next_attempt_at = now()").await;
    assert!(deliverer.take().await.expect("take").is_none(), "later events wait behind the failed one");

    // The admin's retry (what the dashboard will do): the queue resumes in order.
    sink.set_mode(SinkMode::Accept);
    execute(&f.app.db, "UPDATE docora.events SET status = 'pending', attempts = 0 WHERE status = 'failed'").await;
    assert_eq!(drain(&deliverer).await.len(), 3);
    let paths: Vec<String> =
        sink.received().iter().map(|r| r.json()["file"]["path"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(paths, ["README.md", "guide/intro.md", "img/logo.png"]);
}

#[tokio::test]
async fn a_hanging_receiver_times_out_and_two_workers_never_share_a_link() {
    let sink = WebhookSink::start().expect("sink");
    let (f, deliverer) = setup(&sink).await;
    f.scan_now().await;
    let (a, b) = tokio::join!(deliverer.take(), deliverer.take());
    let taken: Vec<_> = [a.expect("take"), b.expect("take")].into_iter().flatten().collect();
    assert_eq!(taken.len(), 1, "one link, one event in flight");
    sink.set_mode(SinkMode::Hang);
    let started = std::time::Instant::now();
    let outcome = deliverer.deliver(&taken[0]).await.expect("deliver");
    assert!(matches!(&outcome, Delivered::Retry(e) if e.contains("timed out")), "{outcome:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn private_targets_are_refused_unless_the_operator_allows_them() {
    let sink = WebhookSink::start().expect("sink");
    let (f, mut deliverer) = setup(&sink).await;
    f.scan_now().await;
    deliverer.policy.allow_private = false;
    let event = deliverer.take().await.expect("take").expect("an event");
    let outcome = deliverer.deliver(&event).await.expect("deliver");
    assert!(matches!(&outcome, Delivered::Retry(e) if e.contains("private address")), "{outcome:?}");
    assert!(sink.attempts().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn end_to_end_a_registered_repository_reaches_the_app_and_so_does_a_push() {
    let sink = WebhookSink::start().expect("sink");
    let git = testkit::GitServer::start().expect("git server");
    let app = crate::replicas::live_app(&git, |env| {
        env.with("SCAN_WORKERS", "1").with("DELIVERY_WORKERS", "2").with("WORKER_POLL_MILLIS", "50")
    })
    .await;
    let (owner_id, _) = app.github.add_user("octo");
    app.github.add_repo(owner_id, "live", false);
    let repo = git.create_repo("octo", "live").expect("repo");
    repo.write("a.md", b"a").write("b.md", b"b").commit("first").expect("commit");
    let (_, client) = app.app_at("reader", &sink.url()).await;
    let res = client.post_json("/api/repositories", &json!({"github_url": "https://github.com/octo/live"})).await;
    assert_eq!(res.status, 201, "{}", res.text);
    let received = sink.wait_for(2, Duration::from_secs(20)).await;
    assert!(received.iter().all(|r| r.event() == "create" && r.signature_valid(SIGNING_KEY)));

    // A new commit arrives at the next scan (made due here instead of waiting the interval).
    repo.write("c.md", b"c").commit("second").expect("commit");
    execute(&app.db, "UPDATE docora.repositories SET next_scan_at = now()").await;
    let received = sink.wait_for(3, Duration::from_secs(20)).await;
    assert_eq!(received[2].json()["file"]["path"], "c.md");
}

#[tokio::test]
async fn the_admin_sees_the_history_and_queue_and_retries_a_failed_link() {
    let sink = WebhookSink::start().expect("sink");
    let (f, deliverer) = setup(&sink).await;
    let (admin, _) = crate::admin::logged_in(&f.app).await;
    f.scan_now().await;
    let queue = admin.get("/admin/api/queue").await;
    assert_eq!(queue.status, 200, "{}", queue.text);
    assert_eq!(queue.body["deliveries_pending"], 3);
    sink.set_mode(SinkMode::Fail(503));
    for _ in 0..3 {
        execute(&f.app.db, "UPDATE docora.events SET next_attempt_at = now()").await;
        drain(&deliverer).await;
    }
    let failed = admin.get(&format!("/admin/api/deliveries?status=failed&app_id={}", f.app_id)).await;
    assert_eq!(failed.status, 200, "{}", failed.text);
    assert_eq!(failed.body["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(failed.body["items"][0]["path"], "README.md");
    assert!(failed.body["items"][0]["last_error"].as_str().unwrap_or_default().contains("503"));
    assert_eq!(admin.get("/admin/api/queue").await.body["deliveries_failed"], 1);
    assert_eq!(admin.get("/admin/api/deliveries?status=lost").await.status, 422);
    let apps = admin.get("/admin/api/apps").await;
    assert_eq!(apps.body["items"][0]["repositories"][0]["status"], "failed");

    sink.set_mode(SinkMode::Accept);
    let retried = admin.post(&format!("/admin/api/apps/{}/repositories/{}/retry", f.app_id, f.repository_id)).await;
    assert_eq!(retried.status, 200, "{}", retried.text);
    assert_eq!(retried.body["retried"], 1);
    assert_eq!(drain(&deliverer).await, vec![Delivered::Ok; 3]);
    assert_eq!(admin.get("/admin/api/apps").await.body["items"][0]["repositories"][0]["status"], "synced");
    assert_eq!(admin.post("/admin/api/apps/app_nope/repositories/repo_nope/retry").await.status, 404);
}

/// The app's delivery breaker as the admin JSON shows it.
async fn breaker(admin: &testkit::Client) -> serde_json::Value {
    let apps = admin.get("/admin/api/apps").await;
    assert_eq!(apps.status, 200, "{}", apps.text);
    apps.body["items"][0]["delivery_breaker"].clone()
}

/// `(path, delivery id)` of the 2xx answers, per repository, in arrival order.
fn received_by_repository(sink: &WebhookSink) -> std::collections::BTreeMap<String, Vec<(String, String)>> {
    let mut by_repository = std::collections::BTreeMap::<String, Vec<(String, String)>>::new();
    for r in sink.received() {
        let body = r.json();
        by_repository
            .entry(body["repository"]["repository_id"].as_str().unwrap_or_default().to_owned())
            .or_default()
            .push((
                body["file"]["path"].as_str().unwrap_or_default().to_owned(),
                r.delivery().unwrap_or_default().to_owned(),
            ));
    }
    by_repository
}

/// Watches a second repository, `team/wiki` (`faq.md`, `home.md`), with the fixture's app.
async fn second_repository(f: &Fixture) {
    let (team, _) = f.app.github.add_user("team");
    f.app.github.add_repo(team, "wiki", false);
    let wiki = f.git.create_repo("team", "wiki").expect("repo");
    wiki.write("home.md", b"home").write("faq.md", b"faq").commit("first").expect("commit");
    let res = f.client.post_json("/api/repositories", &json!({"github_url": "https://github.com/team/wiki"})).await;
    assert_eq!(res.status, 201, "{}", res.text);
}

const DUE: &str = "UPDATE docora.events SET next_attempt_at = now()";
const COOLDOWN_OVER: &str = "UPDATE docora.apps SET breaker_open_until = now() - interval '1 second'";

#[tokio::test]
async fn an_admin_closes_an_open_breaker_and_the_waiting_events_go_out_at_once() {
    let sink = WebhookSink::start().expect("sink");
    let f = fixture_env("5", &format!("{}/hooks", sink.url()), |env| env.with("DELIVERY_BREAKER_THRESHOLD", "1")).await;
    let deliverer =
        f.app.settings.deliverer(service_kit::db::pool(&f.app.settings.database).expect("pool")).expect("deliverer");
    let (admin, _) = crate::admin::logged_in(&f.app).await;
    f.scan_now().await;
    sink.set_mode(SinkMode::Fail(503));
    assert!(matches!(drain(&deliverer).await[..], [Delivered::Retry(_)]));
    assert_eq!(breaker(&admin).await["status"], "open");
    execute(&f.app.db, DUE).await;
    assert!(deliverer.take().await.expect("take").is_none(), "the breaker is open");

    // The receiver is back; the admin does not wait for the cooldown.
    sink.set_mode(SinkMode::Accept);
    let res = admin.post_json(&format!("/admin/api/apps/{}/breaker/reset", f.app_id), &json!({})).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body, json!({"status": "closed", "consecutive_failures": 0, "open_until": null}));
    assert_eq!(breaker(&admin).await["status"], "closed");
    assert_eq!(drain(&deliverer).await, vec![Delivered::Ok; 3]);
    let res = admin.post_json("/admin/api/apps/app_nope/breaker/reset", &json!({})).await;
    assert_eq!(res.status, 404, "{}", res.text);
    let anonymous =
        f.app.anonymous().post_json(&format!("/admin/api/apps/{}/breaker/reset", f.app_id), &json!({})).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.text);
}

#[tokio::test]
async fn a_failing_receiver_trips_the_app_breaker_which_pauses_without_spending_attempts() {
    let sink = WebhookSink::start().expect("sink");
    let f = fixture_env("5", &format!("{}/hooks", sink.url()), |env| {
        env.with("DELIVERY_MAX_ATTEMPTS", "10").with("DELIVERY_BREAKER_THRESHOLD", "3")
    })
    .await;
    second_repository(&f).await;
    let deliverer =
        f.app.settings.deliverer(service_kit::db::pool(&f.app.settings.database).expect("pool")).expect("deliverer");
    let (admin, _) = crate::admin::logged_in(&f.app).await;
    f.scan_all().await;
    assert_eq!(breaker(&admin).await, json!({"status": "closed", "consecutive_failures": 0, "open_until": null}));

    // Each link's head fails once, then backs off: two failures in a row, across the two links.
    sink.set_mode(SinkMode::Fail(500));
    let outcomes = drain(&deliverer).await;
    assert!(outcomes.len() == 2 && outcomes.iter().all(|o| matches!(o, Delivered::Retry(_))), "{outcomes:?}");
    assert_eq!(breaker(&admin).await["consecutive_failures"], 2);
    assert_eq!(breaker(&admin).await["status"], "closed");
    // The third opens the breaker: the other link's head is due, and still not taken.
    execute(&f.app.db, DUE).await;
    assert_eq!(drain(&deliverer).await.len(), 1);
    let open = breaker(&admin).await;
    assert_eq!(open["status"], "open", "{open}");
    assert_eq!(open["consecutive_failures"], 3);
    assert!(open["open_until"].is_string(), "{open}");

    // While it is open nothing is sent, and the waiting events keep their attempts and schedule.
    let spent = "SELECT coalesce(sum(attempts), 0) AS n FROM docora.events";
    for _ in 0..3 {
        execute(&f.app.db, DUE).await;
        assert!(deliverer.take().await.expect("take").is_none(), "the breaker is open");
    }
    assert_eq!(sink.attempts().len(), 3);
    assert_eq!(count(&f.app.db, spent).await, 3);
    assert_eq!(count(&f.app.db, "SELECT count(*) AS n FROM docora.events WHERE status <> 'pending'").await, 0);

    // After the cooldown: one trial, and only one, even with two workers asking at once.
    execute(&f.app.db, COOLDOWN_OVER).await;
    assert_eq!(breaker(&admin).await["status"], "half_open");
    let (a, b) = tokio::join!(deliverer.take(), deliverer.take());
    let taken: Vec<_> = [a.expect("take"), b.expect("take")].into_iter().flatten().collect();
    assert_eq!(taken.len(), 1, "one trial: {taken:?}");
    assert!(taken[0].trial);
    assert_eq!(breaker(&admin).await["status"], "half_open", "while the trial runs");
    assert!(deliverer.take().await.expect("take").is_none(), "no second attempt beside the trial");
    // The trial fails: open again, for a whole cooldown.
    assert!(matches!(deliverer.deliver(&taken[0]).await.expect("deliver"), Delivered::Retry(_)));
    assert_eq!(breaker(&admin).await["status"], "open");
    execute(&f.app.db, DUE).await;
    assert!(deliverer.take().await.expect("take").is_none());
    assert_eq!(sink.attempts().len(), 4);

    // The next trial succeeds: the breaker closes and every event goes, in order per link.
    sink.set_mode(SinkMode::Accept);
    execute(&f.app.db, COOLDOWN_OVER).await;
    execute(&f.app.db, DUE).await;
    let trial = deliverer.take().await.expect("take").expect("the trial");
    assert!(trial.trial);
    assert_eq!(deliverer.deliver(&trial).await.expect("deliver"), Delivered::Ok);
    assert_eq!(breaker(&admin).await, json!({"status": "closed", "consecutive_failures": 0, "open_until": null}));
    let rest = drain(&deliverer).await;
    assert_eq!(rest, vec![Delivered::Ok; 4]);
    let paths: Vec<Vec<String>> =
        received_by_repository(&sink).into_values().map(|v| v.into_iter().map(|(path, _)| path).collect()).collect();
    assert!(paths.contains(&vec!["README.md".to_owned(), "guide/intro.md".to_owned(), "img/logo.png".to_owned()]));
    assert!(paths.contains(&vec!["faq.md".to_owned(), "home.md".to_owned()]), "{paths:?}");
    assert_eq!(count(&f.app.db, "SELECT count(*) AS n FROM docora.events WHERE status = 'delivered'").await, 5);
    assert_eq!(count(&f.app.db, "SELECT count(*) AS n FROM docora.app_repositories WHERE status = 'synced'").await, 2);
    assert_eq!(count(&f.app.db, spent).await, 4 + 5, "four failed attempts, five that succeeded");
    let openapi = f.app.anonymous().get("/openapi.json").await.body;
    let documented = &openapi["components"]["schemas"]["DeliveryBreaker"]["properties"];
    assert!(documented["status"].is_object() && documented["open_until"].is_object(), "{documented}");
}

#[tokio::test]
async fn delivery_workers_stop_hammering_a_failing_receiver_then_recover_in_order() {
    let sink = WebhookSink::start().expect("sink");
    sink.set_mode(SinkMode::Fail(503));
    let (threshold, cooldown, workers) = (4, Duration::from_secs(1), 2);
    let f = fixture_env("5", &format!("{}/hooks", sink.url()), move |env| {
        // Retries without any backoff: only the breaker stands between the receiver and a flood.
        env.with("DELIVERY_WORKERS", workers.to_string())
            .with("WORKER_POLL_MILLIS", "20")
            .with("DELIVERY_BACKOFF_SECS", "0")
            .with("DELIVERY_MAX_ATTEMPTS", "100")
            .with("DELIVERY_BREAKER_THRESHOLD", threshold.to_string())
            .with("DELIVERY_BREAKER_COOLDOWN_SECS", cooldown.as_secs().to_string())
    })
    .await;
    let (admin, _) = crate::admin::logged_in(&f.app).await;
    let started = std::time::Instant::now();
    f.scan_now().await;
    sink.wait_for_attempts(threshold, Duration::from_secs(20)).await;
    tokio::time::sleep(cooldown * 5 / 2).await;
    let attempts = sink.attempts().len();
    let elapsed = started.elapsed();
    // The threshold, what the other worker had in flight when the breaker opened, and at most
    // one trial per cooldown since. Without the breaker: hundreds by now.
    let bound = threshold + (workers - 1) + (elapsed.as_secs_f64() / cooldown.as_secs_f64()).floor() as usize;
    assert!(attempts <= bound, "{attempts} attempts in {elapsed:?}, at most {bound} expected");
    assert_ne!(breaker(&admin).await["status"], "closed", "the trials failed too");
    assert_eq!(count(&f.app.db, "SELECT count(*) AS n FROM docora.events WHERE status = 'failed'").await, 0);

    sink.set_mode(SinkMode::Accept);
    let received = sink.wait_for(3, Duration::from_secs(20)).await;
    let paths: Vec<String> =
        received.iter().map(|r| r.json()["file"]["path"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(paths, ["README.md", "guide/intro.md", "img/logo.png"]);
    crate::eventually_count(&f.app.db, "SELECT count(*) AS n FROM docora.events WHERE status = 'delivered'", 3).await;
    assert_eq!(breaker(&admin).await["status"], "closed");
}

#[tokio::test]
async fn the_first_retry_waits_the_backoff_and_each_further_one_twice_as_long() {
    let sink = WebhookSink::start().expect("sink");
    sink.set_mode(SinkMode::Fail(500));
    let f = fixture_env("5", &format!("{}/hooks", sink.url()), |env| env.with("DELIVERY_BACKOFF_SECS", "100")).await;
    let deliverer =
        f.app.settings.deliverer(service_kit::db::pool(&f.app.settings.database).expect("pool")).expect("deliverer");
    f.scan_now().await;
    // The retry's time is set from the moment the failure is recorded: between the backoff and a
    // quarter more (jitter), seen from just after.
    let scheduled = |low: u32, high: u32| {
        format!(
            "SELECT count(*) AS n FROM docora.events WHERE attempts > 0 \
             AND next_attempt_at > now() + interval '{low} seconds' \
             AND next_attempt_at <= now() + interval '{high} seconds'"
        )
    };
    let first = deliverer.take().await.expect("take").expect("an event");
    assert!(matches!(deliverer.deliver(&first).await.expect("deliver"), Delivered::Retry(_)));
    assert_eq!(count(&f.app.db, &scheduled(90, 125)).await, 1, "the first retry comes DELIVERY_BACKOFF_SECS later");
    execute(&f.app.db, "UPDATE docora.events SET next_attempt_at = now() WHERE attempts > 0").await;
    let again = deliverer.take().await.expect("take").expect("the same event");
    assert!(matches!(deliverer.deliver(&again).await.expect("deliver"), Delivered::Retry(_)));
    assert_eq!(count(&f.app.db, &scheduled(190, 250)).await, 1, "the second retry twice as late");
}

#[tokio::test]
async fn a_batch_goes_in_order_is_recorded_together_and_stops_at_a_failure() {
    let sink = WebhookSink::start().expect("sink");
    let (f, deliverer) = setup(&sink).await;
    f.scan_now().await;
    // One take leases the link's three events, in order, under one lease.
    let batch = deliverer.take_batch().await.expect("take");
    assert_eq!(batch.len(), 3);
    assert!(batch.windows(2).all(|w| w[0].seq < w[1].seq && w[0].lease_until == w[1].lease_until));
    assert!(deliverer.take_batch().await.expect("take").is_empty(), "the link is held");
    // The second request fails: the first is recorded delivered, the second retried later, and
    // the third let go without being sent.
    let outcomes = {
        let sink = &sink;
        deliverer
            .deliver_batch(&batch, || {
                if sink.attempts().len() == 1 {
                    sink.set_mode(SinkMode::FailNext(1, 500));
                }
                false
            })
            .await
            .expect("deliver")
    };
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    assert_eq!(outcomes[0], Delivered::Ok);
    assert!(matches!(&outcomes[1], Delivered::Retry(e) if e.contains("500")), "{outcomes:?}");
    assert_eq!(sink.attempts().len(), 2);
    let state = |n: usize, status: &str, attempts: i32| {
        format!(
            "SELECT count(*) AS n FROM docora.events WHERE id = '{}' AND status = '{status}' \
             AND attempts = {attempts} AND lease_until IS NULL",
            batch[n].id
        )
    };
    assert_eq!(count(&f.app.db, &state(0, "delivered", 1)).await, 1);
    assert_eq!(count(&f.app.db, &state(1, "pending", 1)).await, 1, "retried later, its lease let go");
    assert_eq!(count(&f.app.db, &state(2, "pending", 0)).await, 1, "never sent, its lease let go");
    let cursor = "SELECT count(*) AS n FROM docora.app_repositories l \
                  WHERE delivered_seq = (SELECT min(seq) FROM docora.events) AND status = 'pending'";
    assert_eq!(count(&f.app.db, cursor).await, 1, "the link's cursor is past its delivered event");
    // Once due, the rest goes as one batch, and the link is synced.
    execute(&f.app.db, "UPDATE docora.events SET next_attempt_at = now()").await;
    let rest = deliverer.take_batch().await.expect("take");
    assert_eq!(rest.iter().map(|e| e.id).collect::<Vec<_>>(), batch[1..].iter().map(|e| e.id).collect::<Vec<_>>());
    assert_eq!(deliverer.deliver_batch(&rest, || false).await.expect("deliver"), vec![Delivered::Ok; 2]);
    let ids: Vec<String> = sink.received().iter().filter_map(|r| r.delivery().map(str::to_owned)).collect();
    assert_eq!(ids, batch.iter().map(|e| e.id.to_string()).collect::<Vec<_>>(), "each once, in order");
    assert_eq!(count(&f.app.db, "SELECT count(*) AS n FROM docora.app_repositories WHERE status = 'synced'").await, 1);
}

/// A receiver that answers the first request of each connection, keeps the connection open, and
/// closes it when the next request arrives on it, unanswered: as a server closes a connection it
/// kept alive while the client was reusing it. Returns its URL, the delivery ids it answered and
/// how many requests it cut off.
async fn closing_receiver() -> (String, Arc<Mutex<Vec<String>>>, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (answered, cut) = (Arc::new(Mutex::new(Vec::new())), Arc::new(AtomicUsize::new(0)));
    let (answered_, cut_) = (answered.clone(), cut.clone());
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let (answered, cut) = (answered_.clone(), cut_.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 64 * 1024];
                // The first request: its head, then its body (Content-Length).
                let (head_end, length) = loop {
                    let n = conn.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
                            .unwrap_or(0usize);
                        break (end + 4, length);
                    }
                };
                while buf.len() < head_end + length {
                    let n = conn.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                let delivery = head.lines().find_map(|l| l.strip_prefix("x-docora-delivery:")).unwrap_or_default();
                answered.lock().expect("lock").push(delivery.trim().to_owned());
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
                // The next request on this connection is cut off unanswered.
                if conn.read(&mut chunk).await.unwrap_or(0) > 0 {
                    cut.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    (url, answered, cut)
}

#[tokio::test]
async fn a_request_cut_off_on_a_connection_the_receiver_closes_goes_again_at_once_on_a_new_one() {
    let (url, answered, cut) = closing_receiver().await;
    let f = fixture_with("5", &format!("{url}/hooks")).await;
    let deliverer =
        f.app.settings.deliverer(service_kit::db::pool(&f.app.settings.database).expect("pool")).expect("deliverer");
    f.scan_now().await;
    assert_eq!(drain(&deliverer).await, vec![Delivered::Ok; 3], "each event delivered at its first attempt");
    assert!(cut.load(Ordering::SeqCst) >= 1, "a request went on a kept-alive connection and was cut off");
    let ids: Vec<String> = {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            id: String,
        }
        use diesel_async::RunQueryDsl;
        let mut conn = f.app.db.conn().await.expect("conn");
        diesel::sql_query("SELECT id::text AS id FROM docora.events ORDER BY seq")
            .load::<Row>(&mut conn)
            .await
            .expect("events")
            .into_iter()
            .map(|r| r.id)
            .collect()
    };
    assert_eq!(*answered.lock().expect("lock"), ids, "each event answered once, in order");
    assert_eq!(count(&f.app.db, "SELECT count(*) AS n FROM docora.events WHERE attempts = 1").await, 3);
    assert_eq!(count(&f.app.db, "SELECT count(*) AS n FROM docora.delivery_attempts WHERE error IS NOT NULL").await, 0);
}
