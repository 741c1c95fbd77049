use serde_json::{Value, json};

use crate::{TestApp, create_repo, is_recent_unix_seconds, is_uuid, str_of};

#[tokio::test]
async fn a_user_registers_lists_updates_and_deletes_repositories() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.user("alice");

    let first = create_repo(&alice, "1296269").await;
    assert!(is_uuid(&first["id"]) && is_uuid(&first["user_id"]), "{first}");
    assert!(is_recent_unix_seconds(&first["created_at"]), "{first}");
    assert_eq!(first["github_repo_id"], "1296269");
    assert_eq!(first.as_object().map(|o| o.len()), Some(5), "the seed's fields only: {first}");

    // Browsers send the id as a number; it comes back as a string. Optional fields are kept.
    let res = alice
        .post_json("/api/v1/repo", &json!({"github_repo_id": 42, "repository_name": "o/r", "user_login": "alice"}))
        .await;
    assert_eq!(res.status, 201, "{}", res.text);
    let second = res.body;
    assert_eq!(second["github_repo_id"], "42");
    assert_eq!(second["repository_name"], "o/r");
    assert_eq!(second["user_login"], "alice");

    assert_eq!(alice.get(&format!("/api/v1/repo/{}", str_of(&first, "id"))).await.body, first);
    assert_eq!(alice.get("/api/v1/repos").await.body, json!([first, second]));

    let updated = alice.put_json("/api/v1/repo", &json!({"id": first["id"], "github_repo_id": "777"})).await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(updated.body["github_repo_id"], "777");
    assert_eq!(updated.body["created_at"], first["created_at"]);

    let clash = alice.put_json("/api/v1/repo", &json!({"id": first["id"], "github_repo_id": 42})).await;
    assert_eq!(clash.status, 409);
    assert_eq!(clash.body, json!({"error": "this GitHub repository is already registered"}));

    let deleted = alice.delete(&format!("/api/v1/repo/{}", str_of(&first, "id"))).await;
    assert_eq!(deleted.status, 200);
    assert_eq!(deleted.body["github_repo_id"], "777");
    assert_eq!(alice.get("/api/v1/repos").await.body, json!([second]));
    assert_eq!(alice.delete(&format!("/api/v1/repo/{}", str_of(&first, "id"))).await.status, 404);
}

#[tokio::test]
async fn a_repository_is_registered_once_per_user() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.user("alice");
    let (_, bob) = app.user("bob");
    create_repo(&alice, "100").await;
    let again = alice.post_json("/api/v1/repo", &json!({"github_repo_id": 100})).await;
    assert_eq!(again.status, 409, "the number and the string are the same id");
    create_repo(&bob, "100").await;
}

#[tokio::test]
async fn another_users_repository_is_not_found() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.user("alice");
    let (_, bob) = app.user("bob");
    let repo = create_repo(&alice, "5").await;
    let path = format!("/api/v1/repo/{}", str_of(&repo, "id"));
    for res in [
        bob.get(&path).await,
        bob.delete(&path).await,
        bob.put_json("/api/v1/repo", &json!({"id": repo["id"], "github_repo_id": "6"})).await,
        bob.get(&format!("/api/v1/tags/repo/{}", str_of(&repo, "id"))).await,
    ] {
        assert_eq!(res.status, 404, "{}", res.text);
        assert_eq!(res.body, json!({"error": "repository not found"}));
    }
    assert_eq!(alice.get(&path).await.body, repo);
}

#[tokio::test]
async fn bad_repository_input_is_a_400() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.user("alice");
    for body in
        [json!({}), json!({"github_repo_id": ""}), json!({"github_repo_id": true}), json!({"github_repo_id": -3})]
    {
        let res = alice.post_json("/api/v1/repo", &body).await;
        assert_eq!(res.status, 400, "{body} → {}", res.text);
        assert!(!res.error().is_empty());
    }
    // The messages say what is wrong, in JSON's words.
    let error = async |body: Value| alice.post_json("/api/v1/repo", &body).await.error().to_owned();
    assert_eq!(error(json!({})).await, "invalid JSON body: missing field `github_repo_id`");
    assert_eq!(
        error(json!({"github_repo_id": -3})).await,
        "invalid JSON body at github_repo_id: invalid value: integer `-3`, expected a string or a non-negative whole number"
    );
    assert_eq!(error(json!(["123"])).await, "invalid JSON body: expected a JSON object, got an array");
    assert_eq!(alice.get("/api/v1/repos").await.body, json!([]));
}
