//! The admin's JSON API, `/admin/api/…`, behind the admin login (the dashboard's pages use the
//! same session):
//!
//! - `POST /admin/api/login` `{username, password}` → a session cookie (`HttpOnly`,
//!   `SameSite=Strict`, `Secure` over HTTPS) and the session's CSRF token;
//! - `POST /admin/api/logout`;
//! - `GET /admin/api/apps` (apps with their repositories and sync state), `POST /admin/api/apps`
//!   (onboard; the token is shown once), `POST /admin/api/apps/{app_id}/token` (a new token),
//!   `DELETE /admin/api/apps/{app_id}`;
//! - `GET /admin/api/deliveries?app_id=&repository_id=&status=&event=&limit=` (history, newest
//!   first), `POST /admin/api/apps/{app_id}/repositories/{repository_id}/retry` (failed
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
    cfg.route("/admin/api/login", web::post().to(login))
        .route("/admin/api/logout", web::post().to(logout))
        .service(web::resource("/admin/api/apps").route(web::get().to(list_apps)).route(web::post().to(create_app)))
        .route("/admin/api/apps/{app_id}/token", web::post().to(regenerate_token))
        .route("/admin/api/apps/{app_id}", web::delete().to(delete_app))
        .route("/admin/api/apps/{app_id}/breaker/reset", web::post().to(reset_breaker))
        .route("/admin/api/apps/{app_id}/repositories/{repository_id}/retry", web::post().to(retry))
        .route("/admin/api/deliveries", web::get().to(list_deliveries))
        .route("/admin/api/queue", web::get().to(get_queue));
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

/// Filters of the delivery history.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryFilter {
    pub app_id: Option<String>,
    pub repository_id: Option<String>,
    /// `pending`, `delivered` or `failed`.
    pub status: Option<String>,
    /// `create`, `update`, `delete` or `sync_failed`.
    pub event: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// One event of the delivery history.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: uuid::Uuid,
    pub app_id: String,
    pub repository_id: String,
    pub event: String,
    pub path: Option<String>,
    pub commit_sha: Option<String>,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
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
}

type DeliveryRow = (
    uuid::Uuid,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    i32,
    Option<String>,
    OffsetDateTime,
    OffsetDateTime,
    Option<OffsetDateTime>,
);

/// The delivery history, newest first, filtered.
pub async fn deliveries(conn: &mut db::Conn, filter: &DeliveryFilter) -> Result<Vec<DeliveryView>, ApiError> {
    use crate::schema::docora::events;
    let mut query = events::table.into_boxed();
    if let Some(app_id) = filter.app_id.as_deref().filter(|v| !v.is_empty()) {
        query = query.filter(events::app_id.eq(app_id.to_owned()));
    }
    if let Some(repository_id) = filter.repository_id.as_deref().filter(|v| !v.is_empty()) {
        query = query.filter(events::repository_id.eq(repository_id.to_owned()));
    }
    if let Some(status) = filter.status.as_deref().filter(|v| !v.is_empty()) {
        if !matches!(status, "pending" | "delivered" | "failed") {
            return Err(ApiError::Invalid(format!("status must be pending, delivered or failed, got {status:?}")));
        }
        query = query.filter(events::status.eq(status.to_owned()));
    }
    if let Some(event) = filter.event.as_deref().filter(|v| !v.is_empty()) {
        if !matches!(event, "create" | "update" | "delete" | "sync_failed") {
            return Err(ApiError::Invalid(format!(
                "event must be create, update, delete or sync_failed, got {event:?}"
            )));
        }
        query = query.filter(events::event.eq(event.to_owned()));
    }
    let limit = filter.limit.unwrap_or(100).clamp(1, 1000);
    let rows: Vec<DeliveryRow> = query
        .order(events::seq.desc())
        .limit(limit)
        .select((
            events::id,
            events::app_id,
            events::repository_id,
            events::event,
            events::path,
            events::commit_sha,
            events::status,
            events::attempts,
            events::last_error,
            events::created_at,
            events::next_attempt_at,
            events::delivered_at,
        ))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| DeliveryView {
            id: r.0,
            app_id: r.1,
            repository_id: r.2,
            event: r.3,
            path: r.4,
            commit_sha: r.5,
            status: r.6,
            attempts: r.7,
            last_error: r.8,
            created_at: r.9,
            next_attempt_at: r.10,
            delivered_at: r.11,
        })
        .collect())
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
    Ok(web::Json(DeliveryList { items: deliveries(&mut conn, &filter).await? }))
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
        Ok(diesel::update(
            events::table
                .filter(events::app_id.eq(app_id))
                .filter(events::repository_id.eq(repository_id))
                .filter(events::status.eq("failed")),
        )
        .set((events::status.eq("pending"), events::attempts.eq(0), events::next_attempt_at.eq(diesel::dsl::now)))
        .execute(conn)
        .await?)
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
