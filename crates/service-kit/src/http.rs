//! The actix server every service runs.
//!
//! A service describes itself with a [`ServiceApp`] (its name, pool, OpenAPI document and a
//! `configure` function that registers its routes) and [`serve`] wraps it with what every
//! service needs:
//!
//! - a request id per request (`X-Request-Id`, taken from the caller when sane), a tracing span
//!   around the request and one log line when it completes;
//! - request counts and latencies by route and status for `GET /metrics`;
//! - `GET /healthz` (alive, touches nothing), `GET /readyz` (503 when the database does not
//!   answer), `GET /openapi.json`;
//! - actix's own errors (malformed JSON, bad path or query parameters, oversized bodies, unknown
//!   routes, wrong methods) answered with the JSON error body, never plain text;
//! - CORS for the configured origins;
//! - graceful shutdown on SIGTERM: requests drain and the service's background work
//!   ([`Background`]) is told to stop, both for up to the configured timeout, then the pool is
//!   closed ([`Running::run`]).

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::error::{InternalError, JsonPayloadError, PathError, QueryPayloadError, UrlencodedError};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::{Condition, ErrorHandlerResponse, ErrorHandlers, Next, from_fn};
use actix_web::{App, HttpMessage, HttpRequest, HttpResponse, HttpServer, web};
use domain::ErrorBody;
use tracing::Instrument;

use crate::background::Background;
use crate::db::{self, Pool};
use crate::metrics::Metrics;
use crate::settings::HttpSettings;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A response with the JSON error body `{"error": message}`.
pub fn error_response(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).content_type("application/json").body(ErrorBody::new(message).to_json())
}

/// `response` with `Retry-After: <seconds>` (429 and 503 answers that know when to come back).
pub fn with_retry_after(mut response: HttpResponse, wait: Duration) -> HttpResponse {
    if let Ok(value) = HeaderValue::from_str(&wait.as_secs().to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// The OpenAPI security scheme `bearer` (`Authorization: Bearer <token>`), for
/// `#[openapi(modifiers(&BearerScheme("JWT")))]`; the string describes the token.
pub struct BearerScheme(pub &'static str);

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format(self.0).build()),
        );
    }
}

/// The statuses a service answers bad input with. The seeds differ: Giistr uses 400, Dokko 422
/// for malformed bodies and parameters.
#[derive(Debug, Clone, Copy)]
pub struct BadInputStatus {
    /// Malformed JSON or a field of the wrong type.
    pub json: StatusCode,
    /// A path parameter that does not parse (an invalid UUID, say).
    pub path: StatusCode,
    /// A query parameter that does not parse.
    pub query: StatusCode,
    /// A form field that is missing or does not parse.
    pub form: StatusCode,
}

impl BadInputStatus {
    pub const ALL_400: Self = Self {
        json: StatusCode::BAD_REQUEST,
        path: StatusCode::BAD_REQUEST,
        query: StatusCode::BAD_REQUEST,
        form: StatusCode::BAD_REQUEST,
    };
}

/// Adds to every operation of `openapi` the answers [`serve`] gives whatever the handler: 503
/// (database or a dependency unavailable), 405 (another method on the path, with `Allow`), the
/// bad-input status of its path and query parameters, and for a request body the bad-input status
/// of its media type, 413 (larger than the limit) and, for forms and multipart bodies, 415 (another
/// content type). 401 is added where the operation requires credentials. An answer the operation
/// already declares keeps its own description.
pub fn declare_common_answers(openapi: &mut utoipa::openapi::OpenApi, bad_input: BadInputStatus) {
    use utoipa::openapi::path::ParameterIn;
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let error = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
                )
                .build(),
        )
    };
    let global_security = openapi.security.as_ref().is_some_and(|s| !s.is_empty());
    for item in openapi.paths.paths.values_mut() {
        let shared = item.parameters.clone().unwrap_or_default();
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            let mut answers: Vec<(StatusCode, String)> = vec![
                (StatusCode::SERVICE_UNAVAILABLE, "the database or a service this one calls is unavailable".into()),
                (
                    StatusCode::METHOD_NOT_ALLOWED,
                    "another method on this path (the Allow header lists this path's)".into(),
                ),
            ];
            let parameters: Vec<_> = shared.iter().chain(operation.parameters.iter().flatten()).collect();
            if parameters.iter().any(|p| matches!(p.parameter_in, ParameterIn::Path)) {
                answers.push((bad_input.path, "a path parameter that does not parse or holds a NUL".into()));
            }
            if parameters.iter().any(|p| matches!(p.parameter_in, ParameterIn::Query)) {
                answers.push((bad_input.query, "a query parameter that does not parse or holds a NUL".into()));
            }
            if let Some(body) = &operation.request_body {
                let types: Vec<&String> = body.content.keys().collect();
                if types.iter().any(|t| t.contains("json")) {
                    answers.push((bad_input.json, "a malformed JSON body, a wrong type or a NUL in a string".into()));
                }
                if types.iter().any(|t| t.contains("form")) {
                    answers.push((bad_input.form, "a malformed form body or a NUL in a field".into()));
                    answers.push((
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "the body is not of the declared content type".into(),
                    ));
                }
                answers.push((StatusCode::PAYLOAD_TOO_LARGE, "the body is larger than the limit".into()));
            }
            if global_security || operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
                answers.push((StatusCode::UNAUTHORIZED, "missing or invalid credentials".into()));
            }
            for (status, description) in answers {
                operation.responses.responses.entry(status.as_u16().to_string()).or_insert_with(|| error(&description));
            }
        }
    }
    let components = openapi.components.get_or_insert_with(Default::default);
    components.schemas.entry("ErrorBody".to_owned()).or_insert_with(<ErrorBody as utoipa::PartialSchema>::schema);
}

/// A JSON request body, like `web::Json`, but a value of the wrong type names where it is:
/// `invalid JSON body at permission_ids[1]: UUID parsing failed: …`. Syntax errors, size limits
/// and the status come from the same configuration as `web::Json` ([`BadInputStatus::json`]).
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Json<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: serde::de::DeserializeOwned + 'static> actix_web::FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let value = web::Json::<serde_json::Value>::from_request(req, payload);
        let status = req.app_data::<BadInputStatus>().map_or(StatusCode::BAD_REQUEST, |b| b.json);
        Box::pin(async move {
            let web::Json(value) = value.await?;
            let refuse =
                |message: String| InternalError::from_response(message.clone(), error_response(status, message));
            // Every body is an object; serde would also take a struct as an array of its fields.
            if !value.is_object() {
                return Err(
                    refuse(format!("invalid JSON body: expected a JSON object, got {}", json_kind(&value))).into()
                );
            }
            // PostgreSQL stores no NUL: refused here, in every string and key, naming where.
            if let Some(at) = domain::text::find_nul(&value) {
                return Err(refuse(format!("invalid JSON body: {}", at.message())).into());
            }
            serde_path_to_error::deserialize(value).map(Json).map_err(|e| {
                let path = e.path().to_string();
                let inner = plain_serde_message(&e.inner().to_string());
                let message = if path == "." {
                    format!("invalid JSON body: {inner}")
                } else {
                    format!("invalid JSON body at {path}: {inner}")
                };
                refuse(message).into()
            })
        })
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// A serde error message without the Rust type names it carries: `expected struct Login`
/// becomes `expected a JSON object`, and `data did not match any variant of untagged enum
/// DeleteItem` says that the value has none of the accepted forms.
pub fn plain_serde_message(message: &str) -> String {
    if message.starts_with("data did not match any variant of untagged enum") {
        return "the value has none of the accepted forms".to_owned();
    }
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("expected struct ") {
        out.push_str(&rest[..at]);
        out.push_str("expected a JSON object");
        let after = &rest[at + "expected struct ".len()..];
        let name_len = after.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(after.len());
        rest = &after[name_len..];
    }
    out.push_str(rest);
    out
}

/// What a service brings to [`serve`].
pub struct ServiceApp<F> {
    /// The service's name, as in logs and metrics.
    pub name: &'static str,
    pub pool: Pool,
    /// The service's OpenAPI document, served at `/openapi.json`.
    pub openapi: utoipa::openapi::OpenApi,
    /// Registers the service's routes and app data.
    pub configure: F,
    pub bad_input: BadInputStatus,
    /// Request headers a browser may send cross-origin (besides the CORS-safelisted ones).
    pub cors_headers: &'static [&'static str],
    /// The service's background workers, which shutdown stops and waits for
    /// (`Background::default()` when it has none).
    pub background: Background,
}

/// A started server, the pool it uses and its background work.
pub struct Running {
    server: Server,
    pool: Pool,
    addr: SocketAddr,
    background: Background,
    /// `SHUTDOWN_TIMEOUT_SECS`: the drain's limit, and the background work's.
    grace: Duration,
}

impl Running {
    /// Where the server listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle to stop the service, as SIGTERM does or at once.
    pub fn shutdown(&self) -> Shutdown {
        Shutdown { server: self.server.handle(), background: self.background.clone() }
    }

    /// The service's database pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Serves until the server is stopped, then closes the pool.
    ///
    /// SIGTERM (or [`Shutdown::graceful`]) tells the background work to stop and drains the
    /// requests in flight; then the background tasks are waited for, until the shutdown timeout
    /// has passed since they were told (those still running then are logged and cut off), so
    /// drain and wait together take no longer than the timeout. SIGINT and SIGQUIT, on which
    /// actix stops serving at once, give the background work its grace from that moment;
    /// [`Shutdown::now`] gives it none.
    pub async fn run(self) -> std::io::Result<()> {
        let Running { server, pool, background, grace, .. } = self;
        let outcome = serve_until_stopped(server, &background).await;
        if background.is_abandoned() {
            let running = background.running();
            if !running.is_empty() {
                tracing::info!(?running, "stopped at once: background work cut off");
            }
        } else {
            let left = background.stop_and_wait(grace).await;
            if !left.is_empty() {
                tracing::warn!(
                    still_running = ?left,
                    grace_secs = grace.as_secs(),
                    "background work did not finish within the shutdown timeout: cut off"
                );
            }
        }
        pool.close();
        tracing::info!("stopped");
        outcome
    }
}

/// Awaits the server; SIGTERM, which actix answers with a graceful stop, also tells the
/// background work to stop at once, so that it winds down while requests drain.
async fn serve_until_stopped(server: Server, background: &Background) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut server = std::pin::pin!(server);
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    outcome = &mut server => return outcome,
                    _ = terminate.recv() => {
                        background.stop();
                        tracing::info!("SIGTERM received: draining requests, background work told to stop");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for SIGTERM"),
        }
        server.await
    }
    #[cfg(not(unix))]
    {
        let _ = background;
        server.await
    }
}

/// Stops a running service from within the process (tests, the local stack). The future each
/// method returns reports when the HTTP server has stopped; the stop itself starts at the call.
#[derive(Clone)]
pub struct Shutdown {
    server: ServerHandle,
    background: Background,
}

impl Shutdown {
    /// What SIGTERM does: the background work is told to stop and requests drain;
    /// [`Running::run`] then waits for both before it closes the pool.
    pub fn graceful(&self) -> impl Future<Output = ()> + use<> {
        self.background.stop();
        self.server.stop(true)
    }

    /// Stops at once, as a crash would: requests in flight are dropped and nobody waits for the
    /// background work, which ends with the process wherever it is.
    pub fn now(&self) -> impl Future<Output = ()> + use<> {
        self.background.abandon();
        self.server.stop(false)
    }
}

struct Probe {
    pool: Pool,
    openapi_json: web::Bytes,
}

/// Starts the service on `listener`. The returned server runs once awaited ([`Running::run`]).
pub fn serve<F>(listener: TcpListener, settings: &HttpSettings, app: ServiceApp<F>) -> std::io::Result<Running>
where
    F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
{
    let addr = listener.local_addr()?;
    let ServiceApp { name, pool, openapi, configure, bad_input, cors_headers, background } = app;
    let mut openapi = openapi;
    declare_common_answers(&mut openapi, bad_input);
    let openapi_json = openapi.to_json().map_err(std::io::Error::other)?;
    let probe = web::Data::new(Probe { pool: pool.clone(), openapi_json: web::Bytes::from(openapi_json) });
    let metrics = web::Data::new(Metrics::new(name));
    let json_limit = settings.json_body_limit;
    let origins = Arc::new(settings.cors_allowed_origins.clone());

    let server = HttpServer::new(move || {
        App::new()
            .app_data(probe.clone())
            .app_data(metrics.clone())
            .app_data(json_config(json_limit, bad_input.json))
            .app_data(path_config(bad_input.path))
            .app_data(query_config(bad_input.query))
            .app_data(form_config(bad_input.form))
            .app_data(bad_input)
            .wrap(from_fn(refuse_nul))
            .wrap(ErrorHandlers::new().handler(StatusCode::METHOD_NOT_ALLOWED, json_method_not_allowed))
            .wrap(Condition::new(!origins.is_empty(), cors(&origins, cors_headers)))
            .wrap(from_fn(observe))
            .service(web::resource("/healthz").route(web::get().to(healthz)))
            .service(web::resource("/readyz").route(web::get().to(readyz)))
            .service(web::resource("/metrics").route(web::get().to(metrics_text)))
            .service(web::resource("/openapi.json").route(web::get().to(openapi_doc)))
            .configure(configure.clone())
            .default_service(web::to(no_route))
    })
    // Streamed bodies (file downloads) go out as written: without TCP_NODELAY, Nagle's algorithm
    // holds the first body chunk back until the client's delayed ACK, 40 ms per response.
    .on_connect(|conn, _| {
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            let _ = tcp.set_nodelay(true);
        }
    })
    .workers(settings.workers)
    .shutdown_timeout(settings.shutdown_timeout.as_secs())
    .listen(listener)?
    .run();
    tracing::info!(service = name, %addr, "listening");
    Ok(Running { server, pool, addr, background, grace: settings.shutdown_timeout })
}

fn cors(origins: &[String], headers: &[&str]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allowed_header(header::CONTENT_TYPE)
        .allowed_header(header::AUTHORIZATION)
        .allowed_header(REQUEST_ID)
        .expose_headers([REQUEST_ID])
        .max_age(3600);
    for name in headers {
        cors = cors.allowed_header(*name);
    }
    if origins.iter().any(|o| o == "*") {
        cors.allow_any_origin()
    } else {
        origins.iter().fold(cors, |cors, origin| cors.allowed_origin(origin))
    }
}

/// Request id, span, metrics and the completion log line.
async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let method = req.method().clone();
    let span = tracing::info_span!("request", request_id = %request_id, method = %method, path = %req.path());
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();

    let mut res = next.call(req).instrument(span.clone()).await?;

    let latency = started.elapsed();
    let status = res.status();
    let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    if let Some(metrics) = metrics {
        metrics.record(method.as_str(), &route, status.as_u16(), latency);
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    let quiet = matches!(route.as_str(), "/healthz" | "/readyz" | "/metrics");
    let latency_ms = latency.as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), route, latency_ms, "request failed");
        } else if quiet {
            tracing::debug!(status = status.as_u16(), route, latency_ms, "request completed");
        } else {
            tracing::info!(status = status.as_u16(), route, latency_ms, "request completed");
        }
    });
    Ok(res)
}

/// The largest form body a service takes (`application/x-www-form-urlencoded`).
pub const FORM_LIMIT: usize = 64 * 1024;

/// Refuses a NUL character (U+0000, which PostgreSQL cannot store) in a path parameter, a query
/// parameter or a form field before any handler sees it, naming the parameter, with the
/// service's bad-input status for that kind of input. JSON bodies are checked by [`Json`], which
/// knows where in the document the NUL is. Header values cannot hold one (HTTP refuses it).
async fn refuse_nul(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let statuses = req.app_data::<BadInputStatus>().copied().unwrap_or(BadInputStatus::ALL_400);
    let refused = |req: ServiceRequest, status: StatusCode, message: String| {
        Ok(req.into_response(error_response(status, message)).map_into_right_body())
    };
    if let Some(message) = nul_in_path(&req) {
        return refused(req, statuses.path, message);
    }
    if let Some(name) = nul_in_pairs(req.query_string().as_bytes()) {
        return refused(req, statuses.query, domain::text::refusal(&format!("query parameter {name}")));
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    if is_form {
        use futures_util::StreamExt;
        let mut payload = req.take_payload();
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk?;
            if body.len() + chunk.len() > FORM_LIMIT {
                return refused(
                    req,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("form body too large: larger than the limit of {FORM_LIMIT} bytes"),
                );
            }
            body.extend_from_slice(&chunk);
        }
        if let Some(name) = nul_in_pairs(&body) {
            return refused(req, statuses.form, domain::text::refusal(&format!("form field {name}")));
        }
        req.set_payload(actix_web::dev::Payload::from(body.freeze()));
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// The name of the first `name=value` pair of a query string or form body holding a NUL (in its
/// name or value), encoded (`%00`) or as a raw byte (which form decoding also passes through).
/// Bodies that do not decode are left to the extractors, which say why.
fn nul_in_pairs(raw: &[u8]) -> Option<String> {
    if !raw.contains(&0) && !raw.windows(3).any(|w| w == b"%00") {
        return None;
    }
    let pairs = serde_urlencoded::from_bytes::<Vec<(String, String)>>(raw).ok()?;
    pairs
        .into_iter()
        .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        .map(|(k, _)| if k.contains('\0') { format!("{:?}", k.replace('\0', "\\0")) } else { k })
}

/// The refusal of a path holding an encoded NUL (`%00`), naming the path parameter it falls in
/// when the path matches a route (`path parameter file_id must not …`).
fn nul_in_path(req: &ServiceRequest) -> Option<String> {
    let path = req.path();
    if !path.contains("%00") {
        return None;
    }
    let segment = path.split('/').position(|s| s.contains("%00"))?;
    let name = req
        .request()
        .resource_map()
        .match_pattern(path)
        .and_then(|pattern| {
            let part = pattern.split('/').nth(segment)?.to_owned();
            let inner = part.strip_prefix('{')?.strip_suffix('}')?;
            Some(inner.split(':').next().unwrap_or(inner).to_owned())
        })
        .map_or_else(|| "the path".to_owned(), |name| format!("path parameter {name}"));
    Some(domain::text::refusal(&name))
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

async fn readyz(probe: web::Data<Probe>) -> HttpResponse {
    match db::ping(&probe.pool, Duration::from_secs(2)).await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({"status": "ready"})),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            error_response(StatusCode::SERVICE_UNAVAILABLE, "database is unreachable")
        }
    }
}

async fn metrics_text(metrics: web::Data<Metrics>, probe: web::Data<Probe>) -> HttpResponse {
    let status = probe.pool.status();
    let extra = format!(
        "# HELP db_pool_connections Database connections by state.\n# TYPE db_pool_connections gauge\n\
         db_pool_connections{{state=\"open\"}} {}\ndb_pool_connections{{state=\"idle\"}} {}\n\
         db_pool_connections{{state=\"max\"}} {}\n\
         # HELP db_pool_waiting Requests waiting for a database connection.\n# TYPE db_pool_waiting gauge\n\
         db_pool_waiting {}\n",
        status.size, status.available, status.max_size, status.waiting
    );
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(metrics.render(&extra))
}

async fn openapi_doc(probe: web::Data<Probe>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(probe.openapi_json.clone())
}

async fn no_route(req: HttpRequest) -> HttpResponse {
    error_response(StatusCode::NOT_FOUND, format!("no route for {} {}", req.method(), req.path()))
}

fn json_method_not_allowed<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let allow = res.headers().get(actix_web::http::header::ALLOW).cloned();
    let mut message = format!("method {} is not allowed on {}", res.request().method(), res.request().path());
    if let Some(methods) = allow.as_ref().and_then(|a| a.to_str().ok()) {
        message.push_str(&format!(" (allowed: {methods})"));
    }
    let (req, _) = res.into_parts();
    let mut json = error_response(StatusCode::METHOD_NOT_ALLOWED, message);
    // The methods the route takes, as actix found them (RFC 9110 asks for them on a 405).
    if let Some(allow) = allow {
        json.headers_mut().insert(actix_web::http::header::ALLOW, allow);
    }
    Ok(ErrorHandlerResponse::Response(ServiceResponse::new(req, json).map_into_right_body()))
}

fn json_config(limit: usize, status: StatusCode) -> web::JsonConfig {
    web::JsonConfig::default().limit(limit).content_type_required(false).error_handler(move |err, _req| {
        let (status, message) = match &err {
            JsonPayloadError::OverflowKnownLength { length, limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body of {length} bytes is larger than the limit of {limit} bytes"),
            ),
            JsonPayloadError::Overflow { limit } => {
                (StatusCode::PAYLOAD_TOO_LARGE, format!("request body is larger than the limit of {limit} bytes"))
            }
            JsonPayloadError::Deserialize(e) if e.is_eof() && e.line() == 1 && e.column() == 0 => {
                (status, "request body is empty: expected a JSON object".to_owned())
            }
            JsonPayloadError::Deserialize(e) => (status, format!("invalid JSON body: {e}")),
            other => (status, format!("invalid JSON body: {other}")),
        };
        InternalError::from_response(err, error_response(status, message)).into()
    })
}

fn path_config(status: StatusCode) -> web::PathConfig {
    web::PathConfig::default().error_handler(move |err, _req| {
        let message = match &err {
            PathError::Deserialize(e) => format!("invalid path parameter: {e}"),
            other => format!("invalid path parameter: {other}"),
        };
        InternalError::from_response(err, error_response(status, message)).into()
    })
}

fn query_config(status: StatusCode) -> web::QueryConfig {
    web::QueryConfig::default().error_handler(move |err, _req| {
        let message = match &err {
            QueryPayloadError::Deserialize(e) => format!("invalid query string: {e}"),
            other => format!("invalid query string: {other}"),
        };
        InternalError::from_response(err, error_response(status, message)).into()
    })
}

fn form_config(status: StatusCode) -> web::FormConfig {
    web::FormConfig::default().limit(FORM_LIMIT).error_handler(move |err, _req| {
        let (status, message) = match &err {
            UrlencodedError::Overflow { .. } => (StatusCode::PAYLOAD_TOO_LARGE, format!("form body too large: {err}")),
            UrlencodedError::ContentType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected Content-Type: application/x-www-form-urlencoded".to_owned(),
            ),
            UrlencodedError::Parse(e) => (status, format!("invalid form body: {e}")),
            other => (status, format!("invalid form body: {other}")),
        };
        InternalError::from_response(err, error_response(status, message)).into()
    })
}

#[cfg(test)]
mod tests {
    use super::{nul_in_pairs, plain_serde_message};

    #[test]
    fn a_nul_is_found_encoded_or_raw_and_named_by_its_field() {
        assert_eq!(nul_in_pairs(b"email=a%00b&password=x").as_deref(), Some("email"));
        assert_eq!(nul_in_pairs(b"email=a\0b&password=x").as_deref(), Some("email"));
        assert_eq!(nul_in_pairs(b"email=ab&pass\0word=x").as_deref(), Some("\"pass\\\\0word\""));
        assert_eq!(nul_in_pairs(b"email=a%2500b"), None, "an encoded percent sign is no NUL");
        assert_eq!(nul_in_pairs(b"email=ab&password=x"), None);
    }

    #[test]
    fn serde_messages_lose_rust_type_names() {
        assert_eq!(
            plain_serde_message("invalid type: sequence, expected struct PermissionName at line 1 column 0"),
            "invalid type: sequence, expected a JSON object at line 1 column 0"
        );
        assert_eq!(
            plain_serde_message("data did not match any variant of untagged enum DeleteItem"),
            "the value has none of the accepted forms"
        );
        assert_eq!(plain_serde_message("missing field `name`"), "missing field `name`");
    }
}
