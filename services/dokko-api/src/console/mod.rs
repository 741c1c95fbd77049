//! The web console: HTML pages under `/console`, rendered on the server, with a little script
//! (`/console/static/console.js`) for uploads with progress, file operations and the job
//! counters. It is not part of the OpenAPI document (HTML, not the API).
//!
//! Every page works on the same identities and rules as the API: a page calls the API's own
//! handler functions with the signed-in person as the caller, so what a person may see and do,
//! and every message they get, is the API's.
//!
//! - Sessions: [`session`] (sign in, sign out, the invitation page, the access-token page). The
//!   session cookie carries the person's user token (HttpOnly, SameSite=Strict, Secure over
//!   HTTPS); the CSRF token is derived from it. Forms post it as `csrf_token`, scripts send it as
//!   `X-CSRF-Token`.
//! - Files: [`files`] (repositories, their trees, uploads, file operations, metadata).
//! - Processing and the retrieval playground: [`processing`].
//! - Organisation admin pages: [`admin`] (service accounts, people, permissions).
//!
//! All routes are listed in [`configure`].

pub mod admin;
pub mod files;
pub mod processing;
pub mod session;

use std::future::Future;
use std::pin::Pin;

use actix_web::body::MessageBody;
use actix_web::dev::Payload;
use actix_web::http::{Method, StatusCode, header};
use actix_web::{FromRequest, HttpRequest, HttpResponse, HttpResponseBuilder, Responder, ResponseError, web};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use service_kit::db;
pub use service_kit::pages::Button;
use service_kit::pages::{CsrfForm, FormSession};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;
use crate::identity::{Caller, Identity, OrgAdmin, Principal, Role, Tokens};
use crate::schema::dokko::{tenants, users};

/// The session cookie: the signed-in person's user token.
pub const COOKIE: &str = "dokko_console";
/// The header scripts send the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
     img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Every console route, in one place.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/console/static/console.css").route(web::get().to(stylesheet)))
        .service(web::resource("/console/static/console.js").route(web::get().to(script)))
        // Sessions and the invitation link.
        .service(
            web::resource("/invitations/accept")
                .route(web::get().to(session::invitation_page))
                .route(web::post().to(session::accept_invitation)),
        )
        .service(
            web::resource("/console/sign-in")
                .route(web::get().to(session::sign_in_page))
                .route(web::post().to(session::sign_in)),
        )
        .service(web::resource("/console/sign-out").route(web::post().to(session::sign_out)))
        .service(web::resource("/console/token").route(web::get().to(session::token_page)))
        .service(web::resource("/console").route(web::get().to(files::home)))
        // Repositories and their files.
        .service(
            web::resource("/console/repositories")
                .route(web::get().to(files::repositories_page))
                .route(web::post().to(files::create_repository)),
        )
        .service(web::resource("/console/repositories/{repository_id}").route(web::get().to(files::repository_page)))
        .service(
            web::resource("/console/repositories/{repository_id}/edit").route(web::post().to(files::update_repository)),
        )
        .service(
            web::resource("/console/repositories/{repository_id}/delete")
                .route(web::post().to(files::delete_repository)),
        )
        .service(web::resource("/console/files/{file_id}").route(web::get().to(files::file_page)))
        .service(web::resource("/console/files/{file_id}/metadata").route(web::post().to(files::put_metadata)))
        // Processing and retrieval.
        .service(web::resource("/console/processing").route(web::get().to(processing::processing_page)))
        .service(web::resource("/console/processing/start").route(web::post().to(processing::start)))
        .service(
            web::resource("/console/playground")
                .route(web::get().to(processing::playground_page))
                .route(web::post().to(processing::retrieve)),
        )
        // Organisation admins.
        .service(
            web::resource("/console/service-accounts")
                .route(web::get().to(admin::service_accounts_page))
                .route(web::post().to(admin::create_service_account)),
        )
        .service(
            web::resource("/console/service-accounts/{id}/rotate").route(web::post().to(admin::rotate_service_account)),
        )
        .service(
            web::resource("/console/service-accounts/{id}/revoke").route(web::post().to(admin::revoke_service_account)),
        )
        .service(
            web::resource("/console/people")
                .route(web::get().to(admin::people_page))
                .route(web::post().to(admin::invite)),
        )
        .service(
            web::resource("/console/permissions")
                .route(web::get().to(admin::permissions_page))
                .route(web::post().to(admin::create_permission)),
        )
        .service(web::resource("/console/permissions/{id}/edit").route(web::post().to(admin::update_permission)))
        .service(web::resource("/console/permissions/{id}/delete").route(web::post().to(admin::delete_permission)))
        // What scripts call (JSON, the API's handlers; session cookie and X-CSRF-Token).
        .service(
            web::resource("/console/api/repositories/{repository_id}/items")
                .route(web::get().to(files::js_tree))
                .route(web::post().to(files::js_upload))
                .route(web::patch().to(files::js_update))
                .route(web::delete().to(files::js_delete)),
        )
        .service(web::resource("/console/api/files/{file_id}/download").route(web::get().to(files::js_download)))
        .service(
            web::resource("/console/api/document-sources/{id}/process/status")
                .route(web::get().to(processing::js_status)),
        )
        // Last: any other console URL gets the console's 404 page.
        .route("/console/{tail:.*}", web::route().to(unknown_page));
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(include_str!("console.css"))
}

async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(include_str!("console.js"))
}

// ---- responses and errors ----

fn guarded(mut builder: HttpResponseBuilder) -> HttpResponseBuilder {
    builder
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
    builder
}

pub(crate) fn page(status: StatusCode, markup: Markup) -> HttpResponse {
    guarded(HttpResponse::build(status)).content_type("text/html; charset=utf-8").body(markup.into_string())
}

/// A 303 to `location` (after a form post).
pub(crate) fn see_other(location: &str) -> HttpResponseBuilder {
    let mut builder = guarded(HttpResponse::SeeOther());
    builder.insert_header((header::LOCATION, location));
    builder
}

/// Why a page could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// No live session: the browser goes to the sign-in page.
    #[error("sign in first")]
    SignedOut,
    #[error("this form has expired or did not come from this console; reload the page and try again")]
    Csrf,
    /// A member on an organisation admin's page (the 403 page keeps their navigation).
    #[error("this page is for organisation admins; ask one of your organisation's admins")]
    NotAdmin(Box<Session>),
    #[error("the form could not be read: {0}")]
    BadForm(String),
    /// The API refused: its status and message.
    #[error("{1}")]
    Refused(StatusCode, String),
}

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> Self {
        let status = error.status_code();
        PageError::Refused(status, message_of(&error))
    }
}

impl From<db::DbError> for PageError {
    fn from(error: db::DbError) -> Self {
        ApiError::from(error).into()
    }
}

/// The message the API answers for `error` (5xx: a generic one; the cause is logged).
pub(crate) fn message_of(error: &ApiError) -> String {
    let response = error.error_response();
    let bytes = response.into_body().try_into_bytes().unwrap_or_default();
    serde_json::from_slice::<domain::ErrorBody>(&bytes).map(|b| b.error).unwrap_or_else(|_| error.to_string())
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::SignedOut => StatusCode::SEE_OTHER,
            PageError::Csrf | PageError::NotAdmin(_) => StatusCode::FORBIDDEN,
            PageError::BadForm(_) => StatusCode::BAD_REQUEST,
            PageError::Refused(status, _) => *status,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let PageError::SignedOut = self {
            return see_other("/console/sign-in").finish();
        }
        let status = self.status_code();
        let title = status.canonical_reason().unwrap_or("Error");
        let body = html! {
            h1 { (status.as_u16()) " " (title) }
            p.error #error role="alert" { (self.to_string()) }
            p { a href="/console" { "Back to the console" } }
        };
        let session = match self {
            PageError::NotAdmin(session) => Some((session.as_ref(), Area::Home)),
            _ => None,
        };
        page(status, layout(title, session, &[], body))
    }
}

/// The JSON answer of an API handler called by a page.
pub(crate) struct Answer {
    pub body: Value,
}

/// Runs an API handler's result through its responder and reads the JSON it answers; an error,
/// or an answer with an error status, becomes [`PageError::Refused`] with the API's message.
pub(crate) async fn call<R: Responder>(req: &HttpRequest, result: Result<R, ApiError>) -> Result<Answer, PageError> {
    let response = result?.respond_to(req).map_into_boxed_body();
    let status = response.status();
    let bytes = actix_web::body::to_bytes(response.into_body())
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("reading an answer: {e}")))?;
    let body: Value =
        if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
    if status.is_client_error() || status.is_server_error() {
        if status.is_server_error() && body.get("total_failed").is_some() {
            // A batch where every item failed: the items say why.
            return Ok(Answer { body });
        }
        let message = body["error"].as_str().unwrap_or("the request failed").to_owned();
        return Err(PageError::Refused(status, message));
    }
    Ok(Answer { body })
}

/// A request body for an API handler, built from what a form posted (the API's own types and
/// their validation messages).
pub(crate) fn body_of<T: DeserializeOwned>(value: Value) -> Result<T, PageError> {
    serde_json::from_value(value).map_err(|e| PageError::Refused(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))
}

fn state_of(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("state is not registered")))
}

/// The value of cookie `name` in the request.
pub(crate) fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers().get_all(header::COOKIE).filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name && !value.is_empty()).then(|| value.to_owned())
    })
}

/// `; Secure` when the browser reached us over HTTPS (directly or through a proxy that says so
/// with `Forwarded` / `X-Forwarded-Proto`).
pub(crate) fn secure(req: &HttpRequest) -> &'static str {
    if req.connection_info().scheme() == "https" { "; Secure" } else { "" }
}

/// The CSRF token of a session: derived from its token, so it needs no storage and changes with
/// every sign-in; a page from elsewhere can neither read the cookie nor compute it.
pub(crate) fn csrf_of(token: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(b"dokko-console-csrf\0");
    digest.update(token.as_bytes());
    hex::encode(digest.finalize())
}

// ---- the signed-in person ----

/// The person behind a console request.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub role: Role,
    pub email: String,
    pub organisation: String,
    pub csrf_token: String,
}

impl Session {
    /// The caller the API's handlers take.
    pub fn caller(&self) -> Caller {
        auth::extract::Authenticated(Identity {
            tenant_id: self.tenant_id,
            principal: Principal::User { id: self.user_id, role: self.role },
        })
    }

    /// The admin the API's admin handlers take, or the console's 403.
    pub fn admin(&self) -> Result<OrgAdmin, PageError> {
        match self.role {
            Role::OrgAdmin => Ok(OrgAdmin { tenant_id: self.tenant_id, user_id: self.user_id }),
            Role::Member => Err(PageError::NotAdmin(Box::new(self.clone()))),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::OrgAdmin
    }

    fn csrf_matches(&self, sent: &str) -> bool {
        auth::constant_time_eq(sent.as_bytes(), self.csrf_token.as_bytes())
    }
}

/// The session behind the request's cookie: `None` without a cookie or when its token no
/// longer works (expired, or the person was deactivated).
pub(crate) async fn session_of(req: &HttpRequest) -> Result<Option<Session>, ApiError> {
    let Some(token) = cookie(req, COOKIE) else { return Ok(None) };
    let tokens = req
        .app_data::<web::Data<Tokens>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("tokens are not registered")))?;
    let identity = match auth::extract::Authenticator::authenticate(tokens.get_ref(), token.clone()).await {
        Ok(identity) => identity,
        Err(ApiError::Unauthorized(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let Principal::User { id, role } = identity.principal else { return Ok(None) };
    let state = state_of(req)?;
    let mut conn = db::conn(&state.pool).await?;
    let (email, organisation): (String, String) = users::table
        .inner_join(tenants::table)
        .filter(users::id.eq(id))
        .filter(users::tenant_id.eq(identity.tenant_id))
        .select((users::email, tenants::name))
        .first(&mut conn)
        .await?;
    let csrf_token = csrf_of(&token);
    Ok(Some(Session { token, tenant_id: identity.tenant_id, user_id: id, role, email, organisation, csrf_token }))
}

impl FromRequest for Session {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, PageError>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { session_of(&req).await?.ok_or(PageError::SignedOut) })
    }
}

/// A form the signed-in person posted, its `csrf_token` checked: every state-changing form's
/// handler takes one, so none can skip the check.
pub type PageForm<T> = CsrfForm<Session, T>;

impl FormSession for Session {
    type Error = PageError;

    async fn of(req: &HttpRequest) -> Result<Session, PageError> {
        session_of(req).await?.ok_or(PageError::SignedOut)
    }

    fn csrf_matches(&self, sent: &str) -> bool {
        Session::csrf_matches(self, sent)
    }

    fn bad_form(message: String) -> PageError {
        PageError::BadForm(message)
    }

    fn forged() -> PageError {
        PageError::Csrf
    }
}

/// The caller of a script's request: the session cookie, and for anything but a read the
/// session's CSRF token in `X-CSRF-Token`. Errors are the API's JSON.
pub struct ScriptCaller(pub Caller);

impl FromRequest for ScriptCaller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let session = session_of(&req).await?.ok_or(ApiError::Unauthorized("sign in to the console first"))?;
            let reads = matches!(*req.method(), Method::GET | Method::HEAD);
            let sent = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
            if !reads && !session.csrf_matches(sent) {
                return Err(ApiError::Forbidden("missing or wrong X-CSRF-Token: reload the page"));
            }
            Ok(ScriptCaller(session.caller()))
        })
    }
}

// ---- layout ----

/// The areas of the navigation; a page names its own so it is highlighted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// No area (the start page, the 404 page).
    Home,
    Files,
    Processing,
    Playground,
    Token,
    ServiceAccounts,
    People,
    Permissions,
}

/// A page of the console: navigation with `area` highlighted, the breadcrumb (`trail`: label and
/// link, the last one the page itself), and `body`.
pub(crate) fn layout(title: &str, session: Option<(&Session, Area)>, trail: &[(&str, &str)], body: Markup) -> Markup {
    let link = |area: Area, href: &str, label: &str| -> Markup {
        let current = session.is_some_and(|(_, a)| a == area);
        html! { a href=(href) aria-current=[current.then_some("page")] { (label) } }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some((s, _)) = session { meta name="csrf-token" content=(s.csrf_token); }
                title { (title) " · Dokko console" }
                link rel="stylesheet" href="/console/static/console.css";
                script src="/console/static/console.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/console" { "Dokko" }
                    @if let Some((s, _)) = session {
                        nav #nav {
                            (link(Area::Files, "/console/repositories", "Files"))
                            (link(Area::Processing, "/console/processing", "Processing"))
                            (link(Area::Playground, "/console/playground", "Playground"))
                            (link(Area::Permissions, "/console/permissions", "Permissions"))
                            @if s.is_admin() {
                                (link(Area::ServiceAccounts, "/console/service-accounts", "Service accounts"))
                                (link(Area::People, "/console/people", "People"))
                            }
                            (link(Area::Token, "/console/token", "Access token"))
                        }
                        div.who {
                            span #who { (s.email) } span.org { " · " span #organisation { (s.organisation) } }
                            form method="post" action="/console/sign-out" {
                                (csrf_field(s))
                                button #sign-out type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main {
                    @if !trail.is_empty() {
                        nav.breadcrumb #breadcrumb aria-label="You are here" {
                            @for (i, (label, href)) in trail.iter().enumerate() {
                                @if i > 0 { span.sep { "›" } }
                                @if i + 1 == trail.len() { span aria-current="page" { (label) } }
                                @else { a href=(href) { (label) } }
                            }
                        }
                    }
                    (body)
                }
            }
        }
    }
}

pub(crate) fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf_token" value=(session.csrf_token); }
}

/// A button that posts a form, behind a confirmation (`details`: open it, then confirm).
pub(crate) fn confirm_button(session: &Session, action: &str, summary: &str, warning: &str, class: &str) -> Markup {
    html! {
        details.confirm {
            summary { (summary) }
            p { (warning) }
            form method="post" action=(action) {
                (csrf_field(session))
                button class=(format!("danger {class}")) type="submit" { "Yes, " (summary.to_lowercase()) }
            }
        }
    }
}

/// A value with a copy button.
pub(crate) fn copyable(id: &str, value: &str) -> Markup {
    html! {
        div.copyable {
            code #(id) { (value) }
            button.copy type="button" data-copy=(id) { "Copy" }
        }
    }
}

/// Previous / next links of a paginated answer (`page_number`, `page_count`).
pub(crate) fn pager(base: &str, answer: &Value) -> Markup {
    let number = answer["page_number"].as_i64().unwrap_or(1);
    let count = answer["page_count"].as_i64().unwrap_or(1);
    let total = answer["total_records"].as_i64().unwrap_or(0);
    let sep = if base.contains('?') { '&' } else { '?' };
    html! {
        @if count > 1 {
            nav.pager {
                @if number > 1 { a rel="prev" href=(format!("{base}{sep}page_num={}", number - 1)) { "← Previous" } }
                span { "Page " (number) " of " (count) " (" (total) ")" }
                @if number < count { a rel="next" href=(format!("{base}{sep}page_num={}", number + 1)) { "Next →" } }
            }
        }
    }
}

/// A notice named in the query (`?notice=…`), shown once after a form post.
#[derive(Debug, Deserialize)]
pub struct Notice {
    pub notice: Option<String>,
    pub page_num: Option<i64>,
}

pub(crate) fn notice(text: Option<&str>) -> Markup {
    html! { @if let Some(text) = text { p.notice #notice role="status" { (text) } } }
}

pub(crate) fn error_box(text: Option<&str>) -> Markup {
    html! { @if let Some(text) = text { p.error #error role="alert" { (text) } } }
}

/// An RFC 3339 timestamp as shown: the date and the minute, UTC.
pub(crate) fn when(value: &Value) -> String {
    match value.as_str() {
        Some(text) if text.len() >= 16 => format!("{} {} UTC", &text[..10], &text[11..16]),
        Some(text) => text.to_owned(),
        None => "—".to_owned(),
    }
}

async fn unknown_page(req: HttpRequest) -> Result<HttpResponse, PageError> {
    let session = session_of(&req).await.ok().flatten();
    let body = html! {
        h1 { "Page not found" }
        p #not-found { "The console has no page at " code { (req.path()) } "." }
        p { a href="/console" { "Go to the console's start page" } }
    };
    Ok(page(StatusCode::NOT_FOUND, layout("Not found", session.as_ref().map(|s| (s, Area::Home)), &[], body)))
}
