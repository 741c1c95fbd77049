//! Processing and the retrieval playground.
//!
//! - `GET /console/processing`: the document source's details, the last job's counters (the
//!   script polls `GET /console/api/document-sources/{id}/process/status`, the API's status
//!   handler, until the job ends, then reloads for the failed files), the failed files with
//!   their reasons; `POST /console/processing/start` starts a job (the API's handler).
//! - `GET /console/playground`, `POST /console/playground`: a query, the repositories and
//!   permissions to search, a filter (JSON, checked by the API), the search type and how many
//!   results; the results with score, file, key and the chunk's text, query terms highlighted.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};
use service_kit::http::Json;
use uuid::Uuid;

use super::files::{all_permissions, repositories_of, source_of};
use super::{
    Area, Button, PageError, PageForm, ScriptCaller, Session, body_of, call, csrf_field, layout, page, see_other,
};
use crate::error::ApiError;
use crate::{AppState, document_sources, processing};

const COUNTERS: [(&str, &str); 5] = [
    ("numberOfDocumentsScanned", "Scanned"),
    ("numberOfNewDocumentsIndexed", "New"),
    ("numberOfModifiedDocumentsIndexed", "Modified"),
    ("numberOfDocumentsDeleted", "Deleted"),
    ("numberOfDocumentsFailed", "Failed"),
];

fn job_block(source_id: &str, job: Option<&Value>) -> Markup {
    let status = job.and_then(|j| j["status"].as_str()).unwrap_or("");
    let running = status == "RUNNING";
    html! {
        section #job data-status-url=(format!("/console/api/document-sources/{source_id}/process/status")) data-running=(running) {
            h2 { "Last job" }
            @match job {
                None => p.empty #no-job { "No job has run yet. Upload files into a repository, then start a job." },
                Some(job) => {
                    p { "Status: " strong #job-status data-status=(status) { (status) }
                        " · started " (super::when(&job["startedAt"])) " · updated " span #job-updated { (super::when(&job["updatedAt"])) } }
                    dl.counters {
                        @for (key, label) in COUNTERS {
                            div { dt { (label) } dd #(format!("counter-{key}")) { (job["statistics"][key].as_i64().unwrap_or(0)) } }
                        }
                        @if let Some(total) = job["statistics"]["chunksToEmbed"].as_i64() {
                            div { dt { "Chunks embedded" } dd #counter-chunksEmbedded { (job["statistics"]["chunksEmbedded"].as_i64().unwrap_or(0)) " / " (total) } }
                        }
                    }
                    @if let Some(reasons) = job["failureReasons"].as_array().filter(|r| !r.is_empty()) {
                        ul.error { @for r in reasons { li { (r.as_str().unwrap_or_default()) } } }
                    }
                }
            }
        }
    }
}

pub async fn processing_page(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    notice: web::Query<super::Notice>,
) -> Result<HttpResponse, PageError> {
    let source = source_of(&req, &session, &state).await?;
    let source_id: Uuid = source["id"].as_str().and_then(|s| s.parse().ok()).unwrap_or_default();
    let detail =
        call(&req, document_sources::get_source(session.caller(), state.clone(), web::Path::from(source_id)).await)
            .await?
            .body;
    // No job yet is a 400 of the API: here, an empty state.
    let job = match call(
        &req,
        processing::processing_status(session.caller(), state.clone(), web::Path::from(source_id)).await,
    )
    .await
    {
        Ok(answer) => Some(answer.body),
        Err(PageError::Refused(StatusCode::BAD_REQUEST, _)) => None,
        Err(e) => return Err(e),
    };
    let mut failed = Vec::new();
    if job.is_some() {
        let status: processing::StatusQuery = body_of(json!({"status": "failed"}))?;
        let page_query: domain::pagination::PageQuery = body_of(json!({"per_page": "100"}))?;
        let answer = call(
            &req,
            processing::processing_files(
                session.caller(),
                state.clone(),
                web::Path::from(source_id),
                web::Query(status),
                web::Query(page_query),
            )
            .await,
        )
        .await?;
        failed = answer.body["items"].as_array().cloned().unwrap_or_default();
    }
    let running = job.as_ref().and_then(|j| j["status"].as_str()) == Some("RUNNING");
    let message = match notice.notice.as_deref() {
        Some("started") => Some("The job has started. The counters below move until it ends."),
        _ => None,
    };
    let body = html! {
        (super::notice(message))
        h1 { "Processing" }
        p.hint { "Processing reads every file of the organisation's repositories and makes them searchable. Run it again after uploads, moves or metadata changes." }
        form.inline #start-job method="post" action="/console/processing/start" {
            (csrf_field(&session))
            button type="submit" disabled[running] { "Start a job" }
        }
        (job_block(&source_id.to_string(), job.as_ref()))
        @if job.is_some() {
            section #failed-files {
                h2 { "Failed files" }
                @if failed.is_empty() { p.empty #no-failed { "No file failed in the last job." } }
                @else {
                    table {
                        thead { tr { th { "File" } th { "Reason" } } }
                        tbody { @for f in &failed { tr { td { (f["key"].as_str().unwrap_or_default()) } td.error { (f["reason"].as_str().unwrap_or_default()) } } } }
                    }
                }
            }
        }
        section #source {
            h2 { "Document source" }
            dl.facts #source-details {
                dt { "Id" } dd { code { (source_id) } }
                dt { "Type" } dd { (detail["type"].as_str().unwrap_or_default()) }
                dt { "Bucket" } dd { code { (detail["identifier"].as_str().unwrap_or_default()) } }
                dt { "Status" } dd { (detail["status"].as_str().unwrap_or_default()) }
                dt { "Parser" } dd { (detail["bedrock_parser_strategy"].as_str().unwrap_or_default()) }
                dt { "Chunking" } dd { (detail["bedrock_chunking_strategy"].as_str().unwrap_or_default()) }
                dt { "Embedding model" } dd { (detail["bedrock_embedding_model"].as_str().unwrap_or("none: keyword search only")) }
            }
        }
    };
    Ok(page(
        StatusCode::OK,
        layout("Processing", Some((&session, Area::Processing)), &[("Processing", "/console/processing")], body),
    ))
}

pub async fn start(
    req: HttpRequest,
    state: web::Data<AppState>,
    posted: PageForm<Button>,
) -> Result<HttpResponse, PageError> {
    let session = posted.session;
    let source = source_of(&req, &session, &state).await?;
    let source_id: Uuid = source["id"].as_str().and_then(|s| s.parse().ok()).unwrap_or_default();
    call(&req, processing::start_processing(session.caller(), state, web::Path::from(source_id)).await).await?;
    Ok(see_other("/console/processing?notice=started").finish())
}

pub async fn js_status(
    ScriptCaller(caller): ScriptCaller,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    processing::processing_status(caller, state, id).await
}

// ---- the playground ----

#[derive(Debug, Default, Deserialize)]
pub struct PlaygroundForm {
    #[serde(default)]
    query: String,
    #[serde(default)]
    repository_id: String,
    #[serde(default)]
    permission_id: String,
    #[serde(default)]
    filter: String,
    #[serde(default)]
    search_type: String,
    #[serde(default)]
    top_k: String,
}

/// Words too common to highlight.
const STOP_WORDS: [&str; 24] = [
    "the", "and", "for", "are", "was", "were", "with", "that", "this", "from", "into", "what", "where", "when",
    "which", "who", "how", "why", "its", "not", "but", "you", "your", "our",
];

/// `text` with every occurrence of the query's words (3+ letters, not the most common ones,
/// any case) in `mark`.
fn highlighted(text: &str, query: &str) -> Markup {
    let terms: Vec<String> = query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| t.chars().count() >= 3)
        .map(str::to_lowercase)
        .filter(|t| !STOP_WORDS.contains(&t.as_str()))
        .collect();
    let lower = text.to_lowercase();
    let mut marks: Vec<(usize, usize)> = Vec::new();
    if lower.len() == text.len() {
        for term in &terms {
            let mut from = 0;
            while let Some(at) = lower[from..].find(term.as_str()) {
                let start = from + at;
                marks.push((start, start + term.len()));
                from = start + term.len();
            }
        }
    }
    marks.sort_unstable();
    let mut pieces = Vec::new();
    let mut at = 0;
    for (start, end) in marks {
        if start < at || !text.is_char_boundary(start) || !text.is_char_boundary(end) {
            continue;
        }
        pieces.push((false, &text[at..start]));
        pieces.push((true, &text[start..end]));
        at = end;
    }
    pieces.push((false, &text[at..]));
    html! { @for (mark, piece) in pieces { @if mark { mark { (piece) } } @else { (piece) } } }
}

async fn playground(
    req: &HttpRequest,
    session: &Session,
    state: &web::Data<AppState>,
    form: &PlaygroundForm,
    results: Option<Result<Value, String>>,
) -> Result<HttpResponse, PageError> {
    let source = source_of(req, session, state).await?;
    let source_id = source["id"].as_str().unwrap_or_default().to_owned();
    let repositories = repositories_of(req, session, state, &source_id, 1, 100).await?;
    let permissions = all_permissions(req, session, state).await?;
    let status = match &results {
        Some(Err(_)) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    let search_type = if form.search_type.is_empty() { "HYBRID" } else { form.search_type.as_str() };
    let body = html! {
        h1 { "Retrieval playground" }
        p.hint { "Try a query as a program would (" code { "POST /api/v1/document-sources/{id}/retrieve" } "). Only processed files answer." }
        form.card #playground method="post" action="/console/playground" {
            (csrf_field(session))
            label { "Query " input #query name="query" required value=(form.query) placeholder="What are you looking for?"; }
            div.row {
                label { "Repository "
                    select name="repository_id" {
                        option value="" { "All repositories" }
                        @for r in repositories["items"].as_array().into_iter().flatten() {
                            @let id = r["id"].as_str().unwrap_or_default();
                            option value=(id) selected[form.repository_id == id] { (r["name"].as_str().unwrap_or_default()) }
                        }
                    }
                }
                label { "Permission "
                    select name="permission_id" {
                        option value="" { "Any (no permission filter)" }
                        @for (id, name) in &permissions { option value=(id) selected[&form.permission_id == id] { (name) } }
                    }
                }
                label { "Search "
                    select name="search_type" {
                        @for t in ["HYBRID", "KEYWORD", "SEMANTIC"] { option value=(t) selected[search_type == t] { (t.to_lowercase()) } }
                    }
                }
                label { "Results " input type="number" name="top_k" min="1" max="100" value=(if form.top_k.is_empty() { "10" } else { form.top_k.as_str() }); }
            }
            label { "Filter (JSON, optional) "
                textarea #filter name="filter" rows="4" spellcheck="false" placeholder=r#"{"equals": {"key": "team", "value": "docs"}}"# { (form.filter) }
            }
            p.hint { "Operators as in Bedrock: equals, notEquals, greaterThan, lessThan, in, notIn, startsWith, listContains, stringContains, andAll, orAll." }
            button type="submit" { "Search" }
        }
        @match &results {
            None => {}
            Some(Err(message)) => p.error #error role="alert" { (message) },
            Some(Ok(found)) => {
                @let list = found["results"].as_array().cloned().unwrap_or_default();
                section #results {
                    h2 { (list.len()) " result" @if list.len() != 1 { "s" } }
                    @if list.is_empty() { p.empty #no-results { "Nothing matched. Has the last job processed these files? Try fewer words or no filter." } }
                    @for r in &list {
                        article.result {
                            header {
                                span.score title="score" { (format!("{:.3}", r["score"].as_f64().unwrap_or(0.0))) }
                                " "
                                a.key href=(format!("/console/files/{}", r["file_id"].as_str().unwrap_or_default())) { (r["key"].as_str().unwrap_or_default()) }
                                " " small { "chunk " (r["chunk_index"].as_i64().unwrap_or(0)) " · file " code { (r["file_id"].as_str().unwrap_or_default()) } }
                            }
                            p.chunk { (highlighted(r["content"].as_str().unwrap_or_default(), &form.query)) }
                        }
                    }
                }
            }
        }
    };
    Ok(page(
        status,
        layout("Playground", Some((session, Area::Playground)), &[("Playground", "/console/playground")], body),
    ))
}

pub async fn playground_page(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    playground(&req, &session, &state, &PlaygroundForm::default(), None).await
}

pub async fn retrieve(
    req: HttpRequest,
    state: web::Data<AppState>,
    posted: PageForm<PlaygroundForm>,
) -> Result<HttpResponse, PageError> {
    let PageForm { session, form } = posted;
    let outcome = search(&req, &session, &state, &form).await;
    let results = match outcome {
        Ok(found) => Ok(found),
        Err(PageError::Refused(status, message)) if status.is_client_error() => Err(message),
        Err(e) => return Err(e),
    };
    playground(&req, &session, &state, &form, Some(results)).await
}

async fn search(
    req: &HttpRequest,
    session: &Session,
    state: &web::Data<AppState>,
    form: &PlaygroundForm,
) -> Result<Value, PageError> {
    let filter = if form.filter.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&form.filter)
            .map_err(|e| PageError::Refused(StatusCode::BAD_REQUEST, format!("the filter is not valid JSON: {e}")))?
    };
    let mut request = json!({"query": form.query, "filter": filter});
    if !form.repository_id.is_empty() {
        request["repository_ids"] = json!([form.repository_id]);
    }
    if !form.permission_id.is_empty() {
        request["permission_ids"] = json!([form.permission_id]);
    }
    if !form.search_type.is_empty() {
        request["search_type"] = json!(form.search_type);
    }
    if !form.top_k.trim().is_empty() {
        let top_k: u32 = form
            .top_k
            .trim()
            .parse()
            .map_err(|_| PageError::Refused(StatusCode::BAD_REQUEST, "top_k must be a number".into()))?;
        request["top_k"] = json!(top_k);
    }
    let body = body_of(request)?;
    let source = source_of(req, session, state).await?;
    let source_id: Uuid = source["id"].as_str().and_then(|s| s.parse().ok()).unwrap_or_default();
    Ok(call(req, processing::retrieve(session.caller(), state.clone(), web::Path::from(source_id), Json(body)).await)
        .await?
        .body)
}
