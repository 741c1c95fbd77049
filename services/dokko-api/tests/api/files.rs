//! The Files API: downloads by `file_id` and filter metadata.

use serde_json::json;

use crate::{TestApp, create_repository, str_of, upload};

async fn one_file() -> (TestApp, crate::Org, String, String) {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let repo = create_repository(&org.admin, org.source_id, "handbook", &[]).await;
    let repo = str_of(&repo, "id").to_owned();
    upload(&org.admin, &repo, &[("docs/report.md", b"# Report")]).await;
    let tree = org.admin.get(&format!("/api/v1/repositories/{repo}/items")).await;
    let file_id = str_of(&tree.body["folders"]["docs"]["files"]["report.md"], "file_id").to_owned();
    (app, org, repo, file_id)
}

#[tokio::test]
async fn a_file_downloads_through_a_redirect_to_a_presigned_url() {
    let (app, org, _, file_id) = one_file().await;
    let res =
        org.admin.request(reqwest::Method::GET, &format!("/api/v1/files/{file_id}")).send().await.expect("request");
    // reqwest follows redirects: the body is the file, fetched from object storage.
    assert_eq!(res.status(), 200);
    assert!(res.url().as_str().starts_with(&app.s3.endpoint()), "{}", res.url());
    assert_eq!(res.bytes().await.expect("bytes").as_ref(), b"# Report");

    let no_follow = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let res = no_follow
        .get(format!("{}/api/v1/files/{file_id}", app.server.url()))
        .bearer_auth(&org.admin_token)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 307);
    let location = res.headers()["location"].to_str().expect("location").to_owned();
    assert!(location.contains("X-Amz-Signature="), "{location}");

    assert_eq!(org.admin.get("/api/v1/files/550e8400-e29b-41d4-a716-446655440000").await.status, 404);
    assert_eq!(org.admin.get("/api/v1/files/nope").await.status, 422);
    let other = app.org("globex").await;
    assert_eq!(other.admin.get(&format!("/api/v1/files/{file_id}")).await.status, 404, "another tenant's file");
    assert_eq!(other.admin.get(&format!("/api/v1/files/{file_id}/metadata")).await.status, 404);
}

#[tokio::test]
async fn metadata_is_written_validated_and_reset_around_the_system_keys() {
    let (_app, org, repo, file_id) = one_file().await;
    let path = format!("/api/v1/files/{file_id}/metadata");

    let res = org.admin.get(&path).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["file_id"], file_id.as_str());
    let system = &res.body["metadata"];
    assert_eq!(system["repository_id"], repo.as_str());
    assert_eq!(system["document_source_id"], org.source_id.to_string());
    assert_eq!(system["key"], "docs/report.md");
    assert_eq!(system["filename"], "report.md");
    assert_eq!(system["ext"], "md");
    assert_eq!(system["size"], 8);

    let written = org
        .admin
        .put_json(&path, &json!({"metadata": {"team": "engineering", "region": "eu", "is_public": false, "tags": ["q4", "internal"], "year": 2024}}))
        .await;
    assert_eq!(written.status, 200, "{}", written.text);
    assert_eq!(written.body["metadata"]["team"], "engineering");
    assert_eq!(written.body["metadata"]["tags"], json!(["q4", "internal"]));
    assert_eq!(written.body["metadata"]["year"], 2024);
    assert_eq!(written.body["metadata"]["repository_id"], repo.as_str());
    assert_eq!(org.admin.get(&path).await.body, written.body);

    for (body, status) in [
        (json!({"metadata": {"repository_id": "x"}}), 400),
        (json!({"metadata": {"score": 1.5}}), 400),
        (json!({"metadata": {"nested": {"a": 1}}}), 400),
        (json!({"metadata": {"list": [1, 2]}}), 400),
        (json!({"metadata": {"nothing": null}}), 400),
        (json!({"metadata": {"bad key!": "x"}}), 400),
        (json!({"metadata": "team=eng"}), 422),
        (json!({}), 422),
    ] {
        let res = org.admin.put_json(&path, &body).await;
        assert_eq!(res.status, status, "{body}: {}", res.text);
    }
    let reserved = org.admin.put_json(&path, &json!({"metadata": {"repository_id": "x"}})).await;
    assert!(reserved.error().contains("reserved"), "{}", reserved.text);
    assert_eq!(org.admin.get(&path).await.body, written.body, "refused writes change nothing");

    let reset = org.admin.post(&format!("{path}/reset")).await;
    assert_eq!(reset.status, 200, "{}", reset.text);
    assert!(reset.body["metadata"].get("team").is_none());
    assert_eq!(reset.body["metadata"]["repository_id"], repo.as_str());
    assert_eq!(org.admin.post("/api/v1/files/550e8400-e29b-41d4-a716-446655440000/metadata/reset").await.status, 404);
}

#[tokio::test]
async fn presigned_urls_name_the_public_endpoint_when_one_is_set() {
    let app = TestApp::spawn_with(|env| env.with("S3_PUBLIC_ENDPOINT", "https://files.dokko.example")).await;
    let org = app.org("acme").await;
    let repo = create_repository(&org.admin, org.source_id, "handbook", &[]).await;
    upload(&org.admin, str_of(&repo, "id"), &[("a.md", b"a")]).await;
    let res = org
        .admin
        .post_json(&format!("/api/v1/repositories/{}/items/content", str_of(&repo, "id")), &json!({"path": "a.md"}))
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let url = str_of(&res.body, "url");
    assert!(url.starts_with(&format!("https://files.dokko.example/{}/repositories/", org.bucket)), "{url}");
    assert!(url.contains("X-Amz-Signature="), "{url}");
}

#[tokio::test]
async fn a_download_checks_the_caller_on_every_request() {
    let (app, org, repo, _) = one_file().await;
    let path = format!("/api/v1/repositories/{repo}/items/content");
    let body = json!({"path": "docs/report.md", "direct": true});
    let machine = app.machine(&org).await;
    for caller in [&org.admin, &machine] {
        let res = caller.post_json(&path, &body).await;
        assert_eq!(res.status, 200, "{}", res.text);
        assert_eq!(res.text, "# Report");
    }
    // The same path, refused for who is asking, not for what is there.
    assert_eq!(app.anonymous().post_json(&path, &body).await.status, 401);
    let forged = app.anonymous().with_header("Authorization", "Bearer not.a.token");
    assert_eq!(forged.post_json(&path, &body).await.status, 401);
    let other = app.org("globex").await;
    assert_eq!(other.admin.post_json(&path, &body).await.status, 404, "another tenant's repository");
    let missing = json!({"path": "docs/absent.md", "direct": true});
    assert_eq!(org.admin.post_json(&path, &missing).await.status, 404);

    // A deactivated user's token stops at once, even for a path that does not exist.
    let pool = app.pool();
    let mut conn = service_kit::db::conn(&pool).await.expect("connection");
    crate::execute(&app.db, &format!("UPDATE dokko.users SET is_active = false WHERE tenant_id = '{}'", org.id)).await;
    assert_eq!(org.admin.post_json(&path, &body).await.status, 401);
    assert_eq!(org.admin.post_json(&path, &missing).await.status, 401);
    assert_eq!(machine.post_json(&path, &body).await.status, 200, "the service account is still active");
    // A lapsed subscription answers 402 to every caller of the tenant.
    dokko_api::tenants::set_subscription(&mut conn, org.id, false).await.expect("deactivates");
    assert_eq!(machine.post_json(&path, &body).await.status, 402);
    drop(conn);
    pool.close();
}
