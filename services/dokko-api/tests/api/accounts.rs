//! Service accounts: minting, listing, M2M login, revocation and rotation.

use serde_json::json;

use crate::{Org, TestApp, is_recent_rfc3339, is_uuid, keys, str_of};

async fn setup() -> (TestApp, Org) {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    (app, org)
}

#[tokio::test]
async fn a_service_account_is_minted_listed_and_fetched_without_its_secret() {
    let (app, org) = setup().await;
    let res = org.admin.post_json("/api/v1/admin/service-accounts", &json!({"name": "production-integration"})).await;
    assert_eq!(res.status, 201, "{}", res.text);
    assert_eq!(keys(&res.body), ["client_id", "client_secret", "id", "name"]);
    assert!(is_uuid(&res.body["id"]));
    let client_id = str_of(&res.body, "client_id");
    assert!(client_id.starts_with("sa_") && client_id.len() == 35, "{client_id}");
    assert_eq!(str_of(&res.body, "client_secret").len(), 64);
    assert_eq!(res.body["name"], "production-integration");
    let id = str_of(&res.body, "id").to_owned();
    let secret = str_of(&res.body, "client_secret").to_owned();
    // The secret is stored only as an argon2id hash.
    assert_eq!(crate::count(&app.db, &format!("SELECT count(*) AS n FROM dokko.service_accounts WHERE secret_hash LIKE '$argon2id$%' AND secret_hash NOT LIKE '%{secret}%'")).await, 1);

    let one = org.admin.get(&format!("/api/v1/admin/service-accounts/{id}")).await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(keys(&one.body), ["client_id", "created_at", "id", "is_active", "last_login_at", "name"]);
    assert_eq!(one.body["is_active"], true);
    assert!(one.body["last_login_at"].is_null());
    assert!(is_recent_rfc3339(&one.body["created_at"]), "{}", one.body);

    let list = org.admin.get("/api/v1/admin/service-accounts").await;
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(list.body["items"], json!([one.body]));
    assert_eq!(
        (
            list.body["has_next_page"].clone(),
            list.body["page_number"].clone(),
            list.body["page_count"].clone(),
            list.body["page_size"].clone(),
            list.body["total_records"].clone()
        ),
        (json!(false), json!(1), json!(1), json!(10), json!(1))
    );
    assert!(!list.text.contains(&secret));

    let login = app.service_login("acme", str_of(&one.body, "client_id"), &secret).await;
    assert_eq!(login.status, 200, "{}", login.text);
    let after = org.admin.get(&format!("/api/v1/admin/service-accounts/{id}")).await;
    assert!(is_recent_rfc3339(&after.body["last_login_at"]), "{}", after.body);
}

#[tokio::test]
async fn service_login_issues_the_contract_token() {
    let (app, org) = setup().await;
    let (id, client_id, secret) = app.service_account(&org, "integration").await;
    let res = app.service_login("acme", &client_id, &secret).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(keys(&res.body), ["access_token", "token_type"]);
    assert_eq!(res.body["token_type"], "Bearer");
    let token = str_of(&res.body, "access_token");
    let claims: dokko_api::identity::Claims =
        auth::jwt::JwtKeys::hs256(crate::JWT_SECRET.as_bytes(), "fastapi-m2m:auth")
            .verify(token)
            .expect("an M2M token");
    assert_eq!(claims.sub, id);
    assert_eq!(claims.aud, "fastapi-m2m:auth");
    assert_eq!(claims.exp - claims.iat, 28_800);
    assert_eq!(claims.tenant_id, org.id);
    // The header is {"typ":"JWT","alg":"HS256"}.
    assert_eq!(token.split('.').next(), Some("eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9"));

    // The grant type, when sent, must be client_credentials.
    let res = app
        .anonymous()
        .with_header("X-Tenant", "acme")
        .post_form(
            "/api/v1/auth/service/login",
            &[("grant_type", "client_credentials"), ("client_id", &client_id), ("client_secret", &secret)],
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let res = app
        .anonymous()
        .with_header("X-Tenant", "acme")
        .post_form(
            "/api/v1/auth/service/login",
            &[("grant_type", "password"), ("client_id", &client_id), ("client_secret", &secret)],
        )
        .await;
    assert_eq!(res.status, 400, "{}", res.text);
}

#[tokio::test]
async fn service_login_errors() {
    let (app, org) = setup().await;
    let (_, client_id, secret) = app.service_account(&org, "integration").await;
    let other = app.org("globex").await;
    let (_, other_client, other_secret) = app.service_account(&other, "theirs").await;

    let wrong = app.service_login("acme", &client_id, "0".repeat(64).as_str()).await;
    let unknown = app.service_login("acme", "sa_00000000000000000000000000000000", &secret).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(unknown.status, 401);
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(app.service_login("acme", &other_client, &other_secret).await.status, 401, "another tenant's account");
    assert_eq!(app.service_login("initech", &client_id, &secret).await.status, 404);
    let no_tenant = app
        .anonymous()
        .post_form(
            "/api/v1/auth/service/login",
            &[("client_id", client_id.as_str()), ("client_secret", secret.as_str())],
        )
        .await;
    assert_eq!(no_tenant.status, 422, "{}", no_tenant.text);
    assert!(no_tenant.error().contains("X-Tenant"));
    let no_secret = app
        .anonymous()
        .with_header("X-Tenant", "acme")
        .post_form("/api/v1/auth/service/login", &[("client_id", client_id.as_str())])
        .await;
    assert_eq!(no_secret.status, 422, "{}", no_secret.text);
    assert!(no_secret.error().contains("client_secret"));
}

#[tokio::test]
async fn validation_and_missing_accounts() {
    let (app, org) = setup().await;
    let short = org.admin.post_json("/api/v1/admin/service-accounts", &json!({"name": "ab"})).await;
    assert_eq!(short.status, 400, "{}", short.text);
    let missing = org.admin.post_json("/api/v1/admin/service-accounts", &json!({})).await;
    assert_eq!(missing.status, 422, "{}", missing.text);
    let wrong_type = org.admin.post_json("/api/v1/admin/service-accounts", &json!({"name": 42})).await;
    assert_eq!(wrong_type.status, 422, "{}", wrong_type.text);

    let absent = "550e8400-e29b-41d4-a716-446655440000";
    for res in [
        org.admin.get(&format!("/api/v1/admin/service-accounts/{absent}")).await,
        org.admin.delete(&format!("/api/v1/admin/service-accounts/{absent}")).await,
        org.admin.post(&format!("/api/v1/admin/service-accounts/{absent}/rotate-secret")).await,
    ] {
        assert_eq!(res.status, 404, "{}", res.text);
    }
    for res in [
        org.admin.get("/api/v1/admin/service-accounts/not-a-uuid").await,
        org.admin.delete("/api/v1/admin/service-accounts/not-a-uuid").await,
    ] {
        assert_eq!(res.status, 422, "{}", res.text);
    }
    let anonymous = app.anonymous();
    for res in [
        anonymous.get("/api/v1/admin/service-accounts").await,
        anonymous.post_json("/api/v1/admin/service-accounts", &json!({"name": "abc"})).await,
    ] {
        assert_eq!(res.status, 401, "{}", res.text);
    }

    for i in 0..12 {
        app.service_account(&org, &format!("account-{i:02}")).await;
    }
    let page = org.admin.get("/api/v1/admin/service-accounts?page_num=2&per_page=5").await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(page.body["items"].as_array().map(Vec::len), Some(5));
    assert_eq!(page.body["items"][0]["name"], "account-05");
    assert_eq!((page.body["page_count"].clone(), page.body["has_next_page"].clone()), (json!(3), json!(true)));
    let bad = org.admin.get("/api/v1/admin/service-accounts?per_page=101").await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert!(bad.error().contains("per_page"));
}

#[tokio::test]
async fn service_account_tokens_cannot_administer() {
    let (app, org) = setup().await;
    let (id, client_id, secret) = app.service_account(&org, "integration").await;
    let res = app.service_login("acme", &client_id, &secret).await;
    let machine = app.as_token(str_of(&res.body, "access_token"));

    assert_eq!(machine.get("/api/v1/permissions").await.status, 200);
    for res in [
        machine.get("/api/v1/admin/service-accounts").await,
        machine.post_json("/api/v1/admin/service-accounts", &json!({"name": "escalate"})).await,
        machine.get(&format!("/api/v1/admin/service-accounts/{id}")).await,
        machine.delete(&format!("/api/v1/admin/service-accounts/{id}")).await,
        machine.post(&format!("/api/v1/admin/service-accounts/{id}/rotate-secret")).await,
    ] {
        assert_eq!(res.status, 403, "{}", res.text);
    }
}

#[tokio::test]
async fn revocation_stops_logins_but_issued_tokens_live_until_expiry() {
    let (app, org) = setup().await;
    let (id, client_id, secret) = app.service_account(&org, "integration").await;
    let res = app.service_login("acme", &client_id, &secret).await;
    let machine = app.as_token(str_of(&res.body, "access_token"));

    let revoked = org.admin.delete(&format!("/api/v1/admin/service-accounts/{id}")).await;
    assert_eq!(revoked.status, 204, "{}", revoked.text);
    assert!(revoked.text.is_empty());
    assert_eq!(app.service_login("acme", &client_id, &secret).await.status, 401);
    assert_eq!(machine.get("/api/v1/permissions").await.status, 200, "issued tokens stay valid");

    let shown = org.admin.get(&format!("/api/v1/admin/service-accounts/{id}")).await;
    assert_eq!(shown.body["is_active"], false);
    assert_eq!(org.admin.delete(&format!("/api/v1/admin/service-accounts/{id}")).await.status, 204, "idempotent");
    let rotate = org.admin.post(&format!("/api/v1/admin/service-accounts/{id}/rotate-secret")).await;
    assert_eq!(rotate.status, 409, "{}", rotate.text);
}

#[tokio::test]
async fn rotation_is_a_hard_cutover() {
    let (app, org) = setup().await;
    let (id, client_id, old_secret) = app.service_account(&org, "integration").await;
    let res = app.service_login("acme", &client_id, &old_secret).await;
    let old_machine = app.as_token(str_of(&res.body, "access_token"));
    assert_eq!(old_machine.get("/api/v1/permissions").await.status, 200);

    let rotated = org.admin.post(&format!("/api/v1/admin/service-accounts/{id}/rotate-secret")).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    assert_eq!(keys(&rotated.body), ["client_id", "client_secret", "id", "name"]);
    assert_eq!(rotated.body["id"], id.as_str());
    assert_eq!(rotated.body["client_id"], client_id.as_str());
    let new_secret = str_of(&rotated.body, "client_secret").to_owned();
    assert_ne!(new_secret, old_secret);

    assert_eq!(app.service_login("acme", &client_id, &old_secret).await.status, 401, "old secret");
    let stale = old_machine.get("/api/v1/permissions").await;
    assert_eq!(stale.status, 401, "token issued before rotation: {}", stale.text);
    let res = app.service_login("acme", &client_id, &new_secret).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(app.as_token(str_of(&res.body, "access_token")).get("/api/v1/permissions").await.status, 200);
}
