//! giistr-tags end to end: the real service on a loopback port, a real PostgreSQL database of
//! its own per test, and the fake GitHub of the test kit.

mod associations;
mod binary;
mod hardening;
mod identity;
mod platform;
mod repos;
mod tags;
mod users;

use serde_json::Value;
use service_kit::Env;
use testkit::{Client, FakeGithub, TestDb, TestServer};

/// One running giistr-tags with its database and fake GitHub.
pub struct TestApp {
    pub github: FakeGithub,
    pub server: TestServer,
    pub db: TestDb,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|env| env).await
    }

    /// Spawns with extra settings on top of the test defaults.
    pub async fn spawn_with(adjust: impl FnOnce(Env) -> Env) -> TestApp {
        let db =
            TestDb::new("giistr", |url| async move { giistr_tags::migrate(&url).await }).await.expect("test database");
        let github = FakeGithub::start();
        let env = adjust(
            Env::default()
                .with("DATABASE_URL", db.url.clone())
                .with("DATABASE_POOL_SIZE", "4")
                .with("HTTP_WORKERS", "1")
                .with("GITHUB_API_URL", github.url())
                .with("GITHUB_TIMEOUT_SECS", "5"),
        );
        let settings = giistr_tags::Settings::from_env(&env).expect("valid settings");
        let server =
            TestServer::start(move |listener| giistr_tags::start(settings, listener)).expect("giistr-tags starts");
        TestApp { github, server, db }
    }

    /// A client without a token.
    pub fn anonymous(&self) -> Client {
        Client::new(self.server.url())
    }

    /// A client sending `token` in `X-Github-Token`.
    pub fn as_token(&self, token: &str) -> Client {
        self.anonymous().with_header("X-Github-Token", token)
    }

    /// A new GitHub user and a client acting as them.
    pub fn user(&self, login: &str) -> (u64, Client) {
        let (id, token) = self.github.add_user(login);
        (id, self.as_token(&token))
    }
}

/// Creates a tag and returns its JSON.
pub async fn create_tag(client: &Client, name: &str) -> Value {
    let res = client.post_json("/api/v1/tag", &serde_json::json!({ "name": name })).await;
    assert_eq!(res.status, 201, "{}", res.text);
    res.body
}

/// Registers a repository and returns its JSON.
pub async fn create_repo(client: &Client, github_repo_id: &str) -> Value {
    let res = client.post_json("/api/v1/repo", &serde_json::json!({ "github_repo_id": github_repo_id })).await;
    assert_eq!(res.status, 201, "{}", res.text);
    res.body
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Runs a `SELECT count(*) AS n …` and returns `n`.
pub async fn count(conn: &mut diesel_async::AsyncPgConnection, sql: &str) -> i64 {
    use diesel_async::RunQueryDsl;
    diesel::sql_query(sql).get_result::<Count>(conn).await.unwrap_or_else(|e| panic!("{sql}: {e}")).n
}

/// `value[key]` as a string.
pub fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or_else(|| panic!("{key} is not a string in {value}"))
}

/// Whether `value` is a lower-case hyphenated UUID.
pub fn is_uuid(value: &Value) -> bool {
    value.as_str().is_some_and(|s| s.len() == 36 && uuid::Uuid::parse_str(s).is_ok() && s == s.to_lowercase())
}

/// Whether `value` is a plausible Unix time in seconds (an integer near now).
pub fn is_recent_unix_seconds(value: &Value) -> bool {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    value.as_i64().is_some_and(|t| (now - 300..=now + 5).contains(&t))
}
