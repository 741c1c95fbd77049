//! Provisioning an organisation, invitations, and people signing in.

use serde_json::json;
use testkit::s3::FailMode;

use crate::{PASSWORD, TestApp, count, execute, is_uuid, keys, str_of};

#[tokio::test]
async fn provisioning_creates_the_bucket_the_document_source_and_a_pending_admin() {
    let app = TestApp::spawn().await;
    let p = app.provision("acme", "Admin@Acme.example").await;

    assert!(app.s3.bucket_exists(&p.bucket), "bucket {} exists", p.bucket);
    assert_eq!(p.bucket, format!("dokko-{}", p.tenant_id.simple()));
    assert_eq!(p.invitation.email, "admin@acme.example");
    let url = p.invitation.url(&app.settings.public_url);
    assert!(url.starts_with("https://dokko.test/invitations/accept?token=inv_"), "{url}");
    assert_eq!(
        count(&app.db, "SELECT count(*) AS n FROM dokko.document_sources WHERE type = 'S3' AND status = 'unlocked'")
            .await,
        1
    );
    assert_eq!(
        count(&app.db, "SELECT count(*) AS n FROM dokko.users WHERE role = 'org_admin' AND NOT is_active").await,
        1
    );
    // Only the digest of the invitation token is stored.
    let stored = count(
        &app.db,
        &format!(
            "SELECT count(*) AS n FROM dokko.invitations WHERE encode(token_digest, 'escape') LIKE '%{}%'",
            p.invitation.token
        ),
    )
    .await;
    assert_eq!(stored, 0);

    // Not active until the invitation is accepted.
    let res = app
        .anonymous()
        .with_header("X-Tenant", "acme")
        .post_form("/api/v1/auth/login", &[("email", "admin@acme.example"), ("password", PASSWORD)])
        .await;
    assert_eq!(res.status, 401, "{}", res.text);
}

#[tokio::test]
async fn an_invitation_activates_the_account_once() {
    let app = TestApp::spawn().await;
    let p = app.provision("acme", "admin@acme.example").await;
    let accept = json!({"token": p.invitation.token, "password": PASSWORD});

    let res = app.anonymous().post_json("/api/v1/auth/invitations/accept", &accept).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body, json!({"email": "admin@acme.example", "organisation": "acme", "tenant_id": p.tenant_id}));

    let again = app
        .anonymous()
        .post_json(
            "/api/v1/auth/invitations/accept",
            &json!({"token": p.invitation.token, "password": "another password"}),
        )
        .await;
    assert_eq!(again.status, 400, "{}", again.text);
    assert!(again.error().contains("invalid, already used or expired"), "{}", again.text);

    let res = app
        .anonymous()
        .with_header("X-Tenant", "acme")
        .post_form("/api/v1/auth/login", &[("email", "admin@acme.example"), ("password", PASSWORD)])
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(keys(&res.body), ["access_token", "token_type"]);
    assert_eq!(res.body["token_type"], "Bearer");
    let claims: dokko_api::identity::Claims =
        auth::jwt::JwtKeys::hs256(crate::JWT_SECRET.as_bytes(), "fastapi-users:auth")
            .verify(str_of(&res.body, "access_token"))
            .expect("a user token");
    assert_eq!(claims.tenant_id, p.tenant_id);
    assert_eq!(claims.sub, p.invitation.user_id.to_string());
    assert_eq!(claims.exp - claims.iat, 3600);
}

#[tokio::test]
async fn the_invitation_page_posts_a_form_that_activates_the_account() {
    let app = TestApp::spawn().await;
    let p = app.provision("acme", "admin@acme.example").await;

    let page = app.anonymous().get(&format!("/invitations/accept?token={}", p.invitation.token)).await;
    assert_eq!(page.status, 200);
    assert!(page.headers["content-type"].to_str().unwrap_or_default().starts_with("text/html"));
    assert!(page.text.contains(&format!(r#"name="token" value="{}""#, p.invitation.token)), "{}", page.text);
    assert!(page.text.contains(r#"action="/invitations/accept""#));
    // Markup in the token parameter is dropped, not echoed.
    let hostile = app.anonymous().get("/invitations/accept?token=%22%3E%3Cscript%3Ealert(1)%3C/script%3E").await;
    assert!(!hostile.text.contains("<script>"), "{}", hostile.text);

    let res = app
        .anonymous()
        .post_form("/api/v1/auth/invitations/accept", &[("token", p.invitation.token.as_str()), ("password", PASSWORD)])
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    app.login("acme", "admin@acme.example", PASSWORD).await;
}

#[tokio::test]
async fn expired_unknown_and_malformed_invitations_are_refused() {
    let app = TestApp::spawn().await;
    let p = app.provision("acme", "admin@acme.example").await;
    let client = app.anonymous();

    let short = client
        .post_json("/api/v1/auth/invitations/accept", &json!({"token": p.invitation.token, "password": "short"}))
        .await;
    assert_eq!(short.status, 400, "{}", short.text);
    assert!(short.error().contains("8 to 256"), "{}", short.text);

    let unknown =
        client.post_json("/api/v1/auth/invitations/accept", &json!({"token": "inv_nope", "password": PASSWORD})).await;
    assert_eq!(unknown.status, 400, "{}", unknown.text);

    let missing = client.post_json("/api/v1/auth/invitations/accept", &json!({"token": p.invitation.token})).await;
    assert_eq!(missing.status, 422, "{}", missing.text);
    assert!(missing.error().contains("password"), "{}", missing.text);

    let broken =
        client.send_raw(reqwest::Method::POST, "/api/v1/auth/invitations/accept", "application/json", "{").await;
    assert_eq!(broken.status, 422, "{}", broken.text);

    execute(&app.db, "UPDATE dokko.invitations SET expires_at = now() - interval '1 minute'").await;
    let expired = client
        .post_json("/api/v1/auth/invitations/accept", &json!({"token": p.invitation.token, "password": PASSWORD}))
        .await;
    assert_eq!(expired.status, 400, "{}", expired.text);
    assert_eq!(count(&app.db, "SELECT count(*) AS n FROM dokko.users WHERE is_active").await, 0);
}

#[tokio::test]
async fn login_errors_are_precise_and_do_not_tell_which_credential_was_wrong() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let client = app.anonymous();
    let login = |tenant: Option<&'static str>, fields: Vec<(&'static str, String)>| {
        let client = match tenant {
            Some(t) => client.with_header("X-Tenant", t),
            None => client.clone(),
        };
        async move {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            client.post_form("/api/v1/auth/login", &fields).await
        }
    };
    let email = org.admin_email.clone();

    let wrong_password =
        login(Some("acme"), vec![("email", email.clone()), ("password", "wrong password".into())]).await;
    let unknown_email =
        login(Some("acme"), vec![("email", "nobody@acme.example".into()), ("password", PASSWORD.into())]).await;
    assert_eq!(wrong_password.status, 401);
    assert_eq!(unknown_email.status, 401);
    assert_eq!(wrong_password.body, unknown_email.body);

    let unknown_tenant = login(Some("globex"), vec![("email", email.clone()), ("password", PASSWORD.into())]).await;
    assert_eq!(unknown_tenant.status, 404, "{}", unknown_tenant.text);

    let no_tenant = login(None, vec![("email", email.clone()), ("password", PASSWORD.into())]).await;
    assert_eq!(no_tenant.status, 422, "{}", no_tenant.text);
    assert!(no_tenant.error().contains("X-Tenant"), "{}", no_tenant.text);

    let no_password = login(Some("acme"), vec![("email", email.clone())]).await;
    assert_eq!(no_password.status, 422, "{}", no_password.text);
    assert!(no_password.error().contains("password"), "{}", no_password.text);

    // The tenant by UUID, the name in any case, the email in any case, and OAuth2's `username`.
    let by_id = client
        .with_header("X-Tenant", &org.id.to_string())
        .post_form("/api/v1/auth/login", &[("username", "ADMIN@acme.example"), ("password", PASSWORD)])
        .await;
    assert_eq!(by_id.status, 200, "{}", by_id.text);
    let by_name = client
        .with_header("X-Tenant", "ACME")
        .post_form("/api/v1/auth/login", &[("email", &email), ("password", PASSWORD)])
        .await;
    assert_eq!(by_name.status, 200, "{}", by_name.text);
}

#[tokio::test]
async fn provisioning_refuses_bad_names_and_duplicates_and_leaves_nothing_behind() {
    let app = TestApp::spawn().await;
    app.provision("acme", "admin@acme.example").await;
    let storage = dokko_api::storage::Storage::new(&app.settings.s3).expect("storage");
    let pool = app.pool();
    let create = |name: &str, email: &str| {
        let (pool, storage, settings) = (pool.clone(), storage.clone(), app.settings.clone());
        let (name, email) = (name.to_owned(), email.to_owned());
        async move { dokko_api::admin::create_tenant(&pool, &storage, &settings, &name, &email, None).await }
    };

    let duplicate = create("acme", "other@acme.example").await.expect_err("duplicate name");
    assert!(duplicate.to_string().contains("already exists"), "{duplicate}");
    for bad in ["a", "-acme", "acme corp", "acme/../x"] {
        let error = create(bad, "admin@x.example").await.expect_err("invalid name");
        assert!(error.to_string().contains("lower-case"), "{bad}: {error}");
    }
    let error = create("globex", "not-an-email").await.expect_err("invalid email");
    assert!(error.to_string().contains("email"), "{error}");

    // Object storage failing: nothing is recorded.
    app.s3.fail(FailMode::All);
    let error = create("initech", "admin@initech.example").await.expect_err("storage down");
    assert!(error.to_string().contains("bucket"), "{error}");
    app.s3.fail(FailMode::Off);
    assert_eq!(count(&app.db, "SELECT count(*) AS n FROM dokko.tenants").await, 1);
    assert_eq!(count(&app.db, "SELECT count(*) AS n FROM dokko.users").await, 1);
    pool.close();
}

#[tokio::test]
async fn admins_invite_people_and_members_cannot_administer() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;

    let res = org.admin.post_json("/api/v1/admin/invitations", &json!({"email": "Dev@Acme.example"})).await;
    assert_eq!(res.status, 201, "{}", res.text);
    assert_eq!(keys(&res.body), ["email", "expires_at", "invitation_token", "invitation_url", "role", "user_id"]);
    assert_eq!(res.body["email"], "dev@acme.example");
    assert_eq!(res.body["role"], "member");
    assert!(is_uuid(&res.body["user_id"]));
    let token = str_of(&res.body, "invitation_token").to_owned();
    assert_eq!(res.body["invitation_url"], format!("https://dokko.test/invitations/accept?token={token}"));

    // A second invitation replaces the first.
    let res = org.admin.post_json("/api/v1/admin/invitations", &json!({"email": "dev@acme.example"})).await;
    assert_eq!(res.status, 201, "{}", res.text);
    let newer = str_of(&res.body, "invitation_token").to_owned();
    let old = app
        .anonymous()
        .post_json("/api/v1/auth/invitations/accept", &json!({"token": token, "password": PASSWORD}))
        .await;
    assert_eq!(old.status, 400, "{}", old.text);
    let ok = app
        .anonymous()
        .post_json("/api/v1/auth/invitations/accept", &json!({"token": newer, "password": PASSWORD}))
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);

    let member = app.as_token(&app.login("acme", "dev@acme.example", PASSWORD).await);
    // Members use the API but cannot administer.
    assert_eq!(member.get("/api/v1/permissions").await.status, 200);
    for res in [
        member.get("/api/v1/admin/service-accounts").await,
        member.post_json("/api/v1/admin/service-accounts", &json!({"name": "mine"})).await,
        member.post_json("/api/v1/admin/invitations", &json!({"email": "x@acme.example"})).await,
        member.get("/api/v1/admin/users").await,
    ] {
        assert_eq!(res.status, 403, "{}", res.text);
    }

    let active = org.admin.post_json("/api/v1/admin/invitations", &json!({"email": "dev@acme.example"})).await;
    assert_eq!(active.status, 409, "{}", active.text);
    let bad_email = org.admin.post_json("/api/v1/admin/invitations", &json!({"email": "dev"})).await;
    assert_eq!(bad_email.status, 400, "{}", bad_email.text);
    let bad_role =
        org.admin.post_json("/api/v1/admin/invitations", &json!({"email": "a@acme.example", "role": "owner"})).await;
    assert_eq!(bad_role.status, 400, "{}", bad_role.text);

    let users = org.admin.get("/api/v1/admin/users").await;
    assert_eq!(users.status, 200, "{}", users.text);
    assert_eq!(users.body["total_records"], 2);
    assert_eq!(users.body["items"][0]["email"], org.admin_email.as_str());
    assert_eq!(users.body["items"][0]["role"], "org_admin");
    assert_eq!(users.body["items"][1]["email"], "dev@acme.example");
    assert_eq!(users.body["items"][1]["is_active"], true);
}

#[tokio::test]
async fn an_inactive_subscription_answers_402_until_it_is_active_again() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let machine = app.machine(&org).await;
    let (_, client_id, secret) = app.service_account(&org, "second").await;
    let pool = app.pool();
    let mut conn = service_kit::db::conn(&pool).await.expect("connection");

    dokko_api::tenants::set_subscription(&mut conn, org.id, false).await.expect("deactivates");
    for res in [org.admin.get("/api/v1/permissions").await, machine.get("/api/v1/document-sources").await] {
        assert_eq!(res.status, 402, "{}", res.text);
    }
    let login = app
        .anonymous()
        .with_header("X-Tenant", "acme")
        .post_form("/api/v1/auth/login", &[("email", org.admin_email.as_str()), ("password", PASSWORD)])
        .await;
    assert_eq!(login.status, 402, "{}", login.text);
    assert_eq!(app.service_login("acme", &client_id, &secret).await.status, 402);
    // Wrong credentials still answer 401: the subscription is not revealed to strangers.
    let stranger = app
        .anonymous()
        .with_header("X-Tenant", "acme")
        .post_form("/api/v1/auth/login", &[("email", org.admin_email.as_str()), ("password", "wrong password")])
        .await;
    assert_eq!(stranger.status, 401);

    dokko_api::tenants::set_subscription(&mut conn, org.id, true).await.expect("reactivates");
    assert_eq!(org.admin.get("/api/v1/permissions").await.status, 200);
    assert_eq!(machine.get("/api/v1/document-sources").await.status, 200);
    drop(conn);
    pool.close();
}

#[tokio::test]
async fn of_two_concurrent_accepts_of_one_invitation_exactly_one_wins() {
    let app = TestApp::spawn().await;
    let p = app.provision("acme", "admin@acme.example").await;
    let client = app.anonymous();
    let first = json!({"token": p.invitation.token, "password": "first password"});
    let second = json!({"token": p.invitation.token, "password": "second password"});
    let (a, b) = tokio::join!(
        client.post_json("/api/v1/auth/invitations/accept", &first),
        client.post_json("/api/v1/auth/invitations/accept", &second)
    );
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 400], "{} / {}", a.text, b.text);
    let winner = if a.status == 200 { "first password" } else { "second password" };
    let loser = if a.status == 200 { "second password" } else { "first password" };
    app.login("acme", "admin@acme.example", winner).await;
    let res = app
        .anonymous()
        .with_header("X-Tenant", "acme")
        .post_form("/api/v1/auth/login", &[("email", "admin@acme.example"), ("password", loser)])
        .await;
    assert_eq!(res.status, 401);
}

#[tokio::test]
async fn repeated_failures_lock_the_account_out_without_locking_others() {
    let app = TestApp::spawn_with(|env| env.with("LOGIN_MAX_FAILURES", "3").with("LOGIN_LOCKOUT_SECS", "600")).await;
    let org = app.org("acme").await;
    let (_, client_id, secret) = app.service_account(&org, "integration").await;
    let login = |password: &'static str| {
        let client = app.anonymous().with_header("X-Tenant", "acme");
        let email = org.admin_email.clone();
        async move { client.post_form("/api/v1/auth/login", &[("email", email.as_str()), ("password", password)]).await }
    };
    for _ in 0..3 {
        assert_eq!(login("wrong password").await.status, 401);
    }
    let locked = login(PASSWORD).await;
    assert_eq!(locked.status, 429, "{}", locked.text);
    assert_eq!(locked.headers["retry-after"], "600");
    assert!(locked.error().contains("too many failed sign-in attempts"), "{}", locked.text);
    // Another account of the tenant, and the service account, are not affected.
    assert_eq!(app.service_login("acme", &client_id, &secret).await.status, 200);
    for _ in 0..3 {
        assert_eq!(app.service_login("acme", &client_id, "0".repeat(64).as_str()).await.status, 401);
    }
    assert_eq!(app.service_login("acme", &client_id, &secret).await.status, 429);
}
