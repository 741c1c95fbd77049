//! Document processing and retrieval (carried out by dokko-ingest, see [`crate::ingest`]):
//! - `POST /api/v1/document-sources/{id}/process`: start an ingestion job (202; 409 while one runs);
//! - `GET /api/v1/document-sources/{id}/process/status`: the current or last job (400 when none ran);
//! - `GET /api/v1/document-sources/{id}/process/files`: what the last job did with each file
//!   (why a file failed, for one);
//! - `POST /api/v1/document-sources/{id}/retrieve`: the best chunks for a query, within the
//!   caller's tenant, the repositories asked for and those carrying the permissions asked for.
//!
//! Permissions are resolved here at query time, so a repository's new permissions count on the
//! next query, without re-indexing. What dokko-ingest finds is checked against the current files
//! before it is answered: a file deleted, moved, or whose metadata changed since the last job
//! shows as it is now, or not at all.
//!
//! A job's start and end show on the source's repositories (`processing_started_at`,
//! `processing_ended_at`): recorded when the job starts, and when dokko-api learns it ended
//! (dokko-ingest reports it, and every status request that sees it does too).

use std::collections::{HashMap, HashSet};

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use domain::filter::Filter;
use domain::ingest::{
    IngestionJob, JobFile, RetrieveRequest, RetrieveResponse, RetrievedChunk, SearchRequest, StartJob,
};
use domain::pagination::{PageQuery, Paginated};
use serde::Deserialize;
use service_kit::db;
use service_kit::http::Json;
use uuid::Uuid;

use crate::AppState;
use crate::document_sources::{DocumentSource, require};
use crate::error::ApiError;
use crate::files::{FileRow, metadata_view};
use crate::identity::Caller;
use crate::schema::dokko::{files, repositories, repository_permissions};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/document-sources/{document_source_id}/process").route(web::post().to(start_processing)),
    )
    .service(
        web::resource("/api/v1/document-sources/{document_source_id}/process/status")
            .route(web::get().to(processing_status)),
    )
    .service(
        web::resource("/api/v1/document-sources/{document_source_id}/process/files")
            .route(web::get().to(processing_files)),
    )
    .service(web::resource("/api/v1/document-sources/{document_source_id}/retrieve").route(web::post().to(retrieve)));
}

const NO_JOB: &str = "No active ingestion job found";

/// The caller's document source, or 404; the connection goes back before dokko-ingest is called.
async fn callers_source(state: &AppState, caller: &Caller, source_id: Uuid) -> Result<DocumentSource, ApiError> {
    let mut conn = db::conn(&state.pool).await?;
    require(&mut conn, caller.tenant_id, source_id).await
}

fn source_path(source_id: Uuid, rest: &str) -> String {
    format!("/internal/v1/sources/{source_id}{rest}")
}

/// Starts an ingestion job: the source's files become searchable once it completes.
#[utoipa::path(post, path = "/api/v1/document-sources/{document_source_id}/process", tag = "document processing",
    params(("document_source_id" = Uuid, Path)),
    responses((status = 202, body = IngestionJob), (status = 401, body = domain::ErrorBody),
              (status = 402, body = domain::ErrorBody), (status = 404, body = domain::ErrorBody),
              (status = 409, description = "an ingestion job is already running", body = domain::ErrorBody),
              (status = 503, description = "the ingestion service is unavailable", body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn start_processing(
    caller: Caller,
    state: web::Data<AppState>,
    source_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let source = callers_source(&state, &caller, *source_id).await?;
    let body = StartJob { tenant_id: source.tenant_id, bucket: source.identifier };
    let answer = state.ingest.call(reqwest::Method::POST, &source_path(source.id, "/jobs"), &[], Some(&body)).await?;
    if answer.status == StatusCode::ACCEPTED {
        record_job_of(&state, source.id, &answer.body, true).await;
    }
    Ok(answer.into_response())
}

/// Shows a job of the source on the repositories it covers: `processing_started_at` is its
/// start, `processing_ended_at` its end once it has ended (null while it runs).
/// - Job ids are UUID v7, ordered by start: news of an older job never overwrites a newer one's,
///   and news already recorded writes nothing.
/// - A job covers the repositories there were when it started: all of them when the start is
///   recorded as it happens (`starting`), otherwise those already marked with it or created
///   before its start, to the millisecond of its UUID v7 id (`startedAt` has whole seconds). A
///   repository created since shows nothing of it.
pub(crate) async fn record_job(
    conn: &mut db::Conn,
    source_id: Uuid,
    job: &IngestionJob,
    starting: bool,
) -> Result<(), ApiError> {
    use diesel::sql_types::{Bool, Nullable, Timestamptz, Uuid as SqlUuid};
    let end = (job.status != "RUNNING").then_some(job.updated_at);
    let started_ms = job
        .ingestion_job_id
        .get_timestamp()
        .and_then(|ts| {
            let (secs, nanos) = ts.to_unix();
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(secs) * 1_000_000_000 + i128::from(nanos)).ok()
        })
        .unwrap_or(job.started_at + time::Duration::SECOND);
    diesel::sql_query(
        "UPDATE dokko.repositories \
         SET processing_job_id = $2, processing_started_at = $3, processing_ended_at = $4 \
         WHERE document_source_id = $1 \
           AND (processing_job_id IS NULL OR processing_job_id < $2 \
                OR (processing_job_id = $2 AND processing_ended_at IS NULL AND $4 IS NOT NULL)) \
           AND (processing_job_id = $2 OR $5 OR created_at < $6)",
    )
    .bind::<SqlUuid, _>(source_id)
    .bind::<SqlUuid, _>(job.ingestion_job_id)
    .bind::<Timestamptz, _>(job.started_at)
    .bind::<Nullable<Timestamptz>, _>(end)
    .bind::<Bool, _>(starting)
    .bind::<Timestamptz, _>(started_ms)
    .execute(conn)
    .await?;
    Ok(())
}

/// [`record_job`] of dokko-ingest's answer; a failure is logged, not passed to the caller (the
/// job itself is fine, and the next status request records it again).
async fn record_job_of(state: &AppState, source_id: Uuid, answer: &[u8], starting: bool) {
    let job = match serde_json::from_slice::<IngestionJob>(answer) {
        Ok(job) => job,
        Err(e) => return tracing::warn!(%source_id, error = %e, "unreadable job from dokko-ingest"),
    };
    let recorded = match db::conn(&state.pool).await {
        Ok(mut conn) => record_job(&mut conn, source_id, &job, starting).await,
        Err(e) => Err(e.into()),
    };
    if let Err(e) = recorded {
        tracing::warn!(%source_id, error = %e, "cannot record the job on the source's repositories");
    }
}

/// The current or most recent ingestion job of the source.
#[utoipa::path(get, path = "/api/v1/document-sources/{document_source_id}/process/status", tag = "document processing",
    params(("document_source_id" = Uuid, Path)),
    responses((status = 200, body = IngestionJob),
              (status = 400, description = "no ingestion job ever ran", body = domain::ErrorBody),
              (status = 401, body = domain::ErrorBody), (status = 402, body = domain::ErrorBody),
              (status = 404, body = domain::ErrorBody), (status = 503, body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn processing_status(
    caller: Caller,
    state: web::Data<AppState>,
    source_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let source = callers_source(&state, &caller, *source_id).await?;
    let query = [("tenant_id", source.tenant_id.to_string())];
    let answer =
        state.ingest.call(reqwest::Method::GET, &source_path(source.id, "/jobs/latest"), &query, None::<&()>).await?;
    if answer.status == StatusCode::NOT_FOUND {
        return Err(ApiError::BadRequest(NO_JOB.into()));
    }
    if answer.status == StatusCode::OK {
        record_job_of(&state, source.id, &answer.body, false).await;
    }
    Ok(answer.into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatusQuery {
    /// Only files with this outcome: `pending`, `new`, `modified`, `metadata`, `unchanged`,
    /// `deleted` or `failed`.
    status: Option<String>,
}

/// What the last ingestion job did with each file, in the order it listed them.
#[utoipa::path(get, path = "/api/v1/document-sources/{document_source_id}/process/files", tag = "document processing",
    params(("document_source_id" = Uuid, Path), StatusQuery, PageQuery),
    responses((status = 200, body = Paginated<JobFile>),
              (status = 400, description = "no ingestion job ever ran, or an unknown status", body = domain::ErrorBody),
              (status = 401, body = domain::ErrorBody), (status = 404, body = domain::ErrorBody),
              (status = 422, body = domain::ErrorBody), (status = 503, body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn processing_files(
    caller: Caller,
    state: web::Data<AppState>,
    source_id: web::Path<Uuid>,
    query: web::Query<StatusQuery>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = page.page()?;
    let source = callers_source(&state, &caller, *source_id).await?;
    let mut params = vec![
        ("tenant_id", source.tenant_id.to_string()),
        ("page_num", page.number.to_string()),
        ("per_page", page.size.to_string()),
    ];
    if let Some(status) = &query.status {
        params.push(("status", status.clone()));
    }
    let answer = state
        .ingest
        .call(reqwest::Method::GET, &source_path(source.id, "/jobs/latest/files"), &params, None::<&()>)
        .await?;
    if answer.status == StatusCode::NOT_FOUND {
        return Err(ApiError::BadRequest(NO_JOB.into()));
    }
    Ok(answer.into_response())
}

/// The chunks that best answer `query`, best first, from the source's processed files the
/// caller may search.
///
/// dokko-ingest searches its copy of the files, as of the last processing job; what it finds is
/// checked here against the current files in one query, so a deleted file, a repository the
/// caller may no longer search, or a file whose metadata no longer passes the filter never
/// answers, and a moved file answers with its current key and metadata. dokko-ingest is asked for
/// more than `top_k` chunks, and again without the files left out when they left the answer
/// short.
#[utoipa::path(post, path = "/api/v1/document-sources/{document_source_id}/retrieve", tag = "document processing",
    params(("document_source_id" = Uuid, Path)), request_body = RetrieveRequest,
    responses((status = 200, body = RetrieveResponse),
              (status = 400, description = "empty query, top_k out of range, a malformed filter (the message says where), or search_type SEMANTIC while no embedding model is configured", body = domain::ErrorBody),
              (status = 401, body = domain::ErrorBody), (status = 402, body = domain::ErrorBody),
              (status = 404, body = domain::ErrorBody), (status = 422, description = "malformed body, or an unknown search_type", body = domain::ErrorBody),
              (status = 503, body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn retrieve(
    caller: Caller,
    state: web::Data<AppState>,
    source_id: web::Path<Uuid>,
    body: Json<RetrieveRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.into_inner();
    let top_k = request.top_k.unwrap_or(10);
    if !(1..=MAX_TOP_K).contains(&top_k) {
        return Err(ApiError::BadRequest(format!("top_k must be between 1 and {MAX_TOP_K}")));
    }
    if request.query.trim().is_empty() {
        return Err(ApiError::BadRequest("query must not be empty".into()));
    }
    let filter = request
        .filter
        .as_ref()
        .map(|filter| Filter::parse(filter, "filter"))
        .transpose()
        .map_err(|e| ApiError::BadRequest(format!("invalid filter at {e}")))?;
    let mut conn = db::conn(&state.pool).await?;
    let source = require(&mut conn, caller.tenant_id, *source_id).await?;
    let mut searched = repositories::table
        .filter(repositories::tenant_id.eq(caller.tenant_id))
        .filter(repositories::document_source_id.eq(source.id))
        .select(repositories::id)
        .into_boxed();
    if let Some(wanted) = &request.repository_ids {
        searched = searched.filter(repositories::id.eq_any(wanted.iter().copied().collect::<HashSet<_>>()));
    }
    if let Some(permission_ids) = &request.permission_ids {
        let carrying = repository_permissions::table
            .filter(repository_permissions::tenant_id.eq(caller.tenant_id))
            .filter(repository_permissions::permission_id.eq_any(permission_ids.clone()))
            .select(repository_permissions::repository_id);
        searched = searched.filter(repositories::id.eq_any(carrying));
    }
    let repository_ids: Vec<Uuid> = searched.load(&mut conn).await?;
    drop(conn);
    let allowed: HashSet<Uuid> = repository_ids.iter().copied().collect();
    let mut search = SearchRequest {
        tenant_id: source.tenant_id,
        query: request.query,
        top_k: (top_k * 2 + 10).min(MAX_INGEST_TOP_K),
        filter: request.filter,
        repository_ids,
        search_type: request.search_type,
        exclude_file_ids: Vec::new(),
    };
    let mut results = Vec::new();
    for round in 1..=ASKS {
        // A source dokko-ingest never processed answers an empty list.
        let answer =
            state.ingest.call(reqwest::Method::POST, &source_path(source.id, "/retrieve"), &[], Some(&search)).await?;
        if answer.status != StatusCode::OK {
            return Ok(answer.into_response());
        }
        let found: RetrieveResponse = serde_json::from_slice(&answer.body)
            .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("unreadable answer of dokko-ingest")))?;
        let full = found.results.len() >= search.top_k as usize;
        let mut conn = db::conn(&state.pool).await?;
        let left_out;
        (results, left_out) =
            current_only(&mut conn, caller.tenant_id, source.id, &allowed, filter.as_ref(), found.results).await?;
        drop(conn);
        if results.len() >= top_k as usize || !full || left_out.is_empty() || round == ASKS {
            break;
        }
        // Short because files were left out: ask again without them (they are found again
        // otherwise), deeper.
        search.exclude_file_ids.extend(left_out);
        search.top_k = (search.top_k * 2).min(MAX_INGEST_TOP_K);
    }
    results.truncate(top_k as usize);
    Ok(HttpResponse::Ok().json(RetrieveResponse { results }))
}

/// The most chunks a caller may ask for.
const MAX_TOP_K: u32 = 100;
/// The most chunks dokko-api asks dokko-ingest for.
const MAX_INGEST_TOP_K: u32 = 1000;
/// How many times one retrieval asks dokko-ingest at most.
const ASKS: usize = 3;

/// The chunks whose file still exists, in a repository in `allowed`, and whose current metadata
/// passes `filter`, with the file's current key, repository and metadata; and the files left out.
async fn current_only(
    conn: &mut db::Conn,
    tenant_id: Uuid,
    source_id: Uuid,
    allowed: &HashSet<Uuid>,
    filter: Option<&Filter>,
    found: Vec<RetrievedChunk>,
) -> Result<(Vec<RetrievedChunk>, Vec<Uuid>), ApiError> {
    let ids: HashSet<Uuid> = found.iter().map(|chunk| chunk.file_id).collect();
    if ids.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let rows: Vec<FileRow> = files::table
        .filter(files::tenant_id.eq(tenant_id))
        .filter(files::id.eq_any(ids.iter().copied().collect::<Vec<_>>()))
        .select(FileRow::as_select())
        .load(conn)
        .await?;
    let current: HashMap<Uuid, (Uuid, String, serde_json::Map<String, serde_json::Value>)> = rows
        .into_iter()
        .filter(|file| allowed.contains(&file.repository_id))
        .map(|file| (file.id, (file.repository_id, file.path.clone(), metadata_view(&file, source_id).metadata)))
        .filter(|(_, (_, _, metadata))| filter.is_none_or(|filter| filter.matches(metadata)))
        .collect();
    let left_out = ids.into_iter().filter(|id| !current.contains_key(id)).collect();
    let kept = found
        .into_iter()
        .filter_map(|mut chunk| {
            let (repository_id, key, metadata) = current.get(&chunk.file_id)?;
            chunk.repository_id = *repository_id;
            chunk.key.clone_from(key);
            chunk.metadata.clone_from(metadata);
            Some(chunk)
        })
        .collect();
    Ok((kept, left_out))
}
