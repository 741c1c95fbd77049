//! Document sources: `GET /api/v1/document-sources`, `GET /api/v1/document-sources/{id}`.
//!
//! Each tenant has one, provisioned with the tenant (an S3 bucket). The fields the contract
//! reserves for the managed knowledge base carry our ingestion settings:
//! `bedrock_chunking_strategy` (how files are cut into chunks), `bedrock_parser_strategy` (how
//! text is extracted) and `bedrock_embedding_model` (the embeddings model dokko-ingest searches
//! with, from its `GET /internal/v1/embedding`, or null for keyword search only; the model set at
//! provisioning when dokko-ingest cannot be asked). Fields that do not apply are present and null.

use actix_web::web;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use domain::pagination::{PageQuery, Paginated};
use serde::Serialize;
use service_kit::db;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiError;
use crate::identity::Caller;
use crate::schema::dokko::{document_sources, files, folders, repositories};
use crate::tree::{Folder, SourceFileItem};
use crate::{AppState, paginated};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/v1/document-sources").route(web::get().to(list_sources)))
        .service(web::resource("/api/v1/document-sources/{document_source_id}").route(web::get().to(get_source)))
        .service(
            web::resource("/api/v1/document-sources/{document_source_id}/folder-structure")
                .route(web::get().to(folder_structure)),
        );
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = document_sources, check_for_backend(diesel::pg::Pg))]
pub struct DocumentSource {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub type_: String,
    pub identifier: String,
    pub status: String,
    pub is_locked: bool,
    pub chunking_strategy: String,
    pub parser_strategy: String,
    pub embedding_model: Option<String>,
    pub created_at: OffsetDateTime,
}

/// A document source as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceSummary {
    id: Uuid,
    /// Always `S3`.
    #[serde(rename = "type")]
    type_: String,
    /// The bucket name.
    identifier: String,
    tenant_id: Uuid,
    /// `unlocked` or `locked`.
    status: String,
    is_locked: bool,
}

impl From<&DocumentSource> for SourceSummary {
    fn from(s: &DocumentSource) -> Self {
        Self {
            id: s.id,
            type_: s.type_.clone(),
            identifier: s.identifier.clone(),
            tenant_id: s.tenant_id,
            status: s.status.clone(),
            is_locked: s.is_locked,
        }
    }
}

/// A document source with its ingestion configuration.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceDetail {
    #[serde(flatten)]
    summary: SourceSummary,
    /// Not used by this service: always null.
    #[schema(value_type = Option<Object>)]
    llm_chat_configuration: Option<serde_json::Value>,
    /// Not used by this service: always null.
    #[schema(value_type = Option<Object>)]
    agent: Option<serde_json::Value>,
    /// No managed knowledge base: null (the index is ours).
    bedrock_knowledge_base_id: Option<String>,
    bedrock_data_source_id: Option<String>,
    /// The embeddings model, or null when search is keyword (BM25) only.
    bedrock_embedding_model: Option<String>,
    /// How text is extracted from files.
    bedrock_parser_strategy: String,
    bedrock_parsing_prompt: Option<String>,
    bedrock_fm_model_arn: Option<String>,
    /// How extracted text is cut into chunks (`fixed_size`, Markdown-aware for Markdown files).
    bedrock_chunking_strategy: String,
}

impl From<DocumentSource> for SourceDetail {
    fn from(s: DocumentSource) -> Self {
        Self {
            summary: SourceSummary::from(&s),
            llm_chat_configuration: None,
            agent: None,
            bedrock_knowledge_base_id: None,
            bedrock_data_source_id: None,
            bedrock_embedding_model: s.embedding_model,
            bedrock_parser_strategy: s.parser_strategy,
            bedrock_parsing_prompt: None,
            bedrock_fm_model_arn: None,
            bedrock_chunking_strategy: s.chunking_strategy,
        }
    }
}

/// The caller's document source `id`, or 404 (another tenant's included).
pub async fn require(conn: &mut db::Conn, tenant_id: Uuid, id: Uuid) -> Result<DocumentSource, ApiError> {
    document_sources::table
        .filter(document_sources::tenant_id.eq(tenant_id))
        .filter(document_sources::id.eq(id))
        .select(DocumentSource::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| ApiError::not_found("document source"))
}

/// The organisation's document sources (in practice exactly one).
#[utoipa::path(get, path = "/api/v1/document-sources", tag = "document sources", params(PageQuery),
    responses((status = 200, body = Paginated<SourceSummary>), (status = 401, body = domain::ErrorBody),
              (status = 402, body = domain::ErrorBody), (status = 422, body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn list_sources(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Paginated<SourceSummary>>, ApiError> {
    let page = query.page()?;
    let mut conn = db::conn(&state.pool).await?;
    let scoped = || document_sources::table.filter(document_sources::tenant_id.eq(caller.tenant_id));
    let rows = scoped()
        .order((document_sources::created_at, document_sources::id))
        .offset(page.offset())
        .limit(page.limit())
        .select(DocumentSource::as_select())
        .load(&mut conn)
        .await?;
    let page = paginated(rows, page, scoped().count().get_result(&mut conn)).await?;
    Ok(web::Json(page.map(|s| SourceSummary::from(&s))))
}

/// One document source with its ingestion configuration.
#[utoipa::path(get, path = "/api/v1/document-sources/{document_source_id}", tag = "document sources",
    params(("document_source_id" = Uuid, Path)),
    responses((status = 200, body = SourceDetail), (status = 401, body = domain::ErrorBody),
              (status = 404, body = domain::ErrorBody), (status = 422, description = "not a UUID", body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn get_source(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<SourceDetail>, ApiError> {
    let mut conn = db::conn(&state.pool).await?;
    let source = require(&mut conn, caller.tenant_id, *id).await?;
    drop(conn);
    let mut detail = SourceDetail::from(source);
    if let Some(model) = ingest_embedding_model(&state).await {
        detail.bedrock_embedding_model = model;
    }
    Ok(web::Json(detail))
}

/// The model dokko-ingest embeds with (`Some(None)`: keyword only); `None` when it cannot tell.
async fn ingest_embedding_model(state: &AppState) -> Option<Option<String>> {
    #[derive(serde::Deserialize)]
    struct Embedding {
        model: Option<String>,
    }
    let answer = state.ingest.call(reqwest::Method::GET, "/internal/v1/embedding", &[], None::<&()>).await.ok()?;
    if !answer.status.is_success() {
        return None;
    }
    serde_json::from_slice::<Embedding>(&answer.body).ok().map(|e| e.model)
}

/// Every file of every repository in the source: one folder per repository (its name; its
/// `repository` field says which), then the repository's own folders and files.
#[utoipa::path(get, path = "/api/v1/document-sources/{document_source_id}/folder-structure", tag = "document sources",
    params(("document_source_id" = Uuid, Path)),
    responses((status = 200, body = Folder<SourceFileItem>), (status = 401, body = domain::ErrorBody),
              (status = 404, body = domain::ErrorBody), (status = 422, body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn folder_structure(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<Folder<SourceFileItem>>, ApiError> {
    let mut conn = db::conn(&state.pool).await?;
    let source = require(&mut conn, caller.tenant_id, *id).await?;
    let repos: Vec<(Uuid, String)> = repositories::table
        .filter(repositories::tenant_id.eq(caller.tenant_id))
        .filter(repositories::document_source_id.eq(source.id))
        .order((repositories::created_at, repositories::id))
        .select((repositories::id, repositories::name))
        .load(&mut conn)
        .await?;
    let rows: Vec<(Uuid, String, i64, OffsetDateTime, OffsetDateTime, Uuid)> = files::table
        .inner_join(repositories::table.on(repositories::id.eq(files::repository_id)))
        .filter(files::tenant_id.eq(caller.tenant_id))
        .filter(repositories::document_source_id.eq(source.id))
        .select((files::repository_id, files::path, files::size, files::created_at, files::updated_at, files::id))
        .load(&mut conn)
        .await?;
    let explicit: Vec<(Uuid, String)> = folders::table
        .inner_join(repositories::table.on(repositories::id.eq(folders::repository_id)))
        .filter(folders::tenant_id.eq(caller.tenant_id))
        .filter(repositories::document_source_id.eq(source.id))
        .select((folders::repository_id, folders::path))
        .load(&mut conn)
        .await?;
    let mut root = Folder::new();
    let mut names = std::collections::HashMap::new();
    for (repository_id, name) in repos {
        // Two repositories may share a name: the later one's folder says which it is.
        let key = if root.folders.contains_key(&name) { format!("{name} ({repository_id})") } else { name.clone() };
        let folder = root.folders.entry(key.clone()).or_insert_with(Folder::new);
        folder.repository.insert("id".into(), repository_id.to_string().into());
        folder.repository.insert("name".into(), name.into());
        names.insert(repository_id, key);
    }
    for (repository_id, path) in explicit {
        if let Some(key) = names.get(&repository_id) {
            root.folder_mut(key).folder_mut(&path);
        }
    }
    for (repository_id, path, size, created_at, updated_at, file_id) in rows {
        if let Some(key) = names.get(&repository_id) {
            let item = SourceFileItem {
                filename: crate::paths::file_name(&path).to_owned(),
                key: path.clone(),
                size,
                created_at,
                updated_at,
                bucket_name: source.identifier.clone(),
                file_id,
            };
            root.folder_mut(key).insert_file(&path, item);
        }
    }
    Ok(web::Json(root))
}
