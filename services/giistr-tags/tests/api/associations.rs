use serde_json::json;

use crate::{TestApp, create_repo, create_tag, is_uuid, str_of};

#[tokio::test]
async fn tags_go_on_repositories_and_come_off() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.user("alice");
    let rust = create_tag(&alice, "rust").await;
    let cli = create_tag(&alice, "cli").await;
    let ripgrep = create_repo(&alice, "50").await;
    let fd = create_repo(&alice, "51").await;
    let (rust_id, cli_id) = (str_of(&rust, "id"), str_of(&cli, "id"));
    let (rg_id, fd_id) = (str_of(&ripgrep, "id"), str_of(&fd, "id"));

    let res = alice.post(&format!("/api/v1/tag/{rust_id}/repo/{rg_id}")).await;
    assert_eq!(res.status, 201, "{}", res.text);
    let assoc = res.body["assoc"].clone();
    assert!(is_uuid(&assoc["id"]));
    assert_eq!(
        res.body,
        json!({"assoc": {"id": assoc["id"], "repo_id": rg_id, "tag_id": rust_id}, "repo": ripgrep, "tag": rust})
    );

    assert_eq!(alice.post(&format!("/api/v1/tag/{cli_id}/repo/{rg_id}")).await.status, 201);
    assert_eq!(alice.post(&format!("/api/v1/tag/{rust_id}/repo/{fd_id}")).await.status, 201);

    let dup = alice.post(&format!("/api/v1/tag/{rust_id}/repo/{rg_id}")).await;
    assert_eq!(dup.status, 409);
    assert_eq!(dup.body, json!({"error": "this tag is already associated with this repository"}));

    assert_eq!(alice.get(&format!("/api/v1/tags/repo/{rg_id}")).await.body, json!([rust, cli]));
    assert_eq!(alice.get(&format!("/api/v1/repos/tag/{rust_id}")).await.body, json!([ripgrep, fd]));

    let removed = alice.delete(&format!("/api/v1/repo-tag-assoc/{}", str_of(&assoc, "id"))).await;
    assert_eq!(removed.status, 200, "{}", removed.text);
    assert_eq!(removed.body, json!({"assoc": assoc, "repo": ripgrep, "tag": rust}));
    assert_eq!(alice.get(&format!("/api/v1/tags/repo/{rg_id}")).await.body, json!([cli]));
    assert_eq!(alice.delete(&format!("/api/v1/repo-tag-assoc/{}", str_of(&assoc, "id"))).await.status, 404);
}

#[tokio::test]
async fn deleting_a_tag_or_a_repository_deletes_its_associations() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.user("alice");
    let tag = create_tag(&alice, "t").await;
    let keep = create_tag(&alice, "keep").await;
    let repo = create_repo(&alice, "1").await;
    let other = create_repo(&alice, "2").await;
    let (tag_id, keep_id, repo_id, other_id) =
        (str_of(&tag, "id"), str_of(&keep, "id"), str_of(&repo, "id"), str_of(&other, "id"));
    for (t, r) in [(tag_id, repo_id), (keep_id, repo_id), (tag_id, other_id), (keep_id, other_id)] {
        assert_eq!(alice.post(&format!("/api/v1/tag/{t}/repo/{r}")).await.status, 201);
    }

    assert_eq!(alice.delete(&format!("/api/v1/tag/{tag_id}")).await.status, 200);
    assert_eq!(alice.get(&format!("/api/v1/tags/repo/{repo_id}")).await.body, json!([keep]));
    assert_eq!(alice.delete(&format!("/api/v1/repo/{repo_id}")).await.status, 200);
    assert_eq!(alice.get(&format!("/api/v1/repos/tag/{keep_id}")).await.body, json!([other]));

    // And in the database: only keep↔other is left.
    let mut conn = app.db.conn().await.expect("db");
    assert_eq!(crate::count(&mut conn, "SELECT count(*) AS n FROM giistr.repo_tag_assocs").await, 1);
}

#[tokio::test]
async fn associations_need_the_callers_own_tag_and_repository() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.user("alice");
    let (_, bob) = app.user("bob");
    let alice_tag = create_tag(&alice, "a").await;
    let alice_repo = create_repo(&alice, "1").await;
    let bob_tag = create_tag(&bob, "b").await;
    let bob_repo = create_repo(&bob, "1").await;
    let (at, ar, bt, br) =
        (str_of(&alice_tag, "id"), str_of(&alice_repo, "id"), str_of(&bob_tag, "id"), str_of(&bob_repo, "id"));

    let res = alice.post(&format!("/api/v1/tag/{at}/repo/{br}")).await;
    assert_eq!((res.status.as_u16(), res.body.clone()), (404, json!({"error": "repository not found"})));
    let res = alice.post(&format!("/api/v1/tag/{bt}/repo/{ar}")).await;
    assert_eq!((res.status.as_u16(), res.body.clone()), (404, json!({"error": "tag not found"})));

    let res = alice.post(&format!("/api/v1/tag/{at}/repo/{ar}")).await;
    assert_eq!(res.status, 201);
    let assoc_id = str_of(&res.body["assoc"], "id").to_owned();
    let res = bob.delete(&format!("/api/v1/repo-tag-assoc/{assoc_id}")).await;
    assert_eq!((res.status.as_u16(), res.body.clone()), (404, json!({"error": "association not found"})));
    assert_eq!(alice.get(&format!("/api/v1/tags/repo/{ar}")).await.body, json!([alice_tag]));
    assert_eq!(alice.post("/api/v1/tag/nope/repo/nope").await.status, 400);
}
