//! Reading files' bytes from object storage (rust-s3), where dokko-api put them. dokko-ingest
//! only reads; dokko-api's file list names the bucket and each file's object key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use s3::creds::Credentials;
use s3::error::S3Error;
use s3::{Bucket, Region};
use service_kit::settings::Secret;
use service_kit::{Env, SettingsError};

/// Where object storage is and how to sign for it (the same variables as dokko-api's).
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// `S3_ENDPOINT`; unset: AWS S3 in `S3_REGION`.
    pub endpoint: Option<String>,
    /// `S3_REGION`, default `us-east-1`.
    pub region: String,
    /// `S3_ACCESS_KEY_ID` (required).
    pub access_key: Secret<String>,
    /// `S3_SECRET_ACCESS_KEY` (required).
    pub secret_key: Secret<String>,
    /// `S3_PATH_STYLE`, default true when an endpoint is set.
    pub path_style: bool,
    /// `S3_TIMEOUT_SECS`, default 60: the limit of one download.
    pub timeout: Duration,
}

impl S3Settings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let endpoint = match env.get("S3_ENDPOINT").map(str::trim) {
            Some(set) if !set.is_empty() => Some(env.http_url_or("S3_ENDPOINT", set)?),
            _ => None,
        };
        Ok(Self {
            path_style: env.flag_or("S3_PATH_STYLE", endpoint.is_some())?,
            endpoint,
            region: env.string_or("S3_REGION", "us-east-1"),
            access_key: env.required_secret("S3_ACCESS_KEY_ID")?,
            secret_key: env.required_secret("S3_SECRET_ACCESS_KEY")?,
            timeout: env.seconds_or("S3_TIMEOUT_SECS", 60)?,
        })
    }
}

/// Why an object could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The object is not there (the file changed or went after the listing): the file fails.
    #[error("the file's object is missing from storage")]
    Missing,
    /// Larger than the limit: the file fails.
    #[error("the file is larger than the {0}-byte limit")]
    TooLarge(u64),
    /// Storage refused or could not be reached: the job cannot go on.
    #[error("object storage failed: {0}")]
    Unavailable(String),
}

#[derive(Clone)]
pub struct Storage {
    region: Region,
    credentials: Credentials,
    path_style: bool,
    timeout: Duration,
    clients: Arc<Mutex<HashMap<String, Box<Bucket>>>>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage").field("region", &self.region).finish_non_exhaustive()
    }
}

impl Storage {
    pub fn new(settings: &S3Settings) -> anyhow::Result<Self> {
        let region = match &settings.endpoint {
            Some(endpoint) => {
                Region::Custom { region: settings.region.clone(), endpoint: endpoint.trim_end_matches('/').to_owned() }
            }
            None => settings.region.parse().map_err(|e| anyhow::anyhow!("S3_REGION: {e}"))?,
        };
        let credentials =
            Credentials::new(Some(settings.access_key.expose()), Some(settings.secret_key.expose()), None, None, None)?;
        Ok(Self {
            region,
            credentials,
            path_style: settings.path_style,
            timeout: settings.timeout,
            clients: Arc::default(),
        })
    }

    fn bucket(&self, name: &str) -> Result<Box<Bucket>, FetchError> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(bucket) = clients.get(name) {
            return Ok(bucket.clone());
        }
        let unavailable = |e: S3Error| FetchError::Unavailable(e.to_string());
        let bucket = Bucket::new(name, self.region.clone(), self.credentials.clone()).map_err(unavailable)?;
        let bucket = if self.path_style { bucket.with_path_style() } else { bucket };
        let bucket = bucket.with_request_timeout(self.timeout).map_err(unavailable)?;
        clients.insert(name.to_owned(), bucket.clone());
        Ok(bucket)
    }

    /// The object's bytes, refusing more than `limit`.
    pub async fn get(&self, bucket: &str, key: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
        let response = match self.bucket(bucket)?.get_object_stream(key).await {
            Ok(response) => response,
            Err(S3Error::HttpFailWithBody(404, _)) => return Err(FetchError::Missing),
            Err(e) => return Err(FetchError::Unavailable(e.to_string())),
        };
        let mut stream = response.bytes;
        let mut bytes = Vec::new();
        while let Some(part) = stream.next().await {
            let part = part.map_err(|e| FetchError::Unavailable(e.to_string()))?;
            if (bytes.len() + part.len()) as u64 > limit {
                return Err(FetchError::TooLarge(limit));
            }
            bytes.extend_from_slice(&part);
        }
        Ok(bytes)
    }
}
