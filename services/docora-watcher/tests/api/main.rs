//! docora-watcher end to end: the real service on a loopback port, a PostgreSQL database of its
//! own per test, and the fake GitHub of the test kit.

mod admin;
mod binary;
mod console;
mod dashboard;
mod delivery;
mod git;
mod hardening;
mod migrations;
mod push;
mod registration;
mod replicas;
mod scan;
mod stalls;
mod wake;

use serde_json::Value;
use service_kit::{Env, db};
use testkit::{Client, FakeGithub, TestDb, TestServer};

/// The signing key of every test app.
pub const SIGNING_KEY: &str = "a-signing-key-of-32-characters!!";
pub const ENCRYPTION_KEY: &str = "8f0c2b7d4e6a19358c7b2d0e4f6a8b1c3d5e7f90a1b2c3d4e5f60718293a4b5c";

pub struct TestApp {
    pub github: FakeGithub,
    pub server: TestServer,
    pub db: TestDb,
    pub settings: docora_watcher::Settings,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|env| env).await
    }

    /// Spawns with extra settings on top of the test defaults.
    pub async fn spawn_with(adjust: impl FnOnce(Env) -> Env) -> TestApp {
        let db = TestDb::new("docora", |url| async move { docora_watcher::migrate(&url).await })
            .await
            .expect("test database");
        let github = FakeGithub::start();
        let settings =
            docora_watcher::Settings::from_env(&adjust(test_env(&db.url, github.url()))).expect("valid settings");
        let server = {
            let settings = settings.clone();
            TestServer::start(move |listener| docora_watcher::start(settings, listener)).expect("docora-watcher starts")
        };
        TestApp { github, server, db, settings }
    }

    pub fn anonymous(&self) -> Client {
        Client::new(self.server.url())
    }

    pub fn as_token(&self, token: &str) -> Client {
        self.anonymous().with_header("Authorization", &format!("Bearer {token}"))
    }

    /// Onboards an app (as the admin does) and returns `(app_id, a client with its token)`.
    pub async fn app(&self, name: &str) -> (String, Client) {
        self.app_at(name, "https://hooks.example.com/docora").await
    }

    /// Onboards an app whose webhooks go to `base_url`.
    pub async fn app_at(&self, name: &str, base_url: &str) -> (String, Client) {
        let pool = db::pool(&self.settings.database).expect("pool");
        let mut conn = db::conn(&pool).await.expect("connection");
        let new = docora_watcher::apps::NewApp {
            app_name: name.to_owned(),
            base_url: base_url.to_owned(),
            email: "dev@example.com".to_owned(),
            website: None,
            description: None,
            client_auth_key: SIGNING_KEY.to_owned(),
        };
        let app = docora_watcher::apps::onboard(&mut conn, &self.settings.cipher(), &new, self.settings.url_policy)
            .await
            .expect("onboards");
        drop(conn);
        pool.close();
        (app.app_id, self.as_token(&app.token))
    }
}

pub fn test_env(database_url: &str, github_url: &str) -> Env {
    Env::default()
        .with("DATABASE_URL", database_url)
        .with("DATABASE_POOL_SIZE", "4")
        .with("HTTP_WORKERS", "1")
        .with("ENCRYPTION_KEY", ENCRYPTION_KEY)
        .with("GITHUB_API_URL", github_url)
        .with("GITHUB_TIMEOUT_SECS", "5")
        // Tests drive scans and deliveries themselves, except the end-to-end one.
        .with("SCAN_WORKERS", "0")
        .with("DELIVERY_WORKERS", "0")
}

/// Runs a `SELECT count(*) AS n …` and returns `n`.
pub async fn count(db: &TestDb, sql: &str) -> i64 {
    db.count(sql).await
}

/// Runs a statement on the test database.
pub async fn execute(db: &TestDb, sql: &str) {
    db.execute(sql).await
}

pub fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or_else(|| panic!("{key} is not a string in {value}"))
}

/// Waits (up to 20 s) until a `SELECT count(*) AS n …` gives `expected`, for state that workers
/// record just after a receiver has seen it; panics with the last count.
pub async fn eventually_count(db: &TestDb, sql: &str, expected: i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let n = db.count(sql).await;
        if n == expected {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{sql}: {n}, expected {expected}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
