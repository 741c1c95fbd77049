//! The recording webhook receiver: signatures, modes, large bodies.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use testkit::webhook_sink::{SinkMode, WebhookSink, signature};

const KEY: &str = "a-client-auth-key-of-32-chars!!!";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs()
}

/// Posts `body` to `{sink}/{event}` the way Docora does, signed with `key` at `ts`.
async fn deliver(
    client: &reqwest::Client,
    sink: &WebhookSink,
    event: &str,
    body: &[u8],
    key: &str,
    ts: u64,
) -> reqwest::Result<reqwest::Response> {
    let ts = ts.to_string();
    client
        .post(format!("{}/{event}", sink.url()))
        .header("content-type", "application/json")
        .header("x-docora-app-id", "app_0123")
        .header("x-docora-timestamp", &ts)
        .header("x-docora-signature", signature(key, &ts, body))
        .header("x-docora-delivery", "dlv_1")
        .header("x-docora-event", event)
        .body(body.to_vec())
        .send()
        .await
}

#[tokio::test]
async fn records_signed_deliveries_and_checks_signatures() {
    let sink = WebhookSink::start().expect("sink starts");
    let client = reqwest::Client::new();
    let body = serde_json::to_vec(&json!({"file": {"path": "src/a.ts"}, "commit_sha": "abc"})).expect("json");
    let res = deliver(&client, &sink, "create", &body, KEY, now()).await.expect("delivered");
    assert_eq!(res.status(), 200);

    let got = sink.wait_for(1, Duration::from_secs(5)).await;
    let r = &got[0];
    assert_eq!(r.path, "/create");
    assert_eq!(r.event(), "create");
    assert_eq!(r.method, "POST");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("X-Docora-App-Id"), Some("app_0123"));
    assert_eq!(r.delivery(), Some("dlv_1"));
    assert_eq!(r.json()["file"]["path"], "src/a.ts");
    assert!(r.signature_valid(KEY), "a correctly signed request verifies");
    assert!(!r.signature_valid("another-key-of-enough-length"), "a wrong key is refused");

    // A tampered body.
    let mut tampered = r.clone();
    tampered.body = serde_json::to_vec(&json!({"file": {"path": "src/b.ts"}, "commit_sha": "abc"})).expect("json");
    assert!(!tampered.signature_valid(KEY), "a tampered body is refused");

    // A stale timestamp, correctly signed.
    deliver(&client, &sink, "update", &body, KEY, now() - 400).await.expect("delivered");
    // One from the future, too far.
    deliver(&client, &sink, "delete", &body, KEY, now() + 400).await.expect("delivered");
    // Slightly off is fine.
    deliver(&client, &sink, "sync_failed", &body, KEY, now() - 60).await.expect("delivered");
    let got = sink.wait_for(4, Duration::from_secs(5)).await;
    let events: Vec<&str> = got.iter().map(|r| r.event()).collect();
    assert_eq!(events, ["create", "update", "delete", "sync_failed"]);
    assert!(!got[1].signature_valid(KEY), "a stale timestamp is refused");
    assert!(!got[2].signature_valid(KEY), "a future timestamp is refused");
    assert!(got[3].signature_valid(KEY));

    // Missing or malformed headers.
    let mut r = got[0].clone();
    r.headers.retain(|(k, _)| k != "x-docora-signature");
    assert!(!r.signature_valid(KEY));
    let mut r = got[0].clone();
    for (k, v) in &mut r.headers {
        if k == "x-docora-signature" {
            *v = v.to_uppercase();
        }
    }
    assert!(!r.signature_valid(KEY), "uppercase hex / prefix is not the wire format");

    sink.clear();
    assert!(sink.received().is_empty());
    assert!(sink.attempts().is_empty());
}

#[tokio::test]
async fn any_path_under_the_base_url() {
    let sink = WebhookSink::start().expect("sink starts");
    let client = reqwest::Client::new();
    let res = client.post(format!("{}/hooks/docora/update", sink.url())).body("{}").send().await.expect("sent");
    assert_eq!(res.status(), 200);
    let got = sink.wait_for_blocking(1, Duration::from_secs(5));
    assert_eq!(got[0].path, "/hooks/docora/update");
    assert_eq!(got[0].event(), "update");
    assert!(!got[0].signature_valid(KEY), "unsigned");
}

#[tokio::test]
async fn fail_and_fail_next() {
    let sink = WebhookSink::start().expect("sink starts");
    let client = reqwest::Client::new();
    let body = b"{}";

    sink.set_mode(SinkMode::Fail(503));
    for _ in 0..2 {
        let res = deliver(&client, &sink, "create", body, KEY, now()).await.expect("answered");
        assert_eq!(res.status(), 503);
    }
    assert!(sink.received().is_empty());
    assert_eq!(sink.attempts().len(), 2);
    assert!(sink.attempts().iter().all(|a| a.status == 503));

    sink.clear();
    sink.set_mode(SinkMode::FailNext(2, 500));
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(deliver(&client, &sink, "update", body, KEY, now()).await.expect("answered").status().as_u16());
    }
    assert_eq!(statuses, [500, 500, 200, 200]);
    assert_eq!(sink.mode(), SinkMode::Accept);
    assert_eq!(sink.received().len(), 2);
    let attempts: Vec<u16> = sink.attempts().iter().map(|a| a.status).collect();
    assert_eq!(attempts, [500, 500, 200, 200]);
    assert_eq!(sink.wait_for_attempts(4, Duration::from_secs(1)).await.len(), 4);
}

#[tokio::test]
async fn hang_times_the_client_out_without_blocking_others() {
    let sink = WebhookSink::start().expect("sink starts");
    let client = reqwest::Client::builder().timeout(Duration::from_millis(500)).build().expect("client");
    sink.set_mode(SinkMode::Hang);
    let started = Instant::now();
    let err = deliver(&client, &sink, "create", b"{}", KEY, now()).await.expect_err("the sink never answers");
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(450));

    // A hanging request is still open (another client) while others are served.
    let hanging_client = reqwest::Client::new();
    let url = format!("{}/create", sink.url());
    let hanging = tokio::spawn(async move { hanging_client.post(url).body("{}").send().await });
    sink.wait_for_attempts(2, Duration::from_secs(5)).await;
    sink.set_mode(SinkMode::Accept);
    let res = deliver(&client, &sink, "update", b"{}", KEY, now()).await.expect("answered while another hangs");
    assert_eq!(res.status(), 200);

    let attempts = sink.attempts();
    assert_eq!(attempts.len(), 3);
    assert_eq!(attempts[0].status, 0, "a hung request has no status");
    let received = sink.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].event(), "update");

    // Stopping the sink does not wait for the hanging request.
    let stop = Instant::now();
    drop(sink);
    assert!(stop.elapsed() < Duration::from_secs(3), "drop took {:?}", stop.elapsed());
    let outcome = tokio::time::timeout(Duration::from_secs(5), hanging).await.expect("the hanging client ends");
    assert!(outcome.expect("task").map(|r| r.status().as_u16() != 200).unwrap_or(true));
}

#[tokio::test]
async fn slow_answers_after_the_delay() {
    let sink = WebhookSink::start().expect("sink starts");
    let client = reqwest::Client::new();
    sink.set_mode(SinkMode::Slow(Duration::from_millis(400)));
    let started = Instant::now();
    let res = deliver(&client, &sink, "create", b"{}", KEY, now()).await.expect("answered");
    assert_eq!(res.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(sink.received().len(), 1);

    // A client that gives up before the answer: attempted, never received.
    sink.clear();
    sink.set_mode(SinkMode::Slow(Duration::from_secs(2)));
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(200)).build().expect("client");
    let err = deliver(&impatient, &sink, "create", b"{}", KEY, now()).await.expect_err("times out");
    assert!(err.is_timeout());
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(sink.attempts().len(), 1);
    assert!(sink.received().is_empty(), "the answer never reached the client");
}

#[tokio::test]
async fn accepts_large_bodies() {
    let sink = WebhookSink::start().expect("sink starts");
    let client = reqwest::Client::new();
    // A 512 KiB base64 chunk in JSON, and an 8 MiB body.
    let chunk = "QUJD".repeat(524_288 / 4);
    let body =
        serde_json::to_vec(&json!({"file": {"content": chunk, "chunk": {"index": 0, "total": 3}}})).expect("json");
    let res = deliver(&client, &sink, "create", &body, KEY, now()).await.expect("delivered");
    assert_eq!(res.status(), 200);
    let big = vec![b'x'; 8 * 1024 * 1024];
    let res = deliver(&client, &sink, "update", &big, KEY, now()).await.expect("delivered");
    assert_eq!(res.status(), 200);

    let got = sink.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got[0].json()["file"]["content"].as_str().map(str::len), Some(524_288));
    assert!(got[0].signature_valid(KEY));
    assert_eq!(got[1].body.len(), 8 * 1024 * 1024);
    assert!(got[1].signature_valid(KEY));
}

#[tokio::test]
#[should_panic(expected = "expected 2 received")]
async fn wait_for_panics_listing_what_arrived() {
    let sink = WebhookSink::start().expect("sink starts");
    sink.set_mode(SinkMode::Fail(500));
    let client = reqwest::Client::new();
    let _ = deliver(&client, &sink, "create", b"{\"a\":1}", KEY, now()).await;
    sink.wait_for(2, Duration::from_millis(200)).await;
}

#[tokio::test]
async fn tracks_requests_in_flight_and_a_delivery_sent_twice_at_once() {
    let sink = WebhookSink::start().expect("sink starts");
    sink.set_mode(SinkMode::Slow(Duration::from_millis(300)));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("client");
    let post = |delivery: &'static str| {
        let request = client.post(format!("{}/create", sink.url())).header("x-docora-delivery", delivery).body("{}");
        async move { request.send().await.map(|r| r.status().as_u16()) }
    };
    // Two deliveries side by side: both in flight, neither twice.
    let (a, b) = tokio::join!(post("dlv_a"), post("dlv_b"));
    assert_eq!((a.expect("a"), b.expect("b")), (200, 200));
    assert_eq!(sink.max_in_flight(), 2);
    assert!(sink.overlapping_deliveries().is_empty());
    // One after the other with the same id (a retry, or the pieces of a chunked file): fine.
    post("dlv_a").await.expect("again");
    assert!(sink.overlapping_deliveries().is_empty());
    // The same id twice at once is what a double delivery looks like.
    let (a, b) = tokio::join!(post("dlv_c"), post("dlv_c"));
    assert_eq!((a.expect("a"), b.expect("b")), (200, 200));
    assert_eq!(sink.overlapping_deliveries(), ["dlv_c"]);

    // A request its client gave up on is no longer in flight.
    sink.clear();
    assert_eq!(sink.max_in_flight(), 0);
    sink.set_mode(SinkMode::Hang);
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(200)).build().expect("client");
    let url = format!("{}/create", sink.url());
    impatient.post(&url).header("x-docora-delivery", "dlv_d").body("{}").send().await.expect_err("times out");
    tokio::time::sleep(Duration::from_millis(200)).await;
    sink.set_mode(SinkMode::Accept);
    assert_eq!(post("dlv_d").await.expect("retried"), 200);
    assert_eq!(sink.max_in_flight(), 1);
    assert!(sink.overlapping_deliveries().is_empty(), "the abandoned attempt had ended");
}
