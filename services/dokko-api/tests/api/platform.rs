//! What every service offers: health, readiness, the OpenAPI document, JSON errors for unknown
//! routes and methods.

use crate::TestApp;

#[tokio::test]
async fn probes_the_openapi_document_and_json_errors() {
    let app = TestApp::spawn().await;
    let client = app.anonymous();
    assert_eq!(client.get("/healthz").await.status, 200);
    assert_eq!(client.get("/readyz").await.status, 200);

    let doc = client.get("/openapi.json").await;
    assert_eq!(doc.status, 200);
    let paths = doc.body["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/api/v1/auth/login", "post"),
        ("/api/v1/auth/service/login", "post"),
        ("/api/v1/auth/invitations/accept", "post"),
        ("/api/v1/admin/invitations", "post"),
        ("/api/v1/admin/users", "get"),
        ("/api/v1/admin/service-accounts", "get"),
        ("/api/v1/admin/service-accounts", "post"),
        ("/api/v1/admin/service-accounts/{service_account_id}", "get"),
        ("/api/v1/admin/service-accounts/{service_account_id}", "delete"),
        ("/api/v1/admin/service-accounts/{service_account_id}/rotate-secret", "post"),
        ("/api/v1/permissions", "get"),
        ("/api/v1/permissions", "post"),
        ("/api/v1/permissions/{id}", "get"),
        ("/api/v1/permissions/{id}", "patch"),
        ("/api/v1/permissions/{id}", "delete"),
        ("/api/v1/document-sources", "get"),
        ("/api/v1/document-sources/{document_source_id}", "get"),
        ("/api/v1/repositories", "get"),
        ("/api/v1/repositories", "post"),
        ("/api/v1/repositories/{repository_id}", "get"),
        ("/api/v1/repositories/{repository_id}", "patch"),
        ("/api/v1/repositories/{repository_id}", "delete"),
        ("/api/v1/repositories/{repository_id}/items", "get"),
        ("/api/v1/repositories/{repository_id}/items", "post"),
        ("/api/v1/repositories/{repository_id}/items", "patch"),
        ("/api/v1/repositories/{repository_id}/items", "delete"),
        ("/api/v1/repositories/{repository_id}/items/content", "post"),
        ("/api/v1/files/{file_id}", "get"),
        ("/api/v1/files/{file_id}/metadata", "get"),
        ("/api/v1/files/{file_id}/metadata", "put"),
        ("/api/v1/files/{file_id}/metadata/reset", "post"),
        ("/api/v1/document-sources/{document_source_id}/folder-structure", "get"),
    ] {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} is documented");
    }
    assert!(doc.body["components"]["securitySchemes"]["bearer"].is_object());

    let unknown = client.get("/api/v1/nothing-here").await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.error().contains("no route"));
    let wrong_method = client.send_raw(reqwest::Method::PUT, "/api/v1/permissions", "application/json", "{}").await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.headers["allow"], "GET, POST");
    assert!(!wrong_method.error().is_empty());
}

#[tokio::test]
async fn migrations_go_down_and_up_again_inside_the_dokko_schema() {
    let db = testkit::TestDb::new("dokko", |url| async move { dokko_api::migrate(&url).await })
        .await
        .expect("test database");
    let tables =
        |schema: &str| format!("SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = '{schema}'");
    assert_eq!(crate::count(&db, &tables("dokko")).await, 12, "eleven tables and diesel's bookkeeping");
    assert_eq!(crate::count(&db, &tables("public")).await, 0, "nothing outside the service's schema");
    let reverted = service_kit::db::revert_all(&db.url, dokko_api::SCHEMA, dokko_api::MIGRATIONS).await.expect("down");
    assert!(reverted >= 1);
    assert_eq!(crate::count(&db, &tables("dokko")).await, 1, "only diesel's bookkeeping is left");
    dokko_api::migrate(&db.url).await.expect("up again");
    assert_eq!(crate::count(&db, &tables("dokko")).await, 12);
}

#[tokio::test]
async fn schema_rs_declares_exactly_what_the_migrations_create() {
    let db = testkit::TestDb::new("dokko", |url| async move { dokko_api::migrate(&url).await })
        .await
        .expect("test database");
    testkit::schema_check::assert_matches(&db, "dokko", include_str!("../../src/schema.rs")).await;
}
