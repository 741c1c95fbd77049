//! Bad input on every text field (NUL and other control characters: a 4xx naming the field,
//! never a 5xx) and a wrong method on every single-method path (405 with `Allow`).

use reqwest::Method;
use serde_json::json;
use testkit::bad_input::{self, assert_handled};

use crate::{PASSWORD, Part, TestApp, create_permission, create_repository, multipart, str_of, upload};

#[tokio::test]
async fn the_reported_nul_bytes_are_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let res = app
        .anonymous()
        .with_header("X-Tenant", "acme")
        .send_raw(
            Method::POST,
            "/api/v1/auth/login",
            "application/x-www-form-urlencoded",
            "email=x%00%40y.z&password=p",
        )
        .await;
    assert_eq!(res.status, 422, "{}", res.text);
    assert_eq!(res.body, json!({"error": "form field email must not contain a NUL character (U+0000)"}));
    let res = app.service_login("acme", "sa_\0", "secret").await;
    assert_eq!(res.status, 422, "{}", res.text);
    assert_eq!(res.body, json!({"error": "form field client_id must not contain a NUL character (U+0000)"}));

    let repo = create_repository(&org.admin, org.source_id, "handbook", &[]).await;
    upload(&org.admin, str_of(&repo, "id"), &[("a.md", b"# A")]).await;
    let tree = org.admin.get(&format!("/api/v1/repositories/{}/items", str_of(&repo, "id"))).await;
    let file_id = str_of(&tree.body["files"]["a.md"], "file_id").to_owned();
    let path = format!("/api/v1/files/{file_id}/metadata");
    let res = org.admin.put_json(&path, &json!({"metadata": {"team": "a\u{0}b"}})).await;
    assert_eq!(res.status, 422, "{}", res.text);
    assert_eq!(
        res.body,
        json!({"error": "invalid JSON body: metadata.team must not contain a NUL character (U+0000)"})
    );
    let res = org.admin.put_json(&path, &json!({"metadata": {"tags": ["ok", "a\u{0}b"]}})).await;
    assert_eq!(res.status, 422, "{}", res.text);
    assert_eq!(
        res.body,
        json!({"error": "invalid JSON body: metadata.tags[1] must not contain a NUL character (U+0000)"})
    );
    let res = org.admin.put_json(&path, &json!({"metadata": {"t\u{0}": "a"}})).await;
    assert_eq!(res.status, 422, "{}", res.text);
    assert_eq!(
        res.body,
        json!({"error": "invalid JSON body: a key of metadata must not contain a NUL character (U+0000)"})
    );
    let res = org.admin.get(&format!("/api/v1/repositories?document_source_id={}&name=%00", org.source_id)).await;
    assert_eq!(res.status, 422, "{}", res.text);
    assert_eq!(res.body, json!({"error": "query parameter name must not contain a NUL character (U+0000)"}));
    let res = org.admin.get("/api/v1/files/ab%00/metadata").await;
    assert_eq!(res.status, 422, "{}", res.text);
    assert_eq!(res.body, json!({"error": "path parameter file_id must not contain a NUL character (U+0000)"}));
    // Metadata keeps other control characters: they are text PostgreSQL stores.
    let res = org.admin.put_json(&path, &json!({"metadata": {"team": "a\u{1}b"}})).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["metadata"]["team"], "a\u{1}b");
}

#[tokio::test]
async fn control_characters_in_any_text_field_never_give_a_server_error() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let admin = &org.admin;
    let permission = create_permission(admin, "readers").await;
    let permission_id = str_of(&permission, "id").to_owned();
    let repo = create_repository(admin, org.source_id, "handbook", &[]).await;
    let repo_id = str_of(&repo, "id").to_owned();
    upload(admin, &repo_id, &[("a.md", b"# A")]).await;
    let tree = admin.get(&format!("/api/v1/repositories/{repo_id}/items")).await;
    let file_id = str_of(&tree.body["files"]["a.md"], "file_id").to_owned();
    let (account_id, _, _) = app.service_account(&org, "robot").await;
    let source = org.source_id;
    let anonymous = app.anonymous().with_header("X-Tenant", "acme");
    let items = format!("/api/v1/repositories/{repo_id}/items");

    for bad in bad_input::all() {
        // A filename is a part header's value: bytes the header grammar forbids (C0 controls but
        // tab, and DEL) make the part itself malformed, before any path rule.
        let in_header = |field| {
            if bad.chars().any(|c| (c < ' ' && c != '\t') || c == '\u{7f}') { "multipart body" } else { field }
        };
        let mut cases = vec![
            (
                "login",
                "email",
                anonymous.post_form("/api/v1/auth/login", &[("email", bad), ("password", PASSWORD)]).await,
            ),
            (
                "login",
                "password",
                anonymous.post_form("/api/v1/auth/login", &[("email", &org.admin_email), ("password", bad)]).await,
            ),
            (
                "service login",
                "client_id",
                anonymous.post_form("/api/v1/auth/service/login", &[("client_id", bad), ("client_secret", "s")]).await,
            ),
            (
                "service login",
                "client_secret",
                anonymous
                    .post_form("/api/v1/auth/service/login", &[("client_id", "sa_x"), ("client_secret", bad)])
                    .await,
            ),
            (
                "service login",
                "grant_type",
                anonymous
                    .post_form(
                        "/api/v1/auth/service/login",
                        &[("client_id", "sa_x"), ("client_secret", "s"), ("grant_type", bad)],
                    )
                    .await,
            ),
            (
                "accept invitation",
                // A wrong token, control characters or not, is an invalid invitation.
                if bad.contains('\0') { "token" } else { "invitation" },
                anonymous
                    .post_json("/api/v1/auth/invitations/accept", &json!({"token": bad, "password": PASSWORD}))
                    .await,
            ),
            (
                "accept invitation",
                if bad.contains('\0') { "password" } else { "invitation" },
                anonymous
                    .post_json(
                        "/api/v1/auth/invitations/accept",
                        &json!({"token": "inv_x", "password": format!("{bad} long enough")}),
                    )
                    .await,
            ),
            ("invite", "email", admin.post_json("/api/v1/admin/invitations", &json!({"email": bad})).await),
            (
                "invite",
                "role",
                admin.post_json("/api/v1/admin/invitations", &json!({"email": "b@acme.example", "role": bad})).await,
            ),
            ("create account", "name", admin.post_json("/api/v1/admin/service-accounts", &json!({"name": bad})).await),
            ("create permission", "name", admin.post_json("/api/v1/permissions", &json!({"name": bad})).await),
            (
                "rename permission",
                "name",
                admin.patch_json(&format!("/api/v1/permissions/{permission_id}"), &json!({"name": bad})).await,
            ),
            (
                "create repository",
                "name",
                admin.post_json("/api/v1/repositories", &json!({"name": bad, "document_source_id": source})).await,
            ),
            (
                "create repository",
                "type",
                admin
                    .post_json("/api/v1/repositories", &json!({"name": "x", "document_source_id": source, "type": bad}))
                    .await,
            ),
            (
                "update repository",
                "name",
                admin.patch_json(&format!("/api/v1/repositories/{repo_id}"), &json!({"name": bad})).await,
            ),
            (
                "update repository",
                "type",
                admin.patch_json(&format!("/api/v1/repositories/{repo_id}"), &json!({"type": bad})).await,
            ),
            (
                "metadata",
                "metadata.team",
                admin.put_json(&format!("/api/v1/files/{file_id}/metadata"), &json!({"metadata": {"team": bad}})).await,
            ),
            (
                "metadata",
                "metadata",
                admin.put_json(&format!("/api/v1/files/{file_id}/metadata"), &json!({"metadata": {bad: "x"}})).await,
            ),
            (
                "delete items",
                "items",
                admin.send(admin.request(Method::DELETE, &items).json(&json!({"items": [bad]}))).await,
            ),
            (
                "delete items",
                "path",
                admin
                    .send(
                        admin.request(Method::DELETE, &items).json(&json!({"items": [{"path": bad, "type": "file"}]})),
                    )
                    .await,
            ),
            ("content", "path", admin.post_json(&format!("{items}/content"), &json!({"path": bad})).await),
            (
                "upload",
                in_header("path"),
                multipart(admin, Method::POST, &items, &[Part::File("files", bad, b"x")]).await,
            ),
            (
                "upload",
                in_header("path"),
                multipart(admin, Method::POST, &items, &[Part::File("files", &format!("docs/{bad}.md"), b"x")]).await,
            ),
            (
                "move",
                "path",
                multipart(
                    admin,
                    Method::PATCH,
                    &items,
                    &[Part::Field("items", &json!([{"path": "a.md", "new_path": bad}]).to_string())],
                )
                .await,
            ),
            (
                "repositories",
                "query parameter",
                admin
                    .get(&format!("/api/v1/repositories?document_source_id={source}&{}=1", bad_input::encode(bad)))
                    .await,
            ),
        ];
        if bad.contains('\0') {
            // Without dokko-ingest these answer 503; a NUL is refused before that.
            cases.push((
                "processing files",
                "query parameter",
                admin
                    .get(&format!("/api/v1/document-sources/{source}/process/files?status={}", bad_input::encode(bad)))
                    .await,
            ));
            cases.push((
                "retrieve",
                "query",
                admin.post_json(&format!("/api/v1/document-sources/{source}/retrieve"), &json!({"query": bad})).await,
            ));
        }
        for (what, field, res) in &cases {
            if res.status == 500 && res.body["status"] == "failure" {
                // The contract's answer to a batch whose every item failed is a 500 with the
                // per-item reasons: each with its code and message.
                let failed = res.body["failed"].as_array().cloned().unwrap_or_default();
                assert!(!failed.is_empty(), "{what}: {}", res.text);
                for item in failed {
                    let named = item["code"].as_str().is_some_and(|c| !c.is_empty())
                        && item["message"].as_str().is_some_and(|m| !m.is_empty());
                    assert!(named, "{what} with {bad:?}: {}", res.text);
                }
                continue;
            }
            assert_handled(res, what, field, bad);
        }
        let segment = bad_input::encode(bad);
        for path in [
            format!("/api/v1/files/{segment}"),
            format!("/api/v1/files/{segment}/metadata"),
            format!("/api/v1/permissions/{segment}"),
            format!("/api/v1/repositories/{segment}"),
            format!("/api/v1/repositories/{segment}/items"),
            format!("/api/v1/document-sources/{segment}"),
            format!("/api/v1/document-sources/{segment}/folder-structure"),
            format!("/api/v1/document-sources/{segment}/process/status"),
            format!("/api/v1/admin/service-accounts/{segment}"),
        ] {
            assert_handled(&admin.get(&path).await, &format!("GET {path}"), "path parameter", bad);
        }
    }
    // The service account, the permission and the file are as they were.
    assert_eq!(admin.get(&format!("/api/v1/admin/service-accounts/{account_id}")).await.body["name"], "robot");
    assert_eq!(admin.get(&format!("/api/v1/permissions/{permission_id}")).await.body["name"], "readers");
}

#[tokio::test]
async fn a_wrong_method_answers_405_with_allow_on_every_path() {
    let app = TestApp::spawn().await;
    let client = app.anonymous();
    let id = "550e8400-e29b-41d4-a716-446655440000";
    for (method, path, allow) in [
        (Method::GET, "/api/v1/auth/login".to_owned(), "POST"),
        (Method::GET, "/api/v1/auth/service/login".to_owned(), "POST"),
        (Method::GET, "/api/v1/auth/invitations/accept".to_owned(), "POST"),
        (Method::GET, "/api/v1/admin/invitations".to_owned(), "POST"),
        (Method::DELETE, "/api/v1/admin/users".to_owned(), "GET"),
        (Method::GET, format!("/api/v1/admin/service-accounts/{id}/rotate-secret"), "POST"),
        (Method::POST, "/api/v1/document-sources".to_owned(), "GET"),
        (Method::DELETE, format!("/api/v1/document-sources/{id}"), "GET"),
        (Method::PUT, format!("/api/v1/document-sources/{id}/folder-structure"), "GET"),
        (Method::GET, format!("/api/v1/document-sources/{id}/process"), "POST"),
        (Method::POST, format!("/api/v1/document-sources/{id}/process/status"), "GET"),
        (Method::DELETE, format!("/api/v1/document-sources/{id}/process/files"), "GET"),
        (Method::GET, format!("/api/v1/document-sources/{id}/retrieve"), "POST"),
        (Method::DELETE, format!("/api/v1/files/{id}"), "GET"),
        (Method::GET, format!("/api/v1/files/{id}/metadata/reset"), "POST"),
        (Method::GET, format!("/api/v1/repositories/{id}/items/content"), "POST"),
        (Method::PUT, "/api/v1/repositories".to_owned(), "GET, POST"),
        (Method::POST, format!("/internal/v1/document-sources/{id}/files"), "GET"),
        (Method::GET, format!("/internal/v1/document-sources/{id}/processing"), "PUT"),
        // The console's pages, as the API.
        (Method::POST, "/console".to_owned(), "GET"),
        (Method::GET, "/console/sign-out".to_owned(), "POST"),
        (Method::DELETE, "/console/token".to_owned(), "GET"),
        (Method::GET, format!("/console/repositories/{id}/delete"), "POST"),
    ] {
        let res = client.send(client.request(method.clone(), &path)).await;
        assert_eq!(res.status, 405, "{method} {path}: {}", res.text);
        assert_eq!(res.headers["allow"], allow, "{method} {path}");
        assert_eq!(res.error(), format!("method {method} is not allowed on {path} (allowed: {allow})"));
    }
}
