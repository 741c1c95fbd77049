use serde_json::json;
use testkit::github::Mode;

use crate::{TestApp, str_of};

#[tokio::test]
async fn a_missing_empty_or_rejected_token_is_401() {
    let app = TestApp::spawn().await;
    let res = app.anonymous().get("/api/v1/tags").await;
    assert_eq!(res.status, 401);
    assert_eq!(res.body, json!({"error": "missing X-Github-Token header: send your GitHub token in it"}));
    assert_eq!(app.as_token("   ").get("/api/v1/tags").await.status, 401);
    let res = app.as_token("ghp_not_a_real_token").get("/api/v1/tags").await;
    assert_eq!(res.status, 401);
    assert_eq!(res.body, json!({"error": "GitHub rejected the token in X-Github-Token"}));
    assert_eq!(app.as_token("ghp_not_a_real_token").get("/api/v1/tags").await.status, 401);
    assert_eq!(app.github.calls_to("/user"), 1, "a refused token is remembered, not asked again at once");
}

#[tokio::test]
async fn first_sight_creates_the_user_and_the_resolution_is_cached() {
    let app = TestApp::spawn().await;
    let (gh_id, alice) = app.user("alice");
    for _ in 0..5 {
        assert_eq!(alice.get("/api/v1/tags").await.status, 200);
    }
    assert_eq!(app.github.calls_to("/user"), 1, "GitHub is asked once, then the cache answers");
    let users = alice.get("/api/v1/users").await.body;
    assert_eq!(users.as_array().map(Vec::len), Some(1));
    assert_eq!(users[0]["github_user_id"], gh_id.to_string());
}

#[tokio::test]
async fn a_new_token_for_a_known_github_user_replaces_the_old_one() {
    let app = TestApp::spawn_with(|env| env.with("TOKEN_CACHE_TTL_SECS", "0")).await;
    let (gh_id, old_token) = app.github.add_user("alice");
    let old = app.as_token(&old_token);
    let tag = crate::create_tag(&old, "mine").await;
    let before = old.get("/api/v1/users").await.body[0].clone();

    let new_token = app.github.add_token(gh_id);
    app.github.revoke(&old_token);
    let new = app.as_token(&new_token);
    let tags = new.get("/api/v1/tags").await;
    assert_eq!(tags.body, json!([tag]), "same giistr user, same tags");
    let after = new.get("/api/v1/users").await.body;
    assert_eq!(after.as_array().map(Vec::len), Some(1), "no second user");
    assert_eq!(after[0]["id"], before["id"]);
    assert_ne!(after[0]["token_id"], before["token_id"], "the stored token changed");
    assert_eq!(old.get("/api/v1/tags").await.status, 401, "the revoked token is refused");

    // The token itself is nowhere in the database: only its digest.
    let mut conn = app.db.conn().await.expect("db");
    let sql = format!(
        "SELECT count(*) AS n FROM giistr.users u WHERE u::text LIKE '%{new_token}%' OR u::text LIKE '%{old_token}%'"
    );
    assert_eq!(crate::count(&mut conn, &sql).await, 0);
    assert_ne!(str_of(&after[0], "token_id"), new_token);
}

#[tokio::test]
async fn github_rate_limited_or_failing_is_503_for_an_unknown_token() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.user("alice");
    app.github.set_mode(Mode::RateLimited);
    let res = alice.get("/api/v1/tags").await;
    assert_eq!(res.status, 503, "{}", res.text);
    assert!(res.error().contains("rate limit"), "{}", res.text);
    app.github.set_mode(Mode::Failing);
    let res = alice.get("/api/v1/tags").await;
    assert_eq!(res.status, 503, "{}", res.text);
    assert!(res.error().contains("GitHub"), "{}", res.text);
    app.github.set_mode(Mode::Normal);
    assert_eq!(alice.get("/api/v1/tags").await.status, 200);
}

#[tokio::test]
async fn github_unreachable_is_503_but_a_known_token_keeps_working() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let dead_url = format!("http://{}", dead.local_addr().expect("addr"));
    drop(dead); // nothing listens there any more
    let app = TestApp::spawn_with(|env| env.with("TOKEN_CACHE_TTL_SECS", "0")).await;
    let (_, token) = app.github.add_user("alice");
    let res = app.as_token(&token).get("/api/v1/tags").await;
    assert_eq!(res.status, 200, "first sight through the working fake");

    let unreachable = TestApp::spawn_with(|env| env.with("GITHUB_API_URL", dead_url.clone())).await;
    let res = unreachable.as_token("ghp_whatever").get("/api/v1/tags").await;
    assert_eq!(res.status, 503, "{}", res.text);
    assert!(res.error().contains("GitHub is unreachable"), "{}", res.text);

    // Same database as `app`, GitHub gone: the stored token is trusted.
    app.github.set_mode(Mode::Failing);
    assert_eq!(app.as_token(&token).get("/api/v1/tags").await.status, 200);
    assert_eq!(app.as_token("ghp_never_seen").get("/api/v1/tags").await.status, 503);
}
