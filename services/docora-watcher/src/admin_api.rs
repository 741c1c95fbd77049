//! The admin's JSON API, `/admin/api/…`, behind the admin login (the dashboard's pages use the
//! same session):
//!
//! - `POST /admin/api/login` `{username, password}` → a session cookie (`HttpOnly`,
//!   `SameSite=Strict`, `Secure` over HTTPS) and the session's CSRF token;
//! - `POST /admin/api/logout`;
//! - `GET /admin/api/apps` (apps with their repositories and sync state), `POST /admin/api/apps`
//!   (onboard; the token is shown once), `POST /admin/api/apps/{app_id}/token` (a new token),
//!   `DELETE /admin/api/apps/{app_id}`;
//! - `GET /admin/api/deliveries?app_id=&repository_id=&status=&event=&path_prefix=&delivery_id=&since=&until=&before=&limit=`
//!   (history, newest first, with a cursor), `GET /admin/api/deliveries/{event_id}` (its attempts),
//!   `POST /admin/api/deliveries/{event_id}/redeliver`, `POST /admin/api/apps/{app_id}/repositories/{repository_id}/retry` (failed
//!   deliveries back in the queue), `GET /admin/api/queue` (due, running, failed).
//!
//! Every state-changing call must send the CSRF token in `X-CSRF-Token` (403 otherwise).
//! Sessions live in the database (any replica serves them); only the cookie's digest is stored.
//! Failed logins lock the username out for a while (see [`auth::throttle`]).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::http::{Method, StatusCode};
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use service_kit::db;
use service_kit::http::{Json, error_response};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::AppState;
use crate::apps::{self, NewApp};
use crate::error::ApiError;
use crate::schema::docora::{admin_sessions, app_repositories, apps as apps_table, repositories};

pub const COOKIE: &str = "docora_admin";
pub const CSRF_HEADER: &str = "x-csrf-token";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/admin/api/login").route(web::post().to(login)))
        .service(web::resource("/admin/api/logout").route(web::post().to(logout)))
        .service(web::resource("/admin/api/apps").route(web::get().to(list_apps)).route(web::post().to(create_app)))
        .service(web::resource("/admin/api/apps/{app_id}/token").route(web::post().to(regenerate_token)))
        .service(web::resource("/admin/api/apps/{app_id}").route(web::delete().to(delete_app)))
        .service(web::resource("/admin/api/apps/{app_id}/breaker/reset").route(web::post().to(reset_breaker)))
        .service(
            web::resource("/admin/api/apps/{app_id}/repositories/{repository_id}/retry").route(web::post().to(retry)),
        )
        .service(web::resource("/admin/api/deliveries").route(web::get().to(list_deliveries)))
        .service(web::resource("/admin/api/deliveries/{event_id}").route(web::get().to(get_delivery)))
        .service(web::resource("/admin/api/deliveries/{event_id}/redeliver").route(web::post().to(redeliver_one)))
        .service(web::resource("/admin/api/queue").route(web::get().to(get_queue)))
        .service(web::resource("/admin/api/overview").route(web::get().to(get_overview)));
}

/// Who may log in.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    /// `ADMIN_USERNAME`, default `admin`.
    pub username: String,
    /// `ADMIN_PASSWORD_HASH`: the argon2id PHC string of the admin password
    /// (`docora-watcher admin hash-password`). Unset: the admin login is off.
    pub password_hash: Option<String>,
    /// `ADMIN_SESSION_TTL_SECS`, default 28800 (8 hours).
    pub session_ttl: Duration,
}

/// The value of cookie `name` in the request.
pub fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers().get_all("cookie").filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then(|| value.trim().to_owned())
    })
}

/// A live admin session.
#[derive(Debug, Clone)]
pub struct Admin {
    pub username: String,
    pub csrf_token: String,
}

impl Admin {
    /// Whether `sent` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, sent: &str) -> bool {
        auth::constant_time_eq(sent.as_bytes(), self.csrf_token.as_bytes())
    }
}

/// The session behind the request's cookie, if it is live.
pub async fn session(state: &AppState, req: &HttpRequest) -> Result<Option<Admin>, ApiError> {
    let Some(token) = cookie(req, COOKIE) else { return Ok(None) };
    let digest = auth::token::digest(&token).to_vec();
    let mut conn = db::conn(&state.pool).await?;
    let row: Option<(String, String)> = admin_sessions::table
        .filter(admin_sessions::token_digest.eq(&digest))
        .filter(admin_sessions::expires_at.gt(OffsetDateTime::now_utc()))
        .select((admin_sessions::username, admin_sessions::csrf_token))
        .first(&mut conn)
        .await
        .optional()?;
    Ok(row.map(|(username, csrf_token)| Admin { username, csrf_token }))
}

impl FromRequest for Admin {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .cloned()
                .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("state is not registered")))?;
            let admin = session(&state, &req)
                .await?
                .ok_or(ApiError::Unauthorized("log in as the admin first (POST /admin/api/login)"))?;
            let reads = matches!(*req.method(), Method::GET | Method::HEAD);
            let echoed = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
            if !reads && !admin.csrf_matches(echoed) {
                return Err(actix_web::error::InternalError::from_response(
                    "csrf",
                    error_response(StatusCode::FORBIDDEN, "missing or wrong X-CSRF-Token"),
                )
                .into());
            }
            Ok(admin)
        })
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct Login {
    username: String,
    password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoggedIn {
    /// Send it as `X-CSRF-Token` with every state-changing call.
    csrf_token: String,
    #[serde(with = "domain::timestamp::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    expires_at: OffsetDateTime,
}

/// Checks the admin's credentials; `Ok(false)` when they are wrong.
pub async fn check_credentials(state: &AppState, username: &str, password: &str) -> Result<bool, ApiError> {
    let Some(hash) = state.admin.password_hash.clone() else {
        return Err(ApiError::Unavailable("the admin login is off: set ADMIN_PASSWORD_HASH".into()));
    };
    let key = format!("admin:{username}");
    if let Some(wait) = state.throttle.locked(&key) {
        return Err(ApiError::TooManyAttempts(wait));
    }
    let name_ok = auth::constant_time_eq(username.as_bytes(), state.admin.username.as_bytes());
    let password = password.to_owned();
    let password_ok = tokio::task::spawn_blocking(move || auth::password::verify(&password, &hash))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    if name_ok && password_ok {
        state.throttle.succeeded(&key);
        Ok(true)
    } else {
        state.throttle.failed(&key);
        Ok(false)
    }
}

/// Opens a session and returns its cookie header value and CSRF token.
pub async fn open_session(state: &AppState, req: &HttpRequest, username: &str) -> Result<(String, LoggedIn), ApiError> {
    let token = auth::token::random_hex(32);
    let csrf_token = auth::token::random_hex(32);
    let expires_at = OffsetDateTime::now_utc() + state.admin.session_ttl;
    let mut conn = db::conn(&state.pool).await?;
    // Expired sessions go whenever a new one starts.
    diesel::delete(admin_sessions::table.filter(admin_sessions::expires_at.le(OffsetDateTime::now_utc())))
        .execute(&mut conn)
        .await?;
    diesel::insert_into(admin_sessions::table)
        .values((
            admin_sessions::token_digest.eq(auth::token::digest(&token).to_vec()),
            admin_sessions::csrf_token.eq(&csrf_token),
            admin_sessions::username.eq(username),
            admin_sessions::expires_at.eq(expires_at),
        ))
        .execute(&mut conn)
        .await?;
    let secure = if req.connection_info().scheme() == "https" { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={token}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        state.admin.session_ttl.as_secs()
    );
    Ok((cookie, LoggedIn { csrf_token, expires_at }))
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn cleared_cookie() -> String {
    format!("{COOKIE}=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Ends the session behind the request's cookie, if any.
pub async fn close_session(state: &AppState, req: &HttpRequest) -> Result<(), ApiError> {
    if let Some(token) = cookie(req, COOKIE) {
        let mut conn = db::conn(&state.pool).await?;
        diesel::delete(
            admin_sessions::table.filter(admin_sessions::token_digest.eq(auth::token::digest(&token).to_vec())),
        )
        .execute(&mut conn)
        .await?;
    }
    Ok(())
}

/// Logs the admin in.
#[utoipa::path(post, path = "/admin/api/login", tag = "admin", request_body = Login,
    responses((status = 200, description = "sets the session cookie", body = LoggedIn),
              (status = 401, body = domain::ErrorBody), (status = 429, body = domain::ErrorBody),
              (status = 503, description = "ADMIN_PASSWORD_HASH is not set", body = domain::ErrorBody)))]
async fn login(req: HttpRequest, state: web::Data<AppState>, body: Json<Login>) -> Result<HttpResponse, ApiError> {
    if !check_credentials(&state, &body.username, &body.password).await? {
        return Err(ApiError::Unauthorized("wrong username or password"));
    }
    let (cookie, session) = open_session(&state, &req, &body.username).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Set-Cookie", cookie))
        .insert_header(("Cache-Control", "no-store"))
        .json(session))
}

/// Ends the session.
#[utoipa::path(post, path = "/admin/api/logout", tag = "admin",
    responses((status = 204), (status = 401, body = domain::ErrorBody), (status = 403, body = domain::ErrorBody)))]
async fn logout(_admin: Admin, req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    close_session(&state, &req).await?;
    Ok(HttpResponse::NoContent().insert_header(("Set-Cookie", cleared_cookie())).finish())
}

/// One watched repository of an app.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppRepository {
    pub repository_id: String,
    pub github_url: String,
    pub is_private: bool,
    /// `pending`, `synced` or `failed`.
    pub status: String,
    pub needs_full_sync: bool,
    /// The failure that opened the repository's circuit (git's, or a scan that could not be
    /// recorded), or the delivery failure that failed the link; a successful scan clears the
    /// former, the admin's retry the latter.
    pub last_error: Option<String>,
    /// The repository's last failed scan's error, while its scans fail (sync health, apart from
    /// the link's delivery state).
    pub scan_error: Option<String>,
    /// The last successful scan.
    #[serde(with = "domain::timestamp::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_scan_at: Option<OffsetDateTime>,
    /// Failed scans of the repository in a row.
    pub consecutive_failures: i32,
    /// While in the future, the circuit is open (no scan); once past, it is half-open: one
    /// trial scan closes it (null) or opens it again.
    #[serde(with = "domain::timestamp::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub circuit_open_until: Option<OffsetDateTime>,
    /// The repository's sync health, apart from the link's delivery state.
    pub sync: crate::repository_admin::SyncHealth,
}

/// An app as the admin sees it (never its token or key).
#[derive(Debug, Serialize, ToSchema)]
pub struct AppView {
    pub app_id: String,
    pub app_name: String,
    pub base_url: String,
    pub email: String,
    pub website: Option<String>,
    pub description: Option<String>,
    #[serde(with = "domain::timestamp::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    pub repositories: Vec<AppRepository>,
    pub delivery_breaker: crate::deliver::DeliveryBreaker,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AppList {
    items: Vec<AppView>,
}

type AppRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    OffsetDateTime,
    (i32, Option<OffsetDateTime>, bool),
);
type LinkRow = (
    String,
    String,
    String,
    String,
    bool,
    String,
    bool,
    Option<String>,
    Option<OffsetDateTime>,
    i32,
    Option<OffsetDateTime>,
    Option<String>,
    (OffsetDateTime, Option<OffsetDateTime>, Option<OffsetDateTime>),
);

/// Every app with its repositories and their sync state, oldest app first.
pub async fn app_views(conn: &mut db::Conn) -> Result<Vec<AppView>, ApiError> {
    let rows: Vec<AppRow> = apps_table::table
        .order((apps_table::created_at, apps_table::id))
        .select((
            apps_table::id,
            apps_table::app_name,
            apps_table::base_url,
            apps_table::email,
            apps_table::website,
            apps_table::description,
            apps_table::created_at,
            (apps_table::delivery_failures, apps_table::breaker_open_until, apps_table::breaker_trial),
        ))
        .load(conn)
        .await?;
    let now = OffsetDateTime::now_utc();
    let links: Vec<LinkRow> = app_repositories::table
        .inner_join(repositories::table)
        .order((repositories::owner, repositories::name))
        .select((
            app_repositories::app_id,
            repositories::id,
            repositories::owner,
            repositories::name,
            repositories::is_private,
            app_repositories::status,
            app_repositories::needs_full_sync,
            app_repositories::last_error,
            repositories::last_scan_at,
            repositories::consecutive_failures,
            repositories::circuit_open_until,
            repositories::last_error,
            (repositories::next_scan_at, repositories::scan_lease_until, repositories::scan_started_at),
        ))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(app_id, app_name, base_url, email, website, description, created_at, breaker)| {
            let repositories = links
                .iter()
                .filter(|l| l.0 == app_id)
                .map(|l| AppRepository {
                    repository_id: l.1.clone(),
                    github_url: format!("https://github.com/{}/{}", l.2, l.3),
                    is_private: l.4,
                    status: l.5.clone(),
                    needs_full_sync: l.6,
                    last_error: l.7.clone(),
                    last_scan_at: l.8,
                    consecutive_failures: l.9,
                    circuit_open_until: l.10,
                    scan_error: l.11.clone().filter(|_| l.9 > 0),
                    sync: crate::repository_admin::SyncFacts {
                        last_scan_at: l.8,
                        next_scan_at: l.12.0,
                        consecutive_failures: l.9,
                        circuit_open_until: l.10,
                        last_error: l.11.clone(),
                        scan_lease_until: l.12.1,
                        scan_started_at: l.12.2,
                    }
                    .health(now)
                    .into(),
                })
                .collect();
            let delivery_breaker = crate::deliver::DeliveryBreaker::new(breaker.0, breaker.1, breaker.2, now);
            AppView {
                app_id,
                app_name,
                base_url,
                email,
                website,
                description,
                created_at,
                repositories,
                delivery_breaker,
            }
        })
        .collect())
}

/// Every app with its repositories and their sync state.
#[utoipa::path(get, path = "/admin/api/apps", tag = "admin",
    responses((status = 200, body = AppList), (status = 401, body = domain::ErrorBody)))]
async fn list_apps(_admin: Admin, state: web::Data<AppState>) -> Result<web::Json<AppList>, ApiError> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(web::Json(AppList { items: app_views(&mut conn).await? }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OnboardedView {
    app_id: String,
    /// Shown once: the app sends it as `Authorization: Bearer …`.
    token: String,
    #[serde(with = "domain::timestamp::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
}

/// Onboards an app.
#[utoipa::path(post, path = "/admin/api/apps", tag = "admin", request_body = NewApp,
    responses((status = 201, body = OnboardedView), (status = 401, body = domain::ErrorBody),
              (status = 403, body = domain::ErrorBody), (status = 422, body = domain::ErrorBody)))]
async fn create_app(_admin: Admin, state: web::Data<AppState>, body: Json<NewApp>) -> Result<HttpResponse, ApiError> {
    let mut conn = db::conn(&state.pool).await?;
    let app = apps::onboard(&mut conn, &state.cipher, &body, state.url_policy).await?;
    Ok(HttpResponse::Created().insert_header(("Cache-Control", "no-store")).json(OnboardedView {
        app_id: app.app_id,
        token: app.token,
        created_at: app.created_at,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NewToken {
    app_id: String,
    /// Shown once; the previous token stopped working.
    token: String,
}

/// Replaces an app's token.
#[utoipa::path(post, path = "/admin/api/apps/{app_id}/token", tag = "admin", params(("app_id" = String, Path)),
    responses((status = 200, body = NewToken), (status = 401, body = domain::ErrorBody),
              (status = 403, body = domain::ErrorBody), (status = 404, body = domain::ErrorBody)))]
async fn regenerate_token(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = db::conn(&state.pool).await?;
    let token = apps::regenerate_token(&mut conn, &id).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(NewToken { app_id: id.into_inner(), token }))
}

/// Deletes an app, its links and its delivery history; repositories nobody else watches go too
/// (their ids are returned, for their clones to go).
pub async fn delete(conn: &mut db::Conn, app_id: &str) -> Result<Vec<String>, ApiError> {
    conn.transaction::<_, ApiError, _>(async |conn| {
        let watched: Vec<String> = app_repositories::table
            .filter(app_repositories::app_id.eq(app_id))
            .select(app_repositories::repository_id)
            .load(conn)
            .await?;
        let deleted = diesel::delete(apps_table::table.filter(apps_table::id.eq(app_id))).execute(conn).await?;
        if deleted == 0 {
            return Err(ApiError::NotFound(format!("app {app_id} not found")));
        }
        let still_watched: Vec<String> = app_repositories::table
            .filter(app_repositories::repository_id.eq_any(&watched))
            .select(app_repositories::repository_id)
            .load(conn)
            .await?;
        let orphans: Vec<String> = watched.into_iter().filter(|r| !still_watched.contains(r)).collect();
        diesel::delete(repositories::table.filter(repositories::id.eq_any(&orphans))).execute(conn).await?;
        Ok(orphans)
    })
    .await
}

/// Deletes an app.
#[utoipa::path(delete, path = "/admin/api/apps/{app_id}", tag = "admin", params(("app_id" = String, Path)),
    responses((status = 204), (status = 401, body = domain::ErrorBody), (status = 403, body = domain::ErrorBody),
              (status = 404, body = domain::ErrorBody)))]
async fn delete_app(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = db::conn(&state.pool).await?;
    let orphans = delete(&mut conn, &id).await?;
    drop(conn);
    for repository_id in orphans {
        crate::repositories::remove_clone(&state, &repository_id).await;
    }
    Ok(HttpResponse::NoContent().finish())
}

/// Closes an app's delivery breaker at once (its receiver is known to be back): the events that
/// waited go out without waiting for the cooldown. Returns the breaker as it is now.
pub async fn close_breaker(conn: &mut db::Conn, app_id: &str) -> Result<crate::deliver::DeliveryBreaker, ApiError> {
    conn.transaction::<_, ApiError, _>(async |conn| {
        let closed = diesel::update(apps_table::table.filter(apps_table::id.eq(app_id)))
            .set((
                apps_table::delivery_failures.eq(0),
                apps_table::breaker_open_until.eq(None::<OffsetDateTime>),
                apps_table::breaker_trial.eq(false),
            ))
            .execute(conn)
            .await?;
        if closed == 0 {
            return Err(ApiError::NotFound(format!("app {app_id} not found")));
        }
        crate::wake::notify_due(conn).await
    })
    .await?;
    tracing::info!(app_id, "delivery breaker closed by an admin");
    Ok(crate::deliver::DeliveryBreaker::new(0, None, false, OffsetDateTime::now_utc()))
}

/// Closes an app's delivery breaker.
#[utoipa::path(post, path = "/admin/api/apps/{app_id}/breaker/reset", tag = "admin", params(("app_id" = String, Path)),
    responses((status = 200, body = crate::deliver::DeliveryBreaker), (status = 401, body = domain::ErrorBody),
              (status = 403, body = domain::ErrorBody), (status = 404, body = domain::ErrorBody)))]
async fn reset_breaker(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<web::Json<crate::deliver::DeliveryBreaker>, ApiError> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(web::Json(close_breaker(&mut conn, &id).await?))
}

/// Filters of the delivery history (all optional, combined).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryFilter {
    pub app_id: Option<String>,
    pub repository_id: Option<String>,
    /// `pending`, `delivered` or `failed`.
    pub status: Option<String>,
    /// `create`, `update`, `delete` or `sync_failed`.
    pub event: Option<String>,
    /// Events about files whose path starts with this.
    pub path_prefix: Option<String>,
    /// A delivery id (`X-Docora-Delivery`): the event and its redeliveries.
    pub delivery_id: Option<uuid::Uuid>,
    /// Created at or after this time (RFC 3339).
    #[serde(default, with = "domain::timestamp::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<OffsetDateTime>,
    /// Created before this time (RFC 3339).
    #[serde(default, with = "domain::timestamp::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub until: Option<OffsetDateTime>,
    /// The cursor of the next page: the `next_before` of the page before.
    pub before: Option<i64>,
    /// At most this many, newest first (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// One event of the delivery history.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// The event's id.
    pub id: uuid::Uuid,
    /// Its place in the outbox (the history's cursor).
    pub seq: i64,
    /// What the receiver sees in `X-Docora-Delivery`: the event's id, or for a redelivery the
    /// original's.
    pub delivery_id: uuid::Uuid,
    /// A redelivery: the event it copies.
    pub redelivery_of: Option<uuid::Uuid>,
    pub app_id: String,
    pub repository_id: String,
    pub event: String,
    pub path: Option<String>,
    pub commit_sha: Option<String>,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    /// A `sync_failed` event's reason (its `error.message`).
    pub reason: Option<String>,
    /// The last attempt's response status (none: no attempt, or no response).
    pub response_status: Option<i32>,
    /// The last attempt's duration in milliseconds.
    pub duration_ms: Option<i64>,
    #[serde(with = "domain::timestamp::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "domain::timestamp::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub next_attempt_at: OffsetDateTime,
    #[serde(with = "domain::timestamp::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub delivered_at: Option<OffsetDateTime>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    items: Vec<DeliveryView>,
    /// More are older: ask again with `before` set to this.
    next_before: Option<i64>,
}

#[derive(QueryableByName)]
struct DeliveryRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: uuid::Uuid,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    seq: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Uuid>)]
    redelivery_of: Option<uuid::Uuid>,
    #[diesel(sql_type = diesel::sql_types::Text)]
    app_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    repository_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    event: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    path: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    commit_sha: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    attempts: i32,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    last_error: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    reason: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Integer>)]
    response_status: Option<i32>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    started_at: Option<OffsetDateTime>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    ended_at: Option<OffsetDateTime>,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    created_at: OffsetDateTime,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    next_attempt_at: OffsetDateTime,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    delivered_at: Option<OffsetDateTime>,
}

impl From<DeliveryRow> for DeliveryView {
    fn from(r: DeliveryRow) -> Self {
        let duration_ms =
            r.started_at.zip(r.ended_at).map(|(s, e)| i64::try_from((e - s).whole_milliseconds()).unwrap_or(0));
        DeliveryView {
            id: r.id,
            seq: r.seq,
            delivery_id: r.redelivery_of.unwrap_or(r.id),
            redelivery_of: r.redelivery_of,
            app_id: r.app_id,
            repository_id: r.repository_id,
            event: r.event,
            path: r.path,
            commit_sha: r.commit_sha,
            status: r.status,
            attempts: r.attempts,
            last_error: r.last_error,
            reason: r.reason,
            response_status: r.response_status,
            duration_ms,
            created_at: r.created_at,
            next_attempt_at: r.next_attempt_at,
            delivered_at: r.delivered_at,
        }
    }
}

const DELIVERY_SELECT: &str = "SELECT e.id, e.seq, e.redelivery_of, e.app_id, e.repository_id, e.event, e.path, \
       e.commit_sha, e.status, e.attempts, e.last_error, e.payload #>> '{error,message}' AS reason, a.response_status, a.started_at, a.ended_at, \
       e.created_at, e.next_attempt_at, e.delivered_at \
     FROM docora.events e \
     LEFT JOIN LATERAL (SELECT d.response_status, d.started_at, d.ended_at FROM docora.delivery_attempts d \
                        WHERE d.event_id = e.id ORDER BY d.started_at DESC LIMIT 1) a ON true ";

/// The delivery history, newest first, filtered; and the cursor of the next page.
pub async fn deliveries_page(
    conn: &mut db::Conn,
    filter: &DeliveryFilter,
) -> Result<(Vec<DeliveryView>, Option<i64>), ApiError> {
    use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};
    let given = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
    let status = given(&filter.status);
    if let Some(status) = status.as_deref()
        && !matches!(status, "pending" | "delivered" | "failed")
    {
        return Err(ApiError::Invalid(format!("status must be pending, delivered or failed, got {status:?}")));
    }
    let event = given(&filter.event);
    if let Some(event) = event.as_deref()
        && !matches!(event, "create" | "update" | "delete" | "sync_failed")
    {
        return Err(ApiError::Invalid(format!("event must be create, update, delete or sync_failed, got {event:?}")));
    }
    let limit = filter.limit.unwrap_or(100).clamp(1, 1000);
    let rows: Vec<DeliveryRow> = diesel::sql_query(format!(
        "{DELIVERY_SELECT} WHERE ($1::text IS NULL OR e.app_id = $1) AND ($2::text IS NULL OR e.repository_id = $2) \
           AND ($3::text IS NULL OR e.status = $3) AND ($4::text IS NULL OR e.event = $4) \
           AND ($5::text IS NULL OR starts_with(e.path, $5)) \
           AND ($6::timestamptz IS NULL OR e.created_at >= $6) AND ($7::timestamptz IS NULL OR e.created_at < $7) \
           AND ($8::uuid IS NULL OR e.id = $8 OR e.redelivery_of = $8) AND ($9::int8 IS NULL OR e.seq < $9) \
         ORDER BY e.seq DESC LIMIT $10"
    ))
    .bind::<Nullable<Text>, _>(given(&filter.app_id))
    .bind::<Nullable<Text>, _>(given(&filter.repository_id))
    .bind::<Nullable<Text>, _>(status)
    .bind::<Nullable<Text>, _>(event)
    .bind::<Nullable<Text>, _>(filter.path_prefix.clone().filter(|p| !p.is_empty()))
    .bind::<Nullable<Timestamptz>, _>(filter.since)
    .bind::<Nullable<Timestamptz>, _>(filter.until)
    .bind::<Nullable<diesel::sql_types::Uuid>, _>(filter.delivery_id)
    .bind::<Nullable<BigInt>, _>(filter.before)
    .bind::<BigInt, _>(limit + 1)
    .load(conn)
    .await?;
    let mut items: Vec<DeliveryView> = rows.into_iter().map(DeliveryView::from).collect();
    let next = if items.len() > usize::try_from(limit).unwrap_or(usize::MAX) {
        items.truncate(usize::try_from(limit).unwrap_or(0));
        items.last().map(|d| d.seq)
    } else {
        None
    };
    Ok((items, next))
}

/// The delivery history, newest first, filtered (one page).
pub async fn deliveries(conn: &mut db::Conn, filter: &DeliveryFilter) -> Result<Vec<DeliveryView>, ApiError> {
    Ok(deliveries_page(conn, filter).await?.0)
}

/// One attempt of the attempt log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    pub attempt: i32,
    #[serde(with = "domain::timestamp::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: OffsetDateTime,
    pub duration_ms: i64,
    /// The last request the attempt sent (a chunked file sends one per piece).
    pub request_url: Option<String>,
    /// The headers sent (the signature included; the app's key is never sent nor kept).
    #[schema(value_type = Option<Object>)]
    pub request_headers: Option<serde_json::Value>,
    /// The body's first 64 KiB (`ATTEMPT_LOG_REQUEST_BYTES`), or 2 KiB when the app acknowledged it.
    pub request_body: Option<String>,
    /// The body's whole length: more than `request_body` holds when it was cut.
    pub request_body_bytes: Option<i64>,
    pub response_status: Option<i32>,
    #[schema(value_type = Option<Object>)]
    pub response_headers: Option<serde_json::Value>,
    /// The response body's first 8 KiB.
    pub response_body: Option<String>,
    pub response_body_truncated: bool,
    pub error: Option<String>,
}

/// One delivery with every attempt recorded (newest first) and its redeliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDetail {
    pub delivery: DeliveryView,
    pub attempts: Vec<AttemptView>,
    /// Events that redeliver this one (or its original), oldest first.
    pub redeliveries: Vec<DeliveryView>,
}

type AttemptRow = (
    i32,
    OffsetDateTime,
    OffsetDateTime,
    Option<String>,
    Option<serde_json::Value>,
    Option<String>,
    Option<i64>,
    Option<i32>,
    Option<serde_json::Value>,
    Option<String>,
    bool,
    Option<String>,
);

/// A delivery and its attempts.
pub async fn delivery_detail(conn: &mut db::Conn, id: uuid::Uuid) -> Result<DeliveryDetail, ApiError> {
    use crate::schema::docora::delivery_attempts as d;
    let row: Option<DeliveryRow> = diesel::sql_query(format!("{DELIVERY_SELECT} WHERE e.id = $1"))
        .bind::<diesel::sql_types::Uuid, _>(id)
        .get_result(conn)
        .await
        .optional()?;
    let delivery = DeliveryView::from(row.ok_or_else(|| ApiError::NotFound(format!("no delivery {id}")))?);
    let rows: Vec<AttemptRow> = d::table
        .filter(d::event_id.eq(id))
        .order(d::started_at.desc())
        .select((
            d::attempt,
            d::started_at,
            d::ended_at,
            d::request_url,
            d::request_headers,
            d::request_body,
            d::request_body_bytes,
            d::response_status,
            d::response_headers,
            d::response_body,
            d::response_body_truncated,
            d::error,
        ))
        .load(conn)
        .await?;
    let attempts = rows
        .into_iter()
        .map(|r| AttemptView {
            attempt: r.0,
            started_at: r.1,
            duration_ms: i64::try_from((r.2 - r.1).whole_milliseconds()).unwrap_or(0),
            request_url: r.3,
            request_headers: r.4,
            request_body: r.5,
            request_body_bytes: r.6,
            response_status: r.7,
            response_headers: r.8,
            response_body: r.9,
            response_body_truncated: r.10,
            error: r.11,
        })
        .collect();
    let redeliveries: Vec<DeliveryRow> =
        diesel::sql_query(format!("{DELIVERY_SELECT} WHERE e.redelivery_of = $1 AND e.id <> $2 ORDER BY e.seq"))
            .bind::<diesel::sql_types::Uuid, _>(delivery.delivery_id)
            .bind::<diesel::sql_types::Uuid, _>(id)
            .load(conn)
            .await?;
    Ok(DeliveryDetail { delivery, attempts, redeliveries: redeliveries.into_iter().map(DeliveryView::from).collect() })
}

/// A delivery with its attempts.
#[utoipa::path(get, path = "/admin/api/deliveries/{event_id}", tag = "admin", params(("event_id" = uuid::Uuid, Path)),
    responses((status = 200, body = DeliveryDetail), (status = 401, body = domain::ErrorBody),
              (status = 404, body = domain::ErrorBody)))]
async fn get_delivery(
    _admin: Admin,
    state: web::Data<AppState>,
    path: web::Path<uuid::Uuid>,
) -> Result<web::Json<DeliveryDetail>, ApiError> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(web::Json(delivery_detail(&mut conn, path.into_inner()).await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Redelivered {
    /// The event that will be sent: a new one for a delivered event, the same for a failed one.
    pub event_id: uuid::Uuid,
    /// Its `X-Docora-Delivery`: the original's.
    pub delivery_id: uuid::Uuid,
    /// A new event was queued (sent with `X-Docora-Redelivery: true`).
    pub redelivery: bool,
}

/// Sends an event again. A delivered one is copied as a new event at the end of its link's queue
/// (after the link's other events, past its `delivered_seq`, where delivery looks), naming the
/// original: it goes with the original's `X-Docora-Delivery` and `X-Docora-Redelivery: true`. A
/// failed one is put back in the queue as it is (attempts from 0), with its link. A pending one
/// is on its way already (422).
pub async fn redeliver(conn: &mut db::Conn, id: uuid::Uuid) -> Result<Redelivered, ApiError> {
    use crate::schema::docora::events;
    conn.transaction::<_, ApiError, _>(async |conn| {
        let found: Option<(String, String, String, Option<uuid::Uuid>)> = events::table
            .filter(events::id.eq(id))
            .select((events::status, events::app_id, events::repository_id, events::redelivery_of))
            .for_update()
            .first(conn)
            .await
            .optional()?;
        let Some((status, app_id, repository_id, redelivery_of)) = found else {
            return Err(ApiError::NotFound(format!("no delivery {id}")));
        };
        let link = app_repositories::table
            .filter(app_repositories::app_id.eq(&app_id))
            .filter(app_repositories::repository_id.eq(&repository_id));
        match status.as_str() {
            "failed" => {
                diesel::update(events::table.filter(events::id.eq(id)))
                    .set((events::status.eq("pending"), events::attempts.eq(0), events::next_attempt_at.eq(diesel::dsl::now)))
                    .execute(conn)
                    .await?;
                diesel::update(link)
                    .set((app_repositories::status.eq("pending"), app_repositories::last_error.eq(None::<String>)))
                    .execute(conn)
                    .await?;
                crate::wake::notify_due(conn).await?;
                Ok(Redelivered { event_id: id, delivery_id: redelivery_of.unwrap_or(id), redelivery: false })
            }
            "delivered" => {
                let copy = uuid::Uuid::now_v7();
                let original = redelivery_of.unwrap_or(id);
                diesel::sql_query(
                    "INSERT INTO docora.events (id, app_id, repository_id, event, path, payload, commit_sha, redelivery_of) \
                     SELECT $1, app_id, repository_id, event, path, payload, commit_sha, $2 FROM docora.events WHERE id = $3",
                )
                .bind::<diesel::sql_types::Uuid, _>(copy)
                .bind::<diesel::sql_types::Uuid, _>(original)
                .bind::<diesel::sql_types::Uuid, _>(id)
                .execute(conn)
                .await?;
                diesel::update(link.filter(app_repositories::status.eq("synced")))
                    .set((app_repositories::status.eq("pending"), app_repositories::updated_at.eq(diesel::dsl::now)))
                    .execute(conn)
                    .await?;
                crate::wake::notify_due(conn).await?;
                Ok(Redelivered { event_id: copy, delivery_id: original, redelivery: true })
            }
            _ => Err(ApiError::Invalid(format!("delivery {id} is still pending: it will be sent"))),
        }
    })
    .await
}

/// Sends a delivery again (see the README: a delivered event is queued again as a redelivery,
/// a failed one is retried).
#[utoipa::path(post, path = "/admin/api/deliveries/{event_id}/redeliver", tag = "admin",
    params(("event_id" = uuid::Uuid, Path)),
    responses((status = 201, body = Redelivered), (status = 401, body = domain::ErrorBody),
              (status = 403, body = domain::ErrorBody), (status = 404, body = domain::ErrorBody),
              (status = 422, body = domain::ErrorBody)))]
async fn redeliver_one(
    _admin: Admin,
    state: web::Data<AppState>,
    path: web::Path<uuid::Uuid>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(HttpResponse::Created().json(redeliver(&mut conn, path.into_inner()).await?))
}

/// The delivery history, newest first.
#[utoipa::path(get, path = "/admin/api/deliveries", tag = "admin", params(DeliveryFilter),
    responses((status = 200, body = DeliveryList), (status = 401, body = domain::ErrorBody),
              (status = 422, body = domain::ErrorBody)))]
async fn list_deliveries(
    _admin: Admin,
    state: web::Data<AppState>,
    filter: web::Query<DeliveryFilter>,
) -> Result<web::Json<DeliveryList>, ApiError> {
    let mut conn = db::conn(&state.pool).await?;
    let (items, next_before) = deliveries_page(&mut conn, &filter).await?;
    Ok(web::Json(DeliveryList { items, next_before }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Retried {
    /// Failed events put back in the queue.
    retried: usize,
}

/// Puts a link's failed events back in the queue (now, attempts reset) and the link back to
/// pending: its waiting events follow in order.
pub async fn retry_link(conn: &mut db::Conn, app_id: &str, repository_id: &str) -> Result<usize, ApiError> {
    use crate::schema::docora::events;
    conn.transaction::<_, ApiError, _>(async |conn| {
        let linked = diesel::update(
            app_repositories::table
                .filter(app_repositories::app_id.eq(app_id))
                .filter(app_repositories::repository_id.eq(repository_id)),
        )
        .set((app_repositories::status.eq("pending"), app_repositories::last_error.eq(None::<String>)))
        .execute(conn)
        .await?;
        if linked == 0 {
            return Err(ApiError::NotFound(format!("{app_id} does not watch {repository_id}")));
        }
        let retried = diesel::update(
            events::table
                .filter(events::app_id.eq(app_id))
                .filter(events::repository_id.eq(repository_id))
                .filter(events::status.eq("failed")),
        )
        .set((events::status.eq("pending"), events::attempts.eq(0), events::next_attempt_at.eq(diesel::dsl::now)))
        .execute(conn)
        .await?;
        crate::wake::notify_due(conn).await?;
        Ok(retried)
    })
    .await
}

/// Retries a failed link's deliveries.
#[utoipa::path(post, path = "/admin/api/apps/{app_id}/repositories/{repository_id}/retry", tag = "admin",
    params(("app_id" = String, Path), ("repository_id" = String, Path)),
    responses((status = 200, body = Retried), (status = 401, body = domain::ErrorBody),
              (status = 403, body = domain::ErrorBody), (status = 404, body = domain::ErrorBody)))]
async fn retry(
    _admin: Admin,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<web::Json<Retried>, ApiError> {
    let (app_id, repository_id) = path.into_inner();
    let mut conn = db::conn(&state.pool).await?;
    Ok(web::Json(Retried { retried: retry_link(&mut conn, &app_id, &repository_id).await? }))
}

/// The work queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct Queue {
    /// Repositories due for a scan now.
    pub scans_due: i64,
    /// Repositories being scanned (leased).
    pub scans_running: i64,
    /// Repositories whose circuit is open.
    pub circuits_open: i64,
    /// Events waiting (due or backing off).
    pub deliveries_pending: i64,
    /// Deliveries under way: links whose events a worker holds (one event in flight each; the
    /// rest of the worker's batch waits behind it).
    pub deliveries_running: i64,
    /// Events that gave up (their links wait for a retry).
    pub deliveries_failed: i64,
}

/// What is queued, running and failed.
pub async fn queue(conn: &mut db::Conn) -> Result<Queue, ApiError> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        scans_due: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        scans_running: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        circuits_open: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        deliveries_pending: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        deliveries_running: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        deliveries_failed: i64,
    }
    let row: Row = diesel::sql_query(
        "SELECT \
           (SELECT count(*) FROM docora.repositories WHERE next_scan_at <= now() \
              AND (circuit_open_until IS NULL OR circuit_open_until <= now()) \
              AND (scan_lease_until IS NULL OR scan_lease_until <= now())) AS scans_due, \
           (SELECT count(*) FROM docora.repositories WHERE scan_lease_until > now()) AS scans_running, \
           (SELECT count(*) FROM docora.repositories WHERE circuit_open_until > now()) AS circuits_open, \
           (SELECT count(*) FROM docora.events WHERE status = 'pending') AS deliveries_pending, \
           (SELECT count(DISTINCT (app_id, repository_id)) FROM docora.events \
              WHERE status = 'pending' AND lease_until > now()) AS deliveries_running, \
           (SELECT count(*) FROM docora.events WHERE status = 'failed') AS deliveries_failed",
    )
    .get_result(conn)
    .await?;
    Ok(Queue {
        scans_due: row.scans_due,
        scans_running: row.scans_running,
        circuits_open: row.circuits_open,
        deliveries_pending: row.deliveries_pending,
        deliveries_running: row.deliveries_running,
        deliveries_failed: row.deliveries_failed,
    })
}

/// The work queue.
#[utoipa::path(get, path = "/admin/api/queue", tag = "admin",
    responses((status = 200, body = Queue), (status = 401, body = domain::ErrorBody)))]
async fn get_queue(_admin: Admin, state: web::Data<AppState>) -> Result<web::Json<Queue>, ApiError> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(web::Json(queue(&mut conn).await?))
}

/// One app's health, for the overview.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppHealth {
    pub app_id: String,
    pub app_name: String,
    /// Attempts that succeeded among those of the last hour (none: no attempt).
    pub attempts_hour: i64,
    pub succeeded_hour: i64,
    /// The same over the last day.
    pub attempts_day: i64,
    pub succeeded_day: i64,
    /// Repositories it watches, and those whose deliveries gave up (waiting for a retry).
    pub links: i64,
    pub failing_links: i64,
    pub delivery_breaker: crate::deliver::DeliveryBreaker,
    /// When its oldest event still waiting was created.
    #[serde(with = "domain::timestamp::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub oldest_pending_at: Option<OffsetDateTime>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Overview {
    pub apps: Vec<AppHealth>,
    pub repositories: Vec<crate::repository_admin::RepositoryHealth>,
    pub queue: Queue,
}

#[derive(QueryableByName)]
struct AppHealthRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    app_name: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    delivery_failures: i32,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    breaker_open_until: Option<OffsetDateTime>,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    breaker_trial: bool,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    links: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    failing_links: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    oldest_pending_at: Option<OffsetDateTime>,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    attempts_hour: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    succeeded_hour: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    attempts_day: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    succeeded_day: i64,
}

/// What is healthy and what is not: per app, and the repositories that need a look.
pub async fn overview(conn: &mut db::Conn) -> Result<Overview, ApiError> {
    let now = OffsetDateTime::now_utc();
    let apps: Vec<AppHealthRow> = diesel::sql_query(
        "SELECT a.id, a.app_name, a.delivery_failures, a.breaker_open_until, a.breaker_trial, \
           (SELECT count(*) FROM docora.app_repositories l WHERE l.app_id = a.id) AS links, \
           (SELECT count(*) FROM docora.app_repositories l WHERE l.app_id = a.id AND l.status = 'failed') AS failing_links, \
           (SELECT min(e.created_at) FROM docora.events e WHERE e.app_id = a.id AND e.status = 'pending') AS oldest_pending_at, \
           coalesce(h.attempts_hour, 0) AS attempts_hour, coalesce(h.succeeded_hour, 0) AS succeeded_hour, \
           coalesce(h.attempts_day, 0) AS attempts_day, coalesce(h.succeeded_day, 0) AS succeeded_day \
         FROM docora.apps a \
         LEFT JOIN LATERAL ( \
           SELECT count(*) FILTER (WHERE d.started_at > now() - interval '1 hour') AS attempts_hour, \
                  count(*) FILTER (WHERE d.started_at > now() - interval '1 hour' AND d.error IS NULL) AS succeeded_hour, \
                  count(*) AS attempts_day, count(*) FILTER (WHERE d.error IS NULL) AS succeeded_day \
           FROM docora.delivery_attempts d JOIN docora.events e ON e.id = d.event_id \
           WHERE e.app_id = a.id AND d.started_at > now() - interval '1 day') h ON true \
         ORDER BY a.app_name, a.id",
    )
    .load(conn)
    .await?;
    let repositories = crate::repository_admin::needing_a_look(conn).await?;
    let queue = queue(conn).await?;
    let apps = apps
        .into_iter()
        .map(|a| AppHealth {
            delivery_breaker: crate::deliver::DeliveryBreaker::new(
                a.delivery_failures,
                a.breaker_open_until,
                a.breaker_trial,
                now,
            ),
            app_id: a.id,
            app_name: a.app_name,
            attempts_hour: a.attempts_hour,
            succeeded_hour: a.succeeded_hour,
            attempts_day: a.attempts_day,
            succeeded_day: a.succeeded_day,
            links: a.links,
            failing_links: a.failing_links,
            oldest_pending_at: a.oldest_pending_at,
        })
        .collect();
    Ok(Overview { apps, repositories, queue })
}

/// What is healthy and what is not.
#[utoipa::path(get, path = "/admin/api/overview", tag = "admin",
    responses((status = 200, body = Overview), (status = 401, body = domain::ErrorBody)))]
async fn get_overview(_admin: Admin, state: web::Data<AppState>) -> Result<web::Json<Overview>, ApiError> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(web::Json(overview(&mut conn).await?))
}
