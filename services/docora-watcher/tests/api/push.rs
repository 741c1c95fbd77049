//! GitHub's push webhook schedules an immediate scan.

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::{TestApp, count, execute, str_of};

const SECRET: &str = "push-secret";

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn a_verified_push_to_the_default_branch_makes_the_repository_due() {
    let app = TestApp::spawn_with(|env| env.with("GITHUB_WEBHOOK_SECRET", SECRET)).await;
    let (owner_id, _) = app.github.add_user("octo");
    let github_id = app.github.add_repo(owner_id, "docs", false);
    let (_, client) = app.app("reader").await;
    let res = client.post_json("/api/repositories", &json!({"github_url": "https://github.com/octo/docs"})).await;
    let id = str_of(&res.body, "repository_id").to_owned();
    execute(&app.db, "UPDATE docora.repositories SET next_scan_at = now() + interval '1 hour'").await;
    let due_sql = format!("SELECT count(*) AS n FROM docora.repositories WHERE id = '{id}' AND next_scan_at <= now()");
    let due = || count(&app.db, &due_sql);

    let send = |body: serde_json::Value, signature: Option<String>, event: &'static str| {
        let bytes = body.to_string().into_bytes();
        let signature = signature.unwrap_or_else(|| sign(&bytes));
        let client =
            app.anonymous().with_header("X-Hub-Signature-256", &signature).with_header("X-GitHub-Event", event);
        async move { client.send_raw(reqwest::Method::POST, "/api/github/push", "application/json", bytes).await }
    };
    let push = json!({"ref": "refs/heads/main", "repository": {"id": github_id, "full_name": "octo/docs"}});

    let forged = send(push.clone(), Some("sha256=00".into()), "push").await;
    assert_eq!(forged.status, 401, "{}", forged.text);
    let other_branch = send(json!({"ref": "refs/heads/feature", "repository": {"id": github_id}}), None, "push").await;
    assert_eq!(other_branch.status, 202);
    assert_eq!(other_branch.body, json!({"scheduled": false}));
    assert_eq!(due().await, 0);

    let res = send(push, None, "push").await;
    assert_eq!(res.status, 202, "{}", res.text);
    assert_eq!(res.body, json!({"scheduled": true}));
    assert_eq!(due().await, 1);

    assert_eq!(send(json!({"zen": "hi"}), None, "ping").await.status, 200);
    assert_eq!(send(json!({"nothing": 1}), None, "push").await.status, 422);
}

#[tokio::test]
async fn push_webhooks_are_off_without_a_secret() {
    let app = TestApp::spawn().await;
    let res = app.anonymous().post_json("/api/github/push", &json!({})).await;
    assert_eq!(res.status, 503, "{}", res.text);
}
