//! Permissions: CRUD, unique names, pagination, mappings removed with the permission.

use serde_json::json;

use crate::{TestApp, create_permission, create_repository, is_recent_rfc3339, is_uuid, keys, str_of};

#[tokio::test]
async fn permissions_are_created_fetched_renamed_and_deleted() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let client = app.machine(&org).await;

    let created = create_permission(&client, "  engineering-team ").await;
    assert_eq!(keys(&created), ["created_at", "id", "name", "tenant_id"]);
    assert!(is_uuid(&created["id"]));
    assert_eq!(created["name"], "engineering-team");
    assert_eq!(created["tenant_id"], org.id.to_string());
    assert!(is_recent_rfc3339(&created["created_at"]), "{created}");
    let id = str_of(&created, "id");

    let fetched = client.get(&format!("/api/v1/permissions/{id}")).await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body, created);

    let renamed =
        client.patch_json(&format!("/api/v1/permissions/{id}"), &json!({"name": "engineering-team-renamed"})).await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    assert_eq!(renamed.body["name"], "engineering-team-renamed");
    assert_eq!(renamed.body["created_at"], created["created_at"]);

    let deleted = client.delete(&format!("/api/v1/permissions/{id}")).await;
    assert_eq!(deleted.status, 204);
    for res in [
        client.get(&format!("/api/v1/permissions/{id}")).await,
        client.delete(&format!("/api/v1/permissions/{id}")).await,
        client.patch_json(&format!("/api/v1/permissions/{id}"), &json!({"name": "x"})).await,
    ] {
        assert_eq!(res.status, 404, "{}", res.text);
    }
}

#[tokio::test]
async fn names_are_unique_per_tenant_and_validated() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let other = app.org("globex").await;
    let client = org.admin.clone();

    create_permission(&client, "engineering").await;
    let second = create_permission(&client, "sales").await;
    let duplicate = client.post_json("/api/v1/permissions", &json!({"name": "engineering"})).await;
    assert_eq!(duplicate.status, 409, "{}", duplicate.text);
    assert_eq!(duplicate.error(), "a permission with this name already exists");
    let rename_clash = client
        .patch_json(&format!("/api/v1/permissions/{}", str_of(&second, "id")), &json!({"name": "engineering"}))
        .await;
    assert_eq!(rename_clash.status, 409, "{}", rename_clash.text);
    // Another tenant may use the same name.
    create_permission(&other.admin, "engineering").await;

    for (body, status) in [
        (json!({"name": ""}), 400),
        (json!({"name": "   "}), 400),
        (json!({"name": "x".repeat(256)}), 400),
        (json!({"name": "bad\u{0007}name"}), 400),
        (json!({}), 422),
        (json!({"name": 7}), 422),
        (json!("engineering"), 422),
        (json!(["engineering"]), 422),
    ] {
        let res = client.post_json("/api/v1/permissions", &body).await;
        assert_eq!(res.status, status, "{body}: {}", res.text);
    }
    let array = client.post_json("/api/v1/permissions", &json!(["engineering"])).await;
    assert_eq!(array.error(), "invalid JSON body: expected a JSON object, got an array");
    let broken = client.send_raw(reqwest::Method::POST, "/api/v1/permissions", "application/json", "{\"name\":").await;
    assert_eq!(broken.status, 422, "{}", broken.text);
    assert_eq!(client.get("/api/v1/permissions/not-a-uuid").await.status, 422);
}

#[tokio::test]
async fn the_list_is_paginated_in_creation_order() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let client = org.admin.clone();
    for i in 0..25 {
        create_permission(&client, &format!("perm-{i:02}")).await;
    }

    let first = client.get("/api/v1/permissions").await;
    assert_eq!(first.status, 200);
    assert_eq!(
        keys(&first.body),
        ["has_next_page", "items", "page_count", "page_number", "page_size", "total_records"]
    );
    assert_eq!(first.body["items"].as_array().map(Vec::len), Some(10));
    assert_eq!(first.body["items"][0]["name"], "perm-00");
    assert_eq!(
        [
            &first.body["has_next_page"],
            &first.body["page_number"],
            &first.body["page_count"],
            &first.body["page_size"],
            &first.body["total_records"]
        ],
        [&json!(true), &json!(1), &json!(3), &json!(10), &json!(25)]
    );
    let last = client.get("/api/v1/permissions?page_num=3&per_page=10").await;
    assert_eq!(last.body["items"].as_array().map(Vec::len), Some(5));
    assert_eq!(last.body["items"][4]["name"], "perm-24");
    assert_eq!(last.body["has_next_page"], false);
    let past = client.get("/api/v1/permissions?page_num=9").await;
    assert_eq!(past.status, 200);
    assert_eq!(past.body["items"], json!([]));
    assert_eq!(past.body["total_records"], 25);
    let everything = client.get("/api/v1/permissions?per_page=100").await;
    assert_eq!(everything.body["items"].as_array().map(Vec::len), Some(25));

    for query in ["page_num=0", "page_num=abc", "per_page=0", "per_page=101", "per_page=1.5"] {
        let res = client.get(&format!("/api/v1/permissions?{query}")).await;
        assert_eq!(res.status, 422, "{query}: {}", res.text);
        let param = query.split('=').next().unwrap_or_default();
        assert!(res.error().contains(param), "{query}: {}", res.text);
    }
}

#[tokio::test]
async fn deleting_a_permission_removes_it_from_repositories() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let client = org.admin.clone();
    let keep = create_permission(&client, "keep").await;
    let drop = create_permission(&client, "drop").await;
    let repo = create_repository(&client, org.source_id, "docs", &[str_of(&keep, "id"), str_of(&drop, "id")]).await;
    assert_eq!(repo["permission_ids"], json!([keep["id"], drop["id"]]));

    // Renaming keeps the mapping.
    client.patch_json(&format!("/api/v1/permissions/{}", str_of(&drop, "id")), &json!({"name": "dropped"})).await;
    let repo_path = format!("/api/v1/repositories/{}", str_of(&repo, "id"));
    assert_eq!(client.get(&repo_path).await.body["permission_ids"], json!([keep["id"], drop["id"]]));

    assert_eq!(client.delete(&format!("/api/v1/permissions/{}", str_of(&drop, "id"))).await.status, 204);
    assert_eq!(client.get(&repo_path).await.body["permission_ids"], json!([keep["id"]]));
    assert_eq!(crate::count(&app.db, "SELECT count(*) AS n FROM dokko.repository_permissions").await, 1);
}
