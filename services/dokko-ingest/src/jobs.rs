//! Ingestion jobs as dokko-api sees them (all internal, behind a service token):
//! - `POST /internal/v1/sources/{source_id}/jobs`: start one (202), or 409 while one runs;
//! - `GET /internal/v1/sources/{source_id}/jobs/latest?tenant_id=`: the current or last job;
//! - `GET /internal/v1/sources/{source_id}/jobs/latest/files?tenant_id=&status=`: what the
//!   last job did with each file (why a file failed, for one);
//! - `GET /internal/v1/embedding`: what the service embeds with (the document source shows it).
//!
//! With vector search on, the job's statistics carry the source's embedding progress
//! (`chunksEmbedded`, `chunksToEmbed`): vectors are computed in the background ([`crate::vectors`]).
//!
//! The work itself is done by the runners ([`crate::runner`]).

use actix_web::{HttpResponse, web};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use domain::ingest::{IngestionJob, JobFile, StartJob, Statistics};
use domain::pagination::{PageQuery, Paginated};
use serde::Deserialize;
use service_kit::db;
use service_kit::http::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::AppState;
use crate::embeddings::EmbeddingStatus;
use crate::error::ApiError;
use crate::internal::Internal;
use crate::schema::ingest::{job_files, jobs, sources};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/internal/v1/sources/{source_id}/jobs").route(web::post().to(start_job)))
        .service(web::resource("/internal/v1/sources/{source_id}/jobs/latest").route(web::get().to(latest_job)))
        .service(
            web::resource("/internal/v1/sources/{source_id}/jobs/latest/files").route(web::get().to(latest_job_files)),
        )
        .service(web::resource("/internal/v1/embedding").route(web::get().to(embedding)));
}

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = jobs, check_for_backend(diesel::pg::Pg))]
pub struct Job {
    pub id: Uuid,
    pub source_id: Uuid,
    pub status: String,
    pub phase: String,
    pub list_cursor: Option<String>,
    pub scanned: i64,
    pub new_indexed: i64,
    pub modified_indexed: i64,
    pub deleted: i64,
    pub failed: i64,
    pub error: Option<String>,
    pub started_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub lease_owner: Option<Uuid>,
    pub lease_until: Option<OffsetDateTime>,
    pub claims: i32,
}

impl Job {
    pub fn view(&self) -> IngestionJob {
        IngestionJob {
            status: self.status.clone(),
            statistics: Statistics {
                number_of_documents_scanned: self.scanned,
                number_of_new_documents_indexed: self.new_indexed,
                number_of_modified_documents_indexed: self.modified_indexed,
                number_of_documents_deleted: self.deleted,
                number_of_documents_failed: self.failed,
                chunks_embedded: None,
                chunks_to_embed: None,
            },
            started_at: self.started_at,
            updated_at: self.updated_at,
            ingestion_job_id: self.id,
            failure_reasons: self.error.iter().cloned().collect(),
        }
    }
}

/// The tenant a request speaks for, checked against the source's.
#[derive(Debug, Deserialize)]
pub struct TenantQuery {
    tenant_id: Uuid,
}

/// 404 unless the source is known and belongs to `tenant_id`; `None` when never processed.
pub async fn check_tenant(conn: &mut db::Conn, source_id: Uuid, tenant_id: Uuid) -> Result<bool, ApiError> {
    let owner: Option<Uuid> = sources::table.find(source_id).select(sources::tenant_id).first(conn).await.optional()?;
    match owner {
        Some(owner) if owner != tenant_id => Err(ApiError::NotFound("document source not found".into())),
        known => Ok(known.is_some()),
    }
}

/// Starts an ingestion job for the source (remembering the source's tenant and bucket).
#[utoipa::path(post, path = "/internal/v1/sources/{source_id}/jobs", tag = "jobs", request_body = StartJob,
    params(("source_id" = Uuid, Path)),
    responses((status = 202, body = IngestionJob), (status = 401, body = domain::ErrorBody),
              (status = 404, description = "the source belongs to another tenant", body = domain::ErrorBody),
              (status = 409, description = "a job is already running", body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn start_job(
    _peer: Internal,
    state: web::Data<AppState>,
    source_id: web::Path<Uuid>,
    body: Json<StartJob>,
) -> Result<HttpResponse, ApiError> {
    let source_id = source_id.into_inner();
    let StartJob { tenant_id, bucket } = body.into_inner();
    let mut conn = db::conn(&state.pool).await?;
    if check_tenant(&mut conn, source_id, tenant_id).await? {
        diesel::update(sources::table.find(source_id)).set(sources::bucket.eq(&bucket)).execute(&mut conn).await?;
    } else {
        diesel::insert_into(sources::table)
            .values((sources::id.eq(source_id), sources::tenant_id.eq(tenant_id), sources::bucket.eq(&bucket)))
            .on_conflict_do_nothing()
            .execute(&mut conn)
            .await?;
        check_tenant(&mut conn, source_id, tenant_id).await?;
    }
    let job = diesel::insert_into(jobs::table)
        .values((jobs::id.eq(Uuid::now_v7()), jobs::source_id.eq(source_id)))
        .returning(Job::as_returning())
        .get_result(&mut conn)
        .await
        .map_err(|e| match db::DbError::from(e) {
            e if e.constraint() == Some("jobs_one_running_per_source") => {
                ApiError::Conflict("an ingestion job is already running".into())
            }
            e => ApiError::Database(e),
        })?;
    tracing::info!(%source_id, job_id = %job.id, "ingestion job started");
    state.wake.notify_one();
    let view = with_progress(&state, &mut conn, &job).await?;
    Ok(HttpResponse::Accepted().json(view))
}

/// The job as dokko-api shows it, with the source's embedding progress when vectors are on.
async fn with_progress(state: &AppState, conn: &mut db::Conn, job: &Job) -> Result<IngestionJob, ApiError> {
    let mut view = job.view();
    if state.embedder.is_some() {
        let (embedded, waiting) = crate::vectors::progress(conn, job.source_id).await.map_err(ApiError::Internal)?;
        view.statistics.chunks_embedded = Some(embedded);
        view.statistics.chunks_to_embed = Some(waiting);
    }
    Ok(view)
}

/// What the service embeds with: the model whose vectors search uses, or why search is
/// keyword only.
#[utoipa::path(get, path = "/internal/v1/embedding", tag = "jobs",
    responses((status = 200, body = EmbeddingStatus), (status = 401, body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn embedding(_peer: Internal, state: web::Data<AppState>) -> web::Json<EmbeddingStatus> {
    web::Json(state.embedding.clone())
}

/// The source's newest job.
pub async fn latest(conn: &mut db::Conn, source_id: Uuid) -> Result<Option<Job>, ApiError> {
    Ok(jobs::table
        .filter(jobs::source_id.eq(source_id))
        .order((jobs::started_at.desc(), jobs::id.desc()))
        .select(Job::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// The source's current or last job.
#[utoipa::path(get, path = "/internal/v1/sources/{source_id}/jobs/latest", tag = "jobs",
    params(("source_id" = Uuid, Path), ("tenant_id" = Uuid, Query)),
    responses((status = 200, body = IngestionJob), (status = 401, body = domain::ErrorBody),
              (status = 404, description = "no job yet, or another tenant's source", body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn latest_job(
    _peer: Internal,
    state: web::Data<AppState>,
    source_id: web::Path<Uuid>,
    query: web::Query<TenantQuery>,
) -> Result<web::Json<IngestionJob>, ApiError> {
    let mut conn = db::conn(&state.pool).await?;
    check_tenant(&mut conn, *source_id, query.tenant_id).await?;
    let job =
        latest(&mut conn, *source_id).await?.ok_or_else(|| ApiError::NotFound("no ingestion job found".into()))?;
    Ok(web::Json(with_progress(&state, &mut conn, &job).await?))
}

#[derive(Debug, Deserialize)]
pub struct FilesQuery {
    tenant_id: Uuid,
    /// Only files with this outcome (`failed`, `new`, …; `pending` for those not done yet).
    status: Option<String>,
}

/// A file's id, repository, path, outcome and reason.
type OutcomeRow = (Uuid, Uuid, String, Option<String>, Option<String>);

const STATUSES: [&str; 7] = ["pending", "new", "modified", "metadata", "unchanged", "deleted", "failed"];

/// What the last job did with each file, in listing order.
#[utoipa::path(get, path = "/internal/v1/sources/{source_id}/jobs/latest/files", tag = "jobs",
    params(("source_id" = Uuid, Path), ("tenant_id" = Uuid, Query),
           ("status" = Option<String>, Query, description = "pending, new, modified, metadata, unchanged, deleted or failed"),
           PageQuery),
    responses((status = 200, body = Paginated<JobFile>), (status = 400, body = domain::ErrorBody),
              (status = 401, body = domain::ErrorBody), (status = 404, body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn latest_job_files(
    _peer: Internal,
    state: web::Data<AppState>,
    source_id: web::Path<Uuid>,
    query: web::Query<FilesQuery>,
    page: web::Query<PageQuery>,
) -> Result<web::Json<Paginated<JobFile>>, ApiError> {
    let page = page.page()?;
    if let Some(status) = query.status.as_deref().filter(|s| !STATUSES.contains(s)) {
        return Err(ApiError::BadRequest(format!("status {status:?} is not one of {}", STATUSES.join(", "))));
    }
    let mut conn = db::conn(&state.pool).await?;
    check_tenant(&mut conn, *source_id, query.tenant_id).await?;
    let job =
        latest(&mut conn, *source_id).await?.ok_or_else(|| ApiError::NotFound("no ingestion job found".into()))?;
    let scoped = || {
        let rows = job_files::table.filter(job_files::job_id.eq(job.id)).into_boxed();
        match query.status.as_deref() {
            Some("pending") => rows.filter(job_files::outcome.is_null()),
            Some(status) => rows.filter(job_files::outcome.eq(status.to_owned())),
            None => rows,
        }
    };
    let rows: Vec<OutcomeRow> = scoped()
        .order(job_files::seq)
        .offset(page.offset())
        .limit(page.limit())
        .select((job_files::file_id, job_files::repository_id, job_files::path, job_files::outcome, job_files::reason))
        .load(&mut conn)
        .await?;
    let total: i64 = scoped().count().get_result(&mut conn).await?;
    let items = rows
        .into_iter()
        .map(|(file_id, repository_id, key, outcome, reason)| JobFile {
            file_id,
            repository_id,
            key,
            status: outcome.unwrap_or_else(|| "pending".to_owned()),
            reason,
        })
        .collect();
    Ok(web::Json(Paginated::new(items, page, total)))
}
