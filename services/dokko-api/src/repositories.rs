//! Repositories: `GET/POST /api/v1/repositories`, `GET/PATCH/DELETE /api/v1/repositories/{id}`.
//!
//! A repository belongs to one document source of the tenant and carries a set of permissions
//! (`permission_ids`, replaced as a whole by PATCH). Deleting it removes its permission mappings
//! (and, with the files issue, its files); the document source stays.

use std::collections::BTreeSet;

use actix_web::{HttpResponse, web};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use domain::pagination::{PageQuery, Paginated};
use serde::{Deserialize, Serialize};
use service_kit::db;
use service_kit::http::Json;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;
use crate::identity::Caller;
use crate::schema::dokko::document_sources as document_sources_table;
use crate::schema::dokko::{files, permissions, repositories, repository_permissions};
use crate::{document_sources, paginated};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/repositories")
            .route(web::get().to(list_repositories))
            .route(web::post().to(create_repository)),
    )
    .service(
        web::resource("/api/v1/repositories/{repository_id}")
            .route(web::get().to(get_repository))
            .route(web::patch().to(update_repository))
            .route(web::delete().to(delete_repository)),
    );
}

/// The repository type of web-search repositories (`only_web_search_repos=true`).
pub const WEB_SEARCH_TYPE: &str = "web_search";
/// The type of a repository created without one.
pub const DEFAULT_TYPE: &str = "semantic";

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = repositories, check_for_backend(diesel::pg::Pg))]
pub struct Repository {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub document_source_id: Uuid,
    pub name: String,
    pub type_: String,
    pub processing_started_at: Option<OffsetDateTime>,
    pub processing_ended_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
}

/// A repository as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepositorySummary {
    id: Uuid,
    name: String,
    tenant_id: Uuid,
    document_source_id: Uuid,
    #[serde(with = "domain::timestamp::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    #[serde(rename = "type")]
    type_: String,
    /// When the last processing job of the repository's document source started (null before
    /// the first).
    #[serde(with = "domain::timestamp::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    processing_started_at: Option<OffsetDateTime>,
    /// When that job ended; null while it runs.
    #[serde(with = "domain::timestamp::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    processing_ended_at: Option<OffsetDateTime>,
}

impl From<Repository> for RepositorySummary {
    fn from(r: Repository) -> Self {
        Self {
            id: r.id,
            name: r.name,
            tenant_id: r.tenant_id,
            document_source_id: r.document_source_id,
            created_at: r.created_at,
            type_: r.type_,
            processing_started_at: r.processing_started_at,
            processing_ended_at: r.processing_ended_at,
        }
    }
}

/// A repository with its permissions (the answer of create, get and update): the listed fields,
/// the contract's two unused ones, and `permission_ids`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepositoryDetail {
    #[serde(flatten)]
    summary: RepositorySummary,
    /// Not used by this service: always null.
    #[schema(value_type = Option<Object>)]
    llm_chat_configuration: Option<serde_json::Value>,
    /// Not used by this service: always null.
    agent_id: Option<Uuid>,
    /// The repository's permissions, in creation order.
    permission_ids: Vec<Uuid>,
}

impl RepositoryDetail {
    fn new(r: Repository, permission_ids: Vec<Uuid>) -> Self {
        Self { summary: r.into(), llm_chat_configuration: None, agent_id: None, permission_ids }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateRepository {
    /// 1 to 255 characters, no `/`; surrounding spaces are trimmed.
    #[schema(min_length = 1, max_length = 255)]
    name: String,
    document_source_id: Uuid,
    /// Default `semantic`; `web_search` marks a web-search repository.
    #[serde(rename = "type")]
    type_: Option<String>,
    #[serde(default)]
    permission_ids: Option<Vec<Uuid>>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateRepository {
    #[schema(min_length = 1, max_length = 255)]
    name: Option<String>,
    #[serde(rename = "type")]
    type_: Option<String>,
    /// The new set of permissions; replaces the current one (`[]` clears it).
    permission_ids: Option<Vec<Uuid>>,
}

/// The list query: `document_source_id` is required unless `only_web_search_repos=true`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[param(value_type = Option<Uuid>)]
    document_source_id: Option<String>,
    #[param(value_type = Option<bool>)]
    only_web_search_repos: Option<String>,
    /// Page number, from 1 (default 1).
    #[param(value_type = Option<i64>, minimum = 1)]
    page_num: Option<String>,
    /// Items per page, 1 to 100 (default 10).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    per_page: Option<String>,
}

fn valid_name(raw: &str) -> Result<String, ApiError> {
    let name = domain::names::clean("name", raw, 1..=255).map_err(ApiError::BadRequest)?;
    if name.contains(['/', '\\']) {
        return Err(ApiError::BadRequest("name must not contain slashes".into()));
    }
    Ok(name)
}

fn valid_type(raw: &str) -> Result<String, ApiError> {
    let kind = raw.trim().to_lowercase();
    let ok = (1..=50).contains(&kind.len())
        && kind.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(kind)
    } else {
        Err(ApiError::BadRequest(format!(
            "type {raw:?} must be 1 to 50 letters, digits, '_' or '-' (for example \"semantic\")"
        )))
    }
}

/// The distinct ids of `requested`, after checking each is a permission of the tenant (404
/// naming the first that is not).
async fn check_permissions(conn: &mut db::Conn, tenant_id: Uuid, requested: &[Uuid]) -> Result<Vec<Uuid>, ApiError> {
    let mut wanted = Vec::with_capacity(requested.len());
    let mut seen = BTreeSet::new();
    for id in requested {
        if seen.insert(*id) {
            wanted.push(*id);
        }
    }
    if wanted.is_empty() {
        return Ok(wanted);
    }
    let found: BTreeSet<Uuid> = permissions::table
        .filter(permissions::tenant_id.eq(tenant_id))
        .filter(permissions::id.eq_any(&wanted))
        .select(permissions::id)
        .load::<Uuid>(conn)
        .await?
        .into_iter()
        .collect();
    if let Some(missing) = wanted.iter().find(|id| !found.contains(id)) {
        return Err(ApiError::NotFound(format!("permission {missing} not found")));
    }
    Ok(wanted)
}

async fn set_permissions(
    conn: &mut db::Conn,
    tenant_id: Uuid,
    repository_id: Uuid,
    permission_ids: &[Uuid],
) -> Result<(), ApiError> {
    diesel::delete(repository_permissions::table.filter(repository_permissions::repository_id.eq(repository_id)))
        .execute(conn)
        .await?;
    let rows: Vec<_> = permission_ids
        .iter()
        .map(|p| {
            (
                repository_permissions::tenant_id.eq(tenant_id),
                repository_permissions::repository_id.eq(repository_id),
                repository_permissions::permission_id.eq(*p),
            )
        })
        .collect();
    if !rows.is_empty() {
        diesel::insert_into(repository_permissions::table).values(rows).execute(conn).await?;
    }
    Ok(())
}

/// The permission ids of a repository, in the permissions' creation order.
async fn load_permission_ids(conn: &mut db::Conn, tenant_id: Uuid, repository_id: Uuid) -> Result<Vec<Uuid>, ApiError> {
    Ok(repository_permissions::table
        .inner_join(permissions::table.on(permissions::id.eq(repository_permissions::permission_id)))
        .filter(repository_permissions::tenant_id.eq(tenant_id))
        .filter(repository_permissions::repository_id.eq(repository_id))
        .order((permissions::created_at, permissions::id))
        .select(permissions::id)
        .load(conn)
        .await?)
}

/// The caller's repository `id`, or 404 (another tenant's included).
pub async fn require(conn: &mut db::Conn, tenant_id: Uuid, id: Uuid) -> Result<Repository, ApiError> {
    repositories::table
        .filter(repositories::tenant_id.eq(tenant_id))
        .filter(repositories::id.eq(id))
        .select(Repository::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| ApiError::not_found("repository"))
}

/// Creates a repository in a document source, with permissions.
#[utoipa::path(post, path = "/api/v1/repositories", tag = "repositories", request_body = CreateRepository,
    responses((status = 201, body = RepositoryDetail), (status = 400, body = domain::ErrorBody),
              (status = 401, body = domain::ErrorBody),
              (status = 404, description = "document source or permission not found", body = domain::ErrorBody),
              (status = 422, description = "malformed body or an invalid UUID", body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn create_repository(
    caller: Caller,
    state: web::Data<AppState>,
    body: Json<CreateRepository>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let name = valid_name(&body.name)?;
    let type_ = body.type_.as_deref().map(valid_type).transpose()?.unwrap_or_else(|| DEFAULT_TYPE.to_owned());
    let tenant_id = caller.tenant_id;
    let mut conn = db::conn(&state.pool).await?;
    let detail = conn
        .transaction::<_, ApiError, _>(async |conn| {
            document_sources::require(conn, tenant_id, body.document_source_id).await?;
            let permission_ids =
                check_permissions(conn, tenant_id, body.permission_ids.as_deref().unwrap_or_default()).await?;
            let repository = diesel::insert_into(repositories::table)
                .values((
                    repositories::id.eq(Uuid::now_v7()),
                    repositories::tenant_id.eq(tenant_id),
                    repositories::document_source_id.eq(body.document_source_id),
                    repositories::name.eq(&name),
                    repositories::type_.eq(&type_),
                ))
                .returning(Repository::as_returning())
                .get_result(conn)
                .await?;
            set_permissions(conn, tenant_id, repository.id, &permission_ids).await?;
            let permission_ids = load_permission_ids(conn, tenant_id, repository.id).await?;
            Ok(RepositoryDetail::new(repository, permission_ids))
        })
        .await?;
    Ok(HttpResponse::Created().json(detail))
}

fn parse_bool(name: &str, raw: Option<&str>) -> Result<bool, ApiError> {
    match raw.map(|v| v.trim().to_lowercase()).as_deref() {
        None | Some("") | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(other) => Err(ApiError::Unprocessable(format!("{name} must be true or false, got {other:?}"))),
    }
}

/// Repositories of a document source (or web-search repositories), oldest first.
#[utoipa::path(get, path = "/api/v1/repositories", tag = "repositories", params(ListQuery),
    responses((status = 200, body = Paginated<RepositorySummary>),
              (status = 400, description = "document_source_id missing and only_web_search_repos not true", body = domain::ErrorBody),
              (status = 401, body = domain::ErrorBody),
              (status = 404, description = "document source not found", body = domain::ErrorBody),
              (status = 422, description = "a parameter does not parse", body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn list_repositories(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<web::Json<Paginated<RepositorySummary>>, ApiError> {
    let page = PageQuery { page_num: query.page_num.clone(), per_page: query.per_page.clone() }.page()?;
    let web_only = parse_bool("only_web_search_repos", query.only_web_search_repos.as_deref())?;
    let source = match query.document_source_id.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(text) => Some(
            Uuid::parse_str(text)
                .map_err(|_| ApiError::Unprocessable(format!("document_source_id must be a UUID, got {text:?}")))?,
        ),
        None if web_only => None,
        None => {
            return Err(ApiError::BadRequest(
                "document_source_id is required unless only_web_search_repos=true".into(),
            ));
        }
    };
    let tenant_id = caller.tenant_id;
    let mut conn = db::conn(&state.pool).await?;
    // Boxed, but still one SQL text per filter combination, so diesel's statement cache serves it.
    let scoped = || {
        let mut q = repositories::table.filter(repositories::tenant_id.eq(tenant_id)).into_boxed();
        if let Some(source) = source {
            q = q.filter(repositories::document_source_id.eq(source));
        }
        if web_only {
            q = q.filter(repositories::type_.eq(WEB_SEARCH_TYPE));
        }
        q
    };
    let rows = scoped()
        .order((repositories::created_at, repositories::id))
        .offset(page.offset())
        .limit(page.limit())
        .select(Repository::as_select())
        .load(&mut conn)
        .await?;
    let page = paginated(rows, page, scoped().count().get_result(&mut conn)).await?;
    // An empty page may mean the source is not the caller's: that is a 404, like a missing one.
    if page.items.is_empty()
        && let Some(source) = source
    {
        document_sources::require(&mut conn, tenant_id, source).await?;
    }
    Ok(web::Json(page.map(RepositorySummary::from)))
}

/// One repository with its permissions.
#[utoipa::path(get, path = "/api/v1/repositories/{repository_id}", tag = "repositories",
    params(("repository_id" = Uuid, Path)),
    responses((status = 200, body = RepositoryDetail), (status = 401, body = domain::ErrorBody),
              (status = 404, body = domain::ErrorBody), (status = 422, description = "not a UUID", body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn get_repository(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<RepositoryDetail>, ApiError> {
    let mut conn = db::conn(&state.pool).await?;
    let repository = require(&mut conn, caller.tenant_id, *id).await?;
    let permission_ids = load_permission_ids(&mut conn, caller.tenant_id, repository.id).await?;
    Ok(web::Json(RepositoryDetail::new(repository, permission_ids)))
}

/// Renames, retypes, or replaces the permissions of a repository.
#[utoipa::path(patch, path = "/api/v1/repositories/{repository_id}", tag = "repositories",
    params(("repository_id" = Uuid, Path)), request_body = UpdateRepository,
    responses((status = 200, body = RepositoryDetail), (status = 400, body = domain::ErrorBody),
              (status = 401, body = domain::ErrorBody),
              (status = 404, description = "repository or permission not found", body = domain::ErrorBody),
              (status = 422, body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn update_repository(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: Json<UpdateRepository>,
) -> Result<web::Json<RepositoryDetail>, ApiError> {
    let body = body.into_inner();
    let name = body.name.as_deref().map(valid_name).transpose()?;
    let type_ = body.type_.as_deref().map(valid_type).transpose()?;
    let (tenant_id, id) = (caller.tenant_id, *id);
    let mut conn = db::conn(&state.pool).await?;
    let detail = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let mut repository = repositories::table
                .filter(repositories::tenant_id.eq(tenant_id))
                .filter(repositories::id.eq(id))
                .select(Repository::as_select())
                .for_update()
                .first(conn)
                .await
                .optional()?
                .ok_or_else(|| ApiError::not_found("repository"))?;
            if name.is_some() || type_.is_some() {
                repository = diesel::update(repositories::table.filter(repositories::id.eq(id)))
                    .set((
                        repositories::name.eq(name.as_deref().unwrap_or(&repository.name)),
                        repositories::type_.eq(type_.as_deref().unwrap_or(&repository.type_)),
                    ))
                    .returning(Repository::as_returning())
                    .get_result(conn)
                    .await?;
            }
            if let Some(requested) = &body.permission_ids {
                let wanted = check_permissions(conn, tenant_id, requested).await?;
                set_permissions(conn, tenant_id, id, &wanted).await?;
            }
            let permission_ids = load_permission_ids(conn, tenant_id, id).await?;
            Ok(RepositoryDetail::new(repository, permission_ids))
        })
        .await?;
    Ok(web::Json(detail))
}

/// Deletes a repository, its files (rows and objects) and its permission mappings; the document
/// source stays.
#[utoipa::path(delete, path = "/api/v1/repositories/{repository_id}", tag = "repositories",
    params(("repository_id" = Uuid, Path)),
    responses((status = 204), (status = 401, body = domain::ErrorBody), (status = 404, body = domain::ErrorBody),
              (status = 422, body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn delete_repository(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (tenant_id, id) = (caller.tenant_id, *id);
    let mut conn = db::conn(&state.pool).await?;
    let repository = require(&mut conn, tenant_id, id).await?;
    let bucket: String = document_sources_table::table
        .filter(document_sources_table::id.eq(repository.document_source_id))
        .select(document_sources_table::identifier)
        .first(&mut conn)
        .await?;
    let keys = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let keys: Vec<String> = files::table
                .filter(files::tenant_id.eq(tenant_id))
                .filter(files::repository_id.eq(id))
                .select(files::object_key)
                .load(conn)
                .await?;
            crate::files::journal::doom(conn, &bucket, &keys).await?;
            let deleted = diesel::delete(
                repositories::table.filter(repositories::tenant_id.eq(tenant_id)).filter(repositories::id.eq(id)),
            )
            .execute(conn)
            .await?;
            if deleted == 0 {
                return Err(ApiError::not_found("repository"));
            }
            Ok(keys)
        })
        .await?;
    drop(conn);
    crate::files::journal::delete_now(&state.pool, &state.storage, &bucket, keys).await;
    Ok(HttpResponse::NoContent().finish())
}
