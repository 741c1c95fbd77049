//! The operator console's data: the attempt log, redelivery, the history's filters and paging.

use std::time::Duration;

use serde_json::Value;
use testkit::{SinkMode, WebhookSink};

use crate::admin::logged_in;
use crate::delivery::{drain_batches as drain, setup};
use crate::{SIGNING_KEY, count, execute};
use docora_watcher::deliver::Delivered;

#[tokio::test]
async fn every_attempt_is_logged_with_what_was_sent_and_what_came_back() {
    let sink = WebhookSink::start().expect("sink");
    let (f, deliverer) = setup(&sink).await;
    // A text file over 64 KiB: its body is kept cut, and says so.
    let long: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    f.repo.write("long.txt", &long).commit("long").expect("commit");
    f.scan_now().await;
    sink.set_mode(SinkMode::Fail(503));
    assert!(matches!(drain(&deliverer).await.as_slice(), [Delivered::Retry(_)]));
    sink.set_mode(SinkMode::Accept);
    execute(&f.app.db, "UPDATE docora.events SET next_attempt_at = now()").await;
    assert_eq!(drain(&deliverer).await, vec![Delivered::Ok; 4]);
    assert_eq!(count(&f.app.db, "SELECT count(*) AS n FROM docora.delivery_attempts").await, 5, "one row per attempt");

    let (admin, _) = logged_in(&f.app).await;
    let list = admin.get(&format!("/admin/api/deliveries?app_id={}&limit=2", f.app_id)).await;
    assert_eq!(list.status, 200, "{}", list.text);
    let items = list.body["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 2);
    let next = list.body["next_before"].as_i64().expect("a next page");
    let older = admin.get(&format!("/admin/api/deliveries?app_id={}&limit=2&before={next}", f.app_id)).await;
    let older_items = older.body["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(older_items.len(), 2);
    assert!(older.body["next_before"].is_null(), "{}", older.text);
    let readme = older_items.iter().chain(&items).find(|d| d["path"] == "README.md").expect("README.md").clone();
    assert_eq!(readme["response_status"], 200);
    assert_eq!(readme["attempts"], 2);
    assert!(readme["duration_ms"].is_i64());
    assert_eq!(readme["delivery_id"], readme["id"]);

    let detail = admin.get(&format!("/admin/api/deliveries/{}", readme["id"].as_str().unwrap_or_default())).await;
    assert_eq!(detail.status, 200, "{}", detail.text);
    let attempts = detail.body["attempts"].as_array().cloned().unwrap_or_default();
    assert_eq!(attempts.len(), 2, "{}", detail.text);
    let (second, first) = (&attempts[0], &attempts[1]);
    assert_eq!((first["attempt"].clone(), first["response_status"].clone()), (1.into(), 503.into()));
    assert_eq!(first["error"], "the webhook answered 503");
    assert_eq!((second["attempt"].clone(), second["response_status"].clone()), (2.into(), 200.into()));
    assert!(second["error"].is_null());
    let received = sink.received().into_iter().find(|r| r.json()["file"]["path"] == "README.md").expect("received");
    assert_eq!(second["request_body"].as_str().unwrap_or_default().as_bytes(), received.body.as_slice());
    let headers = &second["request_headers"];
    assert_eq!(headers["X-Docora-Signature"].as_str(), received.header("x-docora-signature"));
    assert_eq!(headers["X-Docora-Delivery"].as_str(), received.header("x-docora-delivery"));
    assert!(second["response_headers"].is_object());
    assert!(!detail.text.contains(SIGNING_KEY), "the app's key is never shown");
    assert_eq!(second["request_url"], format!("{}/hooks/create", sink.url()));

    // The long file, delivered: the first 2 KiB (the envelope; content is rebuilt from git), and
    // its whole length.
    let long_id = items.iter().chain(&older_items).find(|d| d["path"] == "long.txt").expect("long.txt")["id"].clone();
    let detail = admin.get(&format!("/admin/api/deliveries/{}", long_id.as_str().unwrap_or_default())).await;
    let attempt = &detail.body["attempts"][0];
    assert_eq!(attempt["request_body"].as_str().unwrap_or_default().len(), 2 * 1024);
    assert!(attempt["request_body_bytes"].as_i64().unwrap_or(0) > 100_000);

    // Filters: a path prefix, a delivery id, a status; unknown ids are 404.
    let guide = admin.get("/admin/api/deliveries?path_prefix=guide/").await;
    assert_eq!(guide.body["items"].as_array().map(Vec::len), Some(1));
    let by_id =
        admin.get(&format!("/admin/api/deliveries?delivery_id={}", readme["id"].as_str().unwrap_or_default())).await;
    assert_eq!(by_id.body["items"].as_array().map(Vec::len), Some(1));
    let later = admin.get("/admin/api/deliveries?since=2999-01-01T00:00:00Z").await;
    assert_eq!(later.body["items"].as_array().map(Vec::len), Some(0), "{}", later.text);
    assert_eq!(admin.get(&format!("/admin/api/deliveries/{}", uuid::Uuid::new_v4())).await.status, 404);
    assert_eq!(admin.get("/admin/api/nothing-here").await.status, 404);

    // Retention: rows past it go, in batches; the rest stay.
    execute(
        &f.app.db,
        "UPDATE docora.delivery_attempts SET started_at = started_at - interval '15 days' WHERE attempt = 1",
    )
    .await;
    let pool = service_kit::db::pool(&f.app.settings.database).expect("pool");
    let pruned =
        docora_watcher::deliver::prune_attempts(&pool, Duration::from_secs(14 * 86_400), 2).await.expect("prune");
    assert_eq!(pruned, 4, "the four first attempts");
    assert_eq!(count(&f.app.db, "SELECT count(*) AS n FROM docora.delivery_attempts").await, 1);
}

#[tokio::test]
async fn a_delivered_event_is_redelivered_with_its_delivery_id_after_the_links_other_events() {
    let sink = WebhookSink::start().expect("sink");
    let (f, deliverer) = setup(&sink).await;
    f.scan_now().await;
    assert_eq!(drain(&deliverer).await, vec![Delivered::Ok; 3]);
    let original = sink.received()[0].clone();
    let original_id = original.header("x-docora-delivery").unwrap_or_default().to_owned();

    let (admin, _) = logged_in(&f.app).await;
    let pending_one = admin.post_json(&format!("/admin/api/deliveries/{original_id}/redeliver"), &Value::Null).await;
    assert_eq!(pending_one.status, 201, "{}", pending_one.text);
    assert_eq!(pending_one.body["delivery_id"], original_id.as_str());
    assert_eq!(pending_one.body["redelivery"], true);
    let copy = pending_one.body["event_id"].as_str().unwrap_or_default().to_owned();
    assert_ne!(copy, original_id);
    assert_eq!(count(&f.app.db, "SELECT count(*) AS n FROM docora.app_repositories WHERE status = 'pending'").await, 1);
    // A change after it: the redelivery goes first, in the link's order.
    f.repo.write("new.md", b"new").commit("second").expect("commit");
    f.scan_now().await;
    // Pending: on its way already.
    assert_eq!(admin.post_json(&format!("/admin/api/deliveries/{copy}/redeliver"), &Value::Null).await.status, 422);
    // Without the CSRF token: refused.
    let no_csrf =
        f.app.anonymous().post_json(&format!("/admin/api/deliveries/{original_id}/redeliver"), &Value::Null).await;
    assert_eq!(no_csrf.status, 401);

    sink.clear();
    assert_eq!(drain(&deliverer).await, vec![Delivered::Ok; 2]);
    let received = sink.received();
    assert_eq!(received[0].header("x-docora-delivery"), Some(original_id.as_str()), "the original's delivery id");
    assert_eq!(received[0].header("x-docora-redelivery"), Some("true"));
    assert_eq!(received[0].json()["file"], original.json()["file"]);
    assert!(received[0].signature_valid(SIGNING_KEY));
    assert_eq!(received[1].json()["file"]["path"], "new.md");
    assert_eq!(received[1].header("x-docora-redelivery"), None);
    assert_eq!(count(&f.app.db, "SELECT count(*) AS n FROM docora.app_repositories WHERE status = 'synced'").await, 1);

    // The history finds both under the delivery id; the original's page lists the redelivery.
    let both = admin.get(&format!("/admin/api/deliveries?delivery_id={original_id}")).await;
    assert_eq!(both.body["items"].as_array().map(Vec::len), Some(2), "{}", both.text);
    assert_eq!(both.body["items"][0]["redelivery_of"], original_id.as_str());
    let detail = admin.get(&format!("/admin/api/deliveries/{original_id}")).await;
    assert_eq!(detail.body["redeliveries"][0]["id"], copy.as_str());

    // A redelivery of the copy is one of the original too.
    let again = admin.post_json(&format!("/admin/api/deliveries/{copy}/redeliver"), &Value::Null).await;
    assert_eq!(again.body["delivery_id"], original_id.as_str());
}

#[tokio::test]
async fn a_failed_event_is_retried_on_its_own_by_redelivering_it() {
    let sink = WebhookSink::start().expect("sink");
    let (f, deliverer) = setup(&sink).await;
    f.scan_now().await;
    sink.set_mode(SinkMode::Fail(500));
    for _ in 0..3 {
        execute(&f.app.db, "UPDATE docora.events SET next_attempt_at = now()").await;
        drain(&deliverer).await;
    }
    assert_eq!(count(&f.app.db, "SELECT count(*) AS n FROM docora.app_repositories WHERE status = 'failed'").await, 1);
    let failed = sink.received_count();
    assert_eq!(failed, 0, "nothing acknowledged");
    let id = sink.attempts()[0].header("x-docora-delivery").unwrap_or_default().to_owned();
    sink.set_mode(SinkMode::Accept);
    let (admin, _) = logged_in(&f.app).await;
    let res = admin.post_json(&format!("/admin/api/deliveries/{id}/redeliver"), &Value::Null).await;
    assert_eq!(res.status, 201, "{}", res.text);
    assert_eq!(res.body["event_id"], id.as_str());
    assert_eq!(res.body["redelivery"], false);
    assert_eq!(drain(&deliverer).await, vec![Delivered::Ok; 3]);
    assert_eq!(sink.received()[0].header("x-docora-delivery"), Some(id.as_str()));
    assert_eq!(
        count(&f.app.db, "SELECT count(*) AS n FROM docora.delivery_attempts").await,
        6,
        "3 failed, 3 delivered"
    );
}

#[tokio::test]
async fn the_overview_shows_stuck_and_failing_repositories_with_the_reason() {
    let sink = WebhookSink::start().expect("sink");
    let (f, deliverer) = setup(&sink).await;
    let (admin, _) = logged_in(&f.app).await;
    let repository = |body: &Value| body["repositories"][0].clone();

    // Registered, never scanned, due for a while, and no scan running: stuck.
    execute(&f.app.db, "UPDATE docora.repositories SET next_scan_at = now() - interval '10 minutes'").await;
    let seen = admin.get("/admin/api/overview").await;
    assert_eq!(seen.status, 200, "{}", seen.text);
    let stuck = repository(&seen.body);
    assert_eq!(stuck["state"], "stuck", "{stuck}");
    assert!(stuck["reason"].as_str().unwrap_or_default().contains("never scanned"), "{stuck}");
    assert_eq!(stuck["repository_id"], f.repository_id.as_str());

    // Scanned and delivered: healthy, 100 % over the hour.
    f.scan_now().await;
    drain(&deliverer).await;
    let seen = admin.get("/admin/api/overview").await;
    assert_eq!(seen.body["repositories"], serde_json::json!([]), "{}", seen.text);
    let app = &seen.body["apps"][0];
    assert_eq!((app["attempts_hour"].clone(), app["succeeded_hour"].clone()), (3.into(), 3.into()));
    assert_eq!(app["failing_links"], 0);

    // Its scans fail: failing, with git's words.
    execute(
        &f.app.db,
        "UPDATE docora.repositories SET consecutive_failures = 2, last_error = 'git said: repository not found'",
    )
    .await;
    let failing = repository(&admin.get("/admin/api/overview").await.body);
    assert_eq!(failing["state"], "failing");
    assert!(failing["reason"].as_str().unwrap_or_default().contains("repository not found"), "{failing}");
    // The apps page shows it as the repository's scan error, apart from the link's delivery.
    let page = admin.get("/admin/apps").await;
    assert!(page.text.contains("git said: repository not found"));
}

#[tokio::test]
async fn a_repository_keeps_each_scans_error_with_that_scan_and_its_sync_apart_from_deliveries() {
    let sink = WebhookSink::start().expect("sink");
    let (f, deliverer) = setup(&sink).await;
    let (admin, _) = logged_in(&f.app).await;
    let path = format!("/admin/api/repositories/{}", f.repository_id);
    assert!(matches!(f.scan_now().await, docora_watcher::scan::ScanOutcome::Scanned { .. }));
    let seen = admin.get(&path).await;
    assert_eq!(seen.status, 200, "{}", seen.text);
    assert_eq!(seen.body["sync"]["state"], "ok", "{}", seen.text);
    assert_eq!(seen.body["sync"]["last_attempt"]["outcome"], "scanned");
    assert_eq!(seen.body["sync"]["last_attempt"]["events"], 3);
    assert_eq!(seen.body["sync"]["current_commit"], f.repo.head().as_str());
    let link = &seen.body["links"][0];
    assert_eq!(
        (link["app_id"].as_str(), link["delivery_state"].as_str()),
        (Some(f.app_id.as_str()), Some("delivering"))
    );
    assert_eq!(link["pending"], 3);
    assert!(link["delivered_up_to"].is_null());

    // git fails: the attempt has the error, the repository reads failing, the link's delivery
    // state is its own (no delivery error).
    f.git.set_failing(true);
    assert!(matches!(f.scan_now().await, docora_watcher::scan::ScanOutcome::Failed { .. }));
    let seen = admin.get(&path).await;
    let sync = &seen.body["sync"];
    assert_eq!(sync["state"], "failing", "{}", seen.text);
    assert_eq!(sync["last_attempt"]["outcome"], "failed");
    let error = sync["last_attempt"]["error"].as_str().unwrap_or_default().to_owned();
    assert!(!error.is_empty() && sync["error"] == error.as_str(), "{sync}");
    assert!(sync["last_success_at"].is_string(), "the last success stays: {sync}");
    assert_eq!(sync["consecutive_failures"], 1);
    assert!(seen.body["links"][0]["last_delivery_error"].is_null(), "a scan's error is not the link's");

    // Delivered, then git is back: the repository reads ok, the error stays with the scan that
    // had it.
    assert_eq!(drain(&deliverer).await, vec![Delivered::Ok; 3]);
    f.git.set_failing(false);
    assert!(matches!(f.scan_now().await, docora_watcher::scan::ScanOutcome::Unchanged { .. }));
    let seen = admin.get(&path).await;
    let sync = &seen.body["sync"];
    assert_eq!((sync["state"].as_str(), sync["consecutive_failures"].as_i64()), (Some("ok"), Some(0)), "{sync}");
    assert!(sync["error"].is_null());
    let scans = seen.body["scans"].as_array().cloned().unwrap_or_default();
    let outcomes: Vec<&str> = scans.iter().map(|s| s["outcome"].as_str().unwrap_or_default()).collect();
    assert_eq!(outcomes, ["unchanged", "failed", "scanned"]);
    assert!(scans[0]["error"].is_null() && scans[1]["error"] == error.as_str() && scans[2]["error"].is_null());
    let link = &seen.body["links"][0];
    assert_eq!((link["delivery_state"].as_str(), link["pending"].as_i64()), (Some("up_to_date"), Some(0)), "{link}");
    assert!(link["delivered_up_to"]["delivered_at"].is_string(), "{link}");

    // The history keeps the last 20 scans of each repository.
    for _ in 0..20 {
        f.scan_now().await;
    }
    let kept = format!("SELECT count(*) AS n FROM docora.scan_attempts WHERE repository_id = '{}'", f.repository_id);
    assert_eq!(count(&f.app.db, &kept).await, docora_watcher::scan::SCAN_HISTORY_KEPT);
    assert_eq!(admin.get(&path).await.body["scans"].as_array().map(Vec::len), Some(20));
    assert_eq!(admin.get("/admin/api/repositories/repo_000000000000000000000000").await.status, 404);
    let all = admin.get("/admin/api/repositories").await;
    assert_eq!(all.status, 200, "{}", all.text);
    assert_eq!(all.body["items"][0]["repository_id"], f.repository_id.as_str());
    assert_eq!(
        (all.body["items"][0]["sync"]["state"].as_str(), all.body["items"][0]["apps"].as_i64()),
        (Some("ok"), Some(1))
    );

    // A scan abandoned past its lease (its worker died): stuck, with the reason, until a worker
    // takes it again.
    execute(&f.app.db, "UPDATE docora.repositories SET next_scan_at = now()").await;
    let claimed = f.scanner.claim().await.expect("claim").expect("due");
    execute(&f.app.db, "UPDATE docora.repositories SET scan_lease_until = now() - interval '1 minute'").await;
    let stuck = admin.get("/admin/api/overview").await.body["repositories"][0].clone();
    assert_eq!(stuck["state"], "stuck", "{stuck}");
    assert!(stuck["reason"].as_str().unwrap_or_default().contains("lease ran out"), "{stuck}");
    assert_eq!(admin.get(&path).await.body["sync"]["state"], "stuck");
    let again = f.scanner.claim().await.expect("claim").expect("taken again");
    assert!(again.started_at > claimed.started_at);
    f.scanner.scan(&again).await.expect("scan");
    assert_eq!(admin.get("/admin/api/overview").await.body["repositories"], serde_json::json!([]));

    // Documented for automation.
    let openapi = f.app.anonymous().get("/openapi.json").await.body;
    assert!(openapi["paths"]["/admin/api/repositories/{repository_id}"]["get"].is_object());
    let documented = &openapi["components"]["schemas"]["SyncState"]["properties"];
    for field in ["state", "reason", "last_attempt", "last_success_at", "current_commit", "circuit"] {
        assert!(documented[field].is_object(), "{field} in {documented}");
    }
}
