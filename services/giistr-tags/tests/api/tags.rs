use serde_json::json;

use crate::{TestApp, create_tag, is_recent_unix_seconds, is_uuid, str_of};

#[tokio::test]
async fn a_user_creates_lists_renames_and_deletes_tags() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.user("alice");

    let rust = create_tag(&alice, "rust").await;
    assert!(is_uuid(&rust["id"]) && is_uuid(&rust["user_id"]), "{rust}");
    assert!(is_recent_unix_seconds(&rust["created_at"]) && is_recent_unix_seconds(&rust["updated_at"]), "{rust}");
    assert_eq!(rust["name"], "rust");
    let keys: Vec<&str> = rust.as_object().expect("object").keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 5, "exactly the seed's fields: {keys:?}");
    let go = create_tag(&alice, "  go  ").await;
    assert_eq!(go["name"], "go", "names are trimmed");

    let one = alice.get(&format!("/api/v1/tag/{}", str_of(&rust, "id"))).await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body, rust);

    let list = alice.get("/api/v1/tags").await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body, json!([rust, go]), "creation order");

    let renamed = alice.put_json("/api/v1/tag", &json!({"id": rust["id"], "name": "rustlang"})).await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    assert_eq!(renamed.body["name"], "rustlang");
    assert_eq!(renamed.body["id"], rust["id"]);
    assert_eq!(renamed.body["created_at"], rust["created_at"]);

    let unchanged = alice.put_json("/api/v1/tag", &json!({"id": rust["id"]})).await;
    assert_eq!(unchanged.status, 200);
    assert_eq!(unchanged.body["name"], "rustlang", "no name, no change");

    let deleted = alice.delete(&format!("/api/v1/tag/{}", str_of(&rust, "id"))).await;
    assert_eq!(deleted.status, 200);
    assert_eq!(deleted.body["name"], "rustlang", "the deleted tag is returned");
    assert_eq!(alice.get(&format!("/api/v1/tag/{}", str_of(&rust, "id"))).await.status, 404);
    assert_eq!(alice.get("/api/v1/tags").await.body, json!([go]));
}

#[tokio::test]
async fn duplicate_names_conflict_per_user_only() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.user("alice");
    let (_, bob) = app.user("bob");
    let first = create_tag(&alice, "rust").await;

    let again = alice.post_json("/api/v1/tag", &json!({"name": "rust"})).await;
    assert_eq!(again.status, 409);
    assert_eq!(again.body, json!({"error": "a tag with this name already exists"}));

    create_tag(&bob, "rust").await; // another user may use the same name

    let other = create_tag(&alice, "go").await;
    let clash = alice.put_json("/api/v1/tag", &json!({"id": other["id"], "name": "rust"})).await;
    assert_eq!(clash.status, 409);
    assert_eq!(alice.get("/api/v1/tags").await.body, json!([first, other]), "nothing changed");
}

#[tokio::test]
async fn another_users_tag_is_not_found_for_every_verb() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.user("alice");
    let (_, bob) = app.user("bob");
    let tag = create_tag(&alice, "private").await;
    let path = format!("/api/v1/tag/{}", str_of(&tag, "id"));

    for res in [
        bob.get(&path).await,
        bob.delete(&path).await,
        bob.put_json("/api/v1/tag", &json!({"id": tag["id"], "name": "stolen"})).await,
        bob.get(&format!("/api/v1/repos/tag/{}", str_of(&tag, "id"))).await,
    ] {
        assert_eq!(res.status, 404, "{}", res.text);
        assert_eq!(res.body, json!({"error": "tag not found"}));
    }
    assert_eq!(bob.get("/api/v1/tags").await.body, json!([]));
    assert_eq!(alice.get(&path).await.body, tag, "untouched");
}

#[tokio::test]
async fn bad_tag_input_is_a_400_with_the_json_error_body() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.user("alice");

    let cases = [
        ("application/json", r#"{"name": "#.to_owned()),
        ("application/json", r#"{"name": 12}"#.to_owned()),
        ("application/json", r#"{}"#.to_owned()),
        ("application/json", r#"["rust"]"#.to_owned()),
        ("application/json", String::new()),
        ("application/json", r#"{"name": "   "}"#.to_owned()),
        ("application/json", format!(r#"{{"name": "{}"}}"#, "x".repeat(256))),
        ("text/plain", "rust".to_owned()),
    ];
    for (content_type, body) in cases {
        let res = alice.send_raw(reqwest::Method::POST, "/api/v1/tag", content_type, body.clone()).await;
        assert_eq!(res.status, 400, "{body:?} → {}", res.text);
        assert!(!res.error().is_empty(), "{body:?} → {}", res.text);
        assert_eq!(res.headers["content-type"], "application/json");
    }
    let res = alice.put_json("/api/v1/tag", &json!({"id": "not-a-uuid", "name": "x"})).await;
    assert_eq!(res.status, 400, "{}", res.text);
    let res = alice.get("/api/v1/tag/not-a-uuid").await;
    assert_eq!(res.status, 400, "{}", res.text);
    assert!(res.error().contains("invalid path parameter"), "{}", res.text);
    let res = alice.put_json("/api/v1/tag", &json!({"id": uuid::Uuid::new_v4(), "name": "x"})).await;
    assert_eq!(res.status, 404);
    assert_eq!(alice.get("/api/v1/tags").await.body, json!([]), "nothing was written");
}
