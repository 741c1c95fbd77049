//! Embeddings, from one of two interchangeable engines (the same model gives the same vectors
//! either way):
//! - **the embedded model** (default): sentence-transformers all-MiniLM-L6-v2 run in-process on
//!   the CPU by the `embed` crate, from the folder `EMBEDDINGS_MODEL_DIR` (the launcher and the
//!   container image put it there; the service itself never downloads it);
//! - **an OpenAI-compatible endpoint** (`EMBEDDINGS_URL`: `POST` `{"model", "input": [..]}`,
//!   answering `{"data": [{"index", "embedding"}]}`), e.g. Hugging Face's
//!   text-embeddings-inference serving the same model on nodes of its own (see `deploy/`);
//! - or none (`EMBEDDINGS=none`): keyword search only.
//!
//! When the embedded model cannot be loaded (its folder is missing: no registry was reachable
//! to fetch it), the service runs keyword-only and says so once in its log and in
//! [`EmbeddingStatus`], which dokko-api shows on the document source.
//!
//! Chunks are embedded in the background ([`crate::vectors`]), not while a job indexes them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use service_kit::settings::Secret;
use service_kit::{Env, SettingsError};

/// Which engine computes the vectors.
#[derive(Debug, Clone)]
pub enum EmbeddingSettings {
    /// The embedded model, loaded from this folder.
    Embedded { model_dir: PathBuf, batch: usize },
    /// An OpenAI-compatible endpoint.
    Endpoint(EndpointSettings),
    /// Keyword search only.
    None,
}

#[derive(Debug, Clone)]
pub struct EndpointSettings {
    /// `EMBEDDINGS_URL`: the full URL, e.g. `http://text-embeddings:8080/v1/embeddings`.
    pub url: String,
    /// `EMBEDDINGS_MODEL`, default `all-MiniLM-L6-v2`: the model name sent (and recorded with
    /// the vectors: changing it computes every vector again).
    pub model: String,
    /// `EMBEDDINGS_API_KEY`: sent as a bearer token when set.
    pub api_key: Option<Secret<String>>,
    /// `EMBEDDINGS_TIMEOUT_SECS`, default 60.
    pub timeout: Duration,
    /// `EMBEDDINGS_BATCH`, default 32: inputs per request.
    pub batch: usize,
}

impl EmbeddingSettings {
    /// `EMBEDDINGS` (`embedded`, `endpoint` or `none`; default `endpoint` when `EMBEDDINGS_URL`
    /// is set, `embedded` otherwise) and the engine's own settings. `data_dir`: where the model
    /// folder is by default.
    pub fn from_env(env: &Env, data_dir: &std::path::Path) -> Result<Self, SettingsError> {
        let url = env.get("EMBEDDINGS_URL").map(str::trim).filter(|u| !u.is_empty());
        let engine = env.string_or("EMBEDDINGS", if url.is_some() { "endpoint" } else { "embedded" });
        let batch = env.number_or("EMBEDDINGS_BATCH", 32, 1..=2048)?;
        match engine.as_str() {
            "embedded" => Ok(Self::Embedded {
                model_dir: env
                    .get("EMBEDDINGS_MODEL_DIR")
                    .filter(|d| !d.is_empty())
                    .map_or_else(|| data_dir.join("models").join(MODEL_NAME), PathBuf::from),
                batch,
            }),
            "endpoint" => {
                let Some(url) = url else {
                    return Err(SettingsError::new("EMBEDDINGS_URL", "is required when EMBEDDINGS=endpoint"));
                };
                Ok(Self::Endpoint(EndpointSettings {
                    url: env.http_url_or("EMBEDDINGS_URL", url)?,
                    model: env.string_or("EMBEDDINGS_MODEL", MODEL_NAME),
                    api_key: env.get("EMBEDDINGS_API_KEY").filter(|k| !k.is_empty()).map(|k| Secret::new(k.to_owned())),
                    timeout: env.seconds_or("EMBEDDINGS_TIMEOUT_SECS", 60)?,
                    batch,
                }))
            }
            "none" => Ok(Self::None),
            other => Err(SettingsError::new("EMBEDDINGS", format!("{other:?} is not embedded, endpoint or none"))),
        }
    }

    /// Chunks embedded per batch.
    pub fn batch(&self) -> usize {
        match self {
            Self::Embedded { batch, .. } => *batch,
            Self::Endpoint(endpoint) => endpoint.batch,
            Self::None => 1,
        }
    }
}

/// The name the embedded model records with its vectors (and the endpoint's default).
pub const MODEL_NAME: &str = embed::MODEL_NAME;

/// What the service embeds with, as the source's details show it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EmbeddingStatus {
    /// `embedded`, `endpoint` or `none`.
    pub engine: String,
    /// The model whose vectors search uses; null when search is keyword only.
    pub model: Option<String>,
    /// Why search is keyword only, when it is.
    pub reason: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("embedding failed: {0}")]
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

/// A loaded engine.
#[derive(Clone)]
pub enum Embedder {
    Embedded(Arc<embed::Model>),
    Endpoint(Endpoint),
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Embedder").field(&self.model()).finish()
    }
}

impl Embedder {
    /// The engine `settings` name, loaded; `None` (and why) when search must be keyword only.
    /// Loading the embedded model reads some 90 MB: call it off the async runtime.
    pub fn load(settings: &EmbeddingSettings) -> anyhow::Result<(Option<Self>, EmbeddingStatus)> {
        match settings {
            EmbeddingSettings::None => Ok((
                None,
                EmbeddingStatus {
                    engine: "none".into(),
                    model: None,
                    reason: Some("embeddings are off (EMBEDDINGS=none)".into()),
                },
            )),
            EmbeddingSettings::Endpoint(endpoint) => {
                let status =
                    EmbeddingStatus { engine: "endpoint".into(), model: Some(endpoint.model.clone()), reason: None };
                Ok((Some(Self::Endpoint(Endpoint::new(endpoint.clone())?)), status))
            }
            EmbeddingSettings::Embedded { model_dir, .. } => match embed::Model::load(model_dir) {
                Ok(model) => {
                    let status = EmbeddingStatus {
                        engine: "embedded".into(),
                        model: Some(model.name().to_owned()),
                        reason: None,
                    };
                    Ok((Some(Self::Embedded(Arc::new(model))), status))
                }
                Err(e) => {
                    let reason = format!(
                        "the embedded model is unavailable in {} ({e:#}); search is keyword only. Fetch it with \
                         the launcher (cargo run -p stack) or set EMBEDDINGS_URL",
                        model_dir.display()
                    );
                    Ok((None, EmbeddingStatus { engine: "embedded".into(), model: None, reason: Some(reason) }))
                }
            },
        }
    }

    /// The model's name, recorded with the vectors it makes.
    pub fn model(&self) -> &str {
        match self {
            Self::Embedded(model) => model.name(),
            Self::Endpoint(endpoint) => &endpoint.settings.model,
        }
    }

    /// One vector per text, in order. The embedded model runs on the blocking pool, one batch
    /// per call.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        match self {
            Self::Embedded(model) => {
                let model = model.clone();
                let texts = texts.to_vec();
                tokio::task::spawn_blocking(move || {
                    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                    model.embed(&refs)
                })
                .await
                .map_err(|e| EmbedError(e.to_string()))?
                .map_err(|e| EmbedError(format!("{e:#}")))
            }
            Self::Endpoint(endpoint) => endpoint.embed(texts).await,
        }
    }
}

/// An OpenAI-compatible embeddings endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    http: reqwest::Client,
    settings: EndpointSettings,
}

impl Endpoint {
    pub fn new(settings: EndpointSettings) -> anyhow::Result<Self> {
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
                Err((_, reason)) => return Err(EmbedError(format!("the embeddings endpoint: {reason}"))),
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
