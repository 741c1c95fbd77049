//! Repositories and their files.
//!
//! - `GET /console/repositories`: the repositories of the organisation's document source, with
//!   paging, and the form that creates one (`POST /console/repositories`);
//! - `GET /console/repositories/{id}`: the tree, the upload panel (files or whole folders, by
//!   drag and drop or pickers; paths kept as the API keeps them; progress and the per-file
//!   outcome of the API's 200/207 answer), new folders, move/rename, replace, delete, download;
//!   the repository's permissions, editing (`…/edit`) and deletion (`…/delete`);
//! - `GET /console/files/{file_id}`: a file's filter metadata and its editor
//!   (`POST /console/files/{file_id}/metadata`);
//! - the script's routes under `/console/api/…`: the API's own item handlers
//!   (`GET`/`POST`/`PATCH`/`DELETE …/items`, downloads), behind the session and `X-CSRF-Token`.

use std::collections::HashMap;

use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};
use service_kit::http::Json;
use uuid::Uuid;

use super::{
    Area, Button, Notice, PageError, PageForm, ScriptCaller, Session, body_of, call, confirm_button, csrf_field,
    layout, page, see_other,
};
use crate::error::ApiError;
use crate::{AppState, document_sources, files, items, permissions, repositories};

pub async fn home() -> HttpResponse {
    see_other("/console/repositories").finish()
}

/// The organisation's document source (each organisation has one).
pub(crate) async fn source_of(
    req: &HttpRequest,
    session: &Session,
    state: &web::Data<AppState>,
) -> Result<Value, PageError> {
    let query = web::Query(domain::pagination::PageQuery::default());
    let answer = call(req, document_sources::list_sources(session.caller(), state.clone(), query).await).await?;
    answer.body["items"]
        .get(0)
        .cloned()
        .ok_or_else(|| PageError::Refused(StatusCode::NOT_FOUND, "the organisation has no document source".into()))
}

/// One page of the organisation's permissions (id, name), up to 100.
pub(crate) async fn all_permissions(
    req: &HttpRequest,
    session: &Session,
    state: &web::Data<AppState>,
) -> Result<Vec<(String, String)>, PageError> {
    let query: domain::pagination::PageQuery = body_of(json!({"per_page": "100"}))?;
    let answer =
        call(req, permissions::list_permissions(session.caller(), state.clone(), web::Query(query)).await).await?;
    Ok(answer.body["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|p| {
                    (p["id"].as_str().unwrap_or_default().to_owned(), p["name"].as_str().unwrap_or_default().to_owned())
                })
                .collect()
        })
        .unwrap_or_default())
}

/// The organisation's repositories of one page (the API's list).
pub(crate) async fn repositories_of(
    req: &HttpRequest,
    session: &Session,
    state: &web::Data<AppState>,
    source_id: &str,
    page_num: i64,
    per_page: i64,
) -> Result<Value, PageError> {
    let query: repositories::ListQuery = body_of(json!({
        "document_source_id": source_id,
        "page_num": page_num.to_string(),
        "per_page": per_page.to_string(),
    }))?;
    Ok(call(req, repositories::list_repositories(session.caller(), state.clone(), web::Query(query)).await).await?.body)
}

pub async fn repositories_page(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    notice: web::Query<Notice>,
) -> Result<HttpResponse, PageError> {
    let source = source_of(&req, &session, &state).await?;
    let source_id = source["id"].as_str().unwrap_or_default().to_owned();
    let list = repositories_of(&req, &session, &state, &source_id, notice.page_num.unwrap_or(1), 20).await?;
    let permissions = all_permissions(&req, &session, &state).await?;
    let message = match notice.notice.as_deref() {
        Some("deleted") => Some("The repository was deleted, with its files."),
        _ => None,
    };
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let body = html! {
        (super::notice(message))
        h1 { "Repositories" }
        p.hint { "A repository is a tree of folders and files. Upload files into one, then process them to make them searchable." }
        @if items.is_empty() {
            p.empty #no-repositories { "No repository yet. Create one below, then upload files into it." }
        } @else {
            table #repositories {
                thead { tr { th { "Name" } th { "Type" } th { "Created" } th { "Last processed" } } }
                tbody {
                    @for r in &items {
                        tr {
                            td { a.repository href=(format!("/console/repositories/{}", r["id"].as_str().unwrap_or_default())) { (r["name"].as_str().unwrap_or_default()) } }
                            td data-label="Type" { (r["type"].as_str().unwrap_or_default()) }
                            td data-label="Created" { (super::when(&r["created_at"])) }
                            td data-label="Last processed" { (super::when(&r["processing_ended_at"])) }
                        }
                    }
                }
            }
            (super::pager("/console/repositories", &list))
        }
        (create_form(&session, &permissions, None, ""))
    };
    Ok(page(
        StatusCode::OK,
        layout("Repositories", Some((&session, Area::Files)), &[("Files", "/console/repositories")], body),
    ))
}

fn permission_boxes(permissions: &[(String, String)], checked: &[String]) -> Markup {
    html! {
        fieldset.permissions {
            legend { "Permissions (who may search it)" }
            @if permissions.is_empty() {
                p.hint { "No permission exists yet: create them on the " a href="/console/permissions" { "Permissions" } " page." }
            }
            @for (id, name) in permissions {
                label.check {
                    input type="checkbox" name=(format!("permission_{id}")) value="on" checked[checked.contains(id)];
                    " " (name)
                }
            }
        }
    }
}

fn create_form(session: &Session, permissions: &[(String, String)], error: Option<&str>, name: &str) -> Markup {
    html! {
        section #create-repository {
            h2 { "Create a repository" }
            (super::error_box(error))
            form.card method="post" action="/console/repositories" {
                (csrf_field(session))
                label { "Name " input name="name" required maxlength="255" value=(name); }
                (permission_boxes(permissions, &[]))
                button type="submit" { "Create" }
            }
        }
    }
}

/// A form with a name and permission check boxes (`permission_<uuid>=on`).
#[derive(Debug, Deserialize)]
pub struct RepositoryForm {
    #[serde(default)]
    name: String,
    #[serde(flatten)]
    rest: HashMap<String, String>,
}

impl RepositoryForm {
    fn permission_ids(&self) -> Vec<String> {
        self.rest.keys().filter_map(|k| k.strip_prefix("permission_")).map(str::to_owned).collect()
    }
}

pub async fn create_repository(
    req: HttpRequest,
    state: web::Data<AppState>,
    posted: PageForm<RepositoryForm>,
) -> Result<HttpResponse, PageError> {
    let PageForm { session, form } = posted;
    let source = source_of(&req, &session, &state).await?;
    let body = json!({
        "name": form.name,
        "document_source_id": source["id"],
        "type": repositories::DEFAULT_TYPE,
        "permission_ids": form.permission_ids(),
    });
    let created = match body_of(body) {
        Ok(body) => {
            call(&req, repositories::create_repository(session.caller(), state.clone(), Json(body)).await).await
        }
        Err(e) => Err(e),
    };
    match created {
        Ok(answer) => {
            let id = answer.body["id"].as_str().unwrap_or_default();
            Ok(see_other(&format!("/console/repositories/{id}?notice=created")).finish())
        }
        Err(PageError::Refused(status, message)) => {
            let permissions = all_permissions(&req, &session, &state).await?;
            let body =
                html! { h1 { "Repositories" } (create_form(&session, &permissions, Some(&message), &form.name)) };
            Ok(page(
                status,
                layout(
                    "Create a repository",
                    Some((&session, Area::Files)),
                    &[("Files", "/console/repositories")],
                    body,
                ),
            ))
        }
        Err(e) => Err(e),
    }
}

fn file_rows(out: &mut Vec<(String, Value)>, folder: &Value, prefix: &str) {
    if let Some(folders) = folder["folders"].as_object() {
        for (name, sub) in folders {
            let path = format!("{prefix}{name}");
            out.push((path.clone(), Value::Null));
            file_rows(out, sub, &format!("{path}/"));
        }
    }
    if let Some(files) = folder["files"].as_object() {
        for (name, file) in files {
            out.push((format!("{prefix}{name}"), file.clone()));
        }
    }
}

fn human_size(bytes: i64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b if b < 1024 * 1024 * 1024 => format!("{:.1} MiB", b as f64 / 1048576.0),
        b => format!("{:.1} GiB", b as f64 / 1073741824.0),
    }
}

pub async fn repository_page(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    notice: web::Query<Notice>,
) -> Result<HttpResponse, PageError> {
    let id = id.into_inner();
    let detail = call(&req, repositories::get_repository(session.caller(), state.clone(), web::Path::from(id)).await)
        .await?
        .body;
    let tree = call(&req, items::get_tree(session.caller(), state.clone(), web::Path::from(id)).await).await?.body;
    let permissions = all_permissions(&req, &session, &state).await?;
    let granted: Vec<String> = detail["permission_ids"]
        .as_array()
        .map(|ids| ids.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let mut rows = Vec::new();
    file_rows(&mut rows, &tree, "");
    let name = detail["name"].as_str().unwrap_or_default().to_owned();
    let message = match notice.notice.as_deref() {
        Some("created") => Some("The repository is created. Upload files or folders into it below."),
        Some("updated") => Some("The repository is saved."),
        _ => None,
    };
    let items_url = format!("/console/api/repositories/{id}/items");
    let body = html! {
        (super::notice(message))
        h1 #repository-name { (name) }
        dl.facts {
            dt { "Repository id" } dd { code #repository-id { (id) } }
            dt { "Permissions" }
            dd #repository-permissions {
                @if granted.is_empty() { "none (only searches that name no permission find its files)" }
                @for (pid, pname) in permissions.iter().filter(|(pid, _)| granted.contains(pid)) {
                    span.tag title=(pid) { (pname) } " "
                }
            }
            dt { "Last processed" } dd { (super::when(&detail["processing_ended_at"])) }
        }
        section #upload data-items=(items_url) {
            h2 { "Upload" }
            div #drop-zone.drop-zone tabindex="0" {
                p { strong { "Drop files or folders here" } }
                p.hint { "Folders keep their paths. A file with a path that exists replaces it (same file id, next version)." }
                div.pickers {
                    label.button { "Choose files" input #file-input type="file" multiple; }
                    label.button { "Choose a folder" input #folder-input type="file" multiple webkitdirectory; }
                }
                label.inline { "Into folder " input #upload-prefix name="prefix" placeholder="(the root)"; }
            }
            div #upload-progress hidden { progress #upload-bar max="100" value="0" {} span #upload-percent {} }
            div #upload-outcome aria-live="polite" {}
        }
        section #tree {
            h2 { "Files" }
            form.js-op.inline #new-folder data-op="folder" data-items=(items_url) {
                label { "New folder " input name="path" required placeholder="reports/2024"; }
                button type="submit" { "Create folder" }
            }
            div.op-outcome #op-outcome aria-live="polite" {}
            @if rows.is_empty() {
                p.empty #empty-tree { "This repository is empty. Drop files or a folder above, or use the pickers." }
            } @else {
                table #files {
                    thead { tr { th { "Path" } th { "Size" } th { "Version" } th { "Actions" } } }
                    tbody {
                        @for (path, file) in &rows {
                            @let is_folder = file.is_null();
                            @let kind = if is_folder { "folder" } else { "file" };
                            tr.item data-path=(path) data-type=(kind) {
                                td.path {
                                    @if is_folder { strong.folder { (path) "/" } }
                                    @else {
                                        a.file href=(format!("/console/files/{}", file["file_id"].as_str().unwrap_or_default())) { (path) }
                                    }
                                }
                                td data-label="Size" { @if !is_folder { (human_size(file["size"].as_i64().unwrap_or(0))) } }
                                td data-label="Version" { @if !is_folder { (file["version_id"].as_str().unwrap_or_default()) } }
                                td { div.actions {
                                    @if !is_folder {
                                        a.download href=(format!("/console/api/files/{}/download", file["file_id"].as_str().unwrap_or_default())) { "Download" }
                                    }
                                    details.op {
                                        summary { "Move / rename" }
                                        form.js-op data-op="move" data-items=(items_url) data-path=(path) data-type=(kind) {
                                            label { "New path " input name="new_path" required value=(path); }
                                            button type="submit" { "Move" }
                                        }
                                    }
                                    @if !is_folder {
                                        details.op {
                                            summary { "Replace" }
                                            form.js-op data-op="replace" data-items=(items_url) data-path=(path) {
                                                input type="file" name="file" required;
                                                button type="submit" { "Replace content" }
                                            }
                                        }
                                    }
                                    details.op {
                                        summary { "Delete" }
                                        form.js-op data-op="delete" data-items=(items_url) data-path=(path) data-type=(kind) {
                                            p { "Delete " code { (path) } @if is_folder { " and everything in it" } "? This cannot be undone." }
                                            button.danger type="submit" { "Yes, delete" }
                                        }
                                    }
                                } }
                            }
                        }
                    }
                }
            }
        }
        section #settings {
            h2 { "Settings" }
            form.card method="post" action=(format!("/console/repositories/{id}/edit")) {
                (csrf_field(&session))
                label { "Name " input name="name" required maxlength="255" value=(name); }
                (permission_boxes(&permissions, &granted))
                button type="submit" { "Save" }
            }
            (confirm_button(&session, &format!("/console/repositories/{id}/delete"), "Delete the repository",
                "Deletes the repository and every file in it.", "delete-repository"))
        }
    };
    let trail = [("Files", "/console/repositories"), (name.as_str(), "")];
    Ok(page(StatusCode::OK, layout(&name, Some((&session, Area::Files)), &trail, body)))
}

pub async fn update_repository(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    posted: PageForm<RepositoryForm>,
) -> Result<HttpResponse, PageError> {
    let PageForm { session, form } = posted;
    let body = body_of(json!({"name": form.name, "permission_ids": form.permission_ids()}))?;
    let id = id.into_inner();
    call(&req, repositories::update_repository(session.caller(), state, web::Path::from(id), Json(body)).await).await?;
    Ok(see_other(&format!("/console/repositories/{id}?notice=updated")).finish())
}

pub async fn delete_repository(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    posted: PageForm<Button>,
) -> Result<HttpResponse, PageError> {
    call(&req, repositories::delete_repository(posted.session.caller(), state, id).await).await?;
    Ok(see_other("/console/repositories?notice=deleted").finish())
}

// ---- a file ----

fn file_body(session: &Session, metadata: &Value, error: Option<&str>, text: Option<&str>, saved: bool) -> Markup {
    let file_id = metadata["file_id"].as_str().unwrap_or_default();
    let all = metadata["metadata"].as_object().cloned().unwrap_or_default();
    let (system, user): (Vec<_>, Vec<_>) = all.into_iter().partition(|(k, _)| files::RESERVED.contains(&k.as_str()));
    let user: serde_json::Map<String, Value> = user.into_iter().collect();
    let shown = text.map(str::to_owned).unwrap_or_else(|| serde_json::to_string_pretty(&user).unwrap_or_default());
    html! {
        @if saved { p.notice #notice role="status" { "The metadata is saved. It counts in searches after the next processing job." } }
        dl.facts {
            @for (key, value) in &system {
                dt { (key) } dd { code { (value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string())) } }
            }
        }
        p { a.download href=(format!("/console/api/files/{file_id}/download")) { "Download" } }
        h2 { "Filter metadata" }
        p.hint {
            "Keys and values that retrieval filters match (strings, numbers, booleans, lists of strings). "
            "The keys above are the system's and cannot be set."
        }
        (super::error_box(error))
        form.card #metadata-form method="post" action=(format!("/console/files/{file_id}/metadata")) {
            (csrf_field(session))
            label { "Metadata (a JSON object) " textarea #metadata name="metadata" rows="8" spellcheck="false" { (shown) } }
            button type="submit" { "Save metadata" }
        }
    }
}

pub async fn file_page(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    notice: web::Query<Notice>,
) -> Result<HttpResponse, PageError> {
    let metadata = call(&req, files::get_metadata(session.caller(), state, id).await).await?.body;
    let saved = notice.notice.as_deref() == Some("saved");
    Ok(file_response(&session, StatusCode::OK, &metadata, None, None, saved))
}

fn file_response(
    session: &Session,
    status: StatusCode,
    metadata: &Value,
    error: Option<&str>,
    text: Option<&str>,
    saved: bool,
) -> HttpResponse {
    let key = metadata["metadata"]["key"].as_str().unwrap_or_default().to_owned();
    let repository_id = metadata["metadata"]["repository_id"].as_str().unwrap_or_default();
    let repository_link = format!("/console/repositories/{repository_id}");
    let trail = [("Files", "/console/repositories"), ("Repository", repository_link.as_str()), (key.as_str(), "")];
    let body = html! { h1 #file-key { (key) } (file_body(session, metadata, error, text, saved)) };
    page(status, layout(&key, Some((session, Area::Files)), &trail, body))
}

#[derive(Debug, Deserialize)]
pub struct MetadataForm {
    #[serde(default)]
    metadata: String,
}

pub async fn put_metadata(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    posted: PageForm<MetadataForm>,
) -> Result<HttpResponse, PageError> {
    let PageForm { session, form } = posted;
    let id = id.into_inner();
    let text = if form.metadata.trim().is_empty() { "{}" } else { form.metadata.as_str() };
    let saved = match serde_json::from_str::<Value>(text) {
        Ok(value @ Value::Object(_)) => match body_of(json!({ "metadata": value })) {
            Ok(body) => {
                call(&req, files::put_metadata(session.caller(), state.clone(), web::Path::from(id), Json(body)).await)
                    .await
            }
            Err(e) => Err(e),
        },
        Ok(_) => Err(PageError::Refused(
            StatusCode::BAD_REQUEST,
            "the metadata must be a JSON object: {\"key\": \"value\"}".into(),
        )),
        Err(e) => Err(PageError::Refused(StatusCode::BAD_REQUEST, format!("the metadata is not valid JSON: {e}"))),
    };
    match saved {
        Ok(_) => Ok(see_other(&format!("/console/files/{id}?notice=saved")).finish()),
        Err(PageError::Refused(status, message)) => {
            let metadata =
                call(&req, files::get_metadata(session.caller(), state, web::Path::from(id)).await).await?.body;
            Ok(file_response(&session, status, &metadata, Some(&message), Some(&form.metadata), false))
        }
        Err(e) => Err(e),
    }
}

// ---- the script's routes: the API's handlers behind the session ----

pub async fn js_tree(
    ScriptCaller(caller): ScriptCaller,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(items::get_tree(caller, state, id).await?.0))
}

pub async fn js_upload(
    ScriptCaller(caller): ScriptCaller,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    payload: Multipart,
) -> Result<HttpResponse, ApiError> {
    items::upload_items(caller, state, id, payload).await
}

pub async fn js_update(
    ScriptCaller(caller): ScriptCaller,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    payload: Multipart,
) -> Result<HttpResponse, ApiError> {
    items::update_items(caller, state, id, payload).await
}

pub async fn js_delete(
    ScriptCaller(caller): ScriptCaller,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: Json<items::DeleteItems>,
) -> Result<HttpResponse, ApiError> {
    items::delete_items(caller, state, id, body).await
}

pub async fn js_download(
    ScriptCaller(caller): ScriptCaller,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    files::download_file(caller, state, id).await
}
