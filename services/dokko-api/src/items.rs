//! Repository items: `GET/POST/PATCH/DELETE /api/v1/repositories/{id}/items` and
//! `POST /api/v1/repositories/{id}/items/content`.
//!
//! Uploads stream: each multipart file goes straight into object storage (multipart upload past
//! 8 MiB) while its size and SHA-256 are counted, so memory does not grow with the file. The
//! files of a request are written to storage first and recorded in the database together at the
//! end; a request that turns out malformed (say, a `folders` field that is not a JSON array)
//! removes what it wrote and answers 400, leaving nothing behind.

use std::collections::{HashMap, HashSet};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use actix_multipart::{Field, Multipart};
use actix_web::body::SizedStream;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use bytes::Bytes;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::stream::Fuse;
use futures_util::{FutureExt, Stream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use service_kit::db;
use service_kit::http::Json;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;
use crate::files::{FileRow, journal};
use crate::identity::{Caller, VerifiedToken};
use crate::paths::{self, ItemError};
use crate::repositories::{self, Repository};
use crate::schema::dokko::{document_sources, files, folders, repositories as repository_rows};
use crate::storage::SmallPuts;
use crate::tree::{FileItem, Folder, Listing};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/repositories/{repository_id}/items")
            .route(web::get().to(get_tree))
            .route(web::post().to(upload_items))
            .route(web::patch().to(update_items))
            .route(web::delete().to(delete_items)),
    )
    .service(web::resource("/api/v1/repositories/{repository_id}/items/content").route(web::post().to(get_content)));
}

diesel::define_sql_function! {
    /// PostgreSQL's `starts_with(string, prefix)`.
    fn starts_with(string: diesel::sql_types::Text, prefix: diesel::sql_types::Text) -> diesel::sql_types::Bool;
}

/// Serialises the transactions that change one repository's tree (upload, replace, move,
/// delete) until the calling transaction ends. Each checks what is in the way, then writes: two
/// requests for one new path at once would both find it free, and the second would fail on the
/// unique path and lose its whole batch. Held only for the database part of a request (the
/// bytes are in storage by then), so uploads still stream in parallel.
async fn lock_tree(conn: &mut db::Conn, repository_id: Uuid) -> Result<(), ApiError> {
    diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
        .bind::<diesel::sql_types::BigInt, _>(db::advisory_key(&format!("dokko-tree:{repository_id}")))
        .execute(conn)
        .await?;
    Ok(())
}

/// The caller's repository and the bucket of its document source.
async fn repository_and_bucket(
    conn: &mut db::Conn,
    tenant_id: Uuid,
    id: Uuid,
) -> Result<(Repository, String), ApiError> {
    let repository = repositories::require(conn, tenant_id, id).await?;
    let bucket = document_sources::table
        .filter(document_sources::id.eq(repository.document_source_id))
        .select(document_sources::identifier)
        .first(conn)
        .await?;
    Ok((repository, bucket))
}

async fn tree_of(conn: &mut db::Conn, tenant_id: Uuid, repository_id: Uuid) -> Result<Folder<FileItem>, ApiError> {
    let rows = files::table
        .filter(files::tenant_id.eq(tenant_id))
        .filter(files::repository_id.eq(repository_id))
        .select(FileRow::as_select())
        .load(conn)
        .await?;
    let explicit: Vec<String> = folders::table
        .filter(folders::tenant_id.eq(tenant_id))
        .filter(folders::repository_id.eq(repository_id))
        .select(folders::path)
        .load(conn)
        .await?;
    let mut root = Folder::new();
    for path in explicit {
        root.folder_mut(&path);
    }
    for file in rows {
        root.insert_file(&file.path, file.item());
    }
    Ok(root)
}

/// The repository's folders and files, nested.
#[utoipa::path(get, path = "/api/v1/repositories/{repository_id}/items", tag = "repository files",
    params(("repository_id" = Uuid, Path)),
    responses((status = 200, body = Folder<FileItem>), (status = 401, body = domain::ErrorBody),
              (status = 404, body = domain::ErrorBody), (status = 422, body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn get_tree(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<Folder<FileItem>>, ApiError> {
    let mut conn = db::conn(&state.pool).await?;
    let repository = repositories::require(&mut conn, caller.tenant_id, *id).await?;
    Ok(web::Json(tree_of(&mut conn, caller.tenant_id, repository.id).await?))
}

/// One item of a batch answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Succeeded {
    identifier: String,
    display_name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Failed {
    identifier: String,
    display_name: String,
    message: String,
    /// `INVALID_PATH`, `INVALID_TYPE`, `FILE_TOO_LARGE`, `REQUEST_TOO_LARGE`, `PATH_CONFLICT`,
    /// `NOT_FOUND`, `STORAGE_ERROR`.
    code: &'static str,
}

/// The answer of the batch routes: 200 when everything succeeded, 207 when some items failed,
/// 500 when all did.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResult {
    succeeded: Vec<Succeeded>,
    failed: Vec<Failed>,
    result: Listing<FileItem>,
    /// `success`, `partial` or `failure`.
    status: &'static str,
    total_succeeded: usize,
    total_failed: usize,
}

#[derive(Default)]
struct Outcome {
    succeeded: Vec<Succeeded>,
    failed: Vec<Failed>,
}

impl Outcome {
    fn ok(&mut self, identifier: &str) {
        self.succeeded.push(Succeeded {
            identifier: identifier.to_owned(),
            display_name: paths::file_name(identifier).to_owned(),
        });
    }

    fn fail(&mut self, identifier: &str, error: ItemError) {
        self.failed.push(Failed {
            identifier: identifier.to_owned(),
            display_name: paths::file_name(identifier).to_owned(),
            message: error.message,
            code: error.code,
        });
    }

    fn respond(self, result: Folder<FileItem>) -> HttpResponse {
        let (status, code) = match (self.succeeded.len(), self.failed.len()) {
            (_, 0) => ("success", StatusCode::OK),
            (0, _) => ("failure", StatusCode::INTERNAL_SERVER_ERROR),
            _ => ("partial", StatusCode::MULTI_STATUS),
        };
        let body = BatchResult {
            total_succeeded: self.succeeded.len(),
            total_failed: self.failed.len(),
            succeeded: self.succeeded,
            failed: self.failed,
            result: result.into(),
            status,
        };
        HttpResponse::build(code).json(body)
    }
}

/// Counts and hashes the chunks that pass through, and fails the stream past `limit` bytes.
struct Metered<S> {
    inner: S,
    hasher: Sha256,
    bytes: u64,
    limit: u64,
}

impl<S: Stream<Item = io::Result<Bytes>> + Unpin> Stream for Metered<S> {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let chunk = ready!(Pin::new(&mut self.inner).poll_next(cx));
        let this = &mut *self;
        if let Some(Ok(chunk)) = &chunk {
            this.bytes += chunk.len() as u64;
            this.hasher.update(chunk);
            if this.bytes > this.limit {
                return Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::FileTooLarge, "over the size limit"))));
            }
        }
        Poll::Ready(chunk)
    }
}

/// An uploaded object waiting to be recorded.
struct Staged {
    path: String,
    object_key: String,
    size: i64,
    sha256: String,
    content_type: &'static str,
}

/// What a request may still upload.
struct Budget {
    file_limit: u64,
    request_left: u64,
}

/// Object keys listed in the journal ahead of their uploads, so a request of many files journals
/// them in a few statements instead of one each: 1 key, then 2, 4, … up to 64 at a time. What a
/// request does not use is released when its parts are read.
#[derive(Default)]
struct Reserved {
    keys: Vec<String>,
    batch: usize,
}

impl Reserved {
    /// A key listed in the journal, not yet written.
    async fn take(&mut self, state: &AppState, bucket: &str, repository_id: Uuid) -> Result<String, ApiError> {
        if let Some(key) = self.keys.pop() {
            return Ok(key);
        }
        self.batch = (self.batch * 2).clamp(1, 64);
        let keys: Vec<String> = (0..self.batch).map(|_| crate::storage::object_key(repository_id)).collect();
        let mut conn = db::conn(&state.pool).await?;
        journal::expect_uploads(&mut conn, bucket, &keys).await?;
        drop(conn);
        self.keys = keys;
        Ok(self.keys.pop().unwrap_or_else(|| crate::storage::object_key(repository_id)))
    }
}

/// What the files of one request share while they stream into storage.
#[derive(Default)]
struct Staging {
    reserved: Reserved,
    /// PUTs of small files still in flight.
    small: SmallPuts,
}

/// Streams one multipart file into storage (a small one's PUT may still be in flight: see
/// [`receive`]). The journal lists the object first, so a crash mid-upload leaves nothing
/// unaccounted for.
#[allow(clippy::too_many_arguments)]
async fn stage(
    state: &AppState,
    bucket: &str,
    repository_id: Uuid,
    path: String,
    content_type: &'static str,
    field: &mut Fuse<Field>,
    budget: &mut Budget,
    staging: &mut Staging,
) -> Result<Staged, ItemError> {
    let storage_error =
        |e: &dyn std::fmt::Display| ItemError::new("STORAGE_ERROR", format!("object storage failed: {e}"));
    let object_key = staging.reserved.take(state, bucket, repository_id).await.map_err(|e| storage_error(&e))?;
    let limit = budget.file_limit.min(budget.request_left);
    let stream = field.map_err(|e| io::Error::other(e.to_string()));
    let mut reader = Metered { inner: stream, hasher: Sha256::new(), bytes: 0, limit };
    let uploaded =
        state.storage.put_stream(bucket, &object_key, &mut reader, content_type, Some(&mut staging.small)).await;
    budget.request_left = budget.request_left.saturating_sub(reader.bytes.min(limit));
    match uploaded {
        Ok(_) => Ok(Staged {
            path,
            object_key,
            size: i64::try_from(reader.bytes).unwrap_or(i64::MAX),
            sha256: hex::encode(reader.hasher.finalize()),
            content_type,
        }),
        Err(e) => {
            journal::delete_now(&state.pool, &state.storage, bucket, vec![object_key]).await;
            if reader.bytes > limit {
                if limit < budget.file_limit {
                    Err(ItemError::new(
                        "REQUEST_TOO_LARGE",
                        "the request is over the upload limit; send fewer bytes per request",
                    ))
                } else {
                    Err(ItemError::new(
                        "FILE_TOO_LARGE",
                        format!("the file is over the limit of {} bytes", budget.file_limit),
                    ))
                }
            } else {
                Err(storage_error(&e))
            }
        }
    }
}

/// Reads what is left of a part (after a refusal), so the next part can be read.
async fn drain(field: &mut Fuse<Field>, budget: &mut Budget) -> Result<(), ApiError> {
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("malformed multipart body: {e}")))?;
        budget.request_left = budget.request_left.saturating_sub(chunk.len() as u64);
    }
    Ok(())
}

const FOLDERS_FIELD_LIMIT: usize = 256 * 1024;

async fn read_text(field: &mut Fuse<Field>, name: &str) -> Result<Vec<u8>, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("malformed multipart body: {e}")))?;
        if bytes.len() + chunk.len() > FOLDERS_FIELD_LIMIT {
            return Err(ApiError::BadRequest(format!("the {name} field is over {FOLDERS_FIELD_LIMIT} bytes")));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// Whether `path` can hold a file (or a folder, `as_folder`): no file at one of its parent
/// folders, and for a file, no folder (explicit or holding files) of the same name.
async fn path_conflict(
    conn: &mut db::Conn,
    repository_id: Uuid,
    path: &str,
    as_folder: bool,
) -> Result<Option<ItemError>, ApiError> {
    let ancestors: Vec<&str> = path.match_indices('/').map(|(i, _)| &path[..i]).collect();
    let mut blockers = ancestors.clone();
    if as_folder {
        blockers.push(path);
    }
    let file_above: Option<String> = files::table
        .filter(files::repository_id.eq(repository_id))
        .filter(files::path.eq_any(&blockers))
        .select(files::path)
        .first(conn)
        .await
        .optional()?;
    if let Some(file) = file_above {
        return Ok(Some(ItemError::new("PATH_CONFLICT", format!("{file} is a file, so it cannot be a folder"))));
    }
    if !as_folder && is_folder(conn, repository_id, path).await? {
        return Ok(Some(ItemError::new("PATH_CONFLICT", format!("{path} is a folder, so it cannot be a file"))));
    }
    Ok(None)
}

/// Whether `path` is a folder: an explicit one (or one above an explicit one), or one holding
/// files. One statement.
async fn is_folder(conn: &mut db::Conn, repository_id: Uuid, path: &str) -> Result<bool, ApiError> {
    let prefix = format!("{path}/");
    let holds_files =
        files::table.filter(files::repository_id.eq(repository_id)).filter(starts_with(files::path, &prefix));
    let explicit = folders::table
        .filter(folders::repository_id.eq(repository_id))
        .filter(folders::path.eq(path).or(starts_with(folders::path, &prefix)));
    let (files, explicit) = diesel::select((diesel::dsl::exists(holds_files), diesel::dsl::exists(explicit)))
        .get_result::<(bool, bool)>(conn)
        .await?;
    Ok(files || explicit)
}

/// The conflict of each staged file, in order (`None`: none), as [`path_conflict`] would find
/// them one after the other with the earlier files recorded: a file (stored, or earlier in the
/// batch) at one of its parent folders, or a folder (explicit, holding stored files, or above an
/// earlier file of the batch) at its path. Two statements for the whole batch.
async fn file_conflicts(
    conn: &mut db::Conn,
    repository_id: Uuid,
    staged: &[Staged],
) -> Result<Vec<Option<ItemError>>, ApiError> {
    let ancestors =
        |path: &str| -> Vec<String> { path.match_indices('/').map(|(i, _)| path[..i].to_owned()).collect() };
    let all_ancestors: Vec<String> = staged.iter().flat_map(|item| ancestors(&item.path)).collect();
    let stored_files: HashSet<String> = if all_ancestors.is_empty() {
        HashSet::new()
    } else {
        files::table
            .filter(files::repository_id.eq(repository_id))
            .filter(files::path.eq_any(&all_ancestors))
            .select(files::path)
            .load::<String>(conn)
            .await?
            .into_iter()
            .collect()
    };
    let paths: Vec<&str> = staged.iter().map(|item| item.path.as_str()).collect();
    #[derive(QueryableByName)]
    struct FolderPath {
        #[diesel(sql_type = diesel::sql_types::Text)]
        path: String,
    }
    let stored_folders: HashSet<String> = diesel::sql_query(
        "SELECT p AS path FROM unnest($2::text[]) AS p \
         WHERE EXISTS (SELECT 1 FROM dokko.files f WHERE f.repository_id = $1 AND starts_with(f.path, p || '/')) \
            OR EXISTS (SELECT 1 FROM dokko.folders d WHERE d.repository_id = $1 \
                       AND (d.path = p OR starts_with(d.path, p || '/')))",
    )
    .bind::<diesel::sql_types::Uuid, _>(repository_id)
    .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(&paths)
    .load::<FolderPath>(conn)
    .await?
    .into_iter()
    .map(|f| f.path)
    .collect();
    // Within the batch: the files accepted so far are files, and their parents folders.
    let mut batch_files: HashSet<&str> = HashSet::new();
    let mut batch_folders: HashSet<&str> = HashSet::new();
    let mut conflicts = Vec::with_capacity(staged.len());
    for item in staged {
        let path = item.path.as_str();
        let above = path
            .match_indices('/')
            .map(|(i, _)| &path[..i])
            .find(|parent| stored_files.contains(*parent) || batch_files.contains(parent));
        let conflict = if let Some(file) = above {
            Some(ItemError::new("PATH_CONFLICT", format!("{file} is a file, so it cannot be a folder")))
        } else if stored_folders.contains(path) || batch_folders.contains(path) {
            Some(ItemError::new("PATH_CONFLICT", format!("{path} is a folder, so it cannot be a file")))
        } else {
            batch_files.insert(path);
            batch_folders.extend(path.match_indices('/').map(|(i, _)| &path[..i]));
            None
        };
        conflicts.push(conflict);
    }
    Ok(conflicts)
}

/// Records staged files (new rows, or new content for an existing path that keeps its
/// `file_id`) and folders, in one transaction. Returns the rows and the object keys they
/// replaced, or per-item conflicts.
async fn record(
    conn: &mut db::Conn,
    repository: &Repository,
    bucket: &str,
    staged: &[Staged],
    new_folders: &[String],
    replace_only: bool,
    outcome: &mut Outcome,
) -> Result<(Vec<FileRow>, Vec<String>), ApiError> {
    let (tenant_id, repository_id) = (repository.tenant_id, repository.id);
    conn.transaction::<_, ApiError, _>(async |conn| {
        lock_tree(conn, repository_id).await?;
        let mut rows = Vec::new();
        let mut replaced = Vec::new();
        let mut orphaned = Vec::new();
        let mut settled = Vec::new();
        for folder in new_folders {
            if let Some(conflict) = path_conflict(conn, repository_id, folder, true).await? {
                outcome.fail(folder, conflict);
                continue;
            }
            diesel::insert_into(folders::table)
                .values((
                    folders::tenant_id.eq(tenant_id),
                    folders::repository_id.eq(repository_id),
                    folders::path.eq(folder),
                ))
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
            outcome.ok(folder);
        }
        // The files, a few statements for the whole batch: what is in the way, which paths
        // exist, then one insert of the new ones.
        let mut conflicts =
            if replace_only { Vec::new() } else { file_conflicts(conn, repository_id, staged).await? }.into_iter();
        let mut accepted: Vec<&Staged> = Vec::with_capacity(staged.len());
        for item in staged {
            settled.push(item.object_key.clone());
            if let Some(conflict) = conflicts.next().flatten() {
                outcome.fail(&item.path, conflict);
                orphaned.push(item.object_key.clone());
                continue;
            }
            accepted.push(item);
        }
        let paths: Vec<&str> = accepted.iter().map(|item| item.path.as_str()).collect();
        let existing: HashMap<String, (Uuid, String)> = files::table
            .filter(files::repository_id.eq(repository_id))
            .filter(files::path.eq_any(&paths))
            .select((files::path, files::id, files::object_key))
            .for_update()
            .load::<(String, Uuid, String)>(conn)
            .await?
            .into_iter()
            .map(|(path, id, key)| (path, (id, key)))
            .collect();
        let mut new_rows = Vec::new();
        for item in accepted {
            match existing.get(&item.path) {
                None if replace_only => {
                    outcome.fail(&item.path, ItemError::new("NOT_FOUND", format!("{} not found", item.path)));
                    orphaned.push(item.object_key.clone());
                }
                Some((id, old_key)) => {
                    replaced.push(old_key.clone());
                    let row = diesel::update(files::table.filter(files::id.eq(id)))
                        .set((
                            files::size.eq(item.size),
                            files::content_type.eq(item.content_type),
                            files::sha256.eq(&item.sha256),
                            files::object_key.eq(&item.object_key),
                            files::version.eq(files::version + 1),
                            files::updated_at.eq(diesel::dsl::now),
                        ))
                        .returning(FileRow::as_returning())
                        .get_result(conn)
                        .await?;
                    outcome.ok(&item.path);
                    rows.push(row);
                }
                None => {
                    new_rows.push((
                        files::id.eq(Uuid::now_v7()),
                        files::tenant_id.eq(tenant_id),
                        files::repository_id.eq(repository_id),
                        files::path.eq(&item.path),
                        files::size.eq(item.size),
                        files::content_type.eq(item.content_type),
                        files::sha256.eq(&item.sha256),
                        files::object_key.eq(&item.object_key),
                    ));
                    outcome.ok(&item.path);
                }
            }
        }
        if !new_rows.is_empty() {
            let inserted: Vec<FileRow> = diesel::insert_into(files::table)
                .values(new_rows)
                .returning(FileRow::as_returning())
                .get_results(conn)
                .await?;
            rows.extend(inserted);
        }
        journal::settle(conn, bucket, &settled).await?;
        journal::doom(conn, bucket, &replaced).await?;
        journal::doom(conn, bucket, &orphaned).await?;
        replaced.extend(orphaned);
        Ok((rows, replaced))
    })
    .await
}

/// Uploads files (the multipart filename is the path) and creates folders (`folders`, a JSON
/// array of paths). Re-uploading a path replaces its content and keeps its `file_id`.
#[utoipa::path(post, path = "/api/v1/repositories/{repository_id}/items", tag = "repository files",
    params(("repository_id" = Uuid, Path)),
    request_body(content_type = "multipart/form-data", description = "`files`: one part per file, the filename is its path; `folders`: a JSON array of folder paths"),
    responses((status = 200, body = BatchResult), (status = 207, description = "some items failed", body = BatchResult),
              (status = 400, description = "malformed multipart body or folders field, or nothing to do", body = domain::ErrorBody),
              (status = 401, body = domain::ErrorBody), (status = 404, body = domain::ErrorBody),
              (status = 500, description = "every item failed", body = BatchResult)),
    security(("bearer" = [])))]
pub(crate) async fn upload_items(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    mut payload: Multipart,
) -> Result<HttpResponse, ApiError> {
    let (repository, bucket, mut outcome, received) = receive(&state, caller.tenant_id, *id, &mut payload).await?;
    let Received { staged, folders: new_folders, .. } = received;
    if staged.is_empty() && new_folders.is_empty() && outcome.failed.is_empty() {
        return Err(ApiError::BadRequest(
            "nothing to do: send files (multipart field `files`) and/or `folders`".into(),
        ));
    }
    let mut conn = db::conn(&state.pool).await?;
    let recorded = record(&mut conn, &repository, &bucket, &staged, &new_folders, false, &mut outcome).await;
    drop(conn);
    let (rows, doomed) = match recorded {
        Ok(done) => done,
        Err(e) => {
            journal::delete_now(
                &state.pool,
                &state.storage,
                &bucket,
                staged.into_iter().map(|s| s.object_key).collect(),
            )
            .await;
            return Err(e);
        }
    };
    journal::delete_now(&state.pool, &state.storage, &bucket, doomed).await;
    let mut result = Folder::new();
    for folder in &new_folders {
        if outcome.succeeded.iter().any(|s| &s.identifier == folder) {
            result.folder_mut(folder);
        }
    }
    for row in rows {
        result.insert_file(&row.path, row.item());
    }
    Ok(outcome.respond(result))
}

/// The caller's repository, its bucket, and every part of a multipart request read (files
/// written to storage, not yet recorded). A malformed request removes what it wrote.
async fn receive(
    state: &AppState,
    tenant_id: Uuid,
    repository_id: Uuid,
    payload: &mut Multipart,
) -> Result<(Repository, String, Outcome, Received), ApiError> {
    let mut conn = db::conn(&state.pool).await?;
    let (repository, bucket) = repository_and_bucket(&mut conn, tenant_id, repository_id).await?;
    drop(conn);
    let mut outcome = Outcome::default();
    let mut received = Received::default();
    let mut budget = Budget { file_limit: state.max_file_bytes, request_left: state.max_request_bytes };
    let read = read_parts(state, &bucket, &repository, payload, &mut outcome, &mut received, &mut budget).await;
    // Every PUT has ended before anything is recorded or cleaned up.
    let failed = received.staging.small.finish().await;
    journal::release(&state.pool, &bucket, &std::mem::take(&mut received.staging.reserved.keys)).await;
    if !failed.is_empty() {
        let mut doomed = Vec::with_capacity(failed.len());
        for (key, e) in failed {
            if let Some(i) = received.staged.iter().position(|s| s.object_key == key) {
                let item = received.staged.remove(i);
                outcome.fail(&item.path, ItemError::new("STORAGE_ERROR", format!("object storage failed: {e}")));
            }
            doomed.push(key);
        }
        journal::delete_now(&state.pool, &state.storage, &bucket, doomed).await;
    }
    if let Err(e) = read {
        journal::delete_now(&state.pool, &state.storage, &bucket, received.object_keys()).await;
        return Err(e);
    }
    Ok((repository, bucket, outcome, received))
}

/// A quoted `filename` as the client wrote it, when it holds a backslash. The multipart parser
/// reads backslashes in a quoted filename as escapes and drops them (`x\y.txt` would arrive as
/// `xy.txt`), while browsers send them as they are (they escape only `"` and line breaks, as
/// `%22`, `%0D`, `%0A`): the path keeps its backslash, and is refused for it.
fn literal_filename(headers: &actix_web::http::header::HeaderMap) -> Option<String> {
    let value = std::str::from_utf8(headers.get(actix_web::http::header::CONTENT_DISPOSITION)?.as_bytes()).ok()?;
    let start = value.find("filename=\"")? + "filename=\"".len();
    let literal = &value[start..start + value[start..].find('"')?];
    literal.contains('\\').then(|| literal.to_owned())
}

/// What the parts of a multipart request brought.
#[derive(Default)]
struct Received {
    /// Files written to storage, not yet recorded.
    staged: Vec<Staged>,
    /// Valid paths of the `folders` field.
    folders: Vec<String>,
    /// The raw `operations` field (PATCH).
    operations: Option<Vec<u8>>,
    /// Journalled keys not used yet, PUTs in flight.
    staging: Staging,
}

impl Received {
    fn object_keys(&mut self) -> Vec<String> {
        self.staged.drain(..).map(|s| s.object_key).collect()
    }
}

/// Reads every part: files stream into storage (refused ones are drained and failed),
/// `folders` and `operations` are read whole (small). An error leaves staged objects for the
/// caller to remove.
async fn read_parts(
    state: &AppState,
    bucket: &str,
    repository: &Repository,
    payload: &mut Multipart,
    outcome: &mut Outcome,
    received: &mut Received,
    budget: &mut Budget,
) -> Result<(), ApiError> {
    let Received { staged, folders: new_folders, operations, staging } = received;
    while let Some(field) = payload.next().await {
        let field = field.map_err(|e| ApiError::BadRequest(format!("malformed multipart body: {e}")))?;
        let name = field.name().unwrap_or_default().to_owned();
        // `filename`, or RFC 5987's `filename*=UTF-8''…` that clients use for non-ASCII names.
        let raw = literal_filename(field.headers())
            .or_else(|| {
                let cd = field.content_disposition()?;
                cd.get_filename()
                    .map(str::to_owned)
                    .or_else(|| cd.get_filename_ext().and_then(|ext| String::from_utf8(ext.value.clone()).ok()))
            })
            .unwrap_or_default();
        // Fused: a part read to its end (or given up on) can be drained again without panicking.
        let mut field = field.fuse();
        match name.as_str() {
            "files" | "files[]" | "file" => {
                if budget.request_left == 0 {
                    outcome.fail(&raw, ItemError::new("REQUEST_TOO_LARGE", "the request is over the upload limit"));
                    drain(&mut field, budget).await?;
                    continue;
                }
                let checked = paths::parse(&raw, &repository.name).and_then(|path| match paths::content_type(&path) {
                    Some(content_type) => Ok((path, content_type)),
                    None => Err(paths::unsupported_type(&path)),
                });
                match checked {
                    Ok((path, content_type)) => {
                        if staged.iter().any(|s| s.path == path) {
                            outcome.fail(&raw, ItemError::new("PATH_CONFLICT", "the same path twice in one request"));
                            drain(&mut field, budget).await?;
                            continue;
                        }
                        match stage(state, bucket, repository.id, path, content_type, &mut field, budget, staging).await
                        {
                            Ok(item) => staged.push(item),
                            Err(error) => {
                                outcome.fail(&raw, error);
                                drain(&mut field, budget).await?;
                            }
                        }
                    }
                    Err(error) => {
                        outcome.fail(&raw, error);
                        drain(&mut field, budget).await?;
                    }
                }
            }
            "folders" => {
                let text = read_text(&mut field, "folders").await?;
                let list: Vec<String> = serde_json::from_slice(&text).map_err(|e| {
                    ApiError::BadRequest(format!(
                        "folders must be a JSON array of folder paths, like [\"docs\", \"assets/images\"]: {e}"
                    ))
                })?;
                for raw in list {
                    match paths::parse(&raw, &repository.name) {
                        Ok(path) if !new_folders.contains(&path) => new_folders.push(path),
                        Ok(_) => {}
                        Err(error) => outcome.fail(&raw, error),
                    }
                }
            }
            "operations" => *operations = Some(read_text(&mut field, "operations").await?),
            _ => drain(&mut field, budget).await?,
        }
    }
    Ok(())
}

/// One operation of `PATCH …/items`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Operation {
    /// The item's current path.
    path: String,
    /// `file` (default) or `folder`.
    #[serde(rename = "type", default)]
    kind: Option<String>,
    /// Move or rename to this path; absent, the operation replaces the file's content with the
    /// attached file of the same filename.
    new_path: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct Operations {
    items: Vec<Operation>,
}

/// The `operations` field of PATCH: required, JSON `{"items": [...]}`, at least one item.
fn parse_operations(raw: Option<&[u8]>) -> Result<Operations, ApiError> {
    let text = raw.ok_or_else(|| {
        ApiError::BadRequest(
            "the operations field is required: {\"items\": [{\"path\", \"type\", \"new_path\"}]}".into(),
        )
    })?;
    let ops: Operations = serde_json::from_slice(text).map_err(|e| {
        let e = service_kit::http::plain_serde_message(&e.to_string());
        ApiError::BadRequest(format!(
            "operations must be JSON like {{\"items\": [{{\"path\": \"a.pdf\", \"type\": \"file\", \"new_path\": \"b.pdf\"}}]}}: {e}"
        ))
    })?;
    if ops.items.is_empty() {
        return Err(ApiError::BadRequest("operations.items must list at least one operation".into()));
    }
    Ok(ops)
}

/// Moves a file, unless something is in the way.
async fn move_file(
    conn: &mut db::Conn,
    repository_id: Uuid,
    from: &str,
    to: &str,
) -> Result<Result<Vec<FileRow>, ItemError>, ApiError> {
    conn.transaction::<_, ApiError, _>(async |conn| {
        lock_tree(conn, repository_id).await?;
        let Some(id) = files::table
            .filter(files::repository_id.eq(repository_id))
            .filter(files::path.eq(from))
            .select(files::id)
            .for_update()
            .first::<Uuid>(conn)
            .await
            .optional()?
        else {
            return Ok(Err(ItemError::new("NOT_FOUND", format!("file {from} not found"))));
        };
        if from != to {
            let taken: i64 = files::table
                .filter(files::repository_id.eq(repository_id))
                .filter(files::path.eq(to))
                .count()
                .get_result(conn)
                .await?;
            if taken > 0 {
                return Ok(Err(ItemError::new("PATH_CONFLICT", format!("{to} already exists"))));
            }
            if let Some(conflict) = path_conflict(conn, repository_id, to, false).await? {
                return Ok(Err(conflict));
            }
        }
        let row = diesel::update(files::table.filter(files::id.eq(id)))
            .set((files::path.eq(to), files::updated_at.eq(diesel::dsl::now)))
            .returning(FileRow::as_returning())
            .get_result(conn)
            .await?;
        Ok(Ok(vec![row]))
    })
    .await
}

/// Moves a folder with everything under it, unless something is in the way.
async fn move_folder(
    conn: &mut db::Conn,
    repository_id: Uuid,
    from: &str,
    to: &str,
) -> Result<Result<Vec<FileRow>, ItemError>, ApiError> {
    let (from_prefix, to_prefix) = (format!("{from}/"), format!("{to}/"));
    if to.starts_with(&from_prefix) {
        return Ok(Err(ItemError::new("INVALID_PATH", format!("cannot move {from} into itself"))));
    }
    conn.transaction::<_, ApiError, _>(async |conn| {
        lock_tree(conn, repository_id).await?;
        if !is_folder(conn, repository_id, from).await? {
            return Ok(Err(ItemError::new("NOT_FOUND", format!("folder {from} not found"))));
        }
        if from != to {
            if is_folder(conn, repository_id, to).await? {
                return Ok(Err(ItemError::new("PATH_CONFLICT", format!("{to} already exists"))));
            }
            if let Some(conflict) = path_conflict(conn, repository_id, to, true).await? {
                return Ok(Err(conflict));
            }
            let cut = i32::try_from(from.len() + 1).unwrap_or(i32::MAX);
            diesel::sql_query(
                "UPDATE dokko.files SET path = $1 || substr(path, $2), updated_at = now() \
                 WHERE repository_id = $3 AND starts_with(path, $4)",
            )
            .bind::<diesel::sql_types::Text, _>(to)
            .bind::<diesel::sql_types::Integer, _>(cut)
            .bind::<diesel::sql_types::Uuid, _>(repository_id)
            .bind::<diesel::sql_types::Text, _>(&from_prefix)
            .execute(conn)
            .await?;
            diesel::sql_query(
                "UPDATE dokko.folders SET path = $1 || substr(path, $2) \
                 WHERE repository_id = $3 AND (path = $4 OR starts_with(path, $5))",
            )
            .bind::<diesel::sql_types::Text, _>(to)
            .bind::<diesel::sql_types::Integer, _>(cut)
            .bind::<diesel::sql_types::Uuid, _>(repository_id)
            .bind::<diesel::sql_types::Text, _>(from)
            .bind::<diesel::sql_types::Text, _>(&from_prefix)
            .execute(conn)
            .await?;
        }
        let rows = files::table
            .filter(files::repository_id.eq(repository_id))
            .filter(starts_with(files::path, &to_prefix))
            .select(FileRow::as_select())
            .load(conn)
            .await?;
        Ok(Ok(rows))
    })
    .await
}

/// Moves and renames (files and whole folders), then content replacements (an operation
/// without `new_path`, with a file part whose filename is the path), in order, with a result
/// per item. A move onto an existing path fails that item; nothing is lost.
#[utoipa::path(patch, path = "/api/v1/repositories/{repository_id}/items", tag = "repository files",
    params(("repository_id" = Uuid, Path)),
    request_body(content_type = "multipart/form-data", description = "`operations`: JSON `{\"items\": [{\"path\", \"type\", \"new_path\"?}]}`; `files`: new content, the filename matching an operation's path"),
    responses((status = 200, body = BatchResult), (status = 207, body = BatchResult),
              (status = 400, description = "operations missing or malformed", body = domain::ErrorBody),
              (status = 401, body = domain::ErrorBody), (status = 404, body = domain::ErrorBody),
              (status = 500, description = "every item failed", body = BatchResult)),
    security(("bearer" = [])))]
pub(crate) async fn update_items(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    mut payload: Multipart,
) -> Result<HttpResponse, ApiError> {
    let (repository, bucket, mut outcome, mut received) = receive(&state, caller.tenant_id, *id, &mut payload).await?;
    let operations = parse_operations(received.operations.as_deref());
    let operations = match operations {
        Ok(ops) => ops,
        Err(e) => {
            journal::delete_now(&state.pool, &state.storage, &bucket, received.object_keys()).await;
            return Err(e);
        }
    };

    let mut touched: Vec<FileRow> = Vec::new();
    let mut moved_folders: Vec<String> = Vec::new();
    let mut conn = db::conn(&state.pool).await?;
    // Moves first, in order.
    for op in operations.items.iter().filter(|op| op.new_path.is_some()) {
        let folder = match op.kind.as_deref() {
            None | Some("file") => false,
            Some("folder") => true,
            Some(other) => {
                outcome.fail(
                    &op.path,
                    ItemError::new("INVALID_TYPE", format!("type must be file or folder, got {other:?}")),
                );
                continue;
            }
        };
        let new_path = op.new_path.as_deref().unwrap_or_default();
        let (from, to) = match (paths::parse(&op.path, &repository.name), paths::parse(new_path, &repository.name)) {
            (Ok(from), Ok(to)) => (from, to),
            (Err(error), _) | (_, Err(error)) => {
                outcome.fail(&op.path, error);
                continue;
            }
        };
        let moved = if folder {
            move_folder(&mut conn, repository.id, &from, &to).await?
        } else {
            if paths::content_type(&to).is_none() {
                outcome.fail(&op.path, paths::unsupported_type(&to));
                continue;
            }
            move_file(&mut conn, repository.id, &from, &to).await?
        };
        match moved {
            Ok(rows) => {
                outcome.ok(&to);
                touched.extend(rows);
                if folder {
                    moved_folders.push(to);
                }
            }
            Err(error) => outcome.fail(&op.path, error),
        }
    }
    // Then content replacements, matched to the attached files by path.
    let mut staged = std::mem::take(&mut received.staged);
    let mut replacements = Vec::new();
    for op in operations.items.iter().filter(|op| op.new_path.is_none()) {
        if matches!(op.kind.as_deref(), Some("folder")) {
            outcome.fail(
                &op.path,
                ItemError::new("INVALID_TYPE", "a folder's content cannot be replaced; give new_path to move it"),
            );
            continue;
        }
        let path = match paths::parse(&op.path, &repository.name) {
            Ok(path) => path,
            Err(error) => {
                outcome.fail(&op.path, error);
                continue;
            }
        };
        match staged.iter().position(|s| s.path == path) {
            Some(i) => replacements.push(staged.swap_remove(i)),
            None => outcome.fail(
                &path,
                ItemError::new("MISSING_FILE", format!("no attached file named {path} for this operation")),
            ),
        }
    }
    for unmatched in &staged {
        outcome.fail(&unmatched.path, ItemError::new("NO_OPERATION", "an attached file that no operation names"));
    }
    let recorded = record(&mut conn, &repository, &bucket, &replacements, &[], true, &mut outcome).await;
    drop(conn);
    let mut doomed: Vec<String> = staged.into_iter().map(|s| s.object_key).collect();
    match recorded {
        Ok((rows, replaced)) => {
            doomed.extend(replaced);
            touched.extend(rows);
        }
        Err(e) => {
            doomed.extend(replacements.into_iter().map(|s| s.object_key));
            journal::delete_now(&state.pool, &state.storage, &bucket, doomed).await;
            return Err(e);
        }
    }
    journal::delete_now(&state.pool, &state.storage, &bucket, doomed).await;
    let mut result = Folder::new();
    for folder in &moved_folders {
        result.folder_mut(folder);
    }
    for row in touched {
        result.insert_file(&row.path, row.item());
    }
    Ok(outcome.respond(result))
}

/// An item to delete: a path (a file), or `{path, type}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum DeleteItem {
    Path(String),
    Typed {
        path: String,
        /// `file` (default) or `folder`.
        #[serde(rename = "type", default)]
        kind: Option<String>,
    },
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DeleteItems {
    items: Vec<DeleteItem>,
}

/// Deletes files, and folders with everything under them.
#[utoipa::path(delete, path = "/api/v1/repositories/{repository_id}/items", tag = "repository files",
    params(("repository_id" = Uuid, Path)), request_body = DeleteItems,
    responses((status = 200, body = BatchResult), (status = 207, body = BatchResult),
              (status = 401, body = domain::ErrorBody), (status = 404, body = domain::ErrorBody),
              (status = 422, body = domain::ErrorBody), (status = 500, body = BatchResult)),
    security(("bearer" = [])))]
pub(crate) async fn delete_items(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: Json<DeleteItems>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = db::conn(&state.pool).await?;
    let (repository, bucket) = repository_and_bucket(&mut conn, caller.tenant_id, *id).await?;
    if body.items.is_empty() {
        return Err(ApiError::BadRequest("items must list at least one path".into()));
    }
    let mut outcome = Outcome::default();
    let mut doomed = Vec::new();
    for item in &body.items {
        let (raw, folder) = match item {
            DeleteItem::Path(path) => (path.as_str(), false),
            DeleteItem::Typed { path, kind } => match kind.as_deref() {
                None | Some("file") => (path.as_str(), false),
                Some("folder") => (path.as_str(), true),
                Some(other) => {
                    outcome.fail(
                        path,
                        ItemError::new("INVALID_TYPE", format!("type must be file or folder, got {other:?}")),
                    );
                    continue;
                }
            },
        };
        let path = match paths::parse(raw, &repository.name) {
            Ok(path) => path,
            Err(error) => {
                outcome.fail(raw, error);
                continue;
            }
        };
        let repository_id = repository.id;
        let keys = conn
            .transaction::<_, ApiError, _>(async |conn| {
                lock_tree(conn, repository_id).await?;
                let prefix = format!("{path}/");
                let keys: Vec<String> = if folder {
                    diesel::delete(
                        files::table
                            .filter(files::repository_id.eq(repository_id))
                            .filter(starts_with(files::path, &prefix)),
                    )
                    .returning(files::object_key)
                    .get_results(conn)
                    .await?
                } else {
                    diesel::delete(
                        files::table.filter(files::repository_id.eq(repository_id)).filter(files::path.eq(&path)),
                    )
                    .returning(files::object_key)
                    .get_results(conn)
                    .await?
                };
                let folders_gone = if folder {
                    diesel::delete(
                        folders::table
                            .filter(folders::repository_id.eq(repository_id))
                            .filter(folders::path.eq(&path).or(starts_with(folders::path, &prefix))),
                    )
                    .execute(conn)
                    .await?
                } else {
                    0
                };
                if keys.is_empty() && folders_gone == 0 {
                    return Ok(None);
                }
                journal::doom(conn, &bucket, &keys).await?;
                Ok(Some(keys))
            })
            .await?;
        match keys {
            Some(keys) => {
                doomed.extend(keys);
                outcome.ok(&path);
            }
            None if !folder && is_folder(&mut conn, repository.id, &path).await? => outcome.fail(
                &path,
                ItemError::new(
                    "NOT_FOUND",
                    format!(
                        "{path} is a folder, not a file: delete it as {{\"path\": \"{path}\", \"type\": \"folder\"}}"
                    ),
                ),
            ),
            None => outcome.fail(&path, ItemError::new("NOT_FOUND", format!("{path} not found"))),
        }
    }
    drop(conn);
    journal::delete_now(&state.pool, &state.storage, &bucket, doomed).await;
    Ok(outcome.respond(Folder::new()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ContentRequest {
    /// The file's path from the repository root.
    path: String,
    /// Download as an attachment (default) or inline.
    as_attachment: Option<bool>,
    /// Stream the bytes through the API instead of answering a presigned URL.
    direct: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PresignedUrl {
    url: String,
}

/// A file's content: a presigned URL, or the bytes with `direct: true`.
#[utoipa::path(post, path = "/api/v1/repositories/{repository_id}/items/content", tag = "repository files",
    params(("repository_id" = Uuid, Path)), request_body = ContentRequest,
    responses((status = 200, description = "`{url}`, or the file's bytes with direct=true", body = PresignedUrl),
              (status = 400, body = domain::ErrorBody), (status = 401, body = domain::ErrorBody),
              (status = 404, body = domain::ErrorBody), (status = 422, body = domain::ErrorBody),
              (status = 503, body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn get_content(
    token: VerifiedToken,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: Json<ContentRequest>,
) -> Result<HttpResponse, ApiError> {
    // One round trip: the repository, its bucket and the file at the path as it would parse (a
    // valid path only loses a trailing '/'), pipelined on one connection with the caller's
    // check, which must pass before anything found is used.
    let candidate = body.path.strip_suffix('/').unwrap_or(&body.path);
    let conn = db::conn(&state.pool).await?;
    let mut on: &AsyncPgConnection = &conn;
    let query = repository_rows::table
        .inner_join(document_sources::table.on(document_sources::id.eq(repository_rows::document_source_id)))
        .left_join(files::table.on(files::repository_id.eq(repository_rows::id).and(files::path.eq(candidate))))
        .filter(repository_rows::tenant_id.eq(token.tenant_id()))
        .filter(repository_rows::id.eq(*id))
        .select((
            repository_rows::name,
            document_sources::identifier,
            (
                files::id,
                files::tenant_id,
                files::repository_id,
                files::path,
                files::size,
                files::content_type,
                files::sha256,
                files::version,
                files::object_key,
                files::metadata,
                files::created_at,
                files::updated_at,
            )
                .nullable(),
        ))
        .first::<(String, String, Option<FileRow>)>(&mut on)
        .map(|found| found.optional().map_err(ApiError::from));
    let (_caller, found) = token.authorize_along(&conn, query).await?;
    drop(conn);
    let (name, bucket, file) = found.ok_or_else(|| ApiError::not_found("repository"))?;
    let path = paths::parse(&body.path, &name).map_err(|e| ApiError::BadRequest(e.message))?;
    let file = file.ok_or_else(|| ApiError::NotFound(format!("file {path} not found")))?;
    let disposition = crate::files::disposition(&file.path, body.as_attachment.unwrap_or(true));
    let unavailable = |e: crate::storage::StorageError| ApiError::Unavailable(format!("object storage: {e}"));
    if body.direct.unwrap_or(false) {
        let stream = state.storage.get_stream(&bucket, &file.object_key).await.map_err(unavailable)?;
        let size = u64::try_from(file.size).unwrap_or_default();
        return Ok(HttpResponse::Ok()
            .content_type(file.content_type.as_str())
            .insert_header(("Content-Disposition", disposition))
            .insert_header(("ETag", format!("\"{}\"", file.sha256)))
            .body(SizedStream::new(size, stream.map_err(|e| io::Error::other(e.to_string())))));
    }
    let url = state
        .storage
        .presign_get(&bucket, &file.object_key, state.presign_ttl, &disposition, &file.content_type)
        .await
        .map_err(unavailable)?;
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(PresignedUrl { url }))
}
