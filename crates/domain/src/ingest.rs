//! What dokko-api and dokko-ingest say to each other and, through dokko-api, to clients: the
//! ingestion job's status (the seed's Document Processing API), the per-file outcomes, the
//! retrieval request and its answer, and the file list dokko-ingest pulls from dokko-api.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

/// An ingestion job: `POST …/process` (202) and `GET …/process/status` (200).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngestionJob {
    /// `RUNNING`, `COMPLETED` or `FAILED`.
    pub status: String,
    pub statistics: Statistics,
    #[serde(with = "crate::timestamp::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: OffsetDateTime,
    /// The last progress, or when the job ended.
    #[serde(with = "crate::timestamp::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    /// The job's id (not in the original contract).
    pub ingestion_job_id: Uuid,
    /// Why the job FAILED; empty otherwise. Files that could not be read do not fail the job:
    /// they are counted in `numberOfDocumentsFailed` and listed by `GET …/process/files`.
    pub failure_reasons: Vec<String>,
}

/// The job's counters, with the seed's names.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Statistics {
    /// Every file the source held when the job listed it.
    pub number_of_documents_scanned: i64,
    /// Files indexed for the first time.
    pub number_of_new_documents_indexed: i64,
    /// Files whose content changed (re-extracted) or whose metadata alone changed (updated
    /// without re-extraction).
    pub number_of_modified_documents_indexed: i64,
    /// Files gone from the source, removed from the index.
    pub number_of_documents_deleted: i64,
    /// Files that could not be read (see the per-file listing for why).
    pub number_of_documents_failed: i64,
    /// Embedding progress of the source (not in the original contract; absent when search is
    /// keyword only): chunks whose vector is computed. Vectors are computed in the background,
    /// after the job; each chunk is searchable by keyword at once and by meaning once it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks_embedded: Option<i64>,
    /// Chunks of the source still waiting for their vector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks_to_embed: Option<i64>,
}

/// What the last job did with one file.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobFile {
    pub file_id: Uuid,
    pub repository_id: Uuid,
    /// The file's path in its repository.
    pub key: String,
    /// `pending`, `new`, `modified`, `metadata` (metadata alone changed), `unchanged`,
    /// `deleted` or `failed`.
    pub status: String,
    /// Why it failed (`failed` only).
    pub reason: Option<String>,
}

/// `POST /api/v1/document-sources/{id}/retrieve`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrieveRequest {
    /// What to search for (1 to 10,000 characters).
    #[schema(min_length = 1, max_length = 10000)]
    pub query: String,
    /// How many chunks to return, 1 to 100; default 10.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100)]
    pub top_k: Option<u32>,
    /// A metadata filter (`equals`, `notEquals`, `greaterThan`, `greaterThanOrEquals`,
    /// `lessThan`, `lessThanOrEquals`, `in`, `notIn`, `startsWith`, `listContains`,
    /// `stringContains`, `andAll`, `orAll`), e.g.
    /// `{"andAll": [{"equals": {"key": "department", "value": "legal"}}, {"greaterThan": {"key": "year", "value": 2020}}]}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
    /// Only repositories carrying at least one of these permissions are searched. Absent: no
    /// permission restriction; an empty list matches no repository.
    #[serde(default)]
    pub permission_ids: Option<Vec<Uuid>>,
    /// Only these repositories are searched (ids of other organisations match nothing).
    #[serde(default)]
    pub repository_ids: Option<Vec<Uuid>>,
    /// How to rank, like Bedrock's `overrideSearchType`; default `HYBRID`.
    #[serde(default)]
    pub search_type: SearchType,
}

/// How retrieval ranks chunks (Bedrock's `overrideSearchType`, plus keyword-only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SearchType {
    /// Keyword (BM25) and vector rankings fused by reciprocal rank fusion; keyword alone while
    /// no embedding model is configured, and files whose vectors are still being computed are
    /// found by their keywords meanwhile.
    #[default]
    Hybrid,
    /// Vector (embedding) search alone: finds by meaning, only among chunks whose vectors
    /// exist. Refused (400) when no embedding model is configured.
    Semantic,
    /// Keyword (BM25) search alone.
    Keyword,
}

/// The chunks found, best first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RetrieveResponse {
    pub results: Vec<RetrievedChunk>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RetrievedChunk {
    /// The chunk's text.
    pub content: String,
    /// Relevance, higher is better: BM25 for `KEYWORD`, cosine similarity for `SEMANTIC`, the
    /// fused reciprocal-rank score for `HYBRID` (BM25 when no vectors take part). Comparable
    /// within one answer only.
    pub score: f64,
    pub file_id: Uuid,
    pub repository_id: Uuid,
    /// The file's path in its repository.
    pub key: String,
    /// The chunk's position in its file (0 for the first).
    pub chunk_index: i32,
    /// The file's metadata (its own keys and the system's).
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
}

/// dokko-api to dokko-ingest: retrieval within the repositories the caller may search.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SearchRequest {
    pub tenant_id: Uuid,
    pub query: String,
    pub top_k: u32,
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
    pub repository_ids: Vec<Uuid>,
    #[serde(default)]
    pub search_type: SearchType,
    /// Files never to answer with: dokko-api found them deleted (or no longer allowed) in an
    /// earlier answer to the same query and asks again for the rest.
    #[serde(default)]
    pub exclude_file_ids: Vec<Uuid>,
}

/// dokko-api to dokko-ingest: start a job for a source.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StartJob {
    pub tenant_id: Uuid,
    pub bucket: String,
}

/// dokko-ingest from dokko-api: one page of a source's files, in file id order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FilePage {
    pub tenant_id: Uuid,
    pub bucket: String,
    pub files: Vec<SourceFile>,
    /// The cursor of the next page (`after=`), or null on the last.
    pub next: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceFile {
    pub file_id: Uuid,
    pub repository_id: Uuid,
    pub path: String,
    /// SHA-256 of the bytes (the file's ETag).
    pub sha256: String,
    pub size: i64,
    pub object_key: String,
    /// The file's metadata: its own keys and the system's.
    pub metadata: Map<String, Value>,
}
