//! The admin dashboard: HTML pages under `/admin`, rendered on the server (no JavaScript), behind
//! the admin login of [`crate::admin_api`] (the same session cookie, CSRF token and queries):
//!
//! - `GET /admin/login`, `POST /admin/login` (a form; success sets the session cookie and goes
//!   to `/admin`), `POST /admin/logout`;
//! - `GET /admin`: the apps with their repositories and sync state, the onboarding form, and per
//!   app a new token and deletion; `POST /admin/apps` (onboard) and
//!   `POST /admin/apps/{app_id}/token` answer with the token, shown this once;
//!   `POST /admin/apps/{app_id}/delete`;
//! - `GET /admin/apps/{app_id}`: one app with its repositories; `GET /admin/repositories/{id}`:
//!   a repository's sync state (last scan attempt and its outcome, last successful scan, current
//!   commit, circuit, the last scans) apart from each watching app's deliveries;
//! - `GET /admin/deliveries?app_id=&repository_id=&status=&event=&path=&id=&since=&until=&before=&limit=`:
//!   the delivery history (delivery id, response code, duration, a failure's reason; cursor
//!   paging); `GET /admin/deliveries/{event_id}`: one delivery with every attempt, and
//!   `POST /admin/deliveries/{event_id}/redeliver`;
//! - any other `/admin/…` page: the console's 404 page;
//! - `GET /admin/failed`: failed links with their failed deliveries, each with a retry button
//!   (`POST /admin/apps/{app_id}/repositories/{repository_id}/retry`);
//! - `GET /admin/queue`: scans due, running and blocked by an open circuit; deliveries pending,
//!   running and failed.
//!
//! A page without a live session sends the browser to the login page. Every form posts a hidden
//! `csrf_token`: the session's (see [`AdminForm`]), or on the login form, which has no session
//! yet, one bound to a short-lived cookie; a missing or wrong one gets a 403 page. Pages are
//! never cached and may load nothing: no scripts, inline styles only, forms to this origin.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, HttpResponse, HttpResponseBuilder, ResponseError, web};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use service_kit::db;
use service_kit::pages::{Button, CsrfForm, FormSession};
use time::OffsetDateTime;

use crate::AppState;
use crate::admin_api::{self, Admin, AppView, DeliveryFilter, DeliveryView};
use crate::apps::{self, NewApp};
use crate::error::ApiError;
use crate::repository_admin::{self, RepositoryHealth};
use crate::schema::docora::repositories;

/// No scripts, no frames, nothing loaded from elsewhere; forms post to this origin only.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/// The login form's CSRF token, until a session has one.
const LOGIN_CSRF_COOKIE: &str = "docora_login_csrf";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/admin").route(web::get().to(overview_page)))
        .service(web::resource("/admin/login").route(web::get().to(login_page)).route(web::post().to(login)))
        .service(web::resource("/admin/logout").route(web::post().to(logout)))
        .service(web::resource("/admin/apps").route(web::get().to(apps_page)).route(web::post().to(onboard)))
        .service(web::resource("/admin/apps/{app_id}").route(web::get().to(app_page)))
        .service(web::resource("/admin/repositories/{repository_id}").route(web::get().to(repository_page)))
        .service(web::resource("/admin/apps/{app_id}/token").route(web::post().to(regenerate_token)))
        .service(web::resource("/admin/apps/{app_id}/delete").route(web::post().to(delete_app)))
        .service(web::resource("/admin/apps/{app_id}/breaker/reset").route(web::post().to(reset_breaker)))
        .service(web::resource("/admin/apps/{app_id}/repositories/{repository_id}/retry").route(web::post().to(retry)))
        .service(web::resource("/admin/deliveries").route(web::get().to(deliveries_page)))
        .service(web::resource("/admin/deliveries/{event_id}").route(web::get().to(delivery_page)))
        .service(web::resource("/admin/deliveries/{event_id}/redeliver").route(web::post().to(redeliver)))
        .service(web::resource("/admin/failed").route(web::get().to(failed_page)))
        .service(web::resource("/admin/queue").route(web::get().to(queue_page)))
        // Last: any other console URL gets the console's 404 page (the JSON API's, JSON).
        .route("/admin/{tail:.*}", web::route().to(unknown_page));
}

// ---- responses and errors ----

/// The headers of every dashboard response.
fn guarded(mut builder: HttpResponseBuilder) -> HttpResponseBuilder {
    builder
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
    builder
}

fn page(status: StatusCode, markup: Markup) -> HttpResponse {
    guarded(HttpResponse::build(status)).content_type("text/html; charset=utf-8").body(markup.into_string())
}

/// A 303 to `location` (after a form post, or to the login page).
fn see_other(location: &str) -> HttpResponseBuilder {
    let mut builder = guarded(HttpResponse::SeeOther());
    builder.insert_header((header::LOCATION, location));
    builder
}

/// Why a page could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// No live session: the browser goes to the login page.
    #[error("log in first")]
    LoggedOut,
    #[error("this form has expired or did not come from this dashboard; reload the page and try again")]
    Csrf,
    #[error("the form could not be read: {0}")]
    BadForm(String),
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<db::DbError> for PageError {
    fn from(error: db::DbError) -> Self {
        PageError::Api(error.into())
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::LoggedOut => StatusCode::SEE_OTHER,
            PageError::Csrf => StatusCode::FORBIDDEN,
            PageError::BadForm(_) => StatusCode::BAD_REQUEST,
            PageError::Api(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let message = match self {
            PageError::LoggedOut => return see_other("/admin/login").finish(),
            PageError::Api(e @ (ApiError::Internal(_) | ApiError::Database(_))) if status.is_server_error() => {
                tracing::error!(error = format!("{e:#}"), "dashboard page failed");
                "Something went wrong; the cause is in the service's log.".to_owned()
            }
            // Not found or a conflict: a plain word rather than the database's message.
            PageError::Api(ApiError::Database(_)) => status.canonical_reason().unwrap_or("Error").to_owned(),
            other => other.to_string(),
        };
        let response = page(status, message_page(status, &message));
        match self {
            PageError::Api(ApiError::TooManyAttempts(wait)) => service_kit::http::with_retry_after(response, *wait),
            _ => response,
        }
    }
}

fn state_of(req: &HttpRequest) -> Result<web::Data<AppState>, PageError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("state is not registered")).into())
}

// ---- extractors ----

/// The admin behind a page request. Without a live session, the browser goes to the login page.
pub struct PageAdmin(Admin);

impl FromRequest for PageAdmin {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, PageError>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = state_of(&req)?;
            admin_api::session(&state, &req).await?.map(PageAdmin).ok_or(PageError::LoggedOut)
        })
    }
}

/// A form the logged-in admin posted, its `csrf_token` checked against the session's: the
/// handler of every state-changing form takes one, so none can skip the check.
pub type AdminForm<T> = CsrfForm<Admin, T>;

impl FormSession for Admin {
    type Error = PageError;

    async fn of(req: &HttpRequest) -> Result<Admin, PageError> {
        let state = state_of(req)?;
        admin_api::session(&state, req).await?.ok_or(PageError::LoggedOut)
    }

    fn csrf_matches(&self, sent: &str) -> bool {
        Admin::csrf_matches(self, sent)
    }

    fn bad_form(message: String) -> PageError {
        PageError::BadForm(message)
    }

    fn forged() -> PageError {
        PageError::Csrf
    }
}

// ---- login ----

#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf_token: String,
}

/// The login page with a fresh CSRF token, bound to a cookie of the login path.
fn login_response(
    req: &HttpRequest,
    state: &AppState,
    status: StatusCode,
    username: &str,
    error: Option<&str>,
) -> HttpResponse {
    let token = auth::token::random_hex(32);
    let secure = if req.connection_info().scheme() == "https" { "; Secure" } else { "" };
    let cookie =
        format!("{LOGIN_CSRF_COOKIE}={token}; Path=/admin/login; HttpOnly; SameSite=Strict; Max-Age=3600{secure}");
    let off = state.admin.password_hash.is_none();
    let body = html! {
        h1 { "Docora admin" }
        @if off {
            p.error { "The admin login is off: set ADMIN_PASSWORD_HASH (docora-watcher admin hash-password)." }
        }
        @if let Some(error) = error {
            p.error #login-error role="alert" { (error) }
        }
        form #login method="post" action="/admin/login" {
            input type="hidden" name="csrf_token" value=(token);
            label { "Username " input name="username" autocomplete="username" required value=(username); }
            label { "Password " input type="password" name="password" autocomplete="current-password" required; }
            button type="submit" { "Log in" }
        }
    };
    let mut builder = guarded(HttpResponse::build(status));
    builder.append_header((header::SET_COOKIE, cookie));
    builder.content_type("text/html; charset=utf-8").body(layout("Log in", None, body).into_string())
}

async fn login_page(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    if admin_api::session(&state, &req).await?.is_some() {
        return Ok(see_other("/admin").finish());
    }
    Ok(login_response(&req, &state, StatusCode::OK, "", None))
}

async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, PageError> {
    let expected = admin_api::cookie(&req, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || !auth::constant_time_eq(form.csrf_token.as_bytes(), expected.as_bytes()) {
        return Err(PageError::Csrf);
    }
    match admin_api::check_credentials(&state, &form.username, &form.password).await {
        Ok(true) => {}
        Ok(false) => {
            return Ok(login_response(
                &req,
                &state,
                StatusCode::UNAUTHORIZED,
                &form.username,
                Some("Wrong username or password."),
            ));
        }
        Err(e @ ApiError::TooManyAttempts(wait)) => {
            let response = login_response(&req, &state, e.status_code(), &form.username, Some(&e.to_string()));
            return Ok(service_kit::http::with_retry_after(response, wait));
        }
        Err(e) => return Err(e.into()),
    }
    let (session_cookie, _) = admin_api::open_session(&state, &req, &form.username).await?;
    Ok(see_other("/admin")
        .append_header((header::SET_COOKIE, session_cookie))
        .append_header((
            header::SET_COOKIE,
            format!("{LOGIN_CSRF_COOKIE}=; Path=/admin/login; HttpOnly; SameSite=Strict; Max-Age=0"),
        ))
        .finish())
}

async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    _form: AdminForm<Button>,
) -> Result<HttpResponse, PageError> {
    admin_api::close_session(&state, &req).await?;
    Ok(see_other("/admin/login").append_header((header::SET_COOKIE, admin_api::cleared_cookie())).finish())
}

// ---- apps ----

#[derive(Debug, Deserialize)]
struct Notice {
    notice: Option<String>,
}

impl Notice {
    /// The message of a known notice (the query names one; it never carries text).
    fn message(&self) -> Option<&'static str> {
        match self.notice.as_deref()? {
            "deleted" => Some("The app was deleted, with its links and delivery history."),
            "retried" => Some("The failed deliveries are back in the queue."),
            "redelivery" => Some(
                "Redelivery queued: this new event goes after the link's other events, with the original's delivery id and X-Docora-Redelivery: true.",
            ),
            "breaker_closed" => Some("The delivery breaker is closed: waiting deliveries go out now."),
            _ => None,
        }
    }
}

async fn apps_page(
    PageAdmin(admin): PageAdmin,
    state: web::Data<AppState>,
    notice: web::Query<Notice>,
) -> Result<HttpResponse, PageError> {
    let mut conn = db::conn(&state.pool).await?;
    let apps = admin_api::app_views(&mut conn).await?;
    drop(conn);
    let now = OffsetDateTime::now_utc();
    let body = html! {
        @if let Some(message) = notice.message() { p.notice #notice role="status" { (message) } }
        h1 { "Apps" }
        p { a href="#onboard" { "Onboard an app ↓" } }
        @if apps.is_empty() { p #no-apps { "No app is onboarded yet." } }
        @else {
            table #app-index {
                thead { tr { th { "App" } th { "Repositories" } th { "Failing" } th { "Delivery breaker" } } }
                tbody {
                    @for app in &apps {
                        tr {
                            td.clip title=(app.app_name) { a href=(format!("/admin/apps/{}", app.app_id)) { (middle(&app.app_name, 80)) } }
                            td { (app.repositories.len()) }
                            td { (app.repositories.iter().filter(|r| r.status == "failed").count()) }
                            td { (app.delivery_breaker.status) }
                        }
                    }
                }
            }
        }
        @for app in &apps { (app_section(&admin, app, now)) }
        (onboard_form(&admin, &OnboardForm::default(), None))
    };
    Ok(page(StatusCode::OK, layout("Apps", Some(&admin), body)))
}

fn app_section(admin: &Admin, app: &AppView, now: OffsetDateTime) -> Markup {
    html! {
        section.app #(format!("app-{}", app.app_id)) {
            h2 { (app.app_name) }
            dl {
                dt { "App id" } dd { code { (app.app_id) } }
                dt { "Webhooks to" } dd { code { (app.base_url) } }
                dt { "Email" } dd { (app.email) }
                @if let Some(website) = &app.website { dt { "Website" } dd { (website) } }
                @if let Some(description) = &app.description { dt { "Description" } dd { (description) } }
                dt { "Onboarded" } dd { (when(Some(app.created_at))) }
                dt { "Delivery breaker" }
                dd.breaker {
                    @let breaker = &app.delivery_breaker;
                    @match breaker.status.as_str() {
                        "open" => { "open until " (when(breaker.open_until)) }
                        "half_open" => "half-open (one trial delivery)",
                        _ => "closed",
                    }
                    @if breaker.consecutive_failures > 0 {
                        " (" (breaker.consecutive_failures) " failures in a row)"
                    }
                    @if breaker.status != "closed" || breaker.consecutive_failures > 0 {
                        form.inline method="post" action=(format!("/admin/apps/{}/breaker/reset", app.app_id)) {
                            (csrf_field(admin))
                            button.reset-breaker type="submit" { "Close the breaker now" }
                        }
                    }
                }
            }
            @if app.repositories.is_empty() {
                p { "Watches no repository." }
            } @else {
                table.repositories {
                    thead {
                        tr { th rowspan="2" { "Repository" } th colspan="2" { "Delivery to this app" } th colspan="3" { "Sync (scans of the repository)" } }
                        tr { th { "Status" } th { "Error" } th { "State" } th { "Last successful scan" } th { "Circuit" } }
                    }
                    tbody {
                        @for repo in &app.repositories {
                            tr #(format!("link-{}-{}", app.app_id, repo.repository_id)) {
                                td {
                                    a.repository href=(format!("/admin/repositories/{}", repo.repository_id)) { (repo.github_url) }
                                    @if repo.is_private { " (private)" }
                                    br; small { code { (repo.repository_id) } }
                                }
                                td.status {
                                    // Delivered all it knows, but its scans fail (a repository
                                    // gone from GitHub, say): not `synced`.
                                    @if repo.status == "synced" && repo.consecutive_failures > 0 {
                                        "delivered up to the last good scan"
                                    } @else { (repo.status) }
                                    @if repo.needs_full_sync { " (full sync next)" }
                                }
                                // A delivery error belongs to a failed link; a scan error to the
                                // failing scans (cleared by the next success).
                                td.error { @if repo.status == "failed" { (repo.last_error.as_deref().unwrap_or("")) } }
                                td.sync-state {
                                    @let healthy = matches!(repo.sync.state.as_str(), "ok" | "scanning");
                                    span class=(if healthy { "ok" } else { "error" }) { (repo.sync.state.replace('_', " ")) }
                                    @if !healthy { div.why-text { (repo.sync.reason) } }
                                }
                                td { (short_or_never(repo.last_scan_at)) }
                                td.circuit {
                                    @match repo.circuit_open_until {
                                        Some(until) if until > now => { "open until " (when(Some(until))) }
                                        Some(_) => {
                                            "half-open: one trial scan next (" (repo.consecutive_failures)
                                            " failures in a row)"
                                        }
                                        _ if repo.consecutive_failures > 0 => {
                                            "closed (" (repo.consecutive_failures) " failures in a row)"
                                        }
                                        _ => "closed",
                                    }
                                }
                            }
                        }
                    }
                }
            }
            p {
                a href=(format!("/admin/deliveries?app_id={}", app.app_id)) { "Deliveries" } " · "
                a href=(format!("/admin/deliveries?app_id={}&status=failed", app.app_id)) { "failed ones" }
            }
            details.regenerate {
                summary { "New token…" }
                p { "The app's current token stops working at once; the new one is shown once." }
                form method="post" action=(format!("/admin/apps/{}/token", app.app_id)) {
                    (csrf_field(admin))
                    button.regenerate type="submit" { "Regenerate the token" }
                }
            }
            details.delete {
                summary { "Delete…" }
                p { "Deletes the app, its links and its delivery history; repositories nobody else watches go too." }
                form method="post" action=(format!("/admin/apps/{}/delete", app.app_id)) {
                    (csrf_field(admin))
                    button.delete type="submit" { "Delete " (app.app_name) }
                }
            }
        }
    }
}

/// One app: its repositories with delivery and sync state, its token and deletion.
async fn app_page(
    PageAdmin(admin): PageAdmin,
    state: web::Data<AppState>,
    app_id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let mut conn = db::conn(&state.pool).await?;
    let apps = admin_api::app_views(&mut conn).await?;
    drop(conn);
    let Some(app) = apps.iter().find(|a| a.app_id == *app_id) else {
        return Ok(not_found_page(Some(&admin)));
    };
    let body = html! {
        p { a href="/admin/apps" { "← Apps" } }
        (app_section(&admin, app, OffsetDateTime::now_utc()))
    };
    Ok(page(StatusCode::OK, layout(&app.app_name, Some(&admin), body)))
}

/// A link's delivery state in words.
fn delivery_state_text(state: &str) -> &str {
    match state {
        "up_to_date" => "up to date",
        "delivering" => "delivering",
        "retrying" => "retrying",
        "failed" => "failed",
        "full_sync_next" => "full sync next",
        other => other,
    }
}

/// A repository: its sync state (scans) apart from each watching app's deliveries.
async fn repository_page(
    PageAdmin(admin): PageAdmin,
    state: web::Data<AppState>,
    repository_id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let mut conn = db::conn(&state.pool).await?;
    let detail = match repository_admin::repository_detail(&mut conn, &repository_id).await {
        Ok(detail) => detail,
        Err(ApiError::NotFound(_)) => return Ok(not_found_page(Some(&admin))),
        Err(e) => return Err(e.into()),
    };
    drop(conn);
    let sync = &detail.sync;
    let healthy = matches!(sync.state.as_str(), "ok" | "scanning");
    let body = html! {
        p { a href="/admin" { "← Overview" } }
        h1 #repository-url { (detail.github_url) @if detail.is_private { " (private)" } }
        p.muted { code { (detail.repository_id) } }
        h2 { "Sync (scans of the repository)" }
        dl #sync {
            dt { "State" }
            dd #sync-state {
                span class=(if healthy { "badge delivered" } else { "badge failed" }) { (sync.state.replace('_', " ")) }
                " " span #sync-reason class=(if healthy { "muted" } else { "error" }) { (sync.reason) }
            }
            dt { "Last scan attempt" }
            dd #last-attempt {
                @match &sync.last_attempt {
                    Some(scan) => {
                        (short_time(scan.started_at)) " · "
                        span class=(if scan.outcome == "failed" { "error" } else { "ok" }) { (scan.outcome) }
                        @if let Some(error) = scan.error.as_deref() { ": " span.error { (error) } }
                    }
                    None => "none recorded",
                }
            }
            dt { "Last successful scan" } dd #last-success { (short_or_never(sync.last_success_at)) }
            dt { "Current commit" }
            dd #current-commit {
                @match sync.current_commit.as_deref() { Some(c) => code { (c) }, None => span.muted { "none yet" } }
                " on " code { (sync.default_branch) }
            }
            dt { "Circuit" }
            dd #circuit {
                @match sync.circuit.as_str() {
                    "open" => span.error { "open until " (short_or_never(sync.circuit_open_until)) },
                    "half_open" => span.error { "half-open: one trial scan next" },
                    _ => "closed",
                }
                @if sync.consecutive_failures > 0 { " (" (sync.consecutive_failures) " failed scans in a row)" }
            }
            dt { "Next scan due" } dd { (short_time(sync.next_scan_at)) }
            @if let Some(started) = sync.scan_started_at {
                dt { "Scan running" } dd { "since " (short_time(started)) ", lease until " (short_or_never(sync.scan_lease_until)) }
            }
        }
        h2 { "Delivery to each app" }
        @if !healthy {
            p.error #deliveries-stale { "Its scans are not current: what the apps have is the repository as of the last successful scan." }
        }
        @if detail.links.is_empty() { p { "No app watches it." } }
        @else {
            table #links.fixed {
                colgroup { col style="width:16rem"; col style="width:8rem"; col style="width:17rem"; col style="width:11rem"; col; }
                thead { tr { th { "App" } th { "Delivery" } th { "Delivered up to" } th { "Waiting" } th { "Last delivery error" } } }
                tbody {
                    @for l in &detail.links {
                        tr.link #(format!("link-{}", l.app_id)) {
                            td.clip title=(l.app_name) {
                                a href=(format!("/admin/apps/{}", l.app_id)) { (middle(&l.app_name, 28)) }
                                div.muted { a.muted href=(format!("/admin/deliveries?app_id={}&repository_id={}", l.app_id, detail.repository_id)) { "its deliveries →" } }
                            }
                            td.delivery-state {
                                span class=(format!("badge {}", match l.delivery_state.as_str() { "up_to_date" => "delivered", "failed" | "retrying" => "failed", _ => "pending" })) {
                                    (delivery_state_text(&l.delivery_state))
                                }
                            }
                            td.clip {
                                @match &l.delivered_up_to {
                                    Some(d) => {
                                        div title=(d.path.as_deref().unwrap_or(&d.event)) {
                                            a href=(format!("/admin/deliveries/{}", d.event_id)) { (d.event) " " (middle(d.path.as_deref().unwrap_or(""), 26)) }
                                        }
                                        div.muted { "created " (short_time(d.created_at)) }
                                    }
                                    None => span.muted { "nothing yet" },
                                }
                            }
                            td {
                                (l.pending) " pending"
                                @if l.failed > 0 { br; a.error href=(format!("/admin/deliveries?app_id={}&repository_id={}&status=failed", l.app_id, detail.repository_id)) { (l.failed) " failed" } }
                                @if let Some(at) = l.oldest_pending_at { div.muted { "since " (short_time(at)) } }
                            }
                            td.why {
                                @match (&l.last_delivery_error, l.next_event_id) {
                                    (Some(error), Some(id)) => { a.error href=(format!("/admin/deliveries/{id}")) { (error) } }
                                    (Some(error), None) => { span.error { (error) } }
                                    _ => span.muted { "none" },
                                }
                            }
                        }
                    }
                }
            }
        }
        form #find-file method="get" action="/admin/deliveries" {
            input type="hidden" name="repository_id" value=(detail.repository_id);
            label { "Find a file's deliveries: path starts with " input type="text" name="path" size="30" required; }
            " " button type="submit" { "Find" }
        }
        h2 { "Last scans" }
        @if detail.scans.is_empty() { p #no-scans { "No scan recorded yet." } }
        @else {
            table #scans.fixed {
                colgroup { col style="width:11rem"; col style="width:6rem"; col style="width:7rem"; col style="width:7rem"; col style="width:5rem"; col; }
                thead { tr { th { "Started" } th { "Took" } th { "Outcome" } th { "Commit" } th { "Events" } th { "Error" } } }
                tbody {
                    @for scan in &detail.scans {
                        tr.scan {
                            td { (short_time(scan.started_at)) }
                            td { (scan.duration_ms) " ms" }
                            td.outcome { span class=(if scan.outcome == "failed" { "error" } else { "ok" }) { (scan.outcome) } }
                            td { @if let Some(c) = scan.commit_sha.as_deref() { code title=(c) { (c.get(..8).unwrap_or(c)) } } }
                            td { (scan.events) }
                            td.why {
                                @if let Some(error) = scan.error.as_deref() { span.error { (error) } }
                                @if scan.circuit_opened { " " span.badge.failed { "circuit opened" } }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(StatusCode::OK, layout("Repository", Some(&admin), body)))
}

/// What the onboarding form posts (and shows again, bar the key, when it is refused).
#[derive(Debug, Default, Deserialize)]
struct OnboardForm {
    #[serde(default)]
    app_name: String,
    #[serde(default)]
    base_url: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    website: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    client_auth_key: String,
}

fn onboard_form(admin: &Admin, values: &OnboardForm, error: Option<&str>) -> Markup {
    html! {
        section #onboard {
            h2 { "Onboard an app" }
            @if let Some(error) = error { p.error #onboard-error role="alert" { (error) } }
            form method="post" action="/admin/apps" {
                (csrf_field(admin))
                label { "Name " input name="app_name" required minlength="3" maxlength="100" value=(values.app_name); }
                label { "Webhook base URL " input type="url" name="base_url" required value=(values.base_url); }
                label { "Email " input type="email" name="email" required value=(values.email); }
                label { "Website " input type="url" name="website" value=(values.website); }
                label { "Description " textarea name="description" maxlength="500" { (values.description) } }
                label {
                    "Signing key (16+ characters; the app verifies webhooks with it) "
                    input type="password" name="client_auth_key" required minlength="16" autocomplete="off";
                }
                button type="submit" { "Onboard" }
            }
        }
    }
}

async fn onboard(state: web::Data<AppState>, posted: AdminForm<OnboardForm>) -> Result<HttpResponse, PageError> {
    let CsrfForm { session: admin, form } = posted;
    let optional = |v: &str| Some(v.to_owned()).filter(|v| !v.trim().is_empty());
    let new = NewApp {
        app_name: form.app_name.clone(),
        base_url: form.base_url.clone(),
        email: form.email.clone(),
        website: optional(&form.website),
        description: optional(&form.description),
        client_auth_key: form.client_auth_key.clone(),
    };
    let mut conn = db::conn(&state.pool).await?;
    let app = match apps::onboard(&mut conn, &state.cipher, &new, state.url_policy).await {
        Ok(app) => app,
        Err(ApiError::Invalid(why)) => {
            let body = onboard_form(&admin, &form, Some(&why));
            return Ok(page(StatusCode::UNPROCESSABLE_ENTITY, layout("Onboard an app", Some(&admin), body)));
        }
        Err(e) => return Err(e.into()),
    };
    let title = format!("{} is onboarded", form.app_name.trim());
    Ok(page(StatusCode::OK, token_page(&admin, &title, &app.app_id, &app.token)))
}

/// The one time a token is shown.
fn token_page(admin: &Admin, title: &str, app_id: &str, token: &str) -> Markup {
    let body = html! {
        h1 { (title) }
        p { "App id: " code #app-id { (app_id) } }
        p { "Its token, shown this once (the app sends it as " code { "Authorization: Bearer …" } "):" }
        p { code #token { (token) } }
        p { "Copy it now: only its digest is kept, so nobody can show it again." }
        p { a href="/admin/apps" { "Back to the apps" } }
    };
    layout(title, Some(admin), body)
}

async fn regenerate_token(
    state: web::Data<AppState>,
    app_id: web::Path<String>,
    posted: AdminForm<Button>,
) -> Result<HttpResponse, PageError> {
    let mut conn = db::conn(&state.pool).await?;
    let token = apps::regenerate_token(&mut conn, &app_id).await?;
    Ok(page(StatusCode::OK, token_page(&posted.session, "A new token", &app_id, &token)))
}

async fn reset_breaker(
    state: web::Data<AppState>,
    id: web::Path<String>,
    _posted: AdminForm<Button>,
) -> Result<HttpResponse, PageError> {
    let mut conn = db::conn(&state.pool).await?;
    admin_api::close_breaker(&mut conn, &id).await?;
    Ok(see_other("/admin/apps?notice=breaker_closed").finish())
}

async fn delete_app(
    state: web::Data<AppState>,
    app_id: web::Path<String>,
    _posted: AdminForm<Button>,
) -> Result<HttpResponse, PageError> {
    let mut conn = db::conn(&state.pool).await?;
    let orphans = admin_api::delete(&mut conn, &app_id).await?;
    drop(conn);
    for repository_id in orphans {
        crate::repositories::remove_clone(&state, &repository_id).await;
    }
    Ok(see_other("/admin/apps?notice=deleted").finish())
}

// ---- deliveries ----

/// The filter form as sent (an empty field is no filter).
#[derive(Debug, Default, Deserialize)]
struct DeliveryQuery {
    app_id: Option<String>,
    repository_id: Option<String>,
    status: Option<String>,
    event: Option<String>,
    /// A path prefix.
    path: Option<String>,
    /// A delivery id (`X-Docora-Delivery`).
    id: Option<String>,
    /// Created from / before (RFC 3339, or `YYYY-MM-DDTHH:MM` in UTC as a browser's
    /// `datetime-local` sends it).
    since: Option<String>,
    until: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

/// A time from the filter form: RFC 3339, or a browser's `datetime-local` taken as UTC.
fn parse_time(name: &str, text: &str) -> Result<OffsetDateTime, String> {
    domain::timestamp::parse_rfc3339(text)
        .or_else(|_| domain::timestamp::parse_rfc3339(&format!("{text}:00Z")))
        .or_else(|_| domain::timestamp::parse_rfc3339(&format!("{text}Z")))
        .map_err(|_| format!("{name} must be a time such as 2026-12-07T17:00 (UTC)"))
}

/// App names and repository URLs by id, for people to read.
struct Names {
    apps: BTreeMap<String, String>,
    repositories: BTreeMap<String, String>,
}

impl Names {
    fn of(apps: &[AppView]) -> Names {
        let mut names = Names { apps: BTreeMap::new(), repositories: BTreeMap::new() };
        for app in apps {
            names.apps.insert(app.app_id.clone(), app.app_name.clone());
            for repo in &app.repositories {
                names.repositories.insert(repo.repository_id.clone(), repo.github_url.clone());
            }
        }
        names
    }

    fn app<'a>(&'a self, id: &'a str) -> &'a str {
        self.apps.get(id).map_or(id, String::as_str)
    }

    fn repository<'a>(&'a self, id: &'a str) -> &'a str {
        self.repositories.get(id).map_or(id, String::as_str)
    }
}

async fn deliveries_page(
    PageAdmin(admin): PageAdmin,
    state: web::Data<AppState>,
    query: web::Query<DeliveryQuery>,
) -> Result<HttpResponse, PageError> {
    let query = query.into_inner();
    let given = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
    let mut conn = db::conn(&state.pool).await?;
    let apps = admin_api::app_views(&mut conn).await?;
    let mut filter = DeliveryFilter {
        app_id: given(&query.app_id),
        repository_id: given(&query.repository_id),
        status: given(&query.status),
        event: given(&query.event),
        path_prefix: given(&query.path),
        ..DeliveryFilter::default()
    };
    // A filter the history refuses is shown with the form, like any refused form.
    let parsed = (|| -> Result<(), String> {
        filter.limit =
            given(&query.limit).map(|l| l.parse::<i64>()).transpose().map_err(|_| "limit must be a whole number")?;
        filter.before =
            given(&query.before).map(|l| l.parse::<i64>()).transpose().map_err(|_| "before must be a whole number")?;
        filter.delivery_id = given(&query.id)
            .map(|id| uuid::Uuid::parse_str(&id))
            .transpose()
            .map_err(|_| "a delivery id is a UUID, as in X-Docora-Delivery")?;
        filter.since = given(&query.since).map(|t| parse_time("from", &t)).transpose()?;
        filter.until = given(&query.until).map(|t| parse_time("to", &t)).transpose()?;
        Ok(())
    })();
    let found = match parsed {
        Err(why) => Err(why),
        Ok(()) => match admin_api::deliveries_page(&mut conn, &filter).await {
            Ok(page) => Ok(page),
            Err(ApiError::Invalid(why)) => Err(why),
            Err(e) => return Err(e.into()),
        },
    };
    drop(conn);
    let names = Names::of(&apps);
    let selected = |value: &Option<String>, option: &str| value.as_deref() == Some(option);
    // The next page keeps the filters.
    let next_link = |before: i64| {
        let mut pairs = url_pairs(&[
            ("app_id", given(&query.app_id)),
            ("repository_id", given(&query.repository_id)),
            ("status", given(&query.status)),
            ("event", given(&query.event)),
            ("path", given(&query.path)),
            ("id", given(&query.id)),
            ("since", given(&query.since)),
            ("until", given(&query.until)),
            ("limit", given(&query.limit)),
        ]);
        pairs.push_str(&format!("{}before={before}", if pairs.is_empty() { "" } else { "&" }));
        format!("/admin/deliveries?{pairs}")
    };
    let body = html! {
        h1 { "Deliveries" }
        form #filters method="get" action="/admin/deliveries" {
            label { "App "
                select name="app_id" {
                    option value="" { "any" }
                    @for (id, name) in &names.apps {
                        option value=(id) selected[selected(&filter.app_id, id)] { (middle(name, 40)) }
                    }
                }
            }
            label { "Repository "
                select name="repository_id" {
                    option value="" { "any" }
                    @for (id, url) in &names.repositories {
                        option value=(id) selected[selected(&filter.repository_id, id)] { (url) }
                    }
                }
            }
            label { "Status "
                select name="status" {
                    option value="" { "any" }
                    @for status in ["pending", "delivered", "failed"] {
                        option value=(status) selected[selected(&filter.status, status)] { (status) }
                    }
                }
            }
            label { "Event "
                select name="event" {
                    option value="" { "any" }
                    @for event in ["create", "update", "delete", "sync_failed"] {
                        option value=(event) selected[selected(&filter.event, event)] { (event) }
                    }
                }
            }
            label { "Path starts with " input type="text" name="path" size="16" value=[given(&query.path)]; }
            label { "Delivery id " input type="text" name="id" size="20" placeholder="X-Docora-Delivery" value=[given(&query.id)]; }
            label { "From " input type="datetime-local" name="since" value=[given(&query.since)]; }
            label { "To " input type="datetime-local" name="until" value=[given(&query.until)]; }
            label { "Per page " input type="number" name="limit" min="1" max="1000" placeholder="100" value=[given(&query.limit)]; }
            button type="submit" { "Filter" }
            " " a href="/admin/deliveries" { "Clear" }
        }
        @match &found {
            Err(why) => p.error #filter-error role="alert" { (why) },
            Ok((items, _)) if items.is_empty() => p #no-deliveries { "No delivery matches." },
            Ok((items, next)) => {
                (deliveries_table(&names, items))
                @if let Some(before) = next {
                    p { a #next-page href=(next_link(*before)) { "Older →" } }
                }
            }
        }
    };
    let status = if found.is_ok() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok(page(status, layout("Deliveries", Some(&admin), body)))
}

/// `name=value&…` of the given pairs, encoded.
fn url_pairs(pairs: &[(&str, Option<String>)]) -> String {
    pairs
        .iter()
        .filter_map(|(name, value)| value.as_ref().map(|v| format!("{name}={}", encode(v))))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A delivery's status, with the reason when it is not delivered (or is a `sync_failed`).
/// `with_reason`: a `sync_failed`'s reason too (the history shows it in the path's place).
fn status_cell(d: &DeliveryView, with_reason: bool) -> Markup {
    let why = match d.status.as_str() {
        "delivered" => None,
        _ => d.last_error.as_deref(),
    };
    html! {
        span class=(format!("badge {}", d.status)) { (d.status) }
        @if d.status == "pending" && d.attempts > 0 { " · retry " (short_time(d.next_attempt_at)) }
        @if let Some(why) = why { div.why title=(why) { (why) } }
        @if with_reason && let Some(reason) = d.reason.as_deref() { div.why title=(reason) { "sync failed: " (reason) } }
    }
}

fn deliveries_table(names: &Names, items: &[DeliveryView]) -> Markup {
    html! {
        table #deliveries.fixed style="font-size:.93em" {
            colgroup {
                col style="width:8.5rem"; col style="width:6.5rem"; col style="width:15rem"; col style="width:6rem";
                col; col style="width:10rem"; col style="width:3.5rem"; col style="width:5rem"; col style="width:3rem";
            }
            thead {
                tr {
                    th { "Delivery" } th { "Created" } th { "App / repository" } th { "Event" } th { "Path" }
                    th { "Status" } th { "Code" } th { "Duration" } th title="Attempts" { "Tries" }
                }
            }
            tbody {
                @for d in items {
                    tr.delivery #(format!("delivery-{}", d.id)) {
                        td.id {
                            a href=(format!("/admin/deliveries/{}", d.id)) title=(d.delivery_id) {
                                // Ids are UUIDv7: their first digits are a time, their last are
                                // what tells them apart.
                                code { "…" (d.delivery_id.to_string().get(24..).unwrap_or_default()) }
                            }
                            @if d.redelivery_of.is_some() { " " span.badge.redelivery title="a redelivery" { "redelivery" } }
                        }
                        td { (short_time(d.created_at)) }
                        td.clip {
                            div title=(names.app(&d.app_id)) { a href=(format!("/admin/apps/{}", d.app_id)) { (middle(names.app(&d.app_id), 27)) } }
                            div.muted title=(names.repository(&d.repository_id)) {
                                a.muted href=(format!("/admin/repositories/{}", d.repository_id)) { (names.repository(&d.repository_id)) }
                            }
                        }
                        td.event { (d.event) }
                        @match (d.path.as_deref(), d.reason.as_deref()) {
                            // A sync_failed is about no file: its reason, whole, in the path's place.
                            (None, Some(reason)) => td.path.reason { span.error { "sync failed: " (reason) } },
                            (path, _) => td.path.clip title=(path.unwrap_or("")) { (middle(path.unwrap_or(""), 34)) },
                        }
                        td.status.clip { (status_cell(d, false)) }
                        td.code { @if let Some(code) = d.response_status { (code) } }
                        td { @if let Some(ms) = d.duration_ms { (ms) " ms" } }
                        td { (d.attempts) }
                    }
                }
            }
        }
    }
}

/// [`short_time`], or `never`.
fn short_or_never(at: Option<OffsetDateTime>) -> String {
    at.map_or_else(|| "never".to_owned(), short_time)
}

/// `text` cut in the middle to at most `max` characters: app names and paths that share a long
/// beginning differ at their end, which must stay visible (the whole text goes in a `title`).
fn middle(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max || max < 8 {
        return text.to_owned();
    }
    let head = (max - 1) / 3;
    let tail = max - 1 - head;
    let start: String = text.chars().take(head).collect();
    let end: String = text.chars().skip(count - tail).collect();
    format!("{}…{}", start.trim_end(), end.trim_start())
}

/// `2026-12-07 17:45:03` (UTC).
fn short_time(at: OffsetDateTime) -> String {
    let text = domain::timestamp::format_rfc3339(at);
    text.trim_end_matches('Z').replacen('T', " ", 1).chars().take(19).collect()
}

async fn delivery_page(
    PageAdmin(admin): PageAdmin,
    state: web::Data<AppState>,
    path: web::Path<String>,
    notice: web::Query<Notice>,
) -> Result<HttpResponse, PageError> {
    let Ok(id) = uuid::Uuid::parse_str(&path.into_inner()) else {
        return Ok(not_found_page(Some(&admin)));
    };
    let mut conn = db::conn(&state.pool).await?;
    let detail = match admin_api::delivery_detail(&mut conn, id).await {
        Ok(detail) => detail,
        Err(ApiError::NotFound(_)) => return Ok(not_found_page(Some(&admin))),
        Err(e) => return Err(e.into()),
    };
    let apps = admin_api::app_views(&mut conn).await?;
    drop(conn);
    let names = Names::of(&apps);
    let d = &detail.delivery;
    let body = html! {
        p { a href="/admin/deliveries" { "← Deliveries" } }
        h1 { (d.event) " " (d.path.as_deref().unwrap_or("")) }
        @if let Some(text) = notice.message() { p.notice #notice role="status" { (text) } }
        dl #summary {
            dt { "Delivery id" } dd { code #delivery-id { (d.delivery_id) } @if d.redelivery_of.is_some() { " (redelivery; event " code { (d.id) } ")" } }
            dt { "App" } dd { a #delivery-app href=(format!("/admin/apps/{}", d.app_id)) { (names.app(&d.app_id)) } " " code.muted { (d.app_id) } }
            dt { "Repository" } dd { a #delivery-repository href=(format!("/admin/repositories/{}", d.repository_id)) { (names.repository(&d.repository_id)) } " " code.muted { (d.repository_id) } }
            dt { "Status" } dd #delivery-status { (status_cell(d, true)) }
            dt { "Commit" } dd { code { (d.commit_sha.as_deref().unwrap_or("")) } }
            dt { "Created" } dd { (when(Some(d.created_at))) }
            dt { "Delivered" } dd { (when(d.delivered_at)) }
            dt { "Attempts" } dd { (d.attempts) }
        }
        @if d.status != "pending" {
            form #redeliver method="post" action=(format!("/admin/deliveries/{}/redeliver", d.id)) {
                (csrf_field(&admin))
                button type="submit" { @if d.status == "failed" { "Retry this delivery" } @else { "Redeliver" } }
                span.muted { @if d.status == "failed" { " sends it again now, with the link's later events behind it" }
                             @else { " queues a copy after the link's other events, sent with the same delivery id and X-Docora-Redelivery: true" } }
            }
        }
        @if !detail.redeliveries.is_empty() {
            h2 { "Redeliveries" }
            (deliveries_table(&names, &detail.redeliveries))
        }
        h2 { "Attempts" }
        @if detail.attempts.is_empty() { p #no-attempts { "No attempt recorded (yet, or pruned after the retention period)." } }
        @for a in &detail.attempts {
            section.attempt {
                h3 {
                    "Attempt " (a.attempt) " · " (when(Some(a.started_at))) " · " (a.duration_ms) " ms · "
                    @match a.response_status { Some(code) => span.code { (code) }, None => span.error { "no response" } }
                }
                @if let Some(error) = a.error.as_deref() { p.error { (error) } }
                div.exchange {
                    div {
                        h4 { "Request" }
                        @if let Some(url) = a.request_url.as_deref() { p { code { "POST " (url) } } }
                        @if let Some(headers) = a.request_headers.as_ref() { pre.headers { (headers_text(headers)) } }
                        @if let Some(body) = a.request_body.as_deref() {
                            @let bytes = a.request_body_bytes.unwrap_or(0);
                            @if usize::try_from(bytes).unwrap_or(0) > body.len() { p.muted { "First " (body.len()) " of " (bytes) " bytes (file content can be rebuilt from git)." } }
                            pre.body { (body) }
                        }
                    }
                    div {
                        h4 { "Response" }
                        @if let Some(headers) = a.response_headers.as_ref() { pre.headers { (headers_text(headers)) } }
                        @if let Some(body) = a.response_body.as_deref() {
                            @if a.response_body_truncated { p.muted { "First 8 KiB." } }
                            pre.body { (body) }
                        }
                    }
                }
            }
        }
    };
    Ok(page(StatusCode::OK, layout("Delivery", Some(&admin), body)))
}

fn headers_text(headers: &serde_json::Value) -> String {
    headers
        .as_object()
        .map(|o| {
            o.iter().map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or_default())).collect::<Vec<_>>().join("\n")
        })
        .unwrap_or_default()
}

async fn redeliver(
    state: web::Data<AppState>,
    path: web::Path<String>,
    _posted: AdminForm<Button>,
) -> Result<HttpResponse, PageError> {
    let Ok(id) = uuid::Uuid::parse_str(&path.into_inner()) else {
        return Err(ApiError::NotFound("no such delivery".into()).into());
    };
    let mut conn = db::conn(&state.pool).await?;
    let done = admin_api::redeliver(&mut conn, id).await?;
    Ok(see_other(&format!(
        "/admin/deliveries/{}?notice={}",
        done.event_id,
        if done.redelivery { "redelivery" } else { "retried" }
    ))
    .finish())
}

// ---- overview ----

fn rate(succeeded: i64, attempts: i64) -> Markup {
    html! {
        @if attempts == 0 { span.muted { "no attempts" } }
        @else {
            @let percent = succeeded * 1000 / attempts;
            span class=(if succeeded == attempts { "ok" } else { "error" }) {
                (percent / 10) "." (percent % 10) " %"
            }
            span.muted { " of " (attempts) }
        }
    }
}

async fn overview_page(PageAdmin(admin): PageAdmin, state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let mut conn = db::conn(&state.pool).await?;
    let overview = admin_api::overview(&mut conn).await?;
    drop(conn);
    let q = &overview.queue;
    let body = html! {
        h1 { "Overview" }
        p #queue-summary {
            (q.deliveries_pending) " deliveries waiting · " (q.deliveries_running) " links delivering · "
            a href="/admin/failed" { (q.deliveries_failed) " failed" } " · "
            (q.scans_due) " scans due · " (q.scans_running) " running"
        }
        @let delivery_open = overview.apps.iter().filter(|a| a.delivery_breaker.status != "closed").count();
        p #breakers {
            "Breakers open: "
            span class=(if delivery_open > 0 { "error" } else { "ok" }) { (delivery_open) " delivery (apps)" } " · "
            span class=(if q.circuits_open > 0 { "error" } else { "ok" }) { (q.circuits_open) " sync (repositories)" }
        }
        h2 { "Apps" }
        @if overview.apps.is_empty() { p #no-apps { "No app is onboarded yet." } }
        @else {
            table #app-health.fixed {
                colgroup { col; col style="width:9rem"; col style="width:9rem"; col style="width:8rem"; col style="width:9rem"; col style="width:14rem"; }
                thead { tr { th { "App" } th { "Success, 1 h" } th { "Success, 24 h" } th { "Failing links" } th { "Delivery breaker" } th { "Oldest waiting event" } } }
                tbody {
                    @for a in &overview.apps {
                        tr #(format!("health-{}", a.app_id)) {
                            td.clip title=(a.app_name) { a href=(format!("/admin/apps/{}", a.app_id)) { (middle(&a.app_name, 48)) } }
                            td { (rate(a.succeeded_hour, a.attempts_hour)) }
                            td { (rate(a.succeeded_day, a.attempts_day)) }
                            td { @if a.failing_links > 0 { a.error href="/admin/failed" { (a.failing_links) " of " (a.links) } } @else { span.ok { "0" } span.muted { " of " (a.links) } } }
                            td { span class=(if a.delivery_breaker.status == "closed" { "ok" } else { "error" }) { (a.delivery_breaker.status.replace('_', "-")) } }
                            td { @if let Some(at) = a.oldest_pending_at { (short_time(at)) } @else { span.muted { "none" } } }
                        }
                    }
                }
            }
        }
        (health_table(&overview.repositories))
    };
    Ok(page(StatusCode::OK, layout("Overview", Some(&admin), body)))
}

/// The repositories that need a look, with the reason (the overview's and the queue's).
fn health_table(repositories: &[RepositoryHealth]) -> Markup {
    html! {
        h2 { "Repositories that need a look" }
        @if repositories.is_empty() { p #all-scanning-well { "Every repository is scanning well." } }
        @else {
            table #repository-health.fixed {
                colgroup { col style="width:22rem"; col style="width:8rem"; col; col style="width:11rem"; }
                thead { tr { th { "Repository" } th { "State" } th { "Why" } th { "Last successful scan" } } }
                tbody {
                    @for r in repositories {
                        tr #(format!("repository-health-{}", r.repository_id)) {
                            td.clip title=(r.github_url) {
                                a href=(format!("/admin/repositories/{}", r.repository_id)) { (r.github_url) }
                                div.muted { code { (r.repository_id) } }
                            }
                            td.state { span.error { (r.state.replace('_', " ")) } }
                            td.why { (r.reason) }
                            td { @if let Some(at) = r.last_scan_at { (short_time(at)) } @else { "never" } }
                        }
                    }
                }
            }
        }
    }
}

// ---- failed deliveries ----

async fn failed_page(
    PageAdmin(admin): PageAdmin,
    state: web::Data<AppState>,
    notice: web::Query<Notice>,
) -> Result<HttpResponse, PageError> {
    let mut conn = db::conn(&state.pool).await?;
    let apps = admin_api::app_views(&mut conn).await?;
    let filter = DeliveryFilter { status: Some("failed".into()), limit: Some(1000), ..DeliveryFilter::default() };
    let failed = admin_api::deliveries(&mut conn, &filter).await?;
    drop(conn);
    // A link is failed once one of its events gave up; its later events wait behind it.
    let links: Vec<(&AppView, &admin_api::AppRepository, Vec<&DeliveryView>)> = apps
        .iter()
        .flat_map(|app| app.repositories.iter().map(move |repo| (app, repo)))
        .map(|(app, repo)| {
            let events = failed
                .iter()
                .filter(|d| d.app_id == app.app_id && d.repository_id == repo.repository_id)
                .collect::<Vec<_>>();
            (app, repo, events)
        })
        .filter(|(_, repo, events)| repo.status == "failed" || !events.is_empty())
        .collect();
    let body = html! {
        @if let Some(message) = notice.message() { p.notice #notice role="status" { (message) } }
        h1 { "Failed deliveries" }
        @if links.is_empty() { p #no-failures { "No failed delivery." } }
        @for (app, repo, events) in &links {
            section.failed-link #(format!("failed-{}-{}", app.app_id, repo.repository_id)) {
                h2 {
                    a href=(format!("/admin/apps/{}", app.app_id)) { (app.app_name) } " ← "
                    a href=(format!("/admin/repositories/{}", repo.repository_id)) { (repo.github_url) }
                }
                @if let Some(error) = &repo.last_error { p.error { (error) } }
                @if !events.is_empty() {
                    table {
                        thead { tr { th { "Created" } th { "Event" } th { "Path" } th { "Attempts" } th { "Last error" } } }
                        tbody {
                            @for d in events {
                                tr {
                                    td { (when(Some(d.created_at))) }
                                    td { (d.event) }
                                    td.path { (d.path.as_deref().unwrap_or("")) }
                                    td { (d.attempts) }
                                    td.error { (d.last_error.as_deref().unwrap_or("")) }
                                }
                            }
                        }
                    }
                }
                form method="post" action=(format!("/admin/apps/{}/repositories/{}/retry", app.app_id, repo.repository_id)) {
                    (csrf_field(&admin))
                    button.retry type="submit" { "Retry" }
                }
                p {
                    a href=(format!("/admin/deliveries?app_id={}&repository_id={}", app.app_id, repo.repository_id)) {
                        "All deliveries of " (app.app_name) " for this repository"
                    }
                }
            }
        }
    };
    Ok(page(StatusCode::OK, layout("Failed deliveries", Some(&admin), body)))
}

async fn retry(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    _posted: AdminForm<Button>,
) -> Result<HttpResponse, PageError> {
    let (app_id, repository_id) = path.into_inner();
    let mut conn = db::conn(&state.pool).await?;
    admin_api::retry_link(&mut conn, &app_id, &repository_id).await?;
    Ok(see_other("/admin/failed?notice=retried").finish())
}

// ---- queue ----

/// A repository in the scan queue.
#[derive(Queryable)]
struct Queued {
    id: String,
    owner: String,
    name: String,
    next_scan_at: OffsetDateTime,
    last_scan_at: Option<OffsetDateTime>,
    consecutive_failures: i32,
    circuit_open_until: Option<OffsetDateTime>,
    last_error: Option<String>,
}

#[derive(Clone, Copy)]
enum ScanState {
    /// Due now, not leased, circuit closed (as counted by [`admin_api::queue`]).
    Due,
    /// Leased by a scanner.
    Running,
    /// Circuit open.
    Blocked,
}

/// At most 100 repositories in `scan_state`, the longest waiting first.
async fn scan_queue(conn: &mut db::Conn, scan_state: ScanState) -> Result<Vec<Queued>, ApiError> {
    use diesel::dsl::now;
    let query = repositories::table.into_boxed();
    let query = match scan_state {
        ScanState::Due => query
            .filter(repositories::next_scan_at.le(now))
            .filter(repositories::circuit_open_until.is_null().or(repositories::circuit_open_until.le(now)))
            .filter(repositories::scan_lease_until.is_null().or(repositories::scan_lease_until.le(now))),
        ScanState::Running => query.filter(repositories::scan_lease_until.gt(now)),
        ScanState::Blocked => query.filter(repositories::circuit_open_until.gt(now)),
    };
    Ok(query
        .order((repositories::next_scan_at, repositories::id))
        .limit(100)
        .select((
            repositories::id,
            repositories::owner,
            repositories::name,
            repositories::next_scan_at,
            repositories::last_scan_at,
            repositories::consecutive_failures,
            repositories::circuit_open_until,
            repositories::last_error,
        ))
        .load(conn)
        .await?)
}

async fn queue_page(PageAdmin(admin): PageAdmin, state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let mut conn = db::conn(&state.pool).await?;
    let counts = admin_api::queue(&mut conn).await?;
    let due = scan_queue(&mut conn, ScanState::Due).await?;
    let running = scan_queue(&mut conn, ScanState::Running).await?;
    let blocked = scan_queue(&mut conn, ScanState::Blocked).await?;
    let looks = repository_admin::needing_a_look(&mut conn).await?;
    drop(conn);
    let body = html! {
        h1 { "Queue" }
        table #counts style="width:auto" {
            tbody {
                tr { th { "Scans due" } td #scans-due-count { (counts.scans_due) } }
                tr { th { "Scans running" } td { (counts.scans_running) } }
                tr { th { "Circuits open" } td { (counts.circuits_open) } }
                tr { th { a href="/admin/deliveries?status=pending" { "Deliveries pending" } } td #deliveries-pending-count { (counts.deliveries_pending) } }
                tr { th { "Deliveries running" } td { (counts.deliveries_running) } }
                tr { th { a href="/admin/failed" { "Deliveries failed" } } td #deliveries-failed-count { (counts.deliveries_failed) } }
            }
        }
        (health_table(&looks))
        (queued_table("scans-due", "Scans due", &due))
        (queued_table("scans-running", "Scans running", &running))
        (queued_table("circuits-open", "Circuits open", &blocked))
    };
    Ok(page(StatusCode::OK, layout("Queue", Some(&admin), body)))
}

fn queued_table(id: &str, title: &str, rows: &[Queued]) -> Markup {
    html! {
        section #(id) {
            h2 { (title) }
            @if rows.is_empty() {
                p { "None." }
            } @else {
                table.fixed {
                    colgroup { col style="width:22rem"; col style="width:10rem"; col style="width:10rem"; col style="width:6rem"; col style="width:12rem"; col; }
                    thead {
                        tr {
                            th { "Repository" } th { "Scan due" } th { "Last successful scan" }
                            th { "Failed in a row" } th { "Circuit" } th { "Last error" }
                        }
                    }
                    tbody {
                        @for r in rows {
                            tr.queued {
                                td.clip {
                                    a href=(format!("/admin/repositories/{}", r.id)) { "https://github.com/" (r.owner) "/" (r.name) }
                                    div.muted { code { (r.id) } }
                                }
                                td { (short_time(r.next_scan_at)) }
                                td { (short_or_never(r.last_scan_at)) }
                                td { (r.consecutive_failures) }
                                td { @match r.circuit_open_until { Some(until) => { "open until " (short_time(until)) }, None => "closed" } }
                                td.error.why { (r.last_error.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
        }
    }
}

// ---- layout ----

fn csrf_field(admin: &Admin) -> Markup {
    html! { input type="hidden" name="csrf_token" value=(admin.csrf_token); }
}

fn when(at: Option<OffsetDateTime>) -> String {
    at.map_or_else(|| "never".to_owned(), domain::timestamp::format_rfc3339)
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:84rem;padding:0 1rem 3rem;color:#222}\
nav{display:flex;gap:1rem;align-items:center;padding:.8rem 0;border-bottom:1px solid #ccc}\
nav form{margin-left:auto}\
table{border-collapse:collapse;margin:.5rem 0;width:100%}\
th,td{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}\
section.app,section.failed-link{border:1px solid #ccc;border-radius:6px;padding:0 1rem 1rem;margin:1rem 0}\
dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}dd{margin:0}\
label{display:block;margin:.4rem 0}form#filters label{display:inline-block;margin-right:.8rem}form#filters{font-size:.93em}form#filters select{max-width:15rem}\
.error{color:#a00}.muted{color:#666}.ok{color:#070}td.why{white-space:normal}td.reason{font-size:.85em;overflow-wrap:anywhere}form#find-file label{display:inline}.why-text{color:#666;font-size:.85em}\
table.fixed{table-layout:fixed}td.clip,td.clip div{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}\
td .why{color:#a00;font-size:.85em;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}\
.badge{display:inline-block;padding:0 .35rem;border-radius:4px;font-size:.85em;background:#eee}\
.badge.delivered{background:#e3f4e3}.badge.failed{background:#fbe3e3}.badge.pending{background:#fff4d6}.badge.redelivery{background:#e6ecfb}\
section.attempt{border:1px solid #ccc;border-radius:6px;padding:0 1rem .5rem;margin:1rem 0}\
div.exchange{display:grid;grid-template-columns:1fr 1fr;gap:1rem}div.exchange>div{min-width:0}\
pre{background:#f6f6f6;padding:.5rem;overflow:auto;max-height:24rem;white-space:pre-wrap;word-break:break-all;font-size:.85em}.notice{background:#eef7ee;padding:.5rem}\
code#token{font-size:1.1rem;background:#ffd;padding:.2rem .4rem;word-break:break-all}";

fn layout(title: &str, admin: Option<&Admin>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Docora admin" }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                @if let Some(admin) = admin {
                    nav {
                        a href="/admin" { "Overview" }
                        a href="/admin/apps" { "Apps" }
                        a href="/admin/deliveries" { "Deliveries" }
                        a href="/admin/failed" { "Failed" }
                        a href="/admin/queue" { "Queue" }
                        form method="post" action="/admin/logout" {
                            (csrf_field(admin))
                            span #who { (admin.username) } " "
                            button #logout type="submit" { "Log out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The console's 404: any other `/admin/…` URL (not the JSON API's).
fn not_found_page(admin: Option<&Admin>) -> HttpResponse {
    let body = html! {
        h1 { "404 Not Found" }
        p.error #message { "There is no such page in the console." }
        p { a href="/admin" { "Back to the dashboard" } " · " a href="/admin/deliveries" { "Deliveries" } }
    };
    page(StatusCode::NOT_FOUND, layout("Not found", admin, body))
}

/// Unknown console URLs: the 404 page (with the navigation when logged in).
async fn unknown_page(req: HttpRequest) -> Result<HttpResponse, PageError> {
    if req.path().starts_with("/admin/api/") {
        return Ok(service_kit::http::error_response(StatusCode::NOT_FOUND, "no such endpoint"));
    }
    let state = state_of(&req)?;
    let admin = admin_api::session(&state, &req).await?;
    Ok(not_found_page(admin.as_ref()))
}

/// A page that only says what went wrong.
fn message_page(status: StatusCode, message: &str) -> Markup {
    let body = html! {
        h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
        p.error #message { (message) }
        p { a href="/admin" { "Back to the dashboard" } }
    };
    layout(status.canonical_reason().unwrap_or("Error"), None, body)
}

#[cfg(test)]
mod tests {
    use super::middle;

    #[test]
    fn long_names_are_cut_in_the_middle_so_their_ends_stay_apart() {
        assert_eq!(middle("reader", 27), "reader");
        let a = middle("Knowledge base indexer for the documentation portal of team number 3", 27);
        let b = middle("Knowledge base indexer for the documentation portal of team number 4", 27);
        assert!(a.chars().count() <= 27 && a.starts_with("Knowledg") && a.ends_with("team number 3"), "{a}");
        assert_ne!(a, b);
        assert_eq!(middle("éééééééééééééééééééé", 10).chars().count(), 10, "characters, not bytes");
    }
}
