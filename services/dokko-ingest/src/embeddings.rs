//! Optional embeddings: an OpenAI-compatible endpoint (`POST {EMBEDDINGS_URL}` with
//! `{"model", "input": [..]}`, answering `{"data": [{"index", "embedding"}]}`). With it, chunks
//! are embedded as they are indexed and retrieval fuses vector and keyword rankings; without
//! it, search is keyword (BM25) only.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use service_kit::settings::Secret;

#[derive(Debug, Clone)]
pub struct EmbeddingSettings {
    /// `EMBEDDINGS_URL`: the full URL, e.g. `https://api.openai.com/v1/embeddings`.
    pub url: String,
    /// `EMBEDDINGS_MODEL`, default `text-embedding-3-small`.
    pub model: String,
    /// `EMBEDDINGS_API_KEY`: sent as a bearer token when set.
    pub api_key: Option<Secret<String>>,
    /// `EMBEDDINGS_TIMEOUT_SECS`, default 60.
    pub timeout: Duration,
    /// `EMBEDDINGS_BATCH`, default 64: inputs per request.
    pub batch: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("embeddings endpoint failed: {0}")]
pub struct EmbedError(String);

#[derive(Serialize)]
struct EmbedRequest<'a> {
    model: &'a str,
    input: &'a [String],
}

#[derive(Deserialize)]
struct EmbedResponse {
    data: Vec<EmbedItem>,
}

#[derive(Deserialize)]
struct EmbedItem {
    index: usize,
    embedding: Vec<f32>,
}

/// Attempts of one request before giving up.
const ATTEMPTS: u32 = 3;

#[derive(Debug, Clone)]
pub struct Embedder {
    http: reqwest::Client,
    settings: EmbeddingSettings,
}

impl Embedder {
    pub fn new(settings: EmbeddingSettings) -> anyhow::Result<Self> {
        let http =
            reqwest::Client::builder().timeout(settings.timeout).connect_timeout(Duration::from_secs(5)).build()?;
        Ok(Self { http, settings })
    }

    /// One vector per text, in order.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut vectors = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.settings.batch.max(1)) {
            vectors.extend(self.embed_batch(batch).await?);
        }
        Ok(vectors)
    }

    async fn embed_batch(&self, batch: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut delay = Duration::from_millis(500);
        let mut attempt = 1;
        loop {
            match self.request(batch).await {
                Ok(vectors) => return Ok(vectors),
                Err((retryable, reason)) if retryable && attempt < ATTEMPTS => {
                    tracing::info!(attempt, reason, "embeddings request failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 4;
                    attempt += 1;
                }
                Err((_, reason)) => return Err(EmbedError(reason)),
            }
        }
    }

    /// One request; on failure, whether a retry may help and why.
    async fn request(&self, batch: &[String]) -> Result<Vec<Vec<f32>>, (bool, String)> {
        let mut request =
            self.http.post(&self.settings.url).json(&EmbedRequest { model: &self.settings.model, input: batch });
        if let Some(key) = &self.settings.api_key {
            request = request.bearer_auth(key.expose());
        }
        let response = request.send().await.map_err(|e| (true, e.to_string()))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            let retryable = status.as_u16() == 429 || status.is_server_error();
            return Err((retryable, format!("HTTP {status}: {}", body.chars().take(300).collect::<String>())));
        }
        let mut answer: EmbedResponse =
            response.json().await.map_err(|e| (false, format!("unreadable answer: {e}")))?;
        if answer.data.len() != batch.len() {
            return Err((false, format!("{} vectors for {} inputs", answer.data.len(), batch.len())));
        }
        answer.data.sort_by_key(|item| item.index);
        Ok(answer.data.into_iter().map(|item| item.embedding).collect())
    }
}
