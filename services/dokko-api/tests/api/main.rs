//! dokko-api end to end: the real service on a loopback port, a real PostgreSQL database of its
//! own per test, and the in-process S3 server of the test kit.

mod accounts;
mod binary;
mod console;
mod files;
mod hardening;
mod isolation;
mod items;
mod onboarding;
mod permissions;
mod platform;
mod repositories;
mod sources;
mod tokens;

use serde_json::{Value, json};
use service_kit::{Env, db};
use testkit::{Client, S3Server, TestDb, TestServer};
use uuid::Uuid;

pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";
pub const PASSWORD: &str = "correct horse battery staple";

/// One running dokko-api with its database and object storage.
pub struct TestApp {
    pub server: TestServer,
    pub db: TestDb,
    pub s3: S3Server,
    pub settings: dokko_api::Settings,
}

/// A provisioned organisation whose admin has accepted the invitation and signed in.
pub struct Org {
    pub id: Uuid,
    pub name: String,
    pub source_id: Uuid,
    pub bucket: String,
    pub admin_email: String,
    /// A client with the admin's user token.
    pub admin: Client,
    pub admin_token: String,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|env| env).await
    }

    /// Spawns with extra settings on top of the test defaults.
    pub async fn spawn_with(adjust: impl FnOnce(Env) -> Env) -> TestApp {
        let db =
            TestDb::new("dokko", |url| async move { dokko_api::migrate(&url).await }).await.expect("test database");
        let s3 = S3Server::start().expect("S3 server starts");
        let env = adjust(test_env(&db.url, &s3));
        let settings = dokko_api::Settings::from_env(&env).expect("valid settings");
        let server = {
            let settings = settings.clone();
            TestServer::start(move |listener| dokko_api::start(settings, listener)).expect("dokko-api starts")
        };
        TestApp { server, db, s3, settings }
    }

    /// A client without a token.
    pub fn anonymous(&self) -> Client {
        Client::new(self.server.url())
    }

    /// A client sending `Authorization: Bearer <token>`.
    pub fn as_token(&self, token: &str) -> Client {
        self.anonymous().with_header("Authorization", &format!("Bearer {token}"))
    }

    /// A pool on the test database, for calling the service's library functions directly.
    pub fn pool(&self) -> db::Pool {
        db::pool(&self.settings.database).expect("pool")
    }

    /// Provisions `name` as the operator's command does, without accepting the invitation.
    pub async fn provision(&self, name: &str, admin_email: &str) -> dokko_api::admin::Provisioned {
        let storage = dokko_api::storage::Storage::new(&self.settings.s3).expect("storage");
        let pool = self.pool();
        let provisioned =
            dokko_api::admin::create_tenant(&pool, &storage, &self.settings, name, admin_email, None).await;
        pool.close();
        provisioned.unwrap_or_else(|e| panic!("provisioning {name}: {e}"))
    }

    /// A provisioned organisation with a signed-in admin.
    pub async fn org(&self, name: &str) -> Org {
        let admin_email = format!("admin@{name}.example");
        let p = self.provision(name, &admin_email).await;
        let res = self
            .anonymous()
            .post_json("/api/v1/auth/invitations/accept", &json!({"token": p.invitation.token, "password": PASSWORD}))
            .await;
        assert_eq!(res.status, 200, "{}", res.text);
        let admin_token = self.login(name, &admin_email, PASSWORD).await;
        Org {
            id: p.tenant_id,
            name: p.name,
            source_id: p.document_source_id,
            bucket: p.bucket,
            admin_email,
            admin: self.as_token(&admin_token),
            admin_token,
        }
    }

    /// Signs a person in and returns the access token.
    pub async fn login(&self, tenant: &str, email: &str, password: &str) -> String {
        let res = self
            .anonymous()
            .with_header("X-Tenant", tenant)
            .post_form("/api/v1/auth/login", &[("email", email), ("password", password)])
            .await;
        assert_eq!(res.status, 200, "{}", res.text);
        str_of(&res.body, "access_token").to_owned()
    }

    /// A service account of `org`: (id, client_id, client_secret).
    pub async fn service_account(&self, org: &Org, name: &str) -> (String, String, String) {
        let res = org.admin.post_json("/api/v1/admin/service-accounts", &json!({ "name": name })).await;
        assert_eq!(res.status, 201, "{}", res.text);
        (
            str_of(&res.body, "id").to_owned(),
            str_of(&res.body, "client_id").to_owned(),
            str_of(&res.body, "client_secret").to_owned(),
        )
    }

    /// Service login; the whole response.
    pub async fn service_login(&self, tenant: &str, client_id: &str, secret: &str) -> testkit::Response {
        self.anonymous()
            .with_header("X-Tenant", tenant)
            .post_form("/api/v1/auth/service/login", &[("client_id", client_id), ("client_secret", secret)])
            .await
    }

    /// A client with a fresh service-account token of `org`.
    pub async fn machine(&self, org: &Org) -> Client {
        let (_, client_id, secret) = self.service_account(org, "integration").await;
        let res = self.service_login(&org.name, &client_id, &secret).await;
        assert_eq!(res.status, 200, "{}", res.text);
        self.as_token(str_of(&res.body, "access_token"))
    }
}

/// The settings every test starts from.
pub fn test_env(database_url: &str, s3: &S3Server) -> Env {
    Env::default()
        .with("DATABASE_URL", database_url)
        .with("DATABASE_POOL_SIZE", "4")
        .with("HTTP_WORKERS", "1")
        .with("JWT_SECRET", JWT_SECRET)
        .with("S3_ENDPOINT", s3.endpoint())
        .with("S3_REGION", s3.region())
        .with("S3_ACCESS_KEY_ID", s3.access_key())
        .with("S3_SECRET_ACCESS_KEY", s3.secret_key())
        .with("PUBLIC_URL", "https://dokko.test")
        .with("PASSWORD_HASH_CONCURRENCY", "2")
}

/// Creates a permission and returns its JSON.
pub async fn create_permission(client: &Client, name: &str) -> Value {
    let res = client.post_json("/api/v1/permissions", &json!({ "name": name })).await;
    assert_eq!(res.status, 201, "{}", res.text);
    res.body
}

/// Creates a repository and returns its JSON.
pub async fn create_repository(client: &Client, source_id: Uuid, name: &str, permission_ids: &[&str]) -> Value {
    let res = client
        .post_json(
            "/api/v1/repositories",
            &json!({"name": name, "document_source_id": source_id, "type": "semantic", "permission_ids": permission_ids}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.text);
    res.body
}

/// Runs a `SELECT count(*) AS n …` and returns `n`.
pub async fn count(db: &TestDb, sql: &str) -> i64 {
    db.count(sql).await
}

/// Runs a statement on the test database.
pub async fn execute(db: &TestDb, sql: &str) {
    db.execute(sql).await
}

/// `value[key]` as a string.
pub fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or_else(|| panic!("{key} is not a string in {value}"))
}

/// Whether `value` is a lower-case hyphenated UUID.
pub fn is_uuid(value: &Value) -> bool {
    value.as_str().is_some_and(|s| s.len() == 36 && Uuid::parse_str(s).is_ok() && s == s.to_lowercase())
}

/// Whether `value` is an RFC 3339 UTC timestamp (`…Z`) within the last five minutes.
pub fn is_recent_rfc3339(value: &Value) -> bool {
    let Some(text) = value.as_str() else { return false };
    let Ok(at) = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339) else {
        return false;
    };
    let age = time::OffsetDateTime::now_utc() - at;
    text.ends_with('Z') && age > time::Duration::seconds(-5) && age < time::Duration::minutes(5)
}

/// The sorted keys of a JSON object.
pub fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> =
        value.as_object().unwrap_or_else(|| panic!("not an object: {value}")).keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

pub use testkit::Part;

/// Sends a multipart request built by hand (so filenames go out exactly as written).
pub async fn multipart(client: &Client, method: reqwest::Method, path: &str, parts: &[Part<'_>]) -> testkit::Response {
    client.multipart(method, path, parts).await
}

/// Uploads `files` (path, bytes) into a repository and returns the answer.
pub async fn upload(client: &Client, repository_id: &str, files: &[(&str, &[u8])]) -> testkit::Response {
    let parts: Vec<Part<'_>> = files.iter().map(|(path, bytes)| Part::File("files", path, bytes)).collect();
    multipart(client, reqwest::Method::POST, &format!("/api/v1/repositories/{repository_id}/items"), &parts).await
}

/// Object keys in the tenant's bucket.
pub fn objects(app: &TestApp, org: &Org) -> Vec<String> {
    app.s3.keys(&org.bucket)
}
