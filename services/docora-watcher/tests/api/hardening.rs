//! Bad input on every text field (NUL and other control characters: a 4xx naming the field,
//! never a 5xx), a wrong method on every single-method path (405 with `Allow`), and webhook
//! targets that are private however they are written, refused at onboarding.

use reqwest::Method;
use serde_json::{Value, json};
use testkit::bad_input::{self, assert_handled};

use crate::TestApp;
use crate::admin::{PASSWORD, logged_in};

async fn with_admin() -> TestApp {
    let hash = auth::password::hash(PASSWORD).expect("hash");
    TestApp::spawn_with(move |env| env.with("ADMIN_USERNAME", "root").with("ADMIN_PASSWORD_HASH", hash)).await
}

fn new_app(field: &str, value: &str) -> Value {
    let mut app = json!({
        "app_name": "Reader", "base_url": "https://hooks.example.com/docora", "email": "dev@example.com",
        "website": "https://example.com", "description": "reads our docs", "client_auth_key": "0123456789abcdef-key"
    });
    app[field] = json!(value);
    app
}

#[tokio::test]
async fn private_webhook_hosts_are_refused_at_onboarding_however_written() {
    let app = with_admin().await;
    let (admin, _) = logged_in(&app).await;
    for host in [
        "127.1",
        "2130706433",
        "0x7f000001",
        "0177.0.0.1",
        "localhost.",
        "LOCALHOST",
        "hooks.localhost",
        "10.1",
        "[::ffff:127.0.0.1]",
        "169.254.169.254",
    ] {
        let base_url = format!("https://{host}/docora");
        let res = admin.post_json("/admin/api/apps", &new_app("base_url", &base_url)).await;
        assert_eq!(res.status, 422, "{base_url}: {}", res.text);
        assert!(res.error().starts_with(&format!("base_url {base_url:?}: ")), "{}", res.text);
        assert!(res.error().contains("private"), "{}", res.text);
    }
    let res = admin.post_json("/admin/api/apps", &new_app("base_url", "https://hooks.example.com/docora")).await;
    assert_eq!(res.status, 201, "{}", res.text);
    assert_eq!(crate::count(&app.db, "SELECT count(*) AS n FROM docora.apps").await, 1);
}

#[tokio::test]
async fn control_characters_in_any_text_field_never_give_a_server_error() {
    let app = with_admin().await;
    let (admin, _) = logged_in(&app).await;
    let (app_id, client) = app.app("Reader").await;
    let anonymous = app.anonymous();
    for bad in bad_input::all() {
        let mut cases = vec![
            (
                "admin login",
                "username",
                anonymous.post_json("/admin/api/login", &json!({"username": bad, "password": PASSWORD})).await,
            ),
            (
                "admin login",
                "password",
                anonymous.post_json("/admin/api/login", &json!({"username": "root", "password": bad})).await,
            ),
            (
                "register",
                // The contract's message: `Invalid GitHub URL format`.
                if bad.contains('\0') { "github_url" } else { "GitHub URL" },
                client
                    .post_json("/api/repositories", &json!({"github_url": format!("https://github.com/a/{bad}")}))
                    .await,
            ),
            (
                "register",
                "github_token",
                client
                    .post_json(
                        "/api/repositories",
                        &json!({"github_url": "https://github.com/a/b", "github_token": bad}),
                    )
                    .await,
            ),
            (
                "update token",
                "github_token",
                client.patch_json("/api/repositories/repo_0123/token", &json!({"github_token": bad})).await,
            ),
        ];
        for field in ["app_name", "base_url", "email", "website", "description", "client_auth_key"] {
            cases.push(("onboard", field, admin.post_json("/admin/api/apps", &new_app(field, bad)).await));
        }
        for param in ["app_id", "repository_id", "status", "event", "path_prefix"] {
            let path = format!("/admin/api/deliveries?{param}={}", bad_input::encode(bad));
            cases.push(("deliveries", param, admin.get(&path).await));
        }
        for (what, field, res) in &cases {
            assert_handled(res, what, field, bad);
        }
        let segment = bad_input::encode(bad);
        for (method, path) in [
            (Method::DELETE, format!("/api/repositories/{segment}")),
            (Method::DELETE, format!("/admin/api/apps/{segment}")),
            (Method::POST, format!("/admin/api/apps/{segment}/token")),
            (Method::POST, format!("/admin/api/apps/{segment}/breaker/reset")),
            (Method::POST, format!("/admin/api/apps/{app_id}/repositories/{segment}/retry")),
            (Method::GET, format!("/admin/api/deliveries/{segment}")),
        ] {
            let who = if path.starts_with("/api/") { &client } else { &admin };
            let res = who.send(who.request(method.clone(), &path)).await;
            assert_handled(&res, &format!("{method} {path}"), "path parameter", bad);
        }
    }
    // Names, addresses and URLs refuse control characters (descriptions and keys are free text).
    let sql = "SELECT count(*) AS n FROM docora.apps WHERE app_name ~ '[[:cntrl:]]' OR base_url ~ '[[:cntrl:]]' \
               OR email ~ '[[:cntrl:]]' OR website ~ '[[:cntrl:]]'";
    assert_eq!(crate::count(&app.db, sql).await, 0);
}

#[tokio::test]
async fn a_wrong_method_answers_405_with_allow_on_every_path() {
    let app = TestApp::spawn().await;
    let client = app.anonymous();
    let id = "550e8400-e29b-41d4-a716-446655440000";
    for (method, path, allow) in [
        (Method::GET, "/api/repositories".to_owned(), "POST"),
        (Method::GET, "/api/repositories/repo_1".to_owned(), "DELETE"),
        (Method::GET, "/api/repositories/repo_1/token".to_owned(), "PATCH"),
        (Method::GET, "/api/github/push".to_owned(), "POST"),
        (Method::GET, "/admin/api/login".to_owned(), "POST"),
        (Method::GET, "/admin/api/logout".to_owned(), "POST"),
        (Method::DELETE, "/admin/api/apps".to_owned(), "GET, POST"),
        (Method::GET, "/admin/api/apps/app_1".to_owned(), "DELETE"),
        (Method::GET, "/admin/api/apps/app_1/token".to_owned(), "POST"),
        (Method::GET, "/admin/api/apps/app_1/breaker/reset".to_owned(), "POST"),
        (Method::GET, "/admin/api/apps/app_1/repositories/repo_1/retry".to_owned(), "POST"),
        (Method::POST, "/admin/api/deliveries".to_owned(), "GET"),
        (Method::DELETE, format!("/admin/api/deliveries/{id}"), "GET"),
        (Method::GET, format!("/admin/api/deliveries/{id}/redeliver"), "POST"),
        (Method::POST, "/admin/api/queue".to_owned(), "GET"),
        (Method::POST, "/admin/api/overview".to_owned(), "GET"),
        // The console's pages, as its JSON API.
        (Method::POST, "/admin".to_owned(), "GET"),
        (Method::GET, "/admin/logout".to_owned(), "POST"),
        (Method::DELETE, "/admin/queue".to_owned(), "GET"),
        (Method::GET, format!("/admin/deliveries/{id}/redeliver"), "POST"),
    ] {
        let res = client.send(client.request(method.clone(), &path)).await;
        assert_eq!(res.status, 405, "{method} {path}: {}", res.text);
        assert_eq!(res.headers["allow"], allow, "{method} {path}");
        assert_eq!(res.error(), format!("method {method} is not allowed on {path} (allowed: {allow})"));
    }
}
