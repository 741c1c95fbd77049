//! The admin login and JSON API.

use serde_json::{Value, json};
use testkit::Client;

use crate::{TestApp, count, str_of};

pub const PASSWORD: &str = "a long admin password";

async fn with_admin() -> TestApp {
    let hash = auth::password::hash(PASSWORD).expect("hash");
    TestApp::spawn_with(move |env| env.with("ADMIN_USERNAME", "root").with("ADMIN_PASSWORD_HASH", hash)).await
}

/// Logs in and returns a client carrying the session cookie and CSRF token, and the raw cookie.
pub async fn logged_in(app: &TestApp) -> (Client, String) {
    let res = app.anonymous().post_json("/admin/api/login", &json!({"username": "root", "password": PASSWORD})).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let set_cookie = res.headers["set-cookie"].to_str().expect("cookie").to_owned();
    let pair = set_cookie.split(';').next().unwrap_or_default().to_owned();
    let client =
        app.anonymous().with_header("Cookie", &pair).with_header("X-CSRF-Token", str_of(&res.body, "csrf_token"));
    (client, set_cookie)
}

fn new_app(name: &str) -> Value {
    json!({
        "app_name": name, "base_url": "https://hooks.example.com/docora", "email": "dev@example.com",
        "website": "https://example.com", "description": "reads our docs", "client_auth_key": "0123456789abcdef-key"
    })
}

#[tokio::test]
async fn the_admin_logs_in_with_a_strict_session_cookie() {
    let app = with_admin().await;
    let wrong = app.anonymous().post_json("/admin/api/login", &json!({"username": "root", "password": "nope"})).await;
    assert_eq!(wrong.status, 401);
    let wrong_user =
        app.anonymous().post_json("/admin/api/login", &json!({"username": "admin", "password": PASSWORD})).await;
    assert_eq!(wrong_user.status, 401);

    let (admin, cookie) = logged_in(&app).await;
    for part in ["docora_admin=", "HttpOnly", "SameSite=Strict", "Path=/admin", "Max-Age=28800"] {
        assert!(cookie.contains(part), "{part} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP here: {cookie}");
    let behind_tls = app
        .anonymous()
        .with_header("X-Forwarded-Proto", "https")
        .post_json("/admin/api/login", &json!({"username": "root", "password": PASSWORD}))
        .await;
    assert!(behind_tls.headers["set-cookie"].to_str().unwrap_or_default().contains("; Secure"));
    // Only a digest of the session is stored.
    let token = cookie.split(';').next().and_then(|p| p.split_once('=')).map(|(_, v)| v.to_owned()).unwrap_or_default();
    assert_eq!(
        count(
            &app.db,
            &format!("SELECT count(*) AS n FROM docora.admin_sessions WHERE encode(token_digest, 'hex') = '{token}'")
        )
        .await,
        0
    );

    assert_eq!(admin.get("/admin/api/apps").await.status, 200);
    assert_eq!(app.anonymous().get("/admin/api/apps").await.status, 401);
    let logout = admin.post("/admin/api/logout").await;
    assert_eq!(logout.status, 204);
    assert!(logout.headers["set-cookie"].to_str().unwrap_or_default().contains("Max-Age=0"));
    assert_eq!(admin.get("/admin/api/apps").await.status, 401, "the session is gone");
}

#[tokio::test]
async fn state_changes_need_the_csrf_token() {
    let app = with_admin().await;
    let (admin, cookie) = logged_in(&app).await;
    let pair = cookie.split(';').next().unwrap_or_default();
    let no_csrf = app.anonymous().with_header("Cookie", pair);
    assert_eq!(no_csrf.get("/admin/api/apps").await.status, 200, "reads need no token");
    for res in [
        no_csrf.post_json("/admin/api/apps", &new_app("Reader")).await,
        no_csrf.with_header("X-CSRF-Token", "forged").post_json("/admin/api/apps", &new_app("Reader")).await,
        no_csrf.post("/admin/api/logout").await,
    ] {
        assert_eq!(res.status, 403, "{}", res.text);
    }
    assert_eq!(count(&app.db, "SELECT count(*) AS n FROM docora.apps").await, 0);
    assert_eq!(admin.post_json("/admin/api/apps", &new_app("Reader")).await.status, 201);
}

#[tokio::test]
async fn apps_are_onboarded_listed_rekeyed_and_deleted() {
    let app = with_admin().await;
    let (admin, _) = logged_in(&app).await;
    let created = admin.post_json("/admin/api/apps", &new_app("Reader")).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let app_id = str_of(&created.body, "app_id").to_owned();
    assert!(app_id.starts_with("app_") && app_id.len() == 4 + 32, "{app_id}");
    let token = str_of(&created.body, "token").to_owned();
    assert!(token.starts_with("docora_") && token.len() == 7 + 64);

    let (owner_id, _) = app.github.add_user("octo");
    app.github.add_repo(owner_id, "docs", false);
    let registered = app
        .as_token(&token)
        .post_json("/api/repositories", &json!({"github_url": "https://github.com/octo/docs"}))
        .await;
    assert_eq!(registered.status, 201, "{}", registered.text);

    let list = admin.get("/admin/api/apps").await;
    assert_eq!(list.status, 200, "{}", list.text);
    let listed = &list.body["items"][0];
    assert_eq!(listed["app_id"], app_id.as_str());
    assert_eq!(listed["app_name"], "Reader");
    assert_eq!(listed["repositories"][0]["github_url"], "https://github.com/octo/docs");
    assert_eq!(listed["repositories"][0]["status"], "pending");
    assert!(!list.text.contains(&token) && !list.text.contains("0123456789abcdef-key"), "no secrets in the list");

    let rekeyed = admin.post(&format!("/admin/api/apps/{app_id}/token")).await;
    assert_eq!(rekeyed.status, 200, "{}", rekeyed.text);
    let new_token = str_of(&rekeyed.body, "token").to_owned();
    let body = json!({"github_url": "https://github.com/octo/docs"});
    assert_eq!(app.as_token(&token).post_json("/api/repositories", &body).await.status, 401);
    assert_eq!(app.as_token(&new_token).post_json("/api/repositories", &body).await.status, 201);

    let with = |field: &str, value: Value| {
        let mut body = new_app("Reader 2");
        body[field] = value;
        body
    };
    for (field, value) in [
        ("app_name", json!("ab")),
        ("base_url", json!("http://hooks.example.com")),
        ("base_url", json!("https://10.0.0.7/hooks")),
        ("email", json!("not-an-email")),
        ("description", json!("x".repeat(501))),
        ("client_auth_key", json!("short")),
    ] {
        let res = admin.post_json("/admin/api/apps", &with(field, value)).await;
        assert_eq!(res.status, 422, "{field}: {}", res.text);
        assert!(res.error().contains(field), "{field}: {}", res.text);
    }

    assert_eq!(admin.delete(&format!("/admin/api/apps/{app_id}")).await.status, 204);
    assert_eq!(admin.delete(&format!("/admin/api/apps/{app_id}")).await.status, 404);
    assert_eq!(count(&app.db, "SELECT count(*) AS n FROM docora.repositories").await, 0, "nobody watches it any more");
    assert_eq!(app.as_token(&new_token).post_json("/api/repositories", &body).await.status, 401);
}

#[tokio::test]
async fn the_admin_login_is_off_without_a_hash_and_locks_after_failures() {
    let off = TestApp::spawn().await;
    let res = off.anonymous().post_json("/admin/api/login", &json!({"username": "admin", "password": "x"})).await;
    assert_eq!(res.status, 503, "{}", res.text);
    assert!(res.error().contains("ADMIN_PASSWORD_HASH"));

    let app = with_admin().await;
    for _ in 0..10 {
        assert_eq!(
            app.anonymous()
                .post_json("/admin/api/login", &json!({"username": "root", "password": "guess"}))
                .await
                .status,
            401
        );
    }
    let locked =
        app.anonymous().post_json("/admin/api/login", &json!({"username": "root", "password": PASSWORD})).await;
    assert_eq!(locked.status, 429, "{}", locked.text);
    assert!(locked.headers.contains_key("retry-after"));
}
