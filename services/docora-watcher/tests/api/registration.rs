//! Registering, unwatching and re-keying repositories.

use serde_json::json;
use testkit::github::Mode;

use crate::{TestApp, count, execute, str_of};

#[tokio::test]
async fn a_public_repository_is_registered_with_the_contract_body() {
    let app = TestApp::spawn().await;
    let (owner_id, _) = app.github.add_user("octo");
    app.github.add_repo(owner_id, "hello.world", false);
    let (app_id, client) = app.app("reader").await;

    let res =
        client.post_json("/api/repositories", &json!({"github_url": "https://github.com/octo/hello.world"})).await;
    assert_eq!(res.status, 201, "{}", res.text);
    let id = str_of(&res.body, "repository_id").to_owned();
    assert!(domain::ids::is_docora_repository_id(&id), "{id}");
    assert_eq!(res.body["github_url"], "https://github.com/octo/hello.world");
    assert_eq!(res.body["owner"], "octo");
    assert_eq!(res.body["name"], "hello.world");
    assert_eq!(res.body["is_private"], false);
    let created = str_of(&res.body, "created_at");
    assert!(
        created.ends_with('Z')
            && time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339).is_ok(),
        "{created}"
    );
    let mut keys: Vec<&String> = res.body.as_object().expect("object").keys().collect();
    keys.sort();
    assert_eq!(keys, ["created_at", "github_url", "is_private", "name", "owner", "repository_id"]);
    assert_eq!(count(&app.db, &format!("SELECT count(*) AS n FROM docora.app_repositories WHERE app_id = '{app_id}' AND repository_id = '{id}' AND needs_full_sync AND github_token_enc IS NULL")).await, 1);

    // The same repository under another spelling is the same repository.
    for url in ["https://github.com/octo/hello.world.git", "https://github.com/octo/hello.world/"] {
        let again = client.post_json("/api/repositories", &json!({"github_url": url})).await;
        assert_eq!(again.status, 201, "{}", again.text);
        assert_eq!(again.body["repository_id"], id.as_str());
    }
    assert_eq!(count(&app.db, "SELECT count(*) AS n FROM docora.repositories").await, 1);
}

#[tokio::test]
async fn bad_input_and_invisible_repositories_are_refused() {
    let app = TestApp::spawn().await;
    let (owner_id, owner_token) = app.github.add_user("octo");
    app.github.add_repo(owner_id, "secret", true);
    let (_, client) = app.app("reader").await;

    for (body, status) in [
        (json!({"github_url": "https://gitlab.com/octo/secret"}), 422),
        (json!({"github_url": "https://github.com/octo"}), 422),
        (json!({"github_url": "https://github.com/octo/secret", "github_token": "gho_nope"}), 422),
        (json!({}), 422),
        (json!({"github_url": 42}), 422),
        (json!({"github_url": "https://github.com/octo/missing"}), 404),
        (json!({"github_url": "https://github.com/octo/secret"}), 404),
        (json!({"github_url": "https://github.com/octo/secret", "github_token": "ghp_notarealtoken"}), 404),
    ] {
        let res = client.post_json("/api/repositories", &body).await;
        assert_eq!(res.status, status, "{body}: {}", res.text);
        assert!(!res.error().is_empty(), "{body}: a JSON error body");
    }
    let invalid = client.post_json("/api/repositories", &json!({"github_url": "https://gitlab.com/a/b"})).await;
    assert!(invalid.error().starts_with("Invalid GitHub URL format"), "{}", invalid.text);

    let private = client
        .post_json(
            "/api/repositories",
            &json!({"github_url": "https://github.com/octo/secret", "github_token": owner_token}),
        )
        .await;
    assert_eq!(private.status, 201, "{}", private.text);
    assert_eq!(private.body["is_private"], true);
    // The token is stored encrypted, never in clear.
    let clear = count(&app.db, &format!("SELECT count(*) AS n FROM docora.app_repositories WHERE position(convert_to('{owner_token}', 'UTF8') in github_token_enc) > 0")).await;
    assert_eq!(clear, 0);
    assert_eq!(
        count(&app.db, "SELECT count(*) AS n FROM docora.app_repositories WHERE github_token_enc IS NOT NULL").await,
        1
    );

    app.github.set_mode(Mode::Failing);
    let down = client
        .post_json(
            "/api/repositories",
            &json!({"github_url": "https://github.com/octo/secret", "github_token": owner_token}),
        )
        .await;
    assert_eq!(down.status, 503, "{}", down.text);
}

#[tokio::test]
async fn apps_share_a_repository_and_unwatch_it_on_their_own() {
    let app = TestApp::spawn().await;
    let (owner_id, _) = app.github.add_user("octo");
    app.github.add_repo(owner_id, "shared", false);
    let (_, first) = app.app("first").await;
    let (_, second) = app.app("second").await;
    let body = json!({"github_url": "https://github.com/octo/shared"});
    let a = first.post_json("/api/repositories", &body).await;
    let b = second.post_json("/api/repositories", &body).await;
    assert_eq!(a.body["repository_id"], b.body["repository_id"], "one repository, two watchers");
    let id = str_of(&a.body, "repository_id").to_owned();

    assert_eq!(first.delete(&format!("/api/repositories/{id}")).await.status, 204);
    assert_eq!(first.delete(&format!("/api/repositories/{id}")).await.status, 404, "no longer this app's");
    assert_eq!(
        count(&app.db, "SELECT count(*) AS n FROM docora.repositories").await,
        1,
        "still watched by the second app"
    );
    for bad in ["repo_123", "nope", "repo_0123456789ABCDEF01234567"] {
        let res = second.delete(&format!("/api/repositories/{bad}")).await;
        assert_eq!(res.status, 404, "{bad}: {}", res.text);
    }
    assert_eq!(second.delete(&format!("/api/repositories/{id}")).await.status, 204);
    assert_eq!(count(&app.db, "SELECT count(*) AS n FROM docora.repositories").await, 0, "nobody watches it any more");
}

#[tokio::test]
async fn re_registration_starts_over_and_closes_the_circuit() {
    let app = TestApp::spawn().await;
    let (owner_id, _) = app.github.add_user("octo");
    app.github.add_repo(owner_id, "repo", false);
    let (app_id, client) = app.app("reader").await;
    let body = json!({"github_url": "https://github.com/octo/repo"});
    let first = client.post_json("/api/repositories", &body).await;
    let id = str_of(&first.body, "repository_id").to_owned();
    execute(
        &app.db,
        &format!(
            "UPDATE docora.app_repositories SET needs_full_sync = false, status = 'failed' WHERE app_id = '{app_id}'"
        ),
    )
    .await;
    execute(&app.db, "UPDATE docora.repositories SET consecutive_failures = 5, circuit_open_until = now() + interval '30 minutes', next_scan_at = now() + interval '1 hour'").await;

    let again = client.post_json("/api/repositories", &body).await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(again.body["repository_id"], id.as_str());
    assert_eq!(
        count(
            &app.db,
            "SELECT count(*) AS n FROM docora.app_repositories WHERE needs_full_sync AND status = 'pending'"
        )
        .await,
        1
    );
    assert_eq!(count(&app.db, "SELECT count(*) AS n FROM docora.repositories WHERE consecutive_failures = 0 AND circuit_open_until IS NULL AND next_scan_at <= now()").await, 1);
}

#[tokio::test]
async fn a_new_token_is_checked_stored_and_resets_the_error_state() {
    let app = TestApp::spawn().await;
    let (owner_id, owner_token) = app.github.add_user("octo");
    let repo = app.github.add_repo(owner_id, "secret", true);
    let (helper_id, helper_token) = app.github.add_user("helper");
    let (_, stranger_token) = app.github.add_user("stranger");
    let (_, client) = app.app("reader").await;
    let res = client
        .post_json(
            "/api/repositories",
            &json!({"github_url": "https://github.com/octo/secret", "github_token": owner_token}),
        )
        .await;
    let id = str_of(&res.body, "repository_id").to_owned();
    let path = format!("/api/repositories/{id}/token");

    let refused = client.patch_json(&path, &json!({"github_token": stranger_token})).await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    assert_eq!(refused.error(), "Token cannot access this repository");
    assert_eq!(client.patch_json(&path, &json!({"github_token": "not-a-token"})).await.status, 422);
    assert_eq!(client.patch_json(&path, &json!({})).await.status, 422);

    app.github.grant(repo, helper_id);
    execute(&app.db, "UPDATE docora.repositories SET consecutive_failures = 5, circuit_open_until = now() + interval '30 minutes', last_error = 'auth failed'").await;
    let ok = client.patch_json(&path, &json!({"github_token": helper_token})).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.body, json!({"message": "Token updated successfully"}));
    assert_eq!(count(&app.db, "SELECT count(*) AS n FROM docora.repositories WHERE consecutive_failures = 0 AND circuit_open_until IS NULL AND last_error IS NULL").await, 1);
    let sealed_token: i64 =
        count(&app.db, "SELECT count(*) AS n FROM docora.app_repositories WHERE github_token_enc IS NOT NULL").await;
    assert_eq!(sealed_token, 1);

    let (_, other) = app.app("other").await;
    assert_eq!(other.patch_json(&path, &json!({"github_token": helper_token})).await.status, 404, "not this app's");
    assert_eq!(
        client.patch_json("/api/repositories/repo_nope/token", &json!({"github_token": helper_token})).await.status,
        404
    );
}

#[tokio::test]
async fn only_app_tokens_are_accepted_and_a_regenerated_token_replaces_the_old_one() {
    let app = TestApp::spawn().await;
    let body = json!({"github_url": "https://github.com/octo/repo"});
    for client in [
        app.anonymous(),
        app.as_token("docora_0000"),
        app.as_token("ghp_something"),
        app.anonymous().with_header("Authorization", "Basic eDp5"),
    ] {
        let res = client.post_json("/api/repositories", &body).await;
        assert_eq!(res.status, 401, "{}", res.text);
        assert!(!res.error().is_empty());
    }
    let (app_id, old) = app.app("reader").await;
    let pool = service_kit::db::pool(&app.settings.database).expect("pool");
    let mut conn = service_kit::db::conn(&pool).await.expect("connection");
    let token = docora_watcher::apps::regenerate_token(&mut conn, &app_id).await.expect("regenerates");
    drop(conn);
    pool.close();
    assert_eq!(old.post_json("/api/repositories", &body).await.status, 401, "the old token stops at once");
    let (owner_id, _) = app.github.add_user("octo");
    app.github.add_repo(owner_id, "repo", false);
    assert_eq!(app.as_token(&token).post_json("/api/repositories", &body).await.status, 201);
}

#[tokio::test]
async fn a_revoked_token_stops_scans_until_a_new_one_is_patched_in_then_changes_flow_again() {
    use std::time::Duration;
    let sink = testkit::WebhookSink::start().expect("sink");
    let git = testkit::GitServer::start().expect("git server");
    let app = crate::replicas::live_app(&git, |env| {
        env.with("SCAN_WORKERS", "1")
            .with("DELIVERY_WORKERS", "1")
            .with("SCAN_INTERVAL_SECS", "1")
            .with("CIRCUIT_THRESHOLD", "2")
    })
    .await;
    let (owner_id, old_token) = app.github.add_user("corp");
    app.github.add_repo(owner_id, "private", true);
    let repo = git.create_repo("corp", "private").expect("repo");
    repo.write("a.md", b"a").write("b.md", b"b").commit("first").expect("commit");
    git.set_private("corp", "private", true);
    git.allow_token("corp", "private", &old_token);
    let (_, client) = app.app_at("reader", &sink.url()).await;
    let res = client
        .post_json(
            "/api/repositories",
            &json!({"github_url": "https://github.com/corp/private", "github_token": old_token}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.text);
    let id = str_of(&res.body, "repository_id").to_owned();
    sink.wait_for(2, Duration::from_secs(30)).await;

    // The user revokes the token; the next commit cannot be fetched, and after two failed scans
    // the circuit opens and the app hears about it.
    git.revoke_token(&old_token);
    app.github.revoke(&old_token);
    repo.write("c.md", b"c").commit("second").expect("commit");
    let received = sink.wait_for(3, Duration::from_secs(30)).await;
    let failed = received[2].json();
    assert_eq!(received[2].event(), "sync_failed");
    assert_eq!(failed["error"]["type"], "git_failure");
    let message = failed["error"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("authentication failed"), "{message}");
    assert!(!received[2].body.windows(old_token.len()).any(|w| w == old_token.as_bytes()), "no token in it");
    assert_eq!(failed["circuit_breaker"]["status"], "open");
    assert_eq!(failed["circuit_breaker"]["consecutive_failures"], 2);
    let (admin, _) = crate::admin::logged_in(&app).await;
    let link = |apps: &serde_json::Value| apps["items"][0]["repositories"][0].clone();
    let broken = link(&admin.get("/admin/api/apps").await.body);
    assert!(broken["last_error"].as_str().unwrap_or_default().starts_with("authentication failed"), "{broken}");
    assert_eq!(broken["consecutive_failures"], 2);
    assert!(broken["circuit_open_until"].is_string(), "{broken}");

    // A new token: checked with GitHub, stored, the error state and circuit cleared, and a scan
    // runs at once (the circuit's cooldown is 30 minutes) with the change behind it.
    let new_token = app.github.add_token(owner_id);
    git.allow_token("corp", "private", &new_token);
    let patched =
        client.patch_json(&format!("/api/repositories/{id}/token"), &json!({"github_token": new_token})).await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    let cleared = link(&admin.get("/admin/api/apps").await.body);
    assert_eq!(cleared["last_error"], serde_json::Value::Null, "{cleared}");
    assert_eq!(cleared["consecutive_failures"], 0);
    assert_eq!(cleared["circuit_open_until"], serde_json::Value::Null);
    let received = sink.wait_for(4, Duration::from_secs(30)).await;
    assert_eq!(received[3].event(), "create");
    assert_eq!(received[3].json()["file"]["path"], "c.md");
    assert_eq!(received[3].json()["commit_sha"], repo.head());
    let scanned = format!("SELECT count(*) AS n FROM docora.repositories WHERE last_commit_sha = '{}'", repo.head());
    crate::eventually_count(&app.db, &scanned, 1).await;
}
