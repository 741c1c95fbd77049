//! The Files API: `GET /api/v1/files/{file_id}` (307 to a presigned URL),
//! `GET/PUT /api/v1/files/{file_id}/metadata`, `POST /api/v1/files/{file_id}/metadata/reset`;
//! the file rows every item route shares; and the object journal.
//!
//! Filter metadata: user keys with string, bool, integer or list-of-strings values, stored as a
//! JSON object on the file. The system keys ([`RESERVED`]) are computed from the file and always
//! returned; writing one is a 400.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use service_kit::db;
use service_kit::http::Json;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;
use crate::identity::Caller;
use crate::paths;
use crate::schema::dokko::{document_sources, files, repositories};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/v1/files/{file_id}").route(web::get().to(download_file)))
        .service(
            web::resource("/api/v1/files/{file_id}/metadata")
                .route(web::get().to(get_metadata))
                .route(web::put().to(put_metadata)),
        )
        .service(web::resource("/api/v1/files/{file_id}/metadata/reset").route(web::post().to(reset_metadata)));
}

/// Keys the system sets on every file's metadata; they cannot be written.
pub const RESERVED: [&str; 9] = [
    "repository_id",
    "document_source_id",
    "file_id",
    "key",
    "filename",
    "ext",
    "content_type",
    "size",
    "last_modified",
];
const MAX_KEYS: usize = 50;
const MAX_KEY_CHARS: usize = 128;
const MAX_STRING_CHARS: usize = 2000;
const MAX_LIST_ITEMS: usize = 100;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = files, check_for_backend(diesel::pg::Pg))]
pub struct FileRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub repository_id: Uuid,
    pub path: String,
    pub size: i64,
    pub content_type: String,
    pub sha256: String,
    pub version: i32,
    pub object_key: String,
    pub metadata: Value,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl FileRow {
    pub fn item(&self) -> crate::tree::FileItem {
        crate::tree::FileItem {
            name: paths::file_name(&self.path).to_owned(),
            ext: paths::extension(&self.path),
            last_modified: self.updated_at,
            key: self.path.clone(),
            is_locked: false,
            e_tag: self.sha256.clone(),
            size: self.size,
            version_id: format!("v{}", self.version),
            file_id: self.id,
        }
    }
}

/// A file of the caller's tenant with its repository's document source and bucket, or 404.
pub async fn require(conn: &mut db::Conn, tenant_id: Uuid, file_id: Uuid) -> Result<(FileRow, Uuid, String), ApiError> {
    files::table
        .inner_join(repositories::table.on(repositories::id.eq(files::repository_id)))
        .inner_join(document_sources::table.on(document_sources::id.eq(repositories::document_source_id)))
        .filter(files::tenant_id.eq(tenant_id))
        .filter(files::id.eq(file_id))
        .select((FileRow::as_select(), document_sources::id, document_sources::identifier))
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| ApiError::not_found("file"))
}

/// `Content-Disposition` for a download of `path`.
pub fn disposition(path: &str, attachment: bool) -> String {
    let name = paths::file_name(path);
    let ascii: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let kind = if attachment { "attachment" } else { "inline" };
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// Redirects to a short-lived presigned URL of the file's bytes.
#[utoipa::path(get, path = "/api/v1/files/{file_id}", tag = "files", params(("file_id" = Uuid, Path)),
    responses((status = 307, description = "Location: a presigned download URL"),
              (status = 401, body = domain::ErrorBody), (status = 404, body = domain::ErrorBody),
              (status = 422, body = domain::ErrorBody), (status = 503, body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn download_file(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = db::conn(&state.pool).await?;
    let (file, _, bucket) = require(&mut conn, caller.tenant_id, *id).await?;
    drop(conn);
    let url = state
        .storage
        .presign_get(&bucket, &file.object_key, state.presign_ttl, &disposition(&file.path, true), &file.content_type)
        .await
        .map_err(|e| ApiError::Unavailable(format!("object storage: {e}")))?;
    Ok(HttpResponse::TemporaryRedirect()
        .insert_header(("Location", url))
        .insert_header(("Cache-Control", "no-store"))
        .finish())
}

/// A file's filter metadata: the user's keys and the system's.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileMetadata {
    file_id: Uuid,
    #[schema(value_type = Object)]
    pub(crate) metadata: Map<String, Value>,
}

pub(crate) fn metadata_view(file: &FileRow, document_source_id: Uuid) -> FileMetadata {
    let mut metadata = file.metadata.as_object().cloned().unwrap_or_default();
    let system = [
        ("repository_id", Value::from(file.repository_id.to_string())),
        ("document_source_id", Value::from(document_source_id.to_string())),
        ("file_id", Value::from(file.id.to_string())),
        ("key", Value::from(file.path.clone())),
        ("filename", Value::from(paths::file_name(&file.path))),
        ("ext", Value::from(paths::extension(&file.path))),
        ("content_type", Value::from(file.content_type.clone())),
        ("size", Value::from(file.size)),
        ("last_modified", Value::from(domain::timestamp::format_rfc3339(file.updated_at))),
    ];
    for (key, value) in system {
        metadata.insert(key.to_owned(), value);
    }
    FileMetadata { file_id: file.id, metadata }
}

/// The user's metadata, checked: at most 50 keys of letters, digits, `_`, `-`, `.`; values a
/// string, a boolean, an integer or a list of strings; no reserved key.
pub fn validate_metadata(input: &Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    let bad = |message: String| Err(ApiError::BadRequest(message));
    if input.len() > MAX_KEYS {
        return bad(format!("at most {MAX_KEYS} metadata keys"));
    }
    for (key, value) in input {
        if RESERVED.contains(&key.as_str()) {
            return bad(format!("{key} is a reserved key set by the system; reserved keys: {}", RESERVED.join(", ")));
        }
        let key_ok = (1..=MAX_KEY_CHARS).contains(&key.chars().count())
            && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !key_ok {
            return bad(format!("metadata key {key:?} must be 1 to {MAX_KEY_CHARS} letters, digits, '_', '-' or '.'"));
        }
        let ok = match value {
            Value::Bool(_) => true,
            Value::Number(n) => n.is_i64() || n.is_u64() && n.as_i64().is_some(),
            Value::String(s) => s.chars().count() <= MAX_STRING_CHARS,
            Value::Array(items) => {
                items.len() <= MAX_LIST_ITEMS
                    && items.iter().all(|i| i.as_str().is_some_and(|s| s.chars().count() <= MAX_STRING_CHARS))
            }
            Value::Null | Value::Object(_) => false,
        };
        if !ok {
            return bad(format!(
                "metadata value of {key:?} must be a string (at most {MAX_STRING_CHARS} characters), a boolean, an integer, or a list of at most {MAX_LIST_ITEMS} strings"
            ));
        }
    }
    Ok(input.clone())
}

/// A file's filter metadata.
#[utoipa::path(get, path = "/api/v1/files/{file_id}/metadata", tag = "files", params(("file_id" = Uuid, Path)),
    responses((status = 200, body = FileMetadata), (status = 401, body = domain::ErrorBody),
              (status = 404, body = domain::ErrorBody), (status = 422, body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn get_metadata(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<FileMetadata>, ApiError> {
    let mut conn = db::conn(&state.pool).await?;
    let (file, source_id, _) = require(&mut conn, caller.tenant_id, *id).await?;
    Ok(web::Json(metadata_view(&file, source_id)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PutMetadata {
    /// User keys and values (string, bool, int or list of strings); replaces every user key.
    #[schema(value_type = Object)]
    metadata: Map<String, Value>,
}

async fn write_metadata(
    state: &AppState,
    tenant_id: Uuid,
    id: Uuid,
    metadata: Map<String, Value>,
) -> Result<FileMetadata, ApiError> {
    let mut conn = db::conn(&state.pool).await?;
    let (_, source_id, _) = require(&mut conn, tenant_id, id).await?;
    let file = diesel::update(files::table.filter(files::tenant_id.eq(tenant_id)).filter(files::id.eq(id)))
        .set(files::metadata.eq(Value::Object(metadata)))
        .returning(FileRow::as_returning())
        .get_result(&mut conn)
        .await
        .optional()?
        .ok_or_else(|| ApiError::not_found("file"))?;
    Ok(metadata_view(&file, source_id))
}

/// Replaces a file's user metadata; system keys are kept.
#[utoipa::path(put, path = "/api/v1/files/{file_id}/metadata", tag = "files", params(("file_id" = Uuid, Path)),
    request_body = PutMetadata,
    responses((status = 200, body = FileMetadata),
              (status = 400, description = "a reserved key or an unsupported value", body = domain::ErrorBody),
              (status = 401, body = domain::ErrorBody), (status = 404, body = domain::ErrorBody),
              (status = 422, body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn put_metadata(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: Json<PutMetadata>,
) -> Result<web::Json<FileMetadata>, ApiError> {
    let metadata = validate_metadata(&body.metadata)?;
    Ok(web::Json(write_metadata(&state, caller.tenant_id, *id, metadata).await?))
}

/// Clears a file's user metadata; returns the system keys.
#[utoipa::path(post, path = "/api/v1/files/{file_id}/metadata/reset", tag = "files", params(("file_id" = Uuid, Path)),
    responses((status = 200, body = FileMetadata), (status = 401, body = domain::ErrorBody),
              (status = 404, body = domain::ErrorBody), (status = 422, body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn reset_metadata(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<FileMetadata>, ApiError> {
    Ok(web::Json(write_metadata(&state, caller.tenant_id, *id, Map::new()).await?))
}

/// The object journal: every object in flight is listed here before it exists and until a file
/// row points at it, and every object no row points at any more until it is deleted.
pub mod journal {
    use super::*;
    use crate::schema::dokko::object_journal;
    use crate::storage::Storage;

    /// Before uploads: these objects may soon exist (one statement for all of them).
    pub async fn expect_uploads(conn: &mut db::Conn, bucket: &str, keys: &[String]) -> Result<(), ApiError> {
        let rows: Vec<_> = keys
            .iter()
            .map(|k| {
                (
                    object_journal::bucket.eq(bucket),
                    object_journal::object_key.eq(k),
                    object_journal::reason.eq("upload"),
                )
            })
            .collect();
        diesel::insert_into(object_journal::table).values(rows).execute(conn).await?;
        Ok(())
    }

    /// Keys listed by [`expect_uploads`] that were never written: nothing to delete, so their
    /// rows go. What fails stays for the sweeper (a missing object counts as deleted).
    pub async fn release(pool: &db::Pool, bucket: &str, keys: &[String]) {
        if keys.is_empty() {
            return;
        }
        let outcome = async {
            let mut conn = db::conn(pool).await?;
            settle(&mut conn, bucket, keys).await
        }
        .await;
        if let Err(e) = outcome {
            tracing::warn!(bucket, error = %e, "journal rows of unused keys stay for the sweeper");
        }
    }

    /// Inside the transaction that makes a row point at the object: it is accounted for.
    pub async fn settle(conn: &mut db::Conn, bucket: &str, keys: &[String]) -> Result<(), ApiError> {
        if !keys.is_empty() {
            diesel::delete(
                object_journal::table
                    .filter(object_journal::bucket.eq(bucket))
                    .filter(object_journal::object_key.eq_any(keys)),
            )
            .execute(conn)
            .await?;
        }
        Ok(())
    }

    /// Inside the transaction that makes rows stop pointing at objects: they are to be deleted.
    pub async fn doom(conn: &mut db::Conn, bucket: &str, keys: &[String]) -> Result<(), ApiError> {
        if keys.is_empty() {
            return Ok(());
        }
        let rows: Vec<_> = keys
            .iter()
            .map(|k| {
                (
                    object_journal::bucket.eq(bucket),
                    object_journal::object_key.eq(k),
                    object_journal::reason.eq("delete"),
                )
            })
            .collect();
        diesel::insert_into(object_journal::table)
            .values(rows)
            .on_conflict((object_journal::bucket, object_journal::object_key))
            .do_update()
            .set(object_journal::reason.eq("delete"))
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Deletes `keys` from the bucket and, for those that went, their journal rows. What fails
    /// stays in the journal for the sweeper.
    pub async fn delete_now(pool: &db::Pool, storage: &Storage, bucket: &str, keys: Vec<String>) {
        let mut gone = Vec::with_capacity(keys.len());
        for key in keys {
            match storage.delete_object(bucket, &key).await {
                Ok(()) => gone.push(key),
                Err(e) => tracing::warn!(bucket, key, error = %e, "object deletion deferred to the sweeper"),
            }
        }
        if gone.is_empty() {
            return;
        }
        let outcome = async {
            let mut conn = db::conn(pool).await?;
            settle(&mut conn, bucket, &gone).await
        }
        .await;
        if let Err(e) = outcome {
            tracing::warn!(bucket, error = %e, "journal rows of deleted objects stay for the sweeper");
        }
    }

    /// Deletes every object listed for deletion, and every upload older than `stale_upload`
    /// that never became a file (its request died). Returns how many objects went.
    pub async fn sweep(pool: &db::Pool, storage: &Storage, stale_upload: Duration) -> Result<usize, ApiError> {
        let cutoff = OffsetDateTime::now_utc() - stale_upload;
        let mut conn = db::conn(pool).await?;
        let rows: Vec<(String, String)> = object_journal::table
            .filter(object_journal::reason.eq("delete").or(object_journal::created_at.lt(cutoff)))
            .order(object_journal::created_at)
            .limit(1000)
            .select((object_journal::bucket, object_journal::object_key))
            .load(&mut conn)
            .await?;
        drop(conn);
        let mut swept = 0;
        for (bucket, key) in rows {
            let before = swept;
            if storage.delete_object(&bucket, &key).await.is_ok() {
                let mut conn = db::conn(pool).await?;
                settle(&mut conn, &bucket, std::slice::from_ref(&key)).await?;
                swept += 1;
            }
            if swept == before {
                tracing::warn!(bucket, key, "sweeper could not delete an object; will retry");
            }
        }
        Ok(swept)
    }
}
