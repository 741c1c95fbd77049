//! dokko-api: multi-tenant document repositories. The contract is `001_e0e965b7027d3e8c.txt`
//! (see the README's dokko-api section).
//!
//! Where things are:
//! - routes: one module per resource, each with `configure` listing its routes —
//!   [`users`] (login, invitations, people), [`service_accounts`] (M2M login and the admin
//!   routes), [`permissions`], [`document_sources`], [`repositories`], [`items`] (a
//!   repository's files and folders), [`files`] (downloads and filter metadata by `file_id`),
//!   [`processing`] (ingestion jobs and retrieval, carried out by dokko-ingest);
//! - dokko-ingest's client and the internal file list it pulls: [`ingest`];
//! - repository paths and accepted file types: [`paths`]; the tree answers: [`tree`];
//! - who is calling, both kinds of token: [`identity`];
//! - the web console (HTML pages under `/console`, on the API's handlers): [`console`];
//! - tenants and the operator's commands (`dokko-api admin …`): [`tenants`], [`admin`];
//! - object storage: [`storage`];
//! - errors and their statuses: [`error`];
//! - settings and start-up: this file.

pub mod admin;
pub mod console;
pub mod document_sources;
pub mod error;
pub mod files;
pub mod identity;
pub mod ingest;
pub mod items;
pub mod paths;
pub mod permissions;
pub mod processing;
pub mod repositories;
pub mod schema;
pub mod service_accounts;
pub mod storage;
pub mod tenants;
pub mod tree;
pub mod users;

use std::future::Future;
use std::net::TcpListener;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::web;
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use domain::pagination::{Page, Paginated};
use service_kit::background::Background;
use service_kit::http::{BadInputStatus, Running, ServiceApp};
use service_kit::settings::{DatabaseSettings, HttpSettings, Secret};
use service_kit::{Env, SettingsError, db};
use utoipa::OpenApi;

use crate::error::ApiError;
use crate::identity::{Hasher, Tokens};
use crate::storage::{S3Settings, Storage};

pub const NAME: &str = "dokko-api";
pub const PORT: u16 = 8082;
pub const SCHEMA: &str = "dokko";
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/dokko");

/// Everything dokko-api reads from its environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    /// `JWT_SECRET` (required, at least 32 bytes): signs user and service-account tokens.
    pub jwt_secret: Secret<String>,
    /// `USER_TOKEN_TTL_SECS`, default 3600.
    pub user_token_ttl: Duration,
    /// `SERVICE_TOKEN_TTL_SECS`, default 28800 (the contract's 8 hours).
    pub service_token_ttl: Duration,
    /// `INVITATION_TTL_SECS`, default 604800 (7 days).
    pub invitation_ttl: Duration,
    /// `PUBLIC_URL`, default `http://localhost:8082`: where people reach the service (invitation links).
    pub public_url: String,
    /// `PASSWORD_HASH_CONCURRENCY`, default the number of CPUs: argon2 computations at once.
    pub hash_concurrency: usize,
    /// `LOGIN_MAX_FAILURES`, default 10: failed sign-ins of one account before it is locked out.
    pub login_max_failures: u32,
    /// `LOGIN_LOCKOUT_SECS`, default 900: how long after its last failure a locked account waits.
    pub login_lockout: Duration,
    /// `MAX_FILE_BYTES`, default 5 GiB: a larger file fails with `FILE_TOO_LARGE`.
    pub max_file_bytes: u64,
    /// `MAX_UPLOAD_BYTES`, default 10 GiB: what one upload request may carry in all.
    pub max_request_bytes: u64,
    /// `PRESIGN_TTL_SECS`, default 900: how long a presigned download URL works.
    pub presign_ttl: Duration,
    pub s3: S3Settings,
    /// `S3_BUCKET_PREFIX`, default `dokko-`: tenant buckets are named prefix + tenant UUID hex.
    pub bucket_prefix: String,
    pub ingest: ingest::IngestSettings,
}

impl Settings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let jwt_secret = env.required_secret("JWT_SECRET")?;
        if jwt_secret.expose().len() < 32 {
            return Err(SettingsError::new("JWT_SECRET", "must be at least 32 bytes (use 64 random hex characters)"));
        }
        let cpus = std::thread::available_parallelism().map_or(2, usize::from);
        Ok(Self {
            http: HttpSettings::from_env(env, PORT)?,
            database: DatabaseSettings::from_env(env)?,
            jwt_secret,
            user_token_ttl: positive(env, "USER_TOKEN_TTL_SECS", 3600)?,
            service_token_ttl: positive(env, "SERVICE_TOKEN_TTL_SECS", 28_800)?,
            invitation_ttl: positive(env, "INVITATION_TTL_SECS", 604_800)?,
            public_url: env.http_url_or("PUBLIC_URL", "http://localhost:8082")?,
            hash_concurrency: env.number_or("PASSWORD_HASH_CONCURRENCY", cpus, 1..=256)?,
            login_max_failures: env.number_or("LOGIN_MAX_FAILURES", 10, 1..=10_000)?,
            login_lockout: positive(env, "LOGIN_LOCKOUT_SECS", 900)?,
            max_file_bytes: env.number_or("MAX_FILE_BYTES", 5 << 30, 1..=(5u64 << 40))?,
            max_request_bytes: env.number_or("MAX_UPLOAD_BYTES", 10 << 30, 1..=(50u64 << 40))?,
            presign_ttl: positive(env, "PRESIGN_TTL_SECS", 900)?,
            s3: S3Settings::from_env(env, 30)?.with_upload_env(env)?,
            bucket_prefix: storage::bucket_prefix_from_env(env)?,
            ingest: ingest::IngestSettings::from_env(env)?,
        })
    }
}

fn positive(env: &Env, name: &str, default_secs: u64) -> Result<Duration, SettingsError> {
    let value = env.seconds_or(name, default_secs)?;
    if value.is_zero() {
        return Err(SettingsError::new(name, "must be at least 1 second"));
    }
    Ok(value)
}

/// What every handler shares.
pub struct AppState {
    pub pool: db::Pool,
    pub hasher: Hasher,
    /// Failed sign-ins per account (users and service accounts).
    pub throttle: auth::throttle::LoginThrottle,
    pub storage: Storage,
    pub invitation_ttl: Duration,
    pub public_url: String,
    pub max_file_bytes: u64,
    pub max_request_bytes: u64,
    pub presign_ttl: Duration,
    pub ingest: ingest::Ingest,
}

/// One page of `items`. The total comes free when the page is the first and not full;
/// otherwise `count` (the same filter, counted) runs. Every query stays a static diesel query,
/// so the connection's prepared-statement cache serves it.
pub(crate) async fn paginated<T>(
    items: Vec<T>,
    page: Page,
    count: impl Future<Output = diesel::QueryResult<i64>>,
) -> Result<Paginated<T>, ApiError> {
    let shown = i64::try_from(items.len()).unwrap_or(i64::MAX);
    let total = if page.offset() == 0 && shown < page.limit() { shown } else { count.await? };
    Ok(Paginated::new(items, page, total))
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
    cfg.configure(users::configure)
        .configure(service_accounts::configure)
        .configure(permissions::configure)
        .configure(document_sources::configure)
        .configure(repositories::configure)
        .configure(items::configure)
        .configure(files::configure)
        .configure(processing::configure)
        .configure(ingest::configure)
        .configure(console::configure);
}

/// Deletes, every five minutes, the objects the journal lists for deletion and uploads that died
/// more than a day ago (see [`files::journal`]). Stops on shutdown; a sweep under way finishes,
/// or is cut off at the shutdown timeout, which does no harm: the journal keeps what is left for
/// the next sweep.
fn spawn_sweeper(state: std::sync::Arc<AppState>, background: &Background) {
    let stop = background.clone();
    background.spawn("object sweeper", async move {
        let mut every = tokio::time::interval(Duration::from_secs(300));
        while stop.unless_stopped(every.tick()).await.is_some() {
            match files::journal::sweep(&state.pool, &state.storage, Duration::from_secs(86_400)).await {
                Ok(0) => {}
                Ok(swept) => tracing::info!(swept, "orphan objects deleted"),
                Err(e) => tracing::warn!(error = %e, "object sweep failed; will retry"),
            }
        }
    });
}

/// Migrates, then serves on `listener` until stopped.
pub async fn start(settings: Settings, listener: TcpListener) -> anyhow::Result<Running> {
    migrate(settings.database.url.expose()).await?;
    let pool = db::pool(&settings.database)?;
    let tokens = web::Data::new(Tokens::new(
        settings.jwt_secret.expose().as_bytes(),
        pool.clone(),
        settings.user_token_ttl,
        settings.service_token_ttl,
    ));
    let state = web::Data::new(AppState {
        pool: pool.clone(),
        hasher: Hasher::new(settings.hash_concurrency),
        throttle: auth::throttle::LoginThrottle::new(settings.login_max_failures, settings.login_lockout),
        storage: Storage::new(&settings.s3)?,
        invitation_ttl: settings.invitation_ttl,
        public_url: settings.public_url.clone(),
        max_file_bytes: settings.max_file_bytes,
        max_request_bytes: settings.max_request_bytes,
        presign_ttl: settings.presign_ttl,
        ingest: ingest::Ingest::new(&settings.ingest)?,
    });
    let background = Background::new();
    spawn_sweeper(state.clone().into_inner(), &background);
    let app = ServiceApp {
        name: NAME,
        pool,
        openapi: ApiDoc::openapi(),
        configure: move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(tokens.clone()).app_data(state.clone()).configure(routes);
        },
        bad_input: BadInputStatus {
            json: StatusCode::UNPROCESSABLE_ENTITY,
            path: StatusCode::UNPROCESSABLE_ENTITY,
            query: StatusCode::UNPROCESSABLE_ENTITY,
            form: StatusCode::UNPROCESSABLE_ENTITY,
        },
        cors_headers: &["x-tenant"],
        background,
    };
    Ok(service_kit::http::serve(listener, &settings.http, app)?)
}

/// The OpenAPI security scheme of the service's bearer tokens.
const BEARER: service_kit::http::BearerScheme = service_kit::http::BearerScheme("JWT");

#[derive(OpenApi)]
#[openapi(
    info(title = "dokko-api", description = "Multi-tenant document repositories. Sign in with POST /api/v1/auth/login (people) or POST /api/v1/auth/service/login (service accounts), then send Authorization: Bearer <access_token>."),
    paths(
        users::login, users::accept_invitation, users::create_invitation, users::list_users,
        service_accounts::service_login, service_accounts::create_account, service_accounts::list_accounts,
        service_accounts::get_account, service_accounts::revoke_account, service_accounts::rotate_secret,
        permissions::list_permissions, permissions::create_permission, permissions::get_permission,
        permissions::update_permission, permissions::delete_permission,
        document_sources::list_sources, document_sources::get_source,
        repositories::create_repository, repositories::list_repositories, repositories::get_repository,
        repositories::update_repository, repositories::delete_repository,
        items::get_tree, items::upload_items, items::update_items, items::delete_items, items::get_content,
        files::download_file, files::get_metadata, files::put_metadata, files::reset_metadata,
        document_sources::folder_structure,
        processing::start_processing, processing::processing_status, processing::processing_files,
        processing::retrieve,
    ),
    modifiers(&BEARER)
)]
pub struct ApiDoc;
