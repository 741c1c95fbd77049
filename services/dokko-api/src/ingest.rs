//! dokko-api's side of dokko-ingest (see the README's dokko-ingest section):
//! - the client that starts jobs, reads their status and runs searches, with a service token;
//! - the internal endpoints of dokko-ingest (service token only): the source's files it pulls,
//!   `GET /internal/v1/document-sources/{id}/files?after=&limit=`, and the end of each job,
//!   `PUT /internal/v1/document-sources/{id}/processing` (shown on the source's repositories).
//!
//! dokko-ingest never reads dokko's tables: this listing is all it knows of them.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use auth::service_token::ServiceTokens;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use domain::ingest::{FilePage, IngestionJob, SourceFile};
use serde::Deserialize;
use service_kit::db;
use service_kit::settings::Secret;
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;
use crate::files::{FileRow, metadata_view};
use crate::schema::dokko::{document_sources, files, repositories};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/internal/v1/document-sources/{document_source_id}/files")
            .route(web::get().to(list_source_files)),
    )
    .service(
        web::resource("/internal/v1/document-sources/{document_source_id}/processing").route(web::put().to(job_ended)),
    );
}

/// Where dokko-ingest is and the secret of the tokens between the two.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// `INGEST_URL`, default `http://localhost:8083`.
    pub url: String,
    /// `INTERNAL_TOKEN_SECRET` (at least 32 bytes, the same as dokko-ingest's). Unset: processing
    /// and retrieval answer 503 and the internal endpoint refuses every call.
    pub secret: Option<Secret<String>>,
    /// `INGEST_TIMEOUT_SECS`, default 60: one call to dokko-ingest.
    pub timeout: Duration,
}

impl IngestSettings {
    pub fn from_env(env: &service_kit::Env) -> Result<Self, service_kit::SettingsError> {
        let secret = env.get("INTERNAL_TOKEN_SECRET").filter(|s| !s.is_empty()).map(|s| Secret::new(s.to_owned()));
        if secret.as_ref().is_some_and(|s| s.expose().len() < 32) {
            return Err(service_kit::SettingsError::new("INTERNAL_TOKEN_SECRET", "must be at least 32 bytes"));
        }
        Ok(Self {
            url: env.http_url_or("INGEST_URL", "http://localhost:8083")?,
            secret,
            timeout: env.seconds_or("INGEST_TIMEOUT_SECS", 60)?,
        })
    }
}

/// Calls to dokko-ingest. Its answers (status and JSON body) are passed on as they are: both
/// services speak the same error body.
#[derive(Clone)]
pub struct Ingest {
    http: reqwest::Client,
    url: String,
    tokens: Option<Arc<ServiceTokens>>,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest").field("url", &self.url).finish_non_exhaustive()
    }
}

/// A passed-on answer of dokko-ingest.
pub struct Answer {
    pub status: StatusCode,
    pub body: web::Bytes,
}

impl Answer {
    pub fn into_response(self) -> HttpResponse {
        HttpResponse::build(self.status).content_type("application/json").body(self.body)
    }
}

impl Ingest {
    pub fn new(settings: &IngestSettings) -> anyhow::Result<Self> {
        let http =
            reqwest::Client::builder().timeout(settings.timeout).connect_timeout(Duration::from_secs(5)).build()?;
        let tokens = settings.secret.as_ref().map(|s| Arc::new(ServiceTokens::new(s.expose().as_bytes(), crate::NAME)));
        Ok(Self { http, url: settings.url.trim_end_matches('/').to_owned(), tokens })
    }

    /// Verifies dokko-ingest's token on the internal endpoint.
    fn verify(&self, req: &HttpRequest) -> Result<(), ApiError> {
        let Some(tokens) = &self.tokens else {
            return Err(ApiError::Unauthorized("service tokens are not configured"));
        };
        let credential = auth::CredentialSource::Bearer.read(req);
        let auth::Credential::Present(token) = credential else {
            return Err(ApiError::Unauthorized("a service token is required"));
        };
        tokens.verify(&token).map(drop).map_err(|_| ApiError::Unauthorized("invalid service token"))
    }

    /// `method path` on dokko-ingest with `body`; 503 when it cannot be reached or is not set up.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&impl serde::Serialize>,
    ) -> Result<Answer, ApiError> {
        let Some(tokens) = &self.tokens else {
            return Err(ApiError::Unavailable("document processing is not configured (INTERNAL_TOKEN_SECRET)".into()));
        };
        let token = tokens.bearer().map_err(|e| ApiError::Internal(e.into()))?;
        let mut request = self.http.request(method, format!("{}{path}", self.url)).bearer_auth(token).query(query);
        if let Some(body) = body {
            request = request.json(body);
        }
        let unavailable = |e: reqwest::Error| {
            tracing::warn!(error = %e, "dokko-ingest unreachable");
            ApiError::Unavailable("the ingestion service is unavailable; try again".into())
        };
        let response = request.send().await.map_err(unavailable)?;
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let body = response.bytes().await.map_err(unavailable)?;
        if status.is_server_error() || status == StatusCode::UNAUTHORIZED {
            tracing::warn!(%status, body = %String::from_utf8_lossy(&body), "dokko-ingest failed");
            return Err(ApiError::Unavailable("the ingestion service failed; try again".into()));
        }
        Ok(Answer { status, body })
    }
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// The last file id of the previous page.
    after: Option<Uuid>,
    /// 1 to 1000, default 500.
    limit: Option<i64>,
}

/// One page of the files of a document source, in id order (internal; dokko-ingest only).
async fn list_source_files(
    req: HttpRequest,
    state: web::Data<AppState>,
    source_id: web::Path<Uuid>,
    query: web::Query<ListQuery>,
) -> Result<web::Json<FilePage>, ApiError> {
    state.ingest.verify(&req)?;
    let limit = query.limit.unwrap_or(500);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::Unprocessable("limit must be between 1 and 1000".into()));
    }
    let mut conn = db::conn(&state.pool).await?;
    let (tenant_id, bucket): (Uuid, String) = document_sources::table
        .find(*source_id)
        .select((document_sources::tenant_id, document_sources::identifier))
        .first(&mut conn)
        .await
        .optional()?
        .ok_or_else(|| ApiError::not_found("document source"))?;
    let mut rows = files::table
        .inner_join(repositories::table.on(repositories::id.eq(files::repository_id)))
        .filter(repositories::tenant_id.eq(tenant_id))
        .filter(repositories::document_source_id.eq(*source_id))
        .filter(files::tenant_id.eq(tenant_id))
        .select(FileRow::as_select())
        .order(files::id)
        .limit(limit)
        .into_boxed();
    if let Some(after) = query.after {
        rows = rows.filter(files::id.gt(after));
    }
    let rows: Vec<FileRow> = rows.load(&mut conn).await?;
    let next = (rows.len() as i64 == limit).then(|| rows.last().map(|f| f.id)).flatten();
    let files = rows
        .into_iter()
        .map(|file| SourceFile {
            metadata: metadata_view(&file, *source_id).metadata,
            file_id: file.id,
            repository_id: file.repository_id,
            path: file.path,
            sha256: file.sha256,
            size: file.size,
            object_key: file.object_key,
        })
        .collect();
    Ok(web::Json(FilePage { tenant_id, bucket, files, next }))
}

/// dokko-ingest reports how a job of the source ended (internal): it shows on the source's
/// repositories.
async fn job_ended(
    req: HttpRequest,
    state: web::Data<AppState>,
    source_id: web::Path<Uuid>,
    job: service_kit::http::Json<IngestionJob>,
) -> Result<HttpResponse, ApiError> {
    state.ingest.verify(&req)?;
    let mut conn = db::conn(&state.pool).await?;
    crate::processing::record_job(&mut conn, *source_id, &job, false).await?;
    Ok(HttpResponse::NoContent().finish())
}
