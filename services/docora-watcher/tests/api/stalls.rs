//! Never stall, never fail silently: names that are not UTF-8, a scan the database refuses, a
//! default branch renamed on GitHub, an empty repository, the circuit after its cooldown and a
//! link's error after a later success, each against real git repositories.

use std::os::unix::ffi::OsStrExt;

use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use testkit::{Client, WebhookSink};

use crate::delivery::drain;
use crate::scan::{Fixture, fixture, fixture_with};
use crate::{count, execute, str_of};
use docora_watcher::deliver::Delivered;
use docora_watcher::scan::ScanOutcome;

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Writes a file whose name is any bytes into the repository's work tree.
fn write_raw(f: &Fixture, name: &[u8], content: &[u8]) {
    let path = f.repo.work_dir().join(std::ffi::OsStr::from_bytes(name));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("folder");
    }
    std::fs::write(path, content).expect("write");
}

/// Scans the repository `id` now (and nothing else).
async fn scan_only(f: &Fixture, id: &str) -> ScanOutcome {
    execute(
        &f.app.db,
        &format!(
            "UPDATE docora.repositories SET next_scan_at = \
             CASE WHEN id = '{id}' THEN now() ELSE now() + interval '1 hour' END"
        ),
    )
    .await;
    let claimed = f.scanner.claim().await.expect("claim").expect("the repository is due");
    assert_eq!(claimed.id, id);
    f.scanner.scan(&claimed).await.expect("scan")
}

/// The repository as the admin API lists it under the fixture's app.
async fn admin_view(f: &Fixture, admin: &Client) -> Value {
    let apps = admin.get("/admin/api/apps").await;
    assert_eq!(apps.status, 200, "{}", apps.text);
    let app = apps.body["items"]
        .as_array()
        .and_then(|apps| apps.iter().find(|a| a["app_id"] == f.app_id.as_str()))
        .cloned()
        .expect("the app is listed");
    app["repositories"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["repository_id"] == f.repository_id.as_str()))
        .cloned()
        .expect("the repository is listed")
}

#[tokio::test]
async fn names_that_are_not_utf8_are_kept_apart_and_reach_the_app_with_their_bytes() {
    let sink = WebhookSink::start().expect("sink");
    let f = fixture_with("5", &format!("{}/hooks", sink.url())).await;
    let deliverer =
        f.app.settings.deliverer(service_kit::db::pool(&f.app.settings.database).expect("pool")).expect("deliverer");
    // Two Latin-1 names that one lossy conversion made the same string, a UTF-8 name that reads
    // like the first one's text form, and a folder whose name is not UTF-8.
    let names: [(&[u8], &[u8], &str); 4] = [
        (b"r\xe9sum\xe9.txt", b"one", "r\\xe9sum\\xe9.txt"),
        (b"r\xe8sum\xe8.txt", b"two", "r\\xe8sum\\xe8.txt"),
        (b"r\\xe9sum\\xe9.txt", b"three", "r\\xe9sum\\xe9.txt"),
        (b"d\xff\\x/caf\xc3\xa9.md", b"four", "d\\xff\\\\x/caf\u{e9}.md"),
    ];
    for (name, content, _) in names {
        write_raw(&f, name, content);
    }
    f.repo.commit("latin-1 names").expect("commit");

    let outcome = f.scan_now().await;
    assert!(matches!(outcome, ScanOutcome::Scanned { created: 7, events: 7, .. }), "{outcome:?}");
    assert_eq!(count(&f.app.db, "SELECT count(*) AS n FROM docora.repository_files").await, 7, "no name lost");
    assert_eq!(drain(&deliverer).await, vec![Delivered::Ok; 7]);
    let bodies: Vec<Value> = sink.received().iter().map(|r| r.json()).collect();
    for (name, content, text) in names {
        let utf8 = std::str::from_utf8(name).is_ok();
        let body = bodies
            .iter()
            .find(|b| b["file"]["path"] == text && b["file"].get("path_base64").is_some() != utf8)
            .unwrap_or_else(|| panic!("no create for {text}: {bodies:?}"));
        let mut expected = json!({"path": text, "sha": sha(content), "size": content.len(),
                                  "content": std::str::from_utf8(content).expect("text")});
        if !utf8 {
            expected["path_base64"] = json!(base64(name));
        }
        assert_eq!(body["file"], expected);
    }
    assert_eq!(
        count(&f.app.db, "SELECT count(*) AS n FROM docora.app_repositories WHERE status = 'synced'").await,
        1,
        "synced"
    );

    // A change to one, the other gone: an update and a delete, each naming its bytes.
    sink.clear();
    f.repo.remove("README.md");
    std::fs::remove_file(f.repo.work_dir().join(std::ffi::OsStr::from_bytes(b"r\xe8sum\xe8.txt"))).expect("rm");
    write_raw(&f, b"r\xe9sum\xe9.txt", b"one, edited");
    f.repo.commit("edit").expect("commit");
    let outcome = f.scan_now().await;
    assert!(matches!(outcome, ScanOutcome::Scanned { created: 0, updated: 1, deleted: 2, .. }), "{outcome:?}");
    assert_eq!(drain(&deliverer).await, vec![Delivered::Ok; 3]);
    let bodies: Vec<Value> = sink.received().iter().map(|r| r.json()).collect();
    assert_eq!(bodies[0]["file"], json!({"path": "README.md", "sha": sha(b"# Docs\n")}), "deletes in path order");
    assert_eq!(
        bodies[1]["file"],
        json!({"path": "r\\xe8sum\\xe8.txt", "path_base64": base64(b"r\xe8sum\xe8.txt"), "sha": sha(b"two")})
    );
    assert_eq!(sink.received()[2].event(), "update");
    assert_eq!(bodies[2]["file"]["path"], "r\\xe9sum\\xe9.txt");
    assert_eq!(bodies[2]["file"]["path_base64"], base64(b"r\xe9sum\xe9.txt"));
    assert_eq!(bodies[2]["file"]["content"], "one, edited");

    // Said where receivers look: the OpenAPI document (and docs/docora-webhooks.md).
    let openapi = f.app.anonymous().get("/openapi.json").await.body;
    let description = openapi["info"]["description"].as_str().unwrap_or_default();
    assert!(description.contains("file.path_base64") && description.contains("\\xHH"), "{description}");
}

#[tokio::test]
async fn a_scan_the_database_refuses_is_a_failure_the_circuit_the_apps_and_the_admin_see() {
    let f = fixture("1").await;
    let (admin, _) = crate::admin::logged_in(&f.app).await;
    execute(
        &f.app.db,
        "CREATE FUNCTION docora.refuse_files() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'the test refuses this snapshot'; END $$",
    )
    .await;
    execute(
        &f.app.db,
        "CREATE TRIGGER refuse_files BEFORE INSERT ON docora.repository_files \
         FOR EACH ROW EXECUTE FUNCTION docora.refuse_files()",
    )
    .await;

    let outcome = f.scan_now().await;
    let ScanOutcome::Failed { error, circuit_opened: true } = &outcome else { panic!("{outcome:?}") };
    assert!(error.contains("the test refuses this snapshot"), "{error}");
    // Nothing half-written: no file, no create; one sync_failed that says the scan failed.
    assert_eq!(count(&f.app.db, "SELECT count(*) AS n FROM docora.repository_files").await, 0);
    let events = f.events(&f.app_id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "sync_failed");
    assert_eq!(events[0].2["error"]["type"], "scan_failure");
    assert!(!events[0].2["error"]["message"].as_str().unwrap_or_default().contains("test refuses"), "not to apps");
    assert_eq!(events[0].2["circuit_breaker"]["consecutive_failures"], 1);
    // Not running: the lease is gone, the circuit is open, the admin sees why.
    let queue = admin.get("/admin/api/queue").await.body;
    assert_eq!((queue["scans_running"].as_i64(), queue["circuits_open"].as_i64()), (Some(0), Some(1)), "{queue}");
    let seen = admin_view(&f, &admin).await;
    assert_eq!(seen["consecutive_failures"], 1);
    assert!(str_of(&seen, "last_error").contains("could not be recorded"), "{seen}");

    // Once the database takes it, the next scan (after the cooldown) records everything.
    execute(&f.app.db, "DROP TRIGGER refuse_files ON docora.repository_files").await;
    execute(&f.app.db, "UPDATE docora.repositories SET circuit_open_until = now() - interval '1 second'").await;
    let outcome = f.scan_now().await;
    assert!(matches!(outcome, ScanOutcome::Scanned { created: 3, .. }), "{outcome:?}");
    let seen = admin_view(&f, &admin).await;
    assert_eq!((seen["consecutive_failures"].as_i64(), &seen["last_error"]), (Some(0), &Value::Null), "{seen}");
}

#[tokio::test]
async fn a_default_branch_renamed_on_github_is_followed_with_only_the_difference() {
    let f = fixture("1").await;
    assert!(matches!(f.scan_now().await, ScanOutcome::Scanned { created: 3, .. }));
    let github_id = count(&f.app.db, "SELECT github_repo_id AS n FROM docora.repositories").await;
    let asked = || f.app.github.calls_to("/repos/octo/docs");
    let asked_before = asked();

    // main -> develop on GitHub, main deleted, and a commit on develop.
    f.repo.set_default_branch("develop").expect("develop");
    f.repo.git(&["push", "-q", "origin", ":refs/heads/main"]).expect("main deleted");
    f.app.github.set_default_branch(u64::try_from(github_id).expect("id"), "develop");
    f.repo.write("guide/intro.md", b"Hello from develop").write("CHANGELOG.md", b"- develop\n");
    let develop = f.repo.commit("on develop").expect("commit");

    let outcome = f.scan_now().await;
    assert!(
        matches!(&outcome, ScanOutcome::Scanned { commit, created: 1, updated: 1, deleted: 0, events: 2 } if *commit == develop),
        "{outcome:?}"
    );
    let events = f.events(&f.app_id).await;
    let latest: Vec<(&str, &str)> =
        events[3..].iter().map(|(e, p, _)| (e.as_str(), p.as_deref().unwrap_or_default())).collect();
    assert_eq!(latest, [("create", "CHANGELOG.md"), ("update", "guide/intro.md")], "the difference, not a re-send");
    assert_eq!(
        count(&f.app.db, "SELECT count(*) AS n FROM docora.repositories WHERE default_branch = 'develop' AND consecutive_failures = 0").await,
        1
    );
    assert_eq!(asked(), asked_before, "the repository's HEAD said it: no API call");

    // From now on develop is scanned directly.
    assert_eq!(f.scan_now().await, ScanOutcome::Unchanged { commit: develop });
    assert_eq!(count(&f.app.db, "SELECT count(*) AS n FROM docora.events WHERE event = 'sync_failed'").await, 0);
}

#[tokio::test]
async fn when_the_repository_cannot_say_its_default_branch_githubs_api_does() {
    let f = fixture("1").await;
    f.scan_now().await;
    let github_id = count(&f.app.db, "SELECT github_repo_id AS n FROM docora.repositories").await;
    // main deleted under the repository's HEAD (which names no branch now); only the API knows.
    f.repo.switch_branch("develop").expect("develop");
    f.repo.write("guide/intro.md", b"Hello from develop");
    let develop = f.repo.commit("on develop").expect("commit");
    let deleted =
        f.git.git_command().current_dir(f.repo.bare_dir()).args(["update-ref", "-d", "refs/heads/main"]).status();
    assert!(deleted.expect("git").success(), "main deleted");
    f.app.github.set_default_branch(u64::try_from(github_id).expect("id"), "develop");
    let asked_before = f.app.github.calls_to("/repos/octo/docs");

    let outcome = f.scan_now().await;
    assert!(
        matches!(&outcome, ScanOutcome::Scanned { commit, created: 0, updated: 1, deleted: 0, events: 1 } if *commit == develop),
        "{outcome:?}"
    );
    assert_eq!(f.app.github.calls_to("/repos/octo/docs"), asked_before + 1, "asked GitHub once");
    assert_eq!(
        count(&f.app.db, "SELECT count(*) AS n FROM docora.repositories WHERE default_branch = 'develop'").await,
        1
    );
}

#[tokio::test]
async fn a_default_branch_changed_while_the_old_one_stays_is_followed_at_the_next_check() {
    let f = fixture("1").await;
    f.scan_now().await;
    // develop becomes the default (the repository's HEAD), main stays and keeps its commit.
    f.repo.set_default_branch("develop").expect("develop");
    f.repo.remove("img/logo.png");
    let develop = f.repo.commit("on develop").expect("commit");
    let main = f.repo.git(&["rev-parse", "main"]).expect("main");
    assert_eq!(f.scan_now().await, ScanOutcome::Unchanged { commit: main }, "checked an hour after registration");

    execute(&f.app.db, "UPDATE docora.repositories SET branch_checked_at = now() - interval '61 minutes'").await;
    let outcome = f.scan_now().await;
    assert!(
        matches!(&outcome, ScanOutcome::Scanned { commit, created: 0, updated: 0, deleted: 1, events: 1 } if *commit == develop),
        "{outcome:?}"
    );
    let checked = "SELECT count(*) AS n FROM docora.repositories WHERE default_branch = 'develop' \
                   AND branch_checked_at > now() - interval '1 minute'";
    assert_eq!(count(&f.app.db, checked).await, 1);
    assert_eq!(f.app.github.calls_to("/repos/octo/docs"), 1, "asked git, not GitHub's API (only at registration)");
}

#[tokio::test]
async fn a_push_naming_a_new_default_branch_moves_the_scans_to_it() {
    let f = crate::scan::fixture_env("1", "https://hooks.example.com/docora", |env| {
        env.with("GITHUB_WEBHOOK_SECRET", "push-secret")
    })
    .await;
    f.scan_now().await;
    let github_id = count(&f.app.db, "SELECT github_repo_id AS n FROM docora.repositories").await;
    // develop becomes the default while main stays: only GitHub says so.
    f.repo.set_default_branch("develop").expect("develop");
    f.repo.write("develop.md", b"d");
    let develop = f.repo.commit("on develop").expect("commit");
    execute(&f.app.db, "UPDATE docora.repositories SET next_scan_at = now() + interval '1 hour'").await;

    let body = json!({"ref": "refs/heads/develop",
                      "repository": {"id": github_id, "full_name": "octo/docs", "default_branch": "develop"}})
    .to_string()
    .into_bytes();
    let signature = {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<Sha256>::new_from_slice(b"push-secret").expect("key");
        mac.update(&body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    };
    let res = f
        .app
        .anonymous()
        .with_header("X-Hub-Signature-256", &signature)
        .with_header("X-GitHub-Event", "push")
        .send_raw(reqwest::Method::POST, "/api/github/push", "application/json", body)
        .await;
    assert_eq!(res.status, 202, "{}", res.text);
    assert_eq!(res.body, json!({"scheduled": true}));
    let claimed = f.scanner.claim().await.expect("claim").expect("due at once");
    let outcome = f.scanner.scan(&claimed).await.expect("scan");
    assert!(
        matches!(&outcome, ScanOutcome::Scanned { commit, created: 1, events: 1, .. } if *commit == develop),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn an_empty_repository_is_empty_until_its_first_commit_which_is_delivered_next() {
    let f = fixture("1").await;
    let (owner_id, _) = f.app.github.add_user("newco");
    f.app.github.add_repo(owner_id, "fresh", false);
    let fresh = f.git.create_repo("newco", "fresh").expect("repo");
    let res = f.client.post_json("/api/repositories", &json!({"github_url": "https://github.com/newco/fresh"})).await;
    assert_eq!(res.status, 201, "{}", res.text);
    let id = str_of(&res.body, "repository_id").to_owned();

    for _ in 0..2 {
        assert_eq!(scan_only(&f, &id).await, ScanOutcome::Empty);
    }
    let state = format!(
        "SELECT count(*) AS n FROM docora.repositories WHERE id = '{id}' AND consecutive_failures = 0 \
         AND circuit_open_until IS NULL AND last_error IS NULL AND last_commit_sha IS NULL AND scan_lease_until IS NULL"
    );
    assert_eq!(count(&f.app.db, &state).await, 1, "not failing");
    assert_eq!(count(&f.app.db, "SELECT count(*) AS n FROM docora.events").await, 0, "no sync_failed");
    assert_eq!(f.app.github.calls_to("/repos/newco/fresh"), 1, "only at registration: git said it is empty");
    let link = format!(
        "SELECT count(*) AS n FROM docora.app_repositories WHERE repository_id = '{id}' \
         AND status = 'synced' AND last_error IS NULL"
    );
    assert_eq!(count(&f.app.db, &link).await, 1, "nothing to deliver: in sync");

    fresh.write("hello.md", b"first").commit("first").expect("commit");
    let outcome = scan_only(&f, &id).await;
    assert!(matches!(outcome, ScanOutcome::Scanned { created: 1, events: 1, .. }), "{outcome:?}");
    let created = format!(
        "SELECT count(*) AS n FROM docora.events WHERE repository_id = '{id}' AND event = 'create' \
         AND path = 'hello.md' AND commit_sha = '{}'",
        fresh.head()
    );
    assert_eq!(count(&f.app.db, &created).await, 1);
}

#[tokio::test]
async fn after_the_cooldown_one_trial_scan_runs_and_its_failure_opens_the_circuit_again() {
    let f = fixture("2").await;
    let (admin, _) = crate::admin::logged_in(&f.app).await;
    f.git.set_failing(true);
    assert!(matches!(f.scan_now().await, ScanOutcome::Failed { circuit_opened: false, .. }));
    assert!(matches!(f.scan_now().await, ScanOutcome::Failed { circuit_opened: true, .. }));
    let fetches = || f.git.requests().iter().filter(|r| r.path.ends_with("/info/refs")).count();
    let fetched = fetches();
    let open = "SELECT count(*) AS n FROM docora.repositories WHERE circuit_open_until > now()";

    for failures in 3..6 {
        // Open: nothing is claimed, due or not.
        execute(&f.app.db, "UPDATE docora.repositories SET next_scan_at = now()").await;
        assert!(f.scanner.claim().await.expect("claim").is_none());
        // The cooldown ends: one trial (a second claim finds it taken), which fails.
        execute(&f.app.db, "UPDATE docora.repositories SET circuit_open_until = now() - interval '1 second'").await;
        let page = admin.get("/admin/apps").await;
        assert!(page.text.contains("half-open: one trial scan next"), "{}", page.text);
        let trial = f.scanner.claim().await.expect("claim").expect("the trial");
        assert!(f.scanner.claim().await.expect("claim").is_none(), "one trial at a time");
        let outcome = f.scanner.scan(&trial).await.expect("scan");
        assert!(matches!(outcome, ScanOutcome::Failed { circuit_opened: true, .. }), "{outcome:?}");
        assert_eq!(count(&f.app.db, open).await, 1, "open again");
        let counted = format!("SELECT count(*) AS n FROM docora.repositories WHERE consecutive_failures = {failures}");
        assert_eq!(count(&f.app.db, &counted).await, 1);
    }
    assert_eq!(fetches(), fetched + 3, "one fetch per cooldown");
    let sync_failed = "SELECT count(*) AS n FROM docora.events WHERE event = 'sync_failed'";
    assert_eq!(count(&f.app.db, sync_failed).await, 1, "the app was told once");

    // A trial that succeeds closes it.
    f.git.set_failing(false);
    execute(&f.app.db, "UPDATE docora.repositories SET circuit_open_until = now() - interval '1 second'").await;
    assert!(matches!(f.scan_now().await, ScanOutcome::Scanned { .. }));
    let closed =
        "SELECT count(*) AS n FROM docora.repositories WHERE consecutive_failures = 0 AND circuit_open_until IS NULL";
    assert_eq!(count(&f.app.db, closed).await, 1);
}

#[tokio::test]
async fn a_links_error_goes_with_the_next_successful_sync() {
    let f = fixture("1").await;
    let (admin, _) = crate::admin::logged_in(&f.app).await;
    f.git.set_failing(true);
    assert!(matches!(f.scan_now().await, ScanOutcome::Failed { circuit_opened: true, .. }));
    let seen = admin_view(&f, &admin).await;
    assert!(seen["last_error"].is_string(), "{seen}");

    f.git.set_failing(false);
    execute(&f.app.db, "UPDATE docora.repositories SET circuit_open_until = now() - interval '1 second'").await;
    assert!(matches!(f.scan_now().await, ScanOutcome::Scanned { .. }));
    let seen = admin_view(&f, &admin).await;
    assert_eq!(seen["last_error"], Value::Null, "{seen}");
    assert_eq!(seen["consecutive_failures"], 0);
    let page = admin.get("/admin/apps").await;
    assert_eq!(page.status, 200);
    assert!(!page.text.contains("git failed"), "the dashboard shows no error: {}", page.text);
}

#[tokio::test]
async fn end_to_end_the_workers_report_a_refused_scan_then_deliver_names_that_are_not_utf8() {
    let sink = WebhookSink::start().expect("sink");
    let git = testkit::GitServer::start().expect("git server");
    let app = crate::replicas::live_app(&git, |env| {
        env.with("CIRCUIT_THRESHOLD", "1")
            .with("SCAN_WORKERS", "1")
            .with("DELIVERY_WORKERS", "1")
            .with("WORKER_POLL_MILLIS", "50")
    })
    .await;
    execute(
        &app.db,
        "CREATE FUNCTION docora.refuse_files() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'the test refuses this snapshot'; END $$",
    )
    .await;
    execute(
        &app.db,
        "CREATE TRIGGER refuse_files BEFORE INSERT ON docora.repository_files \
         FOR EACH ROW EXECUTE FUNCTION docora.refuse_files()",
    )
    .await;
    let (owner_id, _) = app.github.add_user("octo");
    app.github.add_repo(owner_id, "latin", false);
    let repo = git.create_repo("octo", "latin").expect("repo");
    for (name, content) in [(&b"r\xe9sum\xe9.txt"[..], &b"e9"[..]), (b"r\xe8sum\xe8.txt", b"e8")] {
        std::fs::write(repo.work_dir().join(std::ffi::OsStr::from_bytes(name)), content).expect("write");
    }
    repo.commit("latin-1").expect("commit");
    let (_, client) = app.app_at("reader", &sink.url()).await;
    let res = client.post_json("/api/repositories", &json!({"github_url": "https://github.com/octo/latin"})).await;
    assert_eq!(res.status, 201, "{}", res.text);

    // The refused scan reaches the app as sync_failed, and nothing is left running.
    let received = sink.wait_for(1, std::time::Duration::from_secs(20)).await;
    assert_eq!(received[0].event(), "sync_failed");
    assert_eq!(received[0].json()["error"]["type"], "scan_failure");
    let running = "SELECT count(*) AS n FROM docora.repositories WHERE scan_lease_until > now()";
    assert_eq!(count(&app.db, running).await, 0);

    // Accepted again: both names arrive, each with its bytes.
    execute(&app.db, "DROP TRIGGER refuse_files ON docora.repository_files").await;
    execute(&app.db, "UPDATE docora.repositories SET circuit_open_until = now(), next_scan_at = now()").await;
    let received = sink.wait_for(3, std::time::Duration::from_secs(20)).await;
    let mut creates: Vec<(String, String)> = received[1..]
        .iter()
        .map(|r| {
            let body = r.json();
            (str_of(&body["file"], "path_base64").to_owned(), str_of(&body["file"], "content").to_owned())
        })
        .collect();
    creates.sort();
    assert_eq!(
        creates,
        [(base64(b"r\xe8sum\xe8.txt"), "e8".to_owned()), (base64(b"r\xe9sum\xe9.txt"), "e9".to_owned())]
    );
    let synced = "SELECT count(*) AS n FROM docora.app_repositories WHERE status = 'synced' AND last_error IS NULL";
    crate::eventually_count(&app.db, synced, 1).await;
    assert_eq!(count(&app.db, running).await, 0);
}
