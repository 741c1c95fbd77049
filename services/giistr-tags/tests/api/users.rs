use serde_json::json;

use crate::{TestApp, is_recent_unix_seconds, is_uuid, str_of};

#[tokio::test]
async fn users_are_listed_and_fetched_with_the_seed_shape() {
    let app = TestApp::spawn().await;
    let (alice_gh, alice) = app.user("alice");
    let (bob_gh, bob) = app.user("bob");
    let a = alice.get("/api/v1/tags").await;
    assert_eq!(a.status, 200);
    assert_eq!(bob.get("/api/v1/tags").await.status, 200);

    let list = alice.get("/api/v1/users").await;
    assert_eq!(list.status, 200);
    let users = list.body.as_array().expect("a list").clone();
    assert_eq!(users.len(), 2);
    assert_eq!(users[0]["github_user_id"], alice_gh.to_string(), "oldest first, id as a string");
    assert_eq!(users[1]["github_user_id"], bob_gh.to_string());
    for u in &users {
        assert!(is_uuid(&u["id"]) && is_uuid(&u["token_id"]), "{u}");
        assert!(is_recent_unix_seconds(&u["created_at"]) && is_recent_unix_seconds(&u["updated_at"]), "{u}");
        assert_eq!(u.as_object().map(|o| o.len()), Some(5), "{u}");
    }
    let one = bob.get(&format!("/api/v1/user/{}", str_of(&users[0], "id"))).await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body, users[0]);
    let missing = bob.get(&format!("/api/v1/user/{}", uuid::Uuid::new_v4())).await;
    assert_eq!((missing.status.as_u16(), missing.body), (404, json!({"error": "user not found"})));
    assert_eq!(app.anonymous().get("/api/v1/users").await.status, 401);
}
