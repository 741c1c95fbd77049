//! Retrieval: `POST /internal/v1/sources/{source_id}/retrieve` (internal; dokko-api's
//! `POST /api/v1/document-sources/{id}/retrieve` decides which repositories the caller may
//! search and calls this).
//!
//! The files that may answer are the catalog's files in those repositories whose metadata
//! passes the filter; the search runs over their chunks only (a bitmap the index's collector
//! checks, so a filter never costs a second pass). The request's `search_type` chooses the
//! ranking: `KEYWORD` is BM25; `SEMANTIC` the chunks nearest the query's embedding (cosine), only
//! among chunks that have a vector, refused with 400 when no embedding model is configured;
//! `HYBRID`, the default, both fused by reciprocal rank fusion (k = 60), so a file whose vectors
//! are still being computed is found by its keywords meanwhile. Without an embedding model, or
//! when the query cannot be embedded (logged), `HYBRID` is BM25 alone.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use domain::ingest::{RetrieveResponse, RetrievedChunk, SearchRequest, SearchType};
use serde_json::Value;
use service_kit::db;
use service_kit::http::Json;
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;
use crate::filter::Filter;
use crate::index::{Hit, OrdSet, SourceIndex};
use crate::internal::Internal;
use crate::jobs::check_tenant;
use crate::schema::ingest::chunks;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/internal/v1/sources/{source_id}/retrieve").route(web::post().to(retrieve)));
}

/// The most chunks one request may ask for (dokko-api asks for more than its callers' top_k, at
/// most 100, so files it must leave out do not leave the answer short).
pub const MAX_TOP_K: u32 = 1000;
pub const MAX_QUERY_CHARS: usize = 10_000;
/// The constant of reciprocal rank fusion (the usual 60).
const RRF_K: f64 = 60.0;
/// How deep each ranking goes before fusion: at least this many chunks, and four times top_k.
const FUSION_DEPTH: usize = 100;
/// How long a query waits for the index to catch up with the database.
const SYNC_WAIT: Duration = Duration::from_secs(10);

/// The refusal of `SEMANTIC` where there are no vectors to search.
pub const NO_EMBEDDINGS: &str = "search_type SEMANTIC needs an embedding model, and dokko-ingest has none \
     configured (see EMBEDDINGS_URL); use HYBRID or KEYWORD";

/// Checks the parts of a request that do not need the index; the parsed filter.
pub fn validate(request: &SearchRequest) -> Result<Option<Filter>, ApiError> {
    if request.query.trim().is_empty() {
        return Err(ApiError::BadRequest("query must not be empty".into()));
    }
    if request.query.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::BadRequest(format!("query must be at most {MAX_QUERY_CHARS} characters")));
    }
    if !(1..=MAX_TOP_K).contains(&request.top_k) {
        return Err(ApiError::BadRequest(format!("top_k must be between 1 and {MAX_TOP_K}")));
    }
    request
        .filter
        .as_ref()
        .map(|filter| Filter::parse(filter, "filter"))
        .transpose()
        .map_err(|e| ApiError::BadRequest(format!("invalid filter at {e}")))
}

/// The best chunks for a query within the given repositories, best first.
#[utoipa::path(post, path = "/internal/v1/sources/{source_id}/retrieve", tag = "retrieval", request_body = SearchRequest,
    params(("source_id" = Uuid, Path)),
    responses((status = 200, body = RetrieveResponse),
              (status = 400, description = "empty query, top_k out of range, a malformed filter (the message says where), or SEMANTIC without an embedding model", body = domain::ErrorBody),
              (status = 401, body = domain::ErrorBody), (status = 404, body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn retrieve(
    _peer: Internal,
    state: web::Data<AppState>,
    source_id: web::Path<Uuid>,
    body: Json<SearchRequest>,
) -> Result<web::Json<RetrieveResponse>, ApiError> {
    let request = body.into_inner();
    let filter = validate(&request)?;
    if request.search_type == SearchType::Semantic && state.embedder.is_none() {
        return Err(ApiError::BadRequest(NO_EMBEDDINGS.into()));
    }
    let mut conn = db::conn(&state.pool).await?;
    if !check_tenant(&mut conn, *source_id, request.tenant_id).await? {
        // Never processed: nothing is searchable yet.
        return Ok(web::Json(RetrieveResponse { results: Vec::new() }));
    }
    drop(conn);
    let index = state.indexes.source(*source_id)?;
    let catalog = index.refresh(&state.pool, SYNC_WAIT).await?;
    let repositories: BTreeSet<Uuid> = request.repository_ids.iter().copied().collect();
    // What chooses the files: the repositories, in order, and the filter as JSON (its objects'
    // keys in order).
    let key = format!(
        "{}|{}",
        repositories.iter().map(Uuid::to_string).collect::<Vec<_>>().join(","),
        request.filter.as_ref().map(Value::to_string).unwrap_or_default()
    );
    let mut allowed = index.allowed(&catalog, &key, |file| {
        repositories.contains(&file.repository_id)
            && filter.as_ref().is_none_or(|filter| filter.matches(&file.metadata))
    });
    if !request.exclude_file_ids.is_empty() {
        // Rare (dokko-api asking again without files it found deleted): not cached.
        let excluded: HashSet<Uuid> = request.exclude_file_ids.iter().copied().collect();
        allowed = Arc::new(OrdSet::new(catalog.files.iter().filter_map(|(ord, file)| {
            (u64::try_from(*ord).is_ok_and(|o| allowed.contains(o)) && !excluded.contains(&file.file_id))
                .then_some(*ord)
        })));
    }
    let top_k = request.top_k as usize;
    let hits = search(&state, &index, &request.query, request.search_type, top_k, allowed).await?;
    let hits = fill_content(&state.pool, hits).await?;
    let results = hits
        .into_iter()
        .filter_map(|hit| {
            let file = catalog.files.get(&hit.file_ord)?;
            Some(RetrievedChunk {
                content: hit.content?,
                score: f64::from(hit.score),
                file_id: file.file_id,
                repository_id: file.repository_id,
                key: file.path.clone(),
                chunk_index: hit.position,
                metadata: file.metadata.clone(),
            })
        })
        .collect();
    Ok(web::Json(RetrieveResponse { results }))
}

/// The best `top_k` chunks among `allowed` by `search_type`.
async fn search(
    state: &AppState,
    index: &SourceIndex,
    query: &str,
    search_type: SearchType,
    top_k: usize,
    allowed: Arc<OrdSet>,
) -> Result<Vec<Hit>, ApiError> {
    if allowed.is_empty() {
        return Ok(Vec::new());
    }
    let query_vector = match (search_type, &state.embedder) {
        (SearchType::Keyword, _) | (SearchType::Hybrid, None) => None,
        (SearchType::Semantic, None) => return Err(ApiError::BadRequest(NO_EMBEDDINGS.into())),
        (SearchType::Semantic, Some(embedder)) => {
            let mut vectors = embedder
                .embed(&[query.to_owned()])
                .await
                .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("query embedding failed")))?;
            Some(vectors.pop().ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no vector for the query")))?)
        }
        (SearchType::Hybrid, Some(embedder)) => match embedder.embed(&[query.to_owned()]).await {
            Ok(mut vectors) => vectors.pop(),
            Err(e) => {
                tracing::warn!(error = %e, "query embedding failed; answering with keyword search alone");
                None
            }
        },
    };
    Ok(match (search_type, query_vector) {
        (SearchType::Semantic, Some(vector)) => index.nearest(&vector, top_k, &allowed),
        (SearchType::Hybrid, Some(vector)) => {
            let depth = (top_k * 4).max(FUSION_DEPTH);
            let keyword = index.keyword(query, depth, allowed.clone()).await?;
            let nearest = index.nearest(&vector, depth, &allowed);
            fuse(&[keyword, nearest], top_k)
        }
        _ => index.keyword(query, top_k, allowed).await?,
    })
}

/// Reciprocal rank fusion of several rankings: each chunk scores the sum of `1 / (60 + rank)`
/// over the rankings it appears in.
fn fuse(rankings: &[Vec<Hit>], limit: usize) -> Vec<Hit> {
    let mut fused: HashMap<(i64, i32), Hit> = HashMap::new();
    for ranking in rankings {
        for (rank, hit) in ranking.iter().enumerate() {
            let score = 1.0 / (RRF_K + rank as f64 + 1.0);
            let entry = fused.entry((hit.file_ord, hit.position)).or_insert_with(|| Hit { score: 0.0, ..hit.clone() });
            entry.score += score as f32;
            if entry.content.is_none() {
                entry.content.clone_from(&hit.content);
            }
        }
    }
    let mut hits: Vec<Hit> = fused.into_values().collect();
    hits.sort_by(|a, b| {
        b.score.total_cmp(&a.score).then(a.file_ord.cmp(&b.file_ord)).then(a.position.cmp(&b.position))
    });
    hits.truncate(limit);
    hits
}

/// Reads the text of hits that came from vector search alone.
async fn fill_content(pool: &db::Pool, mut hits: Vec<Hit>) -> Result<Vec<Hit>, ApiError> {
    let missing: Vec<i64> = hits.iter().filter(|h| h.content.is_none()).map(|h| h.file_ord).collect();
    if missing.is_empty() {
        return Ok(hits);
    }
    let mut conn = db::conn(pool).await?;
    let rows: Vec<(i64, i32, String)> = chunks::table
        .filter(chunks::file_ord.eq_any(&missing))
        .select((chunks::file_ord, chunks::position, chunks::content))
        .load(&mut conn)
        .await?;
    let texts: HashMap<(i64, i32), String> = rows.into_iter().map(|(ord, pos, text)| ((ord, pos), text)).collect();
    for hit in hits.iter_mut().filter(|h| h.content.is_none()) {
        hit.content = texts.get(&(hit.file_ord, hit.position)).cloned();
    }
    Ok(hits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(ord: i64, position: i32) -> Hit {
        Hit { score: 0.0, file_ord: ord, position, content: Some(format!("{ord}:{position}")) }
    }

    #[test]
    fn fusion_rewards_agreement_between_rankings() {
        let keyword = vec![hit(1, 0), hit(2, 0), hit(3, 0)];
        let vector = vec![hit(3, 0), hit(4, 0), hit(2, 0)];
        let fused = fuse(&[keyword, vector], 3);
        let order: Vec<i64> = fused.iter().map(|h| h.file_ord).collect();
        // 3 and 2 appear in both rankings; 3 ranks 1st and 3rd, 2 ranks 2nd and 3rd.
        assert_eq!(order, [3, 2, 1]);
        assert!(fused[0].score > fused[1].score);
    }
}
