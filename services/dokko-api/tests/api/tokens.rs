//! Bearer tokens that must be refused: expired, another audience, tampered, `alg: none`,
//! another secret, another tenant, malformed.

use auth::jwt::JwtKeys;
use dokko_api::identity::Claims;
use serde_json::json;

use crate::{JWT_SECRET, TestApp, str_of};

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn only_valid_tokens_of_live_principals_are_accepted() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let (id, client_id, secret) = app.service_account(&org, "integration").await;
    let res = app.service_login("acme", &client_id, &secret).await;
    let good = str_of(&res.body, "access_token").to_owned();
    assert_eq!(app.as_token(&good).get("/api/v1/permissions").await.status, 200);

    let keys = JwtKeys::hs256_audiences(JWT_SECRET.as_bytes(), &["fastapi-m2m:auth", "someone-else"]);
    let claims = |aud: &str, exp: i64, tenant_id: uuid::Uuid, sub: &str| Claims {
        sub: sub.to_owned(),
        aud: aud.to_owned(),
        exp,
        iat: now() - 10,
        tenant_id,
        ver: Some(1),
    };
    let sign = |c: &Claims| keys.issue(c).expect("signs");

    // A token we sign ourselves with the right claims works: the checks below are the only difference.
    assert_eq!(
        app.as_token(&sign(&claims("fastapi-m2m:auth", now() + 60, org.id, &id)))
            .get("/api/v1/permissions")
            .await
            .status,
        200
    );

    let expired = sign(&claims("fastapi-m2m:auth", now() - 60, org.id, &id));
    let wrong_audience = sign(&claims("someone-else", now() + 60, org.id, &id));
    let other_secret = JwtKeys::hs256(b"another-secret-another-secret-another", "fastapi-m2m:auth")
        .issue(&claims("fastapi-m2m:auth", now() + 60, org.id, &id))
        .expect("signs");
    let other = app.org("globex").await;
    let other_tenant = sign(&claims("fastapi-m2m:auth", now() + 60, other.id, &id));
    let unknown_subject = sign(&claims("fastapi-m2m:auth", now() + 60, org.id, &uuid::Uuid::new_v4().to_string()));
    let not_a_uuid = sign(&claims("fastapi-m2m:auth", now() + 60, org.id, "robot"));
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let tampered = {
        let payload = json!({"sub": id, "aud": "fastapi-m2m:auth", "exp": now() + 86_400 * 365, "iat": now(), "tenant_id": org.id, "ver": 1});
        parts[1] = b64url(payload.to_string().as_bytes());
        parts.join(".")
    };
    let none = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(json!({"sub": id, "aud": "fastapi-m2m:auth", "exp": now() + 60, "iat": now(), "tenant_id": org.id, "ver": 1}).to_string().as_bytes())
    );

    for (what, token) in [
        ("expired", expired.as_str()),
        ("wrong audience", wrong_audience.as_str()),
        ("signed with another secret", other_secret.as_str()),
        ("another tenant in the claims", other_tenant.as_str()),
        ("unknown subject", unknown_subject.as_str()),
        ("subject not a UUID", not_a_uuid.as_str()),
        ("tampered payload", tampered.as_str()),
        ("alg none", none.as_str()),
        ("garbage", "not.a.token"),
    ] {
        let res = app.as_token(token).get("/api/v1/permissions").await;
        assert_eq!(res.status, 401, "{what}: {}", res.text);
        assert!(!res.error().is_empty(), "{what}: a JSON error body");
    }
    let expired_res = app.as_token(&expired).get("/api/v1/permissions").await;
    assert_eq!(expired_res.error(), "token expired");

    let missing = app.anonymous().get("/api/v1/permissions").await;
    assert_eq!(missing.status, 401);
    assert!(missing.error().contains("Bearer"), "{}", missing.text);
    let basic = app.anonymous().with_header("Authorization", "Basic YWRtaW46YWRtaW4=").get("/api/v1/permissions").await;
    assert_eq!(basic.status, 401);
}

#[tokio::test]
async fn a_user_token_stops_working_when_the_user_is_deactivated() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    assert_eq!(org.admin.get("/api/v1/permissions").await.status, 200);
    crate::execute(&app.db, "UPDATE dokko.users SET is_active = false").await;
    assert_eq!(org.admin.get("/api/v1/permissions").await.status, 401);
}

#[tokio::test]
async fn every_authenticated_route_refuses_a_request_without_a_token() {
    let app = TestApp::spawn().await;
    let client = app.anonymous();
    let id = "550e8400-e29b-41d4-a716-446655440000";
    let routes = [
        (reqwest::Method::POST, "/api/v1/admin/invitations".to_owned()),
        (reqwest::Method::GET, "/api/v1/admin/users".to_owned()),
        (reqwest::Method::GET, "/api/v1/admin/service-accounts".to_owned()),
        (reqwest::Method::POST, "/api/v1/admin/service-accounts".to_owned()),
        (reqwest::Method::GET, format!("/api/v1/admin/service-accounts/{id}")),
        (reqwest::Method::DELETE, format!("/api/v1/admin/service-accounts/{id}")),
        (reqwest::Method::POST, format!("/api/v1/admin/service-accounts/{id}/rotate-secret")),
        (reqwest::Method::GET, "/api/v1/permissions".to_owned()),
        (reqwest::Method::POST, "/api/v1/permissions".to_owned()),
        (reqwest::Method::GET, format!("/api/v1/permissions/{id}")),
        (reqwest::Method::PATCH, format!("/api/v1/permissions/{id}")),
        (reqwest::Method::DELETE, format!("/api/v1/permissions/{id}")),
        (reqwest::Method::GET, "/api/v1/document-sources".to_owned()),
        (reqwest::Method::GET, format!("/api/v1/document-sources/{id}")),
        (reqwest::Method::GET, "/api/v1/repositories".to_owned()),
        (reqwest::Method::POST, "/api/v1/repositories".to_owned()),
        (reqwest::Method::GET, format!("/api/v1/repositories/{id}")),
        (reqwest::Method::PATCH, format!("/api/v1/repositories/{id}")),
        (reqwest::Method::DELETE, format!("/api/v1/repositories/{id}")),
        (reqwest::Method::GET, format!("/api/v1/repositories/{id}/items")),
        (reqwest::Method::POST, format!("/api/v1/repositories/{id}/items")),
        (reqwest::Method::PATCH, format!("/api/v1/repositories/{id}/items")),
        (reqwest::Method::DELETE, format!("/api/v1/repositories/{id}/items")),
        (reqwest::Method::POST, format!("/api/v1/repositories/{id}/items/content")),
        (reqwest::Method::GET, format!("/api/v1/files/{id}")),
        (reqwest::Method::GET, format!("/api/v1/files/{id}/metadata")),
        (reqwest::Method::PUT, format!("/api/v1/files/{id}/metadata")),
        (reqwest::Method::POST, format!("/api/v1/files/{id}/metadata/reset")),
        (reqwest::Method::GET, format!("/api/v1/document-sources/{id}/folder-structure")),
    ];
    for (method, path) in routes {
        let res = client.send_raw(method.clone(), &path, "application/json", "{}").await;
        assert_eq!(res.status, 401, "{method} {path}: {}", res.text);
        assert!(res.error().contains("Bearer"), "{method} {path}: {}", res.text);
    }
}
