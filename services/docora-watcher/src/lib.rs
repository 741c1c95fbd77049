//! docora-watcher: apps register GitHub repositories; every file change reaches them as signed
//! webhooks. The contract is `000_12087db544bd6a26.txt` and `docs/docora-webhooks.md` (see the
//! README's docora-watcher section).
//!
//! Where things are:
//! - the repository API of apps: [`repositories`]; GitHub's push webhook: [`push`];
//! - apps, their tokens and onboarding: [`apps`]; the operator's commands: [`admin`];
//! - the admin login and JSON API: [`admin_api`]; a repository's sync health, scan history and
//!   deliveries as the admin sees them: [`repository_admin`]; the dashboard's HTML pages: [`dashboard`];
//! - secrets at rest (GitHub tokens, signing keys): [`crypto`];
//! - git (clone, fetch, list and read a commit's files): [`git`]; scans and the outbox: [`scan`];
//!   webhook delivery from the outbox: [`deliver`]; waking idle delivery workers (PostgreSQL
//!   `LISTEN`/`NOTIFY`): [`wake`];
//! - errors and their statuses: [`error`];
//! - settings and start-up: this file.

pub mod admin;
pub mod admin_api;
pub mod apps;
pub mod crypto;
pub mod dashboard;
pub mod deliver;
pub mod error;
pub mod git;
pub mod push;
pub mod repositories;
pub mod repository_admin;
pub mod scan;
pub mod schema;
pub mod wake;

use std::net::TcpListener;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::web;
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use service_kit::background::Background;
use service_kit::http::{BadInputStatus, Running, ServiceApp};
use service_kit::settings::{DatabaseSettings, HttpSettings, Secret};
use service_kit::{Env, SettingsError, db};
use utoipa::OpenApi;

use crate::admin_api::AdminSettings;
use crate::apps::{AppTokens, UrlPolicy};
use crate::crypto::Cipher;

pub const NAME: &str = "docora-watcher";
pub const PORT: u16 = 8081;
pub const SCHEMA: &str = "docora";
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/docora");

/// Everything docora-watcher reads from its environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    /// `ENCRYPTION_KEY` (required): 64 hex characters, the AES-256-GCM key of stored secrets.
    pub encryption_key: Secret<String>,
    /// `GITHUB_API_URL`, default `https://api.github.com` (GitHub Enterprise: `https://host/api/v3`).
    pub github_api_url: String,
    /// `GITHUB_TIMEOUT_SECS`, default 10.
    pub github_timeout: Duration,
    /// `GIT_BASE_URL`, default `https://github.com`: clones are `{GIT_BASE_URL}/{owner}/{name}.git`.
    pub git_base_url: String,
    /// `GIT_WORK_DIR`, default `{temp dir}/docora-watcher`: one bare clone per repository.
    pub git_work_dir: std::path::PathBuf,
    /// `GIT_TIMEOUT_SECS`, default 300: the limit of one git command (a first clone included).
    pub git_timeout: Duration,
    /// `SCAN_INTERVAL_SECS`, default 300: how old a scan may get before the next.
    pub scan_interval: Duration,
    /// `SCAN_LEASE_SECS`, default 900: how long one scan may hold a repository.
    pub scan_lease: Duration,
    /// `CIRCUIT_THRESHOLD`, default 5: git failures in a row that open a repository's circuit.
    pub circuit_threshold: i32,
    /// `CIRCUIT_COOLDOWN_SECS`, default 1800: how long an open circuit stops scans.
    pub circuit_cooldown: Duration,
    /// `DEFAULT_BRANCH_CHECK_SECS`, default 3600: how often a scan first asks the repository
    /// which branch is its default (0: only when the branch scanned is gone).
    pub default_branch_check: Duration,
    /// `GITHUB_WEBHOOK_SECRET`: verifies GitHub push webhooks (`POST /api/github/push`); unset,
    /// the endpoint answers 503.
    pub github_webhook_secret: Option<Secret<String>>,
    /// `WEBHOOK_TIMEOUT_SECS`, default 30: the limit of one webhook call.
    pub webhook_timeout: Duration,
    /// `DELIVERY_MAX_ATTEMPTS`, default 5: attempts of one event before its link is failed.
    pub delivery_max_attempts: i32,
    /// `DELIVERY_BACKOFF_SECS`, default 10: the first retry's delay, doubled for each further retry
    /// (plus up to a quarter at random).
    pub delivery_backoff: Duration,
    /// `DELIVERY_LEASE_SECS`, default twice the webhook timeout plus 30: how long a delivery holds
    /// its batch before another worker may take it over (renewed as the batch goes on and
    /// before each piece of a chunked file, so it only has to outlast one request).
    pub delivery_lease: Duration,
    /// `DELIVERY_BATCH_SIZE`, default 200: at most this many of one link's consecutive events are
    /// taken under one lease and delivered one after the other.
    pub delivery_batch_size: i64,
    /// `DELIVERY_RECORD_MILLIS`, default 250: delivered events are recorded together at least this
    /// often (and every 64 events, and at the end of a batch).
    pub delivery_record_interval: Duration,
    /// `DELIVERY_BREAKER_THRESHOLD`, default 10: an app's failed attempts in a row, across its
    /// repositories, that open its delivery breaker.
    pub delivery_breaker_threshold: i32,
    /// `DELIVERY_BREAKER_COOLDOWN_SECS`, default 60: how long an open delivery breaker sends the
    /// app nothing before one trial attempt.
    pub delivery_breaker_cooldown: Duration,
    /// `ATTEMPT_RETENTION_DAYS`, default 14: how long the attempt log keeps an attempt (pruned in
    /// the background, in batches).
    pub attempt_retention: Duration,
    /// `ATTEMPT_LOG_REQUEST_BYTES`, default 65536: how much of a failed attempt's request body the
    /// attempt log keeps (an acknowledged one keeps `deliver::DELIVERED_REQUEST_BYTES`) (the bytes written per attempt are most of its cost to the database).
    pub attempt_log_request_bytes: usize,
    /// `SCAN_WORKERS`, default 2: scans running at once in this replica (0: none).
    pub scan_workers: usize,
    /// `DELIVERY_WORKERS`, default 4: deliveries running at once in this replica (0: none).
    pub delivery_workers: usize,
    /// `WORKER_POLL_MILLIS`, default 1000: how often idle scan workers look for work, and how
    /// long any worker waits after the database failed it.
    pub worker_poll: Duration,
    /// `DELIVERY_FALLBACK_POLL_SECS`, default 60: the longest an idle delivery worker sleeps.
    /// Idle delivery workers are woken by a PostgreSQL notification when events are written or
    /// put back (see [`wake`]), or when the earliest retry, lease or breaker cooldown they know
    /// of is due; this poll only catches what a lost notification missed.
    pub delivery_fallback_poll: Duration,
    /// `ALLOW_HTTP_WEBHOOKS` and `ALLOW_PRIVATE_WEBHOOKS`, default false: which app base URLs are
    /// accepted (plain HTTP; loopback, private and link-local addresses).
    pub url_policy: UrlPolicy,
    pub admin: AdminSettings,
}

impl Settings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let encryption_key = env.required_secret("ENCRYPTION_KEY")?;
        if Cipher::from_hex(encryption_key.expose()).is_err() {
            return Err(SettingsError::new("ENCRYPTION_KEY", "must be 64 hex characters (openssl rand -hex 32)"));
        }
        let webhook_timeout = env.seconds_or("WEBHOOK_TIMEOUT_SECS", 30)?;
        let delivery_lease =
            env.seconds_or("DELIVERY_LEASE_SECS", webhook_timeout.as_secs().saturating_mul(2).saturating_add(30))?;
        if delivery_lease <= webhook_timeout {
            return Err(SettingsError::new("DELIVERY_LEASE_SECS", "must be longer than WEBHOOK_TIMEOUT_SECS"));
        }
        Ok(Self {
            http: HttpSettings::from_env(env, PORT)?,
            database: DatabaseSettings::from_env(env)?,
            encryption_key,
            github_api_url: env.http_url_or("GITHUB_API_URL", "https://api.github.com")?,
            github_timeout: env.seconds_or("GITHUB_TIMEOUT_SECS", 10)?,
            git_base_url: env.http_url_or("GIT_BASE_URL", "https://github.com")?,
            git_work_dir: env
                .get("GIT_WORK_DIR")
                .map_or_else(|| std::env::temp_dir().join("docora-watcher"), std::path::PathBuf::from),
            git_timeout: env.seconds_or("GIT_TIMEOUT_SECS", 300)?,
            scan_interval: env.seconds_or("SCAN_INTERVAL_SECS", 300)?,
            scan_lease: env.seconds_or("SCAN_LEASE_SECS", 900)?,
            circuit_threshold: env.number_or("CIRCUIT_THRESHOLD", 5, 1..=1000)?,
            circuit_cooldown: env.seconds_or("CIRCUIT_COOLDOWN_SECS", 1800)?,
            default_branch_check: env.seconds_or("DEFAULT_BRANCH_CHECK_SECS", 3600)?,
            github_webhook_secret: env.get("GITHUB_WEBHOOK_SECRET").map(|s| Secret::new(s.to_owned())),
            webhook_timeout,
            delivery_max_attempts: env.number_or("DELIVERY_MAX_ATTEMPTS", 5, 1..=100)?,
            delivery_backoff: env.seconds_or("DELIVERY_BACKOFF_SECS", 10)?,
            delivery_lease,
            delivery_batch_size: env.number_or("DELIVERY_BATCH_SIZE", 200, 1..=10_000)?,
            delivery_record_interval: Duration::from_millis(env.number_or(
                "DELIVERY_RECORD_MILLIS",
                250,
                0..=60_000,
            )?),
            delivery_breaker_threshold: env.number_or("DELIVERY_BREAKER_THRESHOLD", 10, 1..=10_000)?,
            delivery_breaker_cooldown: env.seconds_or("DELIVERY_BREAKER_COOLDOWN_SECS", 60)?,
            attempt_retention: Duration::from_secs(
                env.number_or::<u64>("ATTEMPT_RETENTION_DAYS", 14, 1..=3650)? * 86_400,
            ),
            attempt_log_request_bytes: env.number_or(
                "ATTEMPT_LOG_REQUEST_BYTES",
                deliver::LOGGED_REQUEST_BYTES,
                0..=1 << 20,
            )?,
            scan_workers: env.number_or("SCAN_WORKERS", 2, 0..=64)?,
            delivery_workers: env.number_or("DELIVERY_WORKERS", 4, 0..=256)?,
            worker_poll: Duration::from_millis(env.number_or("WORKER_POLL_MILLIS", 1000, 10..=60_000)?),
            delivery_fallback_poll: Duration::from_secs(env.number_or(
                "DELIVERY_FALLBACK_POLL_SECS",
                60,
                1..=86_400,
            )?),
            url_policy: UrlPolicy {
                allow_http: env.flag_or("ALLOW_HTTP_WEBHOOKS", false)?,
                allow_private: env.flag_or("ALLOW_PRIVATE_WEBHOOKS", false)?,
            },
            admin: AdminSettings {
                username: env.string_or("ADMIN_USERNAME", "admin"),
                password_hash: match env.get("ADMIN_PASSWORD_HASH") {
                    Some(hash) if hash.starts_with("$argon2") => Some(hash.to_owned()),
                    Some(_) => {
                        return Err(SettingsError::new(
                            "ADMIN_PASSWORD_HASH",
                            "must be an argon2 PHC string ($argon2id$…): make one with `docora-watcher admin hash-password`",
                        ));
                    }
                    None => None,
                },
                session_ttl: env.seconds_or("ADMIN_SESSION_TTL_SECS", 28_800)?,
            },
        })
    }

    /// The git client of these settings.
    pub fn git(&self) -> git::Git {
        git::Git::new(&self.git_base_url, self.git_work_dir.clone(), self.git_timeout)
    }

    /// The GitHub API client of these settings.
    pub fn github(&self) -> anyhow::Result<github::GithubClient> {
        Ok(github::GithubClient::new(&self.github_api_url, self.github_timeout)?)
    }

    /// The scanner of these settings on `pool`.
    pub fn scanner(&self, pool: db::Pool) -> anyhow::Result<scan::Scanner> {
        Ok(scan::Scanner {
            pool,
            git: self.git(),
            github: self.github()?,
            cipher: self.cipher(),
            interval: self.scan_interval,
            lease: self.scan_lease,
            threshold: self.circuit_threshold,
            cooldown: self.circuit_cooldown,
            branch_check: self.default_branch_check,
        })
    }

    /// The webhook deliverer of these settings on `pool`.
    pub fn deliverer(&self, pool: db::Pool) -> anyhow::Result<deliver::Deliverer> {
        let client = |pooled: bool| {
            let builder = reqwest::Client::builder()
                .timeout(self.webhook_timeout)
                .connect_timeout(self.webhook_timeout.min(Duration::from_secs(10)))
                // A redirect could lead anywhere, a private address included: not followed.
                .redirect(reqwest::redirect::Policy::none())
                .user_agent("docora-watcher");
            if pooled { builder } else { builder.pool_max_idle_per_host(0) }.build()
        };
        let (http, http_fresh) = (client(true)?, client(false)?);
        Ok(deliver::Deliverer {
            pool,
            git: self.git(),
            cipher: self.cipher(),
            http,
            http_fresh,
            policy: self.url_policy,
            max_attempts: self.delivery_max_attempts,
            backoff: self.delivery_backoff,
            lease: self.delivery_lease,
            breaker_threshold: self.delivery_breaker_threshold,
            breaker_cooldown: self.delivery_breaker_cooldown,
            batch_size: self.delivery_batch_size,
            record_interval: self.delivery_record_interval,
            reader: deliver::BlobReader::default(),
            exchange: deliver::ExchangeLog::default(),
            log_request_bytes: self.attempt_log_request_bytes,
        })
    }

    pub fn cipher(&self) -> Cipher {
        // Checked in from_env.
        Cipher::from_hex(self.encryption_key.expose()).unwrap_or_else(|_| unreachable!("validated at boot"))
    }
}

/// What every handler shares.
pub struct AppState {
    pub pool: db::Pool,
    pub github: github::GithubClient,
    pub git: git::Git,
    pub cipher: Cipher,
    pub url_policy: UrlPolicy,
    pub admin: AdminSettings,
    pub github_webhook_secret: Option<String>,
    /// Failed admin logins per username.
    pub throttle: auth::throttle::LoginThrottle,
}

/// Creates the schema and runs pending migrations.
pub async fn migrate(database_url: &str) -> anyhow::Result<()> {
    let applied = db::migrate(database_url, SCHEMA, MIGRATIONS).await?;
    if applied > 0 {
        tracing::info!(applied, "migrations applied");
    }
    Ok(())
}

/// Every route of the service.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(repositories::configure)
        .configure(push::configure)
        .configure(admin_api::configure)
        .configure(repository_admin::configure)
        .configure(dashboard::configure);
}

/// Migrates, then serves on `listener` until stopped.
pub async fn start(settings: Settings, listener: TcpListener) -> anyhow::Result<Running> {
    migrate(settings.database.url.expose()).await?;
    let pool = db::pool(&settings.database)?;
    let tokens = web::Data::new(AppTokens::new(pool.clone()));
    let state = web::Data::new(AppState {
        pool: pool.clone(),
        github: settings.github()?,
        git: settings.git(),
        cipher: settings.cipher(),
        url_policy: settings.url_policy,
        admin: settings.admin.clone(),
        github_webhook_secret: settings.github_webhook_secret.as_ref().map(|s| s.expose().clone()),
        throttle: auth::throttle::LoginThrottle::new(10, Duration::from_secs(900)),
    });
    let background = Background::new();
    spawn_workers(&settings, &pool, &background)?;
    let app = ServiceApp {
        name: NAME,
        pool,
        openapi: ApiDoc::openapi(),
        configure: move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(tokens.clone()).app_data(state.clone()).configure(routes);
        },
        bad_input: BadInputStatus {
            json: StatusCode::UNPROCESSABLE_ENTITY,
            path: StatusCode::NOT_FOUND,
            query: StatusCode::UNPROCESSABLE_ENTITY,
            form: StatusCode::UNPROCESSABLE_ENTITY,
        },
        cors_headers: &[],
        background,
    };
    Ok(service_kit::http::serve(listener, &settings.http, app)?)
}

/// The OpenAPI security scheme of the service's bearer tokens.
const BEARER: service_kit::http::BearerScheme = service_kit::http::BearerScheme("docora_…");

/// The scan and delivery workers of this replica. They share the work of every replica through
/// leases in the database. On shutdown a worker takes no new scan or event, and the one it holds
/// is finished and its outcome recorded before the process ends (within the shutdown timeout). A
/// worker cut off midway (a crash, or a scan or delivery longer than the timeout) leaves a lease
/// that runs out, and the work is taken again (deliveries are at least once;
/// `X-Docora-Delivery` lets receivers drop repeats).
fn spawn_workers(settings: &Settings, pool: &db::Pool, background: &Background) -> anyhow::Result<()> {
    let poll = settings.worker_poll;
    for i in 0..settings.scan_workers {
        let scanner = settings.scanner(pool.clone())?;
        let stop = background.clone();
        background.spawn(format!("scan worker {i}"), async move {
            while !stop.is_stopping() {
                match scanner.claim().await {
                    Ok(Some(repository)) => {
                        // A scan that could not be recorded is counted as a failure by `scan`; only
                        // a database that cannot even record that ends here (the lease runs out
                        // and the repository is scanned again).
                        if let Err(e) = scanner.scan(&repository).await {
                            tracing::error!(repository_id = repository.id, error = %e, "scan failure could not be recorded");
                        }
                    }
                    Ok(None) => {
                        stop.unless_stopped(tokio::time::sleep(poll)).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot claim a scan");
                        stop.unless_stopped(tokio::time::sleep(poll)).await;
                    }
                }
            }
        });
    }
    // The attempt log's pruner: every ten minutes (and at start), the rows past the retention,
    // a few thousand per statement.
    let (pruning, retention, stop) = (pool.clone(), settings.attempt_retention, background.clone());
    background.spawn("attempt log pruner".to_owned(), async move {
        while !stop.is_stopping() {
            match deliver::prune_attempts(&pruning, retention, 5000).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "attempt log pruned"),
                Err(e) => tracing::warn!(error = %e, "cannot prune the attempt log"),
            }
            stop.unless_stopped(tokio::time::sleep(Duration::from_secs(600))).await;
        }
    });
    if settings.delivery_workers == 0 {
        return Ok(());
    }
    // One listening connection per replica wakes its idle delivery workers (see `wake`).
    let wake = wake::Wake::default();
    let fallback = settings.delivery_fallback_poll;
    background.spawn(
        "delivery listener".to_owned(),
        wake::listen(settings.database.url.expose().clone(), wake.clone(), background.clone(), fallback, poll),
    );
    for i in 0..settings.delivery_workers {
        let deliverer = settings.deliverer(pool.clone())?;
        let (stop, wake) = (background.clone(), wake.clone());
        background.spawn(format!("delivery worker {i}"), async move {
            // Whether the worker comes from a wait: when it then finds work, there may be more,
            // and it wakes another worker to look.
            let mut woken = false;
            while !stop.is_stopping() {
                match deliverer.take_batch().await {
                    Ok(batch) if !batch.is_empty() => {
                        if std::mem::take(&mut woken) {
                            wake.one();
                        }
                        match deliverer.deliver_batch(&batch, || stop.is_stopping()).await {
                            Ok(outcomes) => {
                                for (event, outcome) in batch.iter().zip(&outcomes) {
                                    if *outcome != deliver::Delivered::Ok {
                                        tracing::info!(event_id = %event.id, outcome = ?outcome, "delivery not acknowledged");
                                    }
                                }
                            }
                            Err(e) => {
                                tracing::warn!(event_id = %batch[0].id, error = %e, "a batch of deliveries could not be recorded");
                            }
                        }
                    }
                    Ok(_) => {
                        deliverer.idle().await;
                        let sleep = match wake::next_due(&deliverer.pool, fallback).await {
                            Ok(sleep) => sleep,
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot tell when the next event is due");
                                poll
                            }
                        };
                        stop.unless_stopped(wake.wait(sleep)).await;
                        woken = true;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot take an event");
                        stop.unless_stopped(tokio::time::sleep(poll)).await;
                        woken = true;
                    }
                }
            }
        });
    }
    Ok(())
}

#[derive(OpenApi)]
#[openapi(
    info(title = "docora-watcher", description = "Register GitHub repositories; every file change reaches your app as a signed webhook. Send Authorization: Bearer docora_…. Webhook bodies: docs/docora-webhooks.md (a file name that is not UTF-8 comes as a lossless text form in file.path, bytes outside UTF-8 as \\xHH and backslashes doubled, with its bytes in file.path_base64, present only for such names)."),
    paths(
        repositories::register, repositories::unwatch, repositories::update_token, push::push,
        admin_api::login, admin_api::logout, admin_api::list_apps, admin_api::create_app,
        admin_api::regenerate_token, admin_api::delete_app, admin_api::reset_breaker, admin_api::list_deliveries,
        admin_api::retry, admin_api::get_delivery, admin_api::redeliver_one,
        admin_api::get_overview,
        admin_api::get_queue, repository_admin::list_repositories, repository_admin::get_repository,
    ),
    modifiers(&BEARER)
)]
pub struct ApiDoc;
