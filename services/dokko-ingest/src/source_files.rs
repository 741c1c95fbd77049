//! The file list of a document source, pulled from dokko-api's internal endpoint
//! `GET /internal/v1/document-sources/{id}/files?after=&limit=` with a service token: one page
//! at a time, in file id order, retried when the failure may pass. The end of each job is
//! reported back (`PUT /internal/v1/document-sources/{id}/processing`), so dokko-api shows it on
//! the source's repositories.

use std::sync::Arc;
use std::time::Duration;

use auth::service_token::ServiceTokens;
use domain::ingest::{FilePage, IngestionJob};
use uuid::Uuid;

/// Why a page could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// dokko-api no longer knows the source (deleted with its tenant).
    #[error("the document source no longer exists")]
    SourceGone,
    #[error("dokko-api could not list the files: {0}")]
    Failed(String),
}

#[derive(Clone)]
pub struct SourceFiles {
    http: reqwest::Client,
    base_url: String,
    tokens: Arc<ServiceTokens>,
}

impl std::fmt::Debug for SourceFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceFiles").field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

/// Attempts of one page before the job gives up.
const ATTEMPTS: u32 = 4;

impl SourceFiles {
    pub fn new(base_url: &str, tokens: Arc<ServiceTokens>, timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(timeout).connect_timeout(Duration::from_secs(5)).build()?;
        Ok(Self { http, base_url: base_url.trim_end_matches('/').to_owned(), tokens })
    }

    /// The page of `source_id`'s files after `after` (the first page without).
    pub async fn page(&self, source_id: Uuid, after: Option<Uuid>, limit: u32) -> Result<FilePage, ListError> {
        let mut delay = Duration::from_millis(250);
        let mut attempt = 1;
        loop {
            match self.try_page(source_id, after, limit).await {
                Ok(page) => return Ok(page),
                Err(ListError::Failed(reason)) if attempt < ATTEMPTS => {
                    tracing::info!(%source_id, attempt, reason, "listing files failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 4;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Tells dokko-api how a job of `source_id` ended (tried twice).
    pub async fn report_job(&self, source_id: Uuid, job: &IngestionJob) -> Result<(), String> {
        let url = format!("{}/internal/v1/document-sources/{source_id}/processing", self.base_url);
        let mut outcome = Ok(());
        for attempt in 0..2 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let token = self.tokens.bearer().map_err(|e| e.to_string())?;
            outcome = match self.http.put(&url).bearer_auth(token).json(job).send().await {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => Err(format!("HTTP {}", response.status().as_u16())),
                Err(e) => Err(e.to_string()),
            };
        }
        outcome
    }

    async fn try_page(&self, source_id: Uuid, after: Option<Uuid>, limit: u32) -> Result<FilePage, ListError> {
        let token = self.tokens.bearer().map_err(|e| ListError::Failed(e.to_string()))?;
        let url = format!("{}/internal/v1/document-sources/{source_id}/files", self.base_url);
        let mut query = vec![("limit", limit.to_string())];
        if let Some(after) = after {
            query.push(("after", after.to_string()));
        }
        let response = self
            .http
            .get(url)
            .bearer_auth(token)
            .query(&query)
            .send()
            .await
            .map_err(|e| ListError::Failed(e.to_string()))?;
        match response.status().as_u16() {
            200 => response.json::<FilePage>().await.map_err(|e| ListError::Failed(format!("unreadable answer: {e}"))),
            404 => Err(ListError::SourceGone),
            status => {
                let body = response.text().await.unwrap_or_default();
                Err(ListError::Failed(format!("HTTP {status}: {}", body.chars().take(300).collect::<String>())))
            }
        }
    }
}
