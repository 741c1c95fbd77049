//! Instances of the service that stop mid-delivery, and several instances on one database: the
//! leases in PostgreSQL are what keep every event delivered, in order, and never twice at once.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde_json::json;
use service_kit::Env;
use testkit::{GitServer, SinkMode, TestServer, WebhookSink};

use crate::{TestApp, count, str_of};

/// The service with its workers on, cloning from `git`, with the admin login (`root`) and
/// `adjust`'s settings on top.
pub async fn live_app(git: &GitServer, adjust: impl FnOnce(Env) -> Env) -> TestApp {
    let work = std::env::temp_dir().join(format!("docora-live-{}", uuid::Uuid::new_v4().simple()));
    let git_url = git.url();
    let admin_hash = auth::password::hash(crate::admin::PASSWORD).expect("hash");
    TestApp::spawn_with(move |env| {
        adjust(
            env.with("GIT_BASE_URL", git_url)
                .with("GIT_WORK_DIR", work.to_string_lossy().into_owned())
                .with("ADMIN_USERNAME", "root")
                .with("ADMIN_PASSWORD_HASH", admin_hash)
                .with("ALLOW_HTTP_WEBHOOKS", "true")
                .with("ALLOW_PRIVATE_WEBHOOKS", "true")
                .with("DATABASE_POOL_SIZE", "8")
                .with("WORKER_POLL_MILLIS", "20"),
        )
    })
    .await
}

/// Another instance of the service on the same database and settings (the same start function
/// `main` calls), as a second replica or a restart.
pub fn instance(settings: &docora_watcher::Settings) -> TestServer {
    let settings = settings.clone();
    TestServer::start(move |listener| docora_watcher::start(settings, listener)).expect("docora-watcher starts")
}

/// `settings` with a clone folder of their own, as each pod has its own `emptyDir`.
pub fn own_clones(settings: &docora_watcher::Settings) -> docora_watcher::Settings {
    let mut settings = settings.clone();
    settings.git_work_dir = std::env::temp_dir().join(format!("docora-replica-{}", uuid::Uuid::new_v4().simple()));
    settings
}

/// `octo/docs` with `a.md`, `b.md` and `c.md`, watched by an app whose webhooks go to `sink`:
/// `(app_id, repository_id)`.
async fn watch_three_files(app: &TestApp, git: &GitServer, sink: &WebhookSink) -> (String, String) {
    let (owner_id, _) = app.github.add_user("octo");
    app.github.add_repo(owner_id, "docs", false);
    let repo = git.create_repo("octo", "docs").expect("repo");
    repo.write("a.md", b"a").write("b.md", b"b").write("c.md", b"c").commit("first").expect("commit");
    let (app_id, client) = app.app_at("reader", &sink.url()).await;
    let res = client.post_json("/api/repositories", &json!({"github_url": "https://github.com/octo/docs"})).await;
    assert_eq!(res.status, 201, "{}", res.text);
    (app_id, str_of(&res.body, "repository_id").to_owned())
}

/// The ids of an app's events on a repository, in delivery order.
async fn event_ids(app: &TestApp, app_id: &str, repository_id: &str) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        id: String,
    }
    use diesel_async::RunQueryDsl;
    let mut conn = app.db.conn().await.expect("conn");
    diesel::sql_query("SELECT id::text AS id FROM docora.events WHERE app_id = $1 AND repository_id = $2 ORDER BY seq")
        .bind::<diesel::sql_types::Text, _>(app_id)
        .bind::<diesel::sql_types::Text, _>(repository_id)
        .load::<Row>(&mut conn)
        .await
        .expect("events")
        .into_iter()
        .map(|r| r.id)
        .collect()
}

/// Waits until `sink` has answered `n` requests and returns them all; panics after `timeout`
/// with the outbox as the database has it (why an event did not go out).
async fn wait_received(sink: &WebhookSink, app: &TestApp, n: usize, timeout: Duration) -> Vec<testkit::Received> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let got = sink.received();
        if got.len() >= n {
            return got;
        }
        if std::time::Instant::now() >= deadline {
            let outbox = "SELECT coalesce(string_agg(format('%s/%s #%s %s %s, %s attempt(s), due in %s, leased for %s: %s', \
                            app_id, repository_id, seq, event, status, attempts, next_attempt_at - now(), \
                            lease_until - now(), last_error), E'\\n  ' ORDER BY seq), '') AS t FROM docora.events";
            let links = "SELECT coalesce(string_agg(format('%s/%s %s (delivered up to #%s): %s', app_id, \
                          repository_id, status, delivered_seq, last_error), E'\\n  '), '') AS t \
                          FROM docora.app_repositories";
            panic!(
                "expected {n} received within {timeout:?}, got {}; {} attempt(s) arrived\nevents:\n  {}\nlinks:\n  {}",
                got.len(),
                sink.attempts().len(),
                app.db.text(outbox).await,
                app.db.text(links).await
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_delivery_cut_off_by_a_stop_goes_out_again_from_the_next_instance() {
    let sink = WebhookSink::start().expect("sink");
    sink.set_mode(SinkMode::Hang);
    let git = GitServer::start().expect("git server");
    let mut app = live_app(&git, |env| {
        env.with("SCAN_WORKERS", "1")
            .with("DELIVERY_WORKERS", "1")
            .with("WEBHOOK_TIMEOUT_SECS", "2")
            .with("DELIVERY_LEASE_SECS", "3")
    })
    .await;
    let (app_id, repository_id) = watch_three_files(&app, &git, &sink).await;

    // The first delivery is on its way and the receiver has not answered: the instance stops.
    let cut = sink.wait_for_attempts(1, Duration::from_secs(20)).await[0].delivery().expect("a delivery id").to_owned();
    app.server.stop();
    let held = format!(
        "SELECT count(*) AS n FROM docora.events WHERE id = '{cut}' AND status = 'pending' AND attempts = 0 \
         AND lease_until > now()"
    );
    assert_eq!(count(&app.db, &held).await, 1, "cut off mid-delivery: still leased, no attempt recorded");
    assert_eq!(count(&app.db, "SELECT count(*) AS n FROM docora.events WHERE status = 'delivered'").await, 0);

    // A new instance on the same database takes the event again once its lease has run out.
    sink.set_mode(SinkMode::Accept);
    let _next = instance(&app.settings);
    let received = sink.wait_for(3, Duration::from_secs(30)).await;
    let ids: Vec<&str> = received.iter().filter_map(|r| r.delivery()).collect();
    assert_eq!(ids, event_ids(&app, &app_id, &repository_id).await, "each event once, in order");
    assert_eq!(ids[0], cut, "the cut delivery went again with the same X-Docora-Delivery");
    let paths: Vec<String> =
        received.iter().map(|r| r.json()["file"]["path"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(paths, ["a.md", "b.md", "c.md"]);
    assert!(received.iter().all(|r| r.signature_valid(crate::SIGNING_KEY)));
    assert_eq!(sink.attempts().len(), 4, "the cut attempt and three answered ones");
    // The cut attempt was never counted.
    let delivered = "SELECT count(*) AS n FROM docora.events WHERE status = 'delivered' AND attempts = 1";
    crate::eventually_count(&app.db, delivered, 3).await;
    assert_eq!(count(&app.db, "SELECT count(*) AS n FROM docora.app_repositories WHERE status = 'synced'").await, 1);
}

#[tokio::test]
async fn a_graceful_stop_finishes_the_delivery_in_flight_and_takes_no_further_event() {
    let sink = WebhookSink::start().expect("sink");
    sink.set_mode(SinkMode::Slow(Duration::from_secs(2)));
    let git = GitServer::start().expect("git server");
    // A lease far longer than the test: an event left leased would not go out again in time.
    let mut app = live_app(&git, |env| {
        env.with("SCAN_WORKERS", "1")
            .with("DELIVERY_WORKERS", "1")
            .with("WEBHOOK_TIMEOUT_SECS", "10")
            .with("DELIVERY_LEASE_SECS", "600")
            .with("SHUTDOWN_TIMEOUT_SECS", "20")
    })
    .await;
    let (app_id, repository_id) = watch_three_files(&app, &git, &sink).await;

    // The first delivery is on its way, the receiver takes its time: the instance is stopped as
    // SIGTERM stops it, and returns once it has shut down.
    let in_flight = sink.wait_for_attempts(1, Duration::from_secs(20)).await[0].delivery().expect("an id").to_owned();
    app.server.stop_gracefully();
    assert_eq!(sink.received_count(), 1, "the answer to the delivery in flight was awaited, nothing more was sent");
    let recorded = format!(
        "SELECT count(*) AS n FROM docora.events WHERE id = '{in_flight}' AND status = 'delivered' \
         AND attempts = 1 AND lease_until IS NULL"
    );
    assert_eq!(count(&app.db, &recorded).await, 1, "the delivery in flight finished and was recorded, once");
    let untouched = "SELECT count(*) AS n FROM docora.events \
                     WHERE status = 'pending' AND attempts = 0 AND lease_until IS NULL";
    assert_eq!(count(&app.db, untouched).await, 2, "no further event taken after the stop");
    assert_eq!(sink.attempts().len(), 1);

    // The next instance delivers the rest; the first event does not go out again.
    sink.set_mode(SinkMode::Accept);
    let _next = instance(&app.settings);
    let received = sink.wait_for(3, Duration::from_secs(30)).await;
    let ids: Vec<&str> = received.iter().filter_map(|r| r.delivery()).collect();
    assert_eq!(ids, event_ids(&app, &app_id, &repository_id).await, "each event once, in order");
    assert_eq!(ids[0], in_flight);
    crate::eventually_count(&app.db, "SELECT count(*) AS n FROM docora.events WHERE status = 'delivered'", 3).await;
    assert_eq!(sink.attempts().len(), 3, "no delivery went twice");
    assert_eq!(count(&app.db, "SELECT count(*) AS n FROM docora.events WHERE attempts <> 1").await, 0);
}

#[tokio::test]
async fn two_instances_never_send_one_event_twice_at_once_and_keep_each_link_in_order() {
    let sink = WebhookSink::start().expect("sink");
    sink.set_mode(SinkMode::Slow(Duration::from_millis(100)));
    let git = GitServer::start().expect("git server");
    // Three delivery workers in each instance, four links: more workers than links.
    let app = live_app(&git, |env| {
        env.with("SCAN_WORKERS", "1")
            .with("DELIVERY_WORKERS", "3")
            .with("WEBHOOK_TIMEOUT_SECS", "5")
            .with("DELIVERY_LEASE_SECS", "6")
    })
    .await;
    // The second replica has clones of its own: whichever scans, both deliver.
    let _second = instance(&own_clones(&app.settings));
    let (owner_id, _) = app.github.add_user("octo");
    let mut repos = Vec::new();
    for name in ["one", "two"] {
        app.github.add_repo(owner_id, name, false);
        let repo = git.create_repo("octo", name).expect("repo");
        repo.write("README.md", name.as_bytes()).commit("first").expect("commit");
        repos.push(repo);
    }
    let mut links = Vec::new();
    for reader in ["first", "second"] {
        let (app_id, client) = app.app_at(reader, &sink.url()).await;
        for name in ["one", "two"] {
            let url = format!("https://github.com/octo/{name}");
            let res = client.post_json("/api/repositories", &json!({"github_url": url})).await;
            assert_eq!(res.status, 201, "{}", res.text);
            links.push((app_id.clone(), str_of(&res.body, "repository_id").to_owned()));
        }
    }
    wait_received(&sink, &app, 4, Duration::from_secs(30)).await;
    // Then a commit to each: every link has work at the same time.
    let big: Vec<u8> = (0..1_300_000u32).map(|i| (i % 251) as u8).collect();
    for repo in &repos {
        for i in 0..6 {
            repo.write(&format!("docs/{i}.md"), format!("{} {i}", repo.name()).as_bytes());
        }
        if repo.name() == "one" {
            repo.write("big.bin", &big); // four pieces under one delivery id
        }
        repo.commit("second").expect("commit");
    }
    crate::execute(&app.db, "UPDATE docora.repositories SET next_scan_at = now()").await;
    // Per app: the two READMEs, then 7 events on `one` (10 requests) and 6 on `two`.
    let received = wait_received(&sink, &app, 4 + 32, Duration::from_secs(60)).await;

    assert_eq!(sink.overlapping_deliveries(), Vec::<String>::new(), "a delivery id was in flight twice at once");
    let max = sink.max_in_flight();
    assert!((2..=4).contains(&max), "{max} requests in flight at most: deliveries ran side by side, one per link");
    let mut pieces = HashSet::new();
    let mut per_link: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for r in &received {
        let body = r.json();
        let delivery = r.delivery().expect("a delivery id").to_owned();
        assert!(
            pieces.insert((delivery.clone(), body["file"]["chunk"]["index"].as_u64())),
            "{delivery} acknowledged twice"
        );
        let link = (
            r.header("x-docora-app-id").unwrap_or_default().to_owned(),
            body["repository"]["repository_id"].as_str().unwrap_or_default().to_owned(),
        );
        let sent = per_link.entry(link).or_default();
        if sent.last() != Some(&delivery) {
            sent.push(delivery);
        }
        if let Some(index) = body["file"]["chunk"]["index"].as_u64() {
            let before = received.iter().take_while(|o| !std::ptr::eq(*o, r)).filter(|o| o.delivery() == r.delivery());
            assert_eq!(before.count() as u64, index, "pieces in index order");
        }
    }
    assert_eq!(per_link.len(), 4);
    for (app_id, repository_id) in &links {
        let sent = &per_link[&(app_id.clone(), repository_id.clone())];
        assert_eq!(sent, &event_ids(&app, app_id, repository_id).await, "the link's events once each, in order");
    }
    crate::eventually_count(&app.db, "SELECT count(*) AS n FROM docora.events WHERE status <> 'delivered'", 0).await;
    let failed = "SELECT coalesce(string_agg(event_id || ' attempt ' || attempt || ': ' || error, '; '), '') AS t \
                  FROM docora.delivery_attempts WHERE error IS NOT NULL";
    assert_eq!(
        count(&app.db, "SELECT count(*) AS n FROM docora.events WHERE attempts <> 1").await,
        0,
        "every event delivered at its first attempt; failed attempts: {}",
        app.db.text(failed).await
    );
}

#[tokio::test]
async fn a_replica_delivers_what_another_one_scanned_fetching_into_its_own_clones() {
    let sink = WebhookSink::start().expect("sink");
    let git = GitServer::start().expect("git server");
    // The first replica only scans, the second only delivers, each with its own clone folder.
    let app = live_app(&git, |env| env.with("SCAN_WORKERS", "1").with("DELIVERY_WORKERS", "0")).await;
    let (owner_id, token) = app.github.add_user("octo");
    app.github.add_repo(owner_id, "vault", true);
    let repo = git.create_repo("octo", "vault").expect("repo");
    git.set_private("octo", "vault", true);
    git.allow_token("octo", "vault", &token);
    let big: Vec<u8> = (0..1_300_000u32).map(|i| (i % 253) as u8).collect();
    repo.write("a.md", b"one")
        .write("big.bin", &big)
        .write("small.bin", &[0, 1, 2, 255])
        .commit("first")
        .expect("commit");
    let (_, client) = app.app_at("reader", &sink.url()).await;
    let res = client
        .post_json("/api/repositories", &json!({"github_url": "https://github.com/octo/vault", "github_token": token}))
        .await;
    assert_eq!(res.status, 201, "{}", res.text);
    let repository_id = str_of(&res.body, "repository_id").to_owned();
    let events = "SELECT count(*) AS n FROM docora.events";
    crate::eventually_count(&app.db, events, 3).await;
    // The file changes again before anything is delivered: its first content is no longer at the
    // branch's tip, only in the first commit.
    repo.write("a.md", b"two").commit("second").expect("commit");
    crate::execute(&app.db, "UPDATE docora.repositories SET next_scan_at = now()").await;
    crate::eventually_count(&app.db, events, 4).await;
    assert_eq!(sink.attempts().len(), 0);

    let mut delivering = own_clones(&app.settings);
    delivering.scan_workers = 0;
    delivering.delivery_workers = 2;
    delivering.delivery_max_attempts = 1;
    let mut second = instance(&delivering);
    // a.md, big.bin in four pieces, small.bin, then a.md's update.
    let received = sink.wait_for(7, Duration::from_secs(30)).await;
    let bodies: Vec<serde_json::Value> = received.iter().map(|r| r.json()).collect();
    let b64 = |v: &serde_json::Value| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.decode(v.as_str().expect("base64 content")).expect("base64")
    };
    assert_eq!(bodies[0]["file"]["path"], "a.md");
    assert_eq!(bodies[0]["file"]["content"], "one", "the first commit's content, fetched by its commit");
    let pieces: Vec<u8> = bodies[1..5].iter().flat_map(|b| b64(&b["file"]["content"])).collect();
    assert_eq!(bodies[4]["file"]["chunk"]["total"], 4);
    assert!(pieces == big, "the big file whole, in four pieces ({} bytes of {})", pieces.len(), big.len());
    assert_eq!(b64(&bodies[5]["file"]["content"]), [0, 1, 2, 255]);
    assert_eq!(received[6].header("x-docora-event"), Some("update"));
    assert_eq!(bodies[6]["file"]["content"], "two");
    assert!(received.iter().all(|r| r.signature_valid(crate::SIGNING_KEY)));
    assert!(delivering.git_work_dir.join(format!("{repository_id}.git")).join("HEAD").exists());
    assert_ne!(delivering.git_work_dir, app.settings.git_work_dir);
    crate::eventually_count(&app.db, "SELECT count(*) AS n FROM docora.events WHERE status = 'delivered'", 4).await;

    // A commit scanned, then rewritten out of the history and collected on GitHub's side before
    // the delivering replica fetched it: its content is nowhere to fetch. Nothing is sent in its
    // place (no empty or wrong content); the event fails and says why, without counting against
    // the app's delivery breaker (the app did nothing wrong).
    second.stop();
    repo.write("a.md", b"three").commit("third").expect("commit");
    crate::execute(&app.db, "UPDATE docora.repositories SET next_scan_at = now()").await;
    crate::eventually_count(&app.db, events, 5).await;
    repo.git(&["reset", "-q", "--hard", "HEAD~1"]).expect("reset");
    repo.write("a.md", b"four").commit("rewritten").expect("force push");
    let bare = repo.bare_dir().to_string_lossy().into_owned();
    repo.git(&["-C", &bare, "gc", "-q", "--prune=now"]).expect("gc on the server");
    let _third = instance(&delivering);
    let failed = "SELECT count(*) AS n FROM docora.events WHERE status = 'failed' \
                  AND last_error LIKE '%a.md%no longer on GitHub%'";
    crate::eventually_count(&app.db, failed, 1).await;
    assert_eq!(sink.attempts().len(), 7, "nothing sent for the lost content");
    assert_eq!(count(&app.db, "SELECT count(*) AS n FROM docora.app_repositories WHERE status = 'failed'").await, 1);
    assert_eq!(count(&app.db, "SELECT count(*) AS n FROM docora.apps WHERE delivery_failures = 0").await, 1);
}

#[tokio::test]
async fn a_replica_that_cannot_fetch_the_commit_retries_without_blaming_the_app() {
    let sink = WebhookSink::start().expect("sink");
    let git = GitServer::start().expect("git server");
    let app = live_app(&git, |env| env.with("SCAN_WORKERS", "1").with("DELIVERY_WORKERS", "0")).await;
    let (app_id, _) = watch_three_files(&app, &git, &sink).await;
    crate::eventually_count(&app.db, "SELECT count(*) AS n FROM docora.events", 3).await;

    // GitHub is down when the delivering replica, which has no clone yet, needs the commit.
    git.set_failing(true);
    let mut delivering = own_clones(&app.settings);
    delivering.scan_workers = 0;
    delivering.delivery_workers = 1;
    delivering.delivery_backoff = Duration::from_secs(1);
    let _second = instance(&delivering);
    let retrying = "SELECT count(*) AS n FROM docora.events WHERE status = 'pending' AND attempts >= 1 \
                    AND last_error LIKE 'cannot fetch commit % for a.md: %'";
    crate::eventually_count(&app.db, retrying, 1).await;
    assert_eq!(sink.attempts().len(), 0, "nothing sent without the content");
    let blamed = format!("SELECT count(*) AS n FROM docora.apps WHERE id = '{app_id}' AND delivery_failures > 0");
    assert_eq!(count(&app.db, &blamed).await, 0, "GitHub being down is not the app's failure");

    // GitHub is back: the retry fetches the commit and everything goes out, in order.
    git.set_failing(false);
    let received = sink.wait_for(3, Duration::from_secs(30)).await;
    let paths: Vec<String> =
        received.iter().map(|r| r.json()["file"]["path"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(paths, ["a.md", "b.md", "c.md"]);
}

#[tokio::test]
async fn a_replica_killed_mid_batch_leaves_the_rest_of_the_batch_to_the_next_one_in_order() {
    let sink = WebhookSink::start().expect("sink");
    sink.set_mode(SinkMode::Slow(Duration::from_millis(300)));
    let git = GitServer::start().expect("git server");
    // Nothing recorded before the batch ends: what the killed replica delivered is on record
    // nowhere, and its lease (renewed as the batch goes on) is all that holds the link.
    let mut app = live_app(&git, |env| {
        env.with("SCAN_WORKERS", "1")
            .with("DELIVERY_WORKERS", "2")
            .with("WEBHOOK_TIMEOUT_SECS", "3")
            .with("DELIVERY_LEASE_SECS", "4")
            .with("DELIVERY_RECORD_MILLIS", "60000")
    })
    .await;
    let (owner_id, _) = app.github.add_user("octo");
    app.github.add_repo(owner_id, "docs", false);
    let repo = git.create_repo("octo", "docs").expect("repo");
    for i in 0..8 {
        repo.write(&format!("doc{i}.md"), format!("document {i}").as_bytes());
    }
    repo.commit("first").expect("commit");
    let (app_id, client) = app.app_at("reader", &sink.url()).await;
    let res = client.post_json("/api/repositories", &json!({"github_url": "https://github.com/octo/docs"})).await;
    assert_eq!(res.status, 201, "{}", res.text);
    let repository_id = str_of(&res.body, "repository_id").to_owned();

    // A few events of the batch are acknowledged, then the receiver stops answering and the
    // replica dies with a request in flight.
    sink.wait_for(3, Duration::from_secs(30)).await;
    sink.set_mode(SinkMode::Hang);
    let started = std::time::Instant::now();
    while !sink.attempts().iter().any(|a| a.status == 0) {
        assert!(started.elapsed() < Duration::from_secs(30), "no request reached the hanging receiver");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    app.server.stop();
    let before: Vec<String> = sink.received().iter().filter_map(|r| r.delivery().map(str::to_owned)).collect();
    assert!(before.len() >= 3 && before.len() < 8, "killed mid-batch after {} events", before.len());
    assert_eq!(count(&app.db, "SELECT count(*) AS n FROM docora.events WHERE status = 'delivered'").await, 0);
    let leased = "SELECT count(*) AS n FROM docora.events WHERE status = 'pending' AND lease_until > now()";
    assert_eq!(count(&app.db, leased).await, 8, "the whole batch is still held by the dead replica");

    // The next replica takes the link once the lease runs out and delivers every event, in order:
    // those the dead one had sent go again (at least once), under the same delivery ids.
    sink.set_mode(SinkMode::Accept);
    let _next = instance(&own_clones(&app.settings));
    let ids = event_ids(&app, &app_id, &repository_id).await;
    assert_eq!(ids.len(), 8);
    let received = sink.wait_for(before.len() + 8, Duration::from_secs(60)).await;
    let sent: Vec<String> = received.iter().filter_map(|r| r.delivery().map(str::to_owned)).collect();
    assert_eq!(sent[..before.len()], ids[..before.len()], "the dead replica sent the batch's first events, in order");
    assert_eq!(sent[before.len()..], ids[..], "the next replica sent every event once, in order");
    assert!(received.iter().all(|r| r.signature_valid(crate::SIGNING_KEY)));
    let recorded = "SELECT count(*) AS n FROM docora.events WHERE status = 'delivered' AND attempts = 1 \
                    AND lease_until IS NULL";
    crate::eventually_count(&app.db, recorded, 8).await;
    let link = "SELECT count(*) AS n FROM docora.app_repositories l WHERE status = 'synced' \
                AND delivered_seq = (SELECT max(seq) FROM docora.events)";
    assert_eq!(count(&app.db, link).await, 1, "the link's cursor is at its last event");
}
