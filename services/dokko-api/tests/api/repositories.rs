//! Repositories: create, list, get, update, delete; references checked within the tenant.

use serde_json::{Value, json};

use crate::{TestApp, count, create_permission, create_repository, is_recent_rfc3339, is_uuid, keys, str_of};

const ABSENT: &str = "550e8400-e29b-41d4-a716-446655440000";

#[tokio::test]
async fn a_repository_is_created_with_permissions_and_fetched() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let client = app.machine(&org).await;
    let p1 = create_permission(&client, "engineering").await;
    let p2 = create_permission(&client, "sales").await;

    let created = create_repository(
        &client,
        org.source_id,
        "my-repository",
        &[str_of(&p2, "id"), str_of(&p1, "id"), str_of(&p2, "id")],
    )
    .await;
    assert_eq!(
        keys(&created),
        [
            "agent_id",
            "created_at",
            "document_source_id",
            "id",
            "llm_chat_configuration",
            "name",
            "permission_ids",
            "processing_ended_at",
            "processing_started_at",
            "tenant_id",
            "type",
        ]
    );
    assert!(is_uuid(&created["id"]));
    assert_eq!(created["name"], "my-repository");
    assert_eq!(created["type"], "semantic");
    assert!(is_recent_rfc3339(&created["created_at"]));
    for null in ["processing_started_at", "processing_ended_at", "llm_chat_configuration", "agent_id"] {
        assert!(created[null].is_null(), "{null}");
    }
    assert_eq!(created["document_source_id"], org.source_id.to_string());
    assert_eq!(created["permission_ids"], json!([p1["id"], p2["id"]]), "distinct, in permission order");

    let fetched = client.get(&format!("/api/v1/repositories/{}", str_of(&created, "id"))).await;
    assert_eq!(fetched.status, 200, "{}", fetched.text);
    assert_eq!(fetched.body, created);

    let untyped =
        client.post_json("/api/v1/repositories", &json!({"name": "plain", "document_source_id": org.source_id})).await;
    assert_eq!(untyped.status, 201, "{}", untyped.text);
    assert_eq!(untyped.body["type"], "semantic");
    assert_eq!(untyped.body["permission_ids"], json!([]));
}

#[tokio::test]
async fn creation_refuses_bad_input_and_unknown_references_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let client = org.admin.clone();
    let p = create_permission(&client, "engineering").await;
    let source = org.source_id.to_string();

    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"name": "r", "document_source_id": ABSENT}), 404, "document source not found"),
        (
            json!({"name": "r", "document_source_id": source, "permission_ids": [p["id"], ABSENT]}),
            404,
            "permission 550e8400-e29b-41d4-a716-446655440000 not found",
        ),
        (json!({"name": "r", "document_source_id": "not-a-uuid"}), 422, "document_source_id"),
        (json!({"name": "r", "document_source_id": source, "permission_ids": ["nope"]}), 422, "permission_ids"),
        (json!({"name": "r", "document_source_id": source, "permission_ids": "all"}), 422, "permission_ids"),
        (json!({"document_source_id": source}), 422, "name"),
        (json!({"name": "r"}), 422, "document_source_id"),
        (json!({"name": "", "document_source_id": source}), 400, "name"),
        (json!({"name": "a/b", "document_source_id": source}), 400, "slashes"),
        (json!({"name": "r", "document_source_id": source, "type": "no spaces"}), 400, "type"),
    ];
    for (body, status, message) in cases {
        let res = client.post_json("/api/v1/repositories", &body).await;
        assert_eq!(res.status, status, "{body}: {}", res.text);
        assert!(res.error().contains(message), "{body}: {}", res.text);
    }
    assert_eq!(count(&app.db, "SELECT count(*) AS n FROM dokko.repositories").await, 0);
}

#[tokio::test]
async fn the_list_needs_a_document_source_unless_web_search_repos_are_asked_for() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let client = org.admin.clone();
    for i in 0..12 {
        create_repository(&client, org.source_id, &format!("repo-{i:02}"), &[]).await;
    }
    let web = client
        .post_json(
            "/api/v1/repositories",
            &json!({"name": "web", "document_source_id": org.source_id, "type": "web_search"}),
        )
        .await;
    assert_eq!(web.status, 201, "{}", web.text);

    let missing = client.get("/api/v1/repositories").await;
    assert_eq!(missing.status, 400, "{}", missing.text);
    assert!(missing.error().contains("document_source_id"));
    assert_eq!(client.get("/api/v1/repositories?only_web_search_repos=false").await.status, 400);

    let page =
        client.get(&format!("/api/v1/repositories?document_source_id={}&page_num=2&per_page=5", org.source_id)).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(page.body["total_records"], 13);
    assert_eq!(page.body["page_count"], 3);
    let item = &page.body["items"][0];
    assert_eq!(item["name"], "repo-05");
    assert_eq!(
        keys(item),
        [
            "created_at",
            "document_source_id",
            "id",
            "name",
            "processing_ended_at",
            "processing_started_at",
            "tenant_id",
            "type"
        ]
    );
    assert_eq!(item["tenant_id"], org.id.to_string());

    let web_only = client.get("/api/v1/repositories?only_web_search_repos=true").await;
    assert_eq!(web_only.status, 200, "{}", web_only.text);
    assert_eq!(web_only.body["total_records"], 1);
    assert_eq!(web_only.body["items"][0]["name"], "web");

    assert_eq!(client.get("/api/v1/repositories?document_source_id=xyz").await.status, 422);
    assert_eq!(client.get("/api/v1/repositories?only_web_search_repos=maybe").await.status, 422);
    assert_eq!(client.get(&format!("/api/v1/repositories?document_source_id={ABSENT}")).await.status, 404);
    assert_eq!(
        client.get(&format!("/api/v1/repositories?document_source_id={}&per_page=500", org.source_id)).await.status,
        422
    );
}

#[tokio::test]
async fn a_repository_is_updated_and_its_permissions_replaced() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let client = app.machine(&org).await;
    let p1 = create_permission(&client, "one").await;
    let p2 = create_permission(&client, "two").await;
    let repo = create_repository(&client, org.source_id, "docs", &[str_of(&p1, "id")]).await;
    let path = format!("/api/v1/repositories/{}", str_of(&repo, "id"));

    let renamed =
        client.patch_json(&path, &json!({"name": "renamed-repo", "permission_ids": [p2["id"], p1["id"]]})).await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    assert_eq!(renamed.body["name"], "renamed-repo");
    assert_eq!(renamed.body["type"], "semantic");
    assert_eq!(renamed.body["permission_ids"], json!([p1["id"], p2["id"]]));
    assert_eq!(renamed.body["created_at"], repo["created_at"]);

    let retyped = client.patch_json(&path, &json!({"type": "web_search"})).await;
    assert_eq!(retyped.body["type"], "web_search");
    assert_eq!(retyped.body["name"], "renamed-repo");
    assert_eq!(
        retyped.body["permission_ids"],
        json!([p1["id"], p2["id"]]),
        "absent permission_ids leave the set alone"
    );

    let unknown = client.patch_json(&path, &json!({"name": "lost", "permission_ids": [ABSENT]})).await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    let after = client.get(&path).await;
    assert_eq!(after.body["name"], "renamed-repo", "a failed update changes nothing");
    assert_eq!(after.body["permission_ids"], json!([p1["id"], p2["id"]]));

    let cleared = client.patch_json(&path, &json!({"permission_ids": []})).await;
    assert_eq!(cleared.body["permission_ids"], json!([]));
    let unchanged = client.patch_json(&path, &json!({})).await;
    assert_eq!(unchanged.status, 200);
    assert_eq!(unchanged.body, cleared.body);

    for (body, status) in
        [(json!({"name": ""}), 400), (json!({"name": 5}), 422), (json!({"permission_ids": ["x"]}), 422)]
    {
        let res = client.patch_json(&path, &body).await;
        assert_eq!(res.status, status, "{body}: {}", res.text);
    }
    assert_eq!(client.patch_json(&format!("/api/v1/repositories/{ABSENT}"), &json!({"name": "x"})).await.status, 404);
}

#[tokio::test]
async fn deleting_a_repository_removes_its_mappings_and_keeps_the_source() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let client = org.admin.clone();
    let p = create_permission(&client, "one").await;
    let repo = create_repository(&client, org.source_id, "docs", &[str_of(&p, "id")]).await;
    let path = format!("/api/v1/repositories/{}", str_of(&repo, "id"));

    let res = client.delete(&path).await;
    assert_eq!(res.status, 204, "{}", res.text);
    assert_eq!(client.get(&path).await.status, 404);
    assert_eq!(client.delete(&path).await.status, 404);
    assert_eq!(count(&app.db, "SELECT count(*) AS n FROM dokko.repository_permissions").await, 0);
    assert_eq!(client.get(&format!("/api/v1/document-sources/{}", org.source_id)).await.status, 200);
    assert_eq!(client.get(&format!("/api/v1/permissions/{}", str_of(&p, "id"))).await.status, 200);
    assert_eq!(client.delete("/api/v1/repositories/not-a-uuid").await.status, 422);
}
