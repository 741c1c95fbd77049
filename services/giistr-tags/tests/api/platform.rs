//! What every service offers: probes, metrics, OpenAPI, JSON errors for unknown routes and
//! methods, request ids, CORS, body limits.

use reqwest::Method;
use serde_json::json;

use crate::TestApp;

#[tokio::test]
async fn probes_metrics_and_openapi_answer() {
    let app = TestApp::spawn().await;
    let client = app.anonymous();
    assert_eq!(client.get("/healthz").await.body, json!({"status": "ok"}));
    assert_eq!(client.get("/readyz").await.body, json!({"status": "ready"}));

    let (_, alice) = app.user("alice");
    alice.get("/api/v1/tags").await;
    let metrics = client.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .text
            .contains(r#"http_requests_total{service="giistr-tags",method="GET",route="/api/v1/tags",status="200"} 1"#),
        "{}",
        metrics.text
    );
    assert!(metrics.text.contains("http_request_duration_seconds_bucket"), "{}", metrics.text);

    let doc = client.get("/openapi.json").await;
    assert_eq!(doc.status, 200);
    let paths = doc.body["paths"].as_object().expect("paths");
    for path in [
        "/api/v1/user/{id}",
        "/api/v1/users",
        "/api/v1/tag",
        "/api/v1/tag/{id}",
        "/api/v1/tags",
        "/api/v1/repo",
        "/api/v1/repo/{id}",
        "/api/v1/repos",
        "/api/v1/tag/{tag_id}/repo/{repo_id}",
        "/api/v1/repo-tag-assoc/{id}",
        "/api/v1/tags/repo/{id}",
        "/api/v1/repos/tag/{id}",
    ] {
        assert!(paths.contains_key(path), "{path} missing from the OpenAPI document");
    }
}

#[tokio::test]
async fn a_lost_database_is_503_and_the_service_recovers() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.user("alice");
    // A live pooled connection and a cached token, so the request below reaches the database.
    assert_eq!(alice.get("/api/v1/tags").await.status, 200);
    use diesel_async::RunQueryDsl;
    let mut admin = app.db.admin_conn().await.expect("db");
    // Terminate the service's connections and forbid new ones.
    diesel::sql_query(format!("ALTER DATABASE \"{}\" ALLOW_CONNECTIONS false", app.db.name))
        .execute(&mut admin)
        .await
        .expect("alter");
    diesel::sql_query(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}' ",
        app.db.name
    ))
    .execute(&mut admin)
    .await
    .expect("terminate");
    let res = app.anonymous().get("/readyz").await;
    assert_eq!(res.status, 503, "{}", res.text);
    assert_eq!(res.body, json!({"error": "database is unreachable"}));
    assert_eq!(app.anonymous().get("/healthz").await.status, 200, "liveness does not touch the database");
    // The pooled connection was killed under the service; later calls cannot open a new one.
    for _ in 0..2 {
        let res = alice.get("/api/v1/tags").await;
        assert_eq!(res.status, 503, "{}", res.text);
        assert_eq!(res.body, json!({"error": "the database is unavailable; try again shortly"}));
    }
    diesel::sql_query(format!("ALTER DATABASE \"{}\" ALLOW_CONNECTIONS true", app.db.name))
        .execute(&mut admin)
        .await
        .expect("alter back");
    assert_eq!(alice.get("/api/v1/tags").await.status, 200, "back once the database is");
    assert_eq!(app.anonymous().get("/readyz").await.status, 200);
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.user("alice");
    let res = alice.get("/api/v1/nothing").await;
    assert_eq!(res.status, 404);
    assert_eq!(res.body, json!({"error": "no route for GET /api/v1/nothing"}));
    let res = alice.send_raw(Method::PATCH, "/api/v1/tag", "application/json", "{}").await;
    assert_eq!(res.status, 405);
    assert_eq!(res.headers["allow"], "POST, PUT");
    assert_eq!(res.body, json!({"error": "method PATCH is not allowed on /api/v1/tag (allowed: POST, PUT)"}));
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let app = TestApp::spawn_with(|env| env.with("JSON_BODY_LIMIT_BYTES", "1024")).await;
    let (_, alice) = app.user("alice");
    let big = format!(r#"{{"name": "{}"}}"#, "x".repeat(4096));
    let res = alice.send_raw(Method::POST, "/api/v1/tag", "application/json", big).await;
    assert_eq!(res.status, 413, "{}", res.text);
    assert!(res.error().contains("larger than the limit"), "{}", res.text);
}

#[tokio::test]
async fn request_ids_are_echoed_or_made() {
    let app = TestApp::spawn().await;
    let res = app.anonymous().with_header("X-Request-Id", "abc-123").get("/healthz").await;
    assert_eq!(res.headers["x-request-id"], "abc-123");
    let res = app.anonymous().get("/healthz").await;
    assert_eq!(res.headers["x-request-id"].len(), 36);
}

#[tokio::test]
async fn cors_lets_configured_origins_send_the_token_header() {
    let app = TestApp::spawn_with(|env| env.with("CORS_ALLOWED_ORIGINS", "https://app.example")).await;
    let preflight = app
        .anonymous()
        .send(
            app.anonymous()
                .request(Method::OPTIONS, "/api/v1/tags")
                .header("Origin", "https://app.example")
                .header("Access-Control-Request-Method", "GET")
                .header("Access-Control-Request-Headers", "x-github-token, content-type"),
        )
        .await;
    assert_eq!(preflight.status, 200, "{}", preflight.text);
    assert_eq!(preflight.headers["access-control-allow-origin"], "https://app.example");
    let allowed = preflight.headers["access-control-allow-headers"].to_str().expect("text").to_lowercase();
    assert!(allowed.contains("x-github-token") && allowed.contains("content-type"), "{allowed}");

    let other = app
        .anonymous()
        .send(
            app.anonymous()
                .request(Method::OPTIONS, "/api/v1/tags")
                .header("Origin", "https://evil.example")
                .header("Access-Control-Request-Method", "GET"),
        )
        .await;
    assert!(other.headers.get("access-control-allow-origin").is_none(), "{:?}", other.headers);
}

#[tokio::test]
async fn schema_rs_declares_exactly_what_the_migrations_create() {
    let db = testkit::TestDb::new("giistr", |url| async move { giistr_tags::migrate(&url).await })
        .await
        .expect("test database");
    testkit::schema_check::assert_matches(&db, "giistr", include_str!("../../src/schema.rs")).await;
}
