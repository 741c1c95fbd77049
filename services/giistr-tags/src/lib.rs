//! giistr-tags: people tag the GitHub repositories they care about; identity comes from the
//! GitHub token in `X-Github-Token`. The contract is `002_dfc047d7db3005ef.txt` (see the
//! README's giistr-tags section).
//!
//! Where things are:
//! - routes: one module per resource, each with `configure` listing its routes —
//!   [`users`], [`tags`], [`repos`], [`assocs`];
//! - who is calling: [`identity`];
//! - errors and their statuses: [`error`];
//! - settings and start-up: this file.

pub mod assocs;
pub mod error;
pub mod identity;
pub mod repos;
pub mod schema;
pub mod tags;
pub mod users;

use std::net::TcpListener;
use std::time::Duration;

use actix_web::web;
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use service_kit::http::{BadInputStatus, Running, ServiceApp};
use service_kit::settings::{DatabaseSettings, HttpSettings};
use service_kit::{Env, SettingsError, db};
use utoipa::OpenApi;

pub const NAME: &str = "giistr-tags";
pub const PORT: u16 = 8084;
pub const SCHEMA: &str = "giistr";
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/giistr");

/// Everything giistr-tags reads from its environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    /// `GITHUB_API_URL`, default `https://api.github.com` (GitHub Enterprise: `https://host/api/v3`).
    pub github_api_url: String,
    /// `GITHUB_TIMEOUT_SECS`, default 10.
    pub github_timeout: Duration,
    /// `TOKEN_CACHE_TTL_SECS`, default 300: how long a resolved token is trusted without asking
    /// GitHub again (0 asks every time).
    pub token_cache_ttl: Duration,
}

impl Settings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        Ok(Self {
            http: HttpSettings::from_env(env, PORT)?,
            database: DatabaseSettings::from_env(env)?,
            github_api_url: env.http_url_or("GITHUB_API_URL", "https://api.github.com")?,
            github_timeout: env.seconds_or("GITHUB_TIMEOUT_SECS", 10)?,
            token_cache_ttl: env.seconds_or("TOKEN_CACHE_TTL_SECS", 300)?,
        })
    }
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
    cfg.configure(users::configure).configure(tags::configure).configure(repos::configure).configure(assocs::configure);
}

/// Migrates, then serves on `listener` until stopped.
pub async fn start(settings: Settings, listener: TcpListener) -> anyhow::Result<Running> {
    migrate(settings.database.url.expose()).await?;
    let pool = db::pool(&settings.database)?;
    let github = github::GithubClient::new(&settings.github_api_url, settings.github_timeout)?;
    let tokens = web::Data::new(identity::GithubTokens::new(pool.clone(), github, settings.token_cache_ttl));
    let pool_data = web::Data::new(pool.clone());
    let app = ServiceApp {
        name: NAME,
        pool,
        openapi: ApiDoc::openapi(),
        configure: move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(tokens.clone()).app_data(pool_data.clone()).configure(routes);
        },
        bad_input: BadInputStatus::ALL_400,
        cors_headers: &["x-github-token"],
        // No background work.
        background: Default::default(),
    };
    Ok(service_kit::http::serve(listener, &settings.http, app)?)
}

#[derive(OpenApi)]
#[openapi(
    info(title = "giistr-tags", description = "Tag the GitHub repositories you care about. Every call sends your GitHub token in X-Github-Token."),
    paths(
        users::get_user, users::list_users,
        tags::get_tag, tags::list_tags, tags::create_tag, tags::update_tag, tags::delete_tag,
        repos::get_repo, repos::list_repos, repos::create_repo, repos::update_repo, repos::delete_repo,
        assocs::associate, assocs::dissociate, assocs::tags_of_repo, assocs::repos_of_tag,
    ),
    modifiers(&GithubTokenScheme)
)]
pub struct ApiDoc;

struct GithubTokenScheme;

impl utoipa::Modify for GithubTokenScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "github_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description("X-Github-Token", "A GitHub token"))),
        );
    }
}
