//! Object storage through rust-s3, shared by dokko-api (which writes files' bytes) and
//! dokko-ingest (which reads them): any S3-compatible service (AWS S3, Garage, MinIO, Ceph, the
//! in-process s3s server of the test kit and the local stack).
//!
//! [`S3Settings`] reads where the store is and how to sign for it from the environment (the same
//! variables in both services); [`Storage`] keeps one client per bucket (each with its HTTP
//! connection pool, kept alive between requests) and streams objects in and out: uploads of any
//! length in bounded memory ([`Storage::put_stream`]), downloads as a stream
//! ([`Storage::get_stream`]) or whole up to a limit ([`Storage::get_bytes`]).

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use hmac::Mac;
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, ETAG, HOST, HeaderMap, HeaderName, HeaderValue};
use s3::creds::Credentials;
use s3::error::S3Error;
use s3::request::request_trait::DataStream;
use s3::serde_types::Part;
use s3::signing;
use s3::{Bucket, BucketConfiguration, Region};
use service_kit::settings::Secret;
use service_kit::{Env, SettingsError};
use time::OffsetDateTime;
use tokio::task::JoinSet;

/// Where object storage is and how to sign for it.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// `S3_ENDPOINT`: the service's URL (`http://127.0.0.1:9000`, `https://s3.eu-west-1.amazonaws.com`, …).
    /// Unset: AWS S3 in `S3_REGION`.
    pub endpoint: Option<String>,
    /// `S3_PUBLIC_ENDPOINT` (dokko-api, [`S3Settings::with_upload_env`]): the endpoint presigned
    /// download URLs name, when clients reach object storage at another address than the service
    /// does (an in-cluster MinIO behind a public hostname). Default: `S3_ENDPOINT`.
    pub public_endpoint: Option<String>,
    /// `S3_REGION`, default `us-east-1`.
    pub region: String,
    /// `S3_ACCESS_KEY_ID` (required).
    pub access_key: Secret<String>,
    /// `S3_SECRET_ACCESS_KEY` (required).
    pub secret_key: Secret<String>,
    /// `S3_PATH_STYLE`: path-style addressing (`endpoint/bucket/key`), default true when an
    /// endpoint is set (MinIO, Garage, Ceph), false for AWS.
    pub path_style: bool,
    /// `S3_TIMEOUT_SECS`: the limit of one S3 request (the default is the service's).
    pub timeout: Duration,
    /// `S3_UPLOAD_CONCURRENCY` (dokko-api, [`S3Settings::with_upload_env`]), default 2: 8 MiB
    /// parts of one upload in flight at once (memory per upload is that many parts and the one
    /// being read).
    pub upload_concurrency: usize,
}

impl S3Settings {
    /// The connection: `S3_ENDPOINT`, `S3_REGION`, `S3_ACCESS_KEY_ID`, `S3_SECRET_ACCESS_KEY`,
    /// `S3_PATH_STYLE` and `S3_TIMEOUT_SECS` (default `default_timeout_secs`).
    pub fn from_env(env: &Env, default_timeout_secs: u64) -> Result<Self, SettingsError> {
        let endpoint = match env.get("S3_ENDPOINT").map(str::trim) {
            Some(set) if !set.is_empty() => Some(env.http_url_or("S3_ENDPOINT", set)?),
            _ => None,
        };
        Ok(Self {
            path_style: env.flag_or("S3_PATH_STYLE", endpoint.is_some())?,
            endpoint,
            public_endpoint: None,
            region: env.string_or("S3_REGION", "us-east-1"),
            access_key: env.required_secret("S3_ACCESS_KEY_ID")?,
            secret_key: env.required_secret("S3_SECRET_ACCESS_KEY")?,
            timeout: env.seconds_or("S3_TIMEOUT_SECS", default_timeout_secs)?,
            upload_concurrency: 2,
        })
    }

    /// Adds what a service that writes and presigns reads: `S3_PUBLIC_ENDPOINT` and
    /// `S3_UPLOAD_CONCURRENCY`.
    pub fn with_upload_env(mut self, env: &Env) -> Result<Self, SettingsError> {
        self.public_endpoint = match env.get("S3_PUBLIC_ENDPOINT") {
            Some(set) => Some(env.http_url_or("S3_PUBLIC_ENDPOINT", set)?),
            None => None,
        };
        self.upload_concurrency = env.number_or("S3_UPLOAD_CONCURRENCY", 2, 1..=16)?;
        Ok(self)
    }
}

/// The size of the parts of a multipart upload (and the largest object written in one PUT).
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// `x-amz-content-sha256` of a request whose body is not hashed into its signature.
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Splits a stream of chunks into parts of [`PART_SIZE`] bytes (the last one shorter).
struct Parts<S> {
    body: S,
    /// What the last chunk had past the end of the previous part.
    carry: Option<Bytes>,
}

impl<S: Stream<Item = io::Result<Bytes>> + Unpin> Parts<S> {
    /// The next part: [`PART_SIZE`] bytes, fewer at the end, empty when there is no more.
    /// One copy at most (none when a part arrives as a single chunk).
    async fn next(&mut self) -> Result<Bytes, StorageError> {
        let mut chunks: Vec<Bytes> = Vec::new();
        let mut len = 0;
        while len < PART_SIZE {
            let chunk = match self.carry.take() {
                Some(chunk) => chunk,
                None => match self.body.next().await {
                    Some(chunk) => chunk.map_err(StorageError::Body)?,
                    None => break,
                },
            };
            let mut chunk = chunk;
            if len + chunk.len() > PART_SIZE {
                self.carry = Some(chunk.split_off(PART_SIZE - len));
            }
            len += chunk.len();
            if !chunk.is_empty() {
                chunks.push(chunk);
            }
        }
        Ok(match chunks.len() {
            0 => Bytes::new(),
            1 => chunks.pop().unwrap_or_default(),
            _ => {
                let mut part = BytesMut::with_capacity(len);
                for chunk in chunks {
                    part.extend_from_slice(&chunk);
                }
                part.freeze()
            }
        })
    }
}

/// PUTs of small objects still in flight: at most 8, and at most `S3_UPLOAD_CONCURRENCY` parts'
/// worth of bytes, so memory stays bounded.
#[derive(Default)]
pub struct SmallPuts {
    set: JoinSet<(String, usize, Result<(), StorageError>)>,
    bytes: usize,
    failed: Vec<(String, StorageError)>,
}

impl SmallPuts {
    const MAX_IN_FLIGHT: usize = 8;

    /// Waits until one more PUT of `len` bytes fits.
    async fn room_for(&mut self, len: usize, concurrency: usize) {
        while !self.set.is_empty()
            && (self.set.len() >= Self::MAX_IN_FLIGHT || self.bytes + len > concurrency * PART_SIZE)
        {
            self.settle_one().await;
        }
    }

    async fn settle_one(&mut self) {
        match self.set.join_next().await {
            Some(Ok((key, len, sent))) => {
                self.bytes -= len;
                if let Err(e) = sent {
                    self.failed.push((key, e));
                }
            }
            // A PUT task cannot panic; one that did is a failed PUT of an unknown key, and the
            // journal still lists that key for the sweeper.
            Some(Err(e)) => tracing::error!(error = %e, "a small-object PUT stopped"),
            None => {}
        }
    }

    /// Waits for every PUT; returns the keys whose PUT failed, with why.
    pub async fn finish(&mut self) -> Vec<(String, StorageError)> {
        while !self.set.is_empty() {
            self.settle_one().await;
        }
        std::mem::take(&mut self.failed)
    }
}

/// A storage failure: the service answers 503 and logs the cause.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Reading the bytes to store failed (the client went away, or sent more than it may).
    #[error("reading the upload failed: {0}")]
    Body(io::Error),
    #[error("object storage refused the request: HTTP {status}: {message}")]
    Refused { status: u16, message: String },
    #[error("object storage is unreachable: {0}")]
    Unreachable(String),
    #[error("object storage misconfigured: {0}")]
    Config(String),
}

impl From<S3Error> for StorageError {
    fn from(error: S3Error) -> Self {
        match error {
            S3Error::HttpFailWithBody(status, body) => {
                StorageError::Refused { status, message: s3_error_code(&body).unwrap_or(body) }
            }
            S3Error::Region(_) | S3Error::Credentials(_) | S3Error::UrlParse(_) => {
                StorageError::Config(error.to_string())
            }
            other => StorageError::Unreachable(other.to_string()),
        }
    }
}

/// The `<Code>` of an S3 XML error body.
fn s3_error_code(body: &str) -> Option<String> {
    let start = body.find("<Code>")? + "<Code>".len();
    let end = body[start..].find("</Code>")? + start;
    Some(body[start..end].to_owned())
}

/// Why an object could not be read whole ([`Storage::get_bytes`]).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The object is not there.
    #[error("the file's object is missing from storage")]
    Missing,
    /// Larger than the limit.
    #[error("the file is larger than the {0}-byte limit")]
    TooLarge(u64),
    /// Storage refused or could not be reached.
    #[error("object storage failed: {0}")]
    Unavailable(String),
}

/// The object store of the service.
#[derive(Clone)]
pub struct Storage {
    region: Region,
    /// The region presigned URLs are made for (the public endpoint, when set).
    presign_region: Region,
    credentials: Credentials,
    path_style: bool,
    timeout: Duration,
    upload_concurrency: usize,
    /// One client per bucket (each holds an HTTP connection pool), made on first use.
    clients: Arc<Mutex<HashMap<String, Box<Bucket>>>>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .finish_non_exhaustive()
    }
}

impl Storage {
    pub fn new(settings: &S3Settings) -> Result<Self, StorageError> {
        let region = match &settings.endpoint {
            Some(endpoint) => {
                Region::Custom { region: settings.region.clone(), endpoint: endpoint.trim_end_matches('/').to_owned() }
            }
            None => settings.region.parse().map_err(|e| StorageError::Config(format!("S3_REGION: {e}")))?,
        };
        let presign_region = match &settings.public_endpoint {
            Some(endpoint) => {
                Region::Custom { region: settings.region.clone(), endpoint: endpoint.trim_end_matches('/').to_owned() }
            }
            None => region.clone(),
        };
        let credentials =
            Credentials::new(Some(settings.access_key.expose()), Some(settings.secret_key.expose()), None, None, None)
                .map_err(|e| StorageError::Config(e.to_string()))?;
        Ok(Self {
            region,
            presign_region,
            credentials,
            path_style: settings.path_style,
            timeout: settings.timeout,
            upload_concurrency: settings.upload_concurrency,
            clients: Arc::default(),
        })
    }

    /// A client for `name`.
    pub fn bucket(&self, name: &str) -> Result<Box<Bucket>, StorageError> {
        self.client(name.to_owned(), name, &self.region)
    }

    /// The client cached under `cache_key`, made for bucket `name` in `region` on first use.
    fn client(&self, cache_key: String, name: &str, region: &Region) -> Result<Box<Bucket>, StorageError> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(bucket) = clients.get(&cache_key) {
            return Ok(bucket.clone());
        }
        let bucket = Bucket::new(name, region.clone(), self.credentials.clone())?;
        let bucket = if self.path_style { bucket.with_path_style() } else { bucket };
        let bucket = bucket.with_request_timeout(self.timeout)?;
        clients.insert(cache_key, bucket.clone());
        Ok(bucket)
    }

    /// Streams `body` into `bucket/key`: one PUT when it ends within [`PART_SIZE`], otherwise a
    /// multipart upload in parts of [`PART_SIZE`] with at most `S3_UPLOAD_CONCURRENCY` parts in
    /// flight, so memory stays bounded whatever the size. Returns the bytes written. On failure
    /// nothing is left behind: a failed multipart upload is aborted.
    ///
    /// The requests are signed with an unsigned payload (`x-amz-content-sha256:
    /// UNSIGNED-PAYLOAD`), as the AWS SDKs sign streamed uploads: the caller hashes the bytes
    /// once (its SHA-256 is the file's), and neither side hashes each part again.
    ///
    /// With `small`, a body that ends within one part is not waited for: its PUT goes on in
    /// `small` (so the caller reads its next file meanwhile), and [`SmallPuts::finish`] tells
    /// how it went.
    pub async fn put_stream<S>(
        &self,
        bucket: &str,
        key: &str,
        body: S,
        content_type: &str,
        small: Option<&mut SmallPuts>,
    ) -> Result<u64, StorageError>
    where
        S: Stream<Item = io::Result<Bytes>> + Unpin,
    {
        let client = self.bucket(bucket)?;
        let mut parts = Parts { body, carry: None };
        let first = parts.next().await?;
        if first.len() < PART_SIZE {
            let size = first.len() as u64;
            match small {
                Some(small) => {
                    small.room_for(first.len(), self.upload_concurrency).await;
                    let (storage, key, content_type) = (self.clone(), key.to_owned(), content_type.to_owned());
                    let len = first.len();
                    small.bytes += len;
                    small.set.spawn(async move {
                        let sent = storage.send(&client, Method::PUT, &key, None, first, Some(&content_type)).await;
                        (key, len, sent.map(drop))
                    });
                }
                None => {
                    self.send(&client, Method::PUT, key, None, first, Some(content_type)).await?;
                }
            }
            return Ok(size);
        }
        let upload = client.initiate_multipart_upload(key, content_type).await?;
        let written = self.upload_parts(&client, key, &upload.upload_id, first, &mut parts).await;
        let completed = match written {
            Ok((etags, size)) => client
                .complete_multipart_upload(key, &upload.upload_id, etags)
                .await
                .map(|_| size)
                .map_err(StorageError::from),
            Err(e) => Err(e),
        };
        match completed {
            Ok(size) => Ok(size),
            Err(e) => {
                if let Err(abort) = client.abort_upload(key, &upload.upload_id).await {
                    tracing::warn!(bucket, key, error = %abort, "could not abort a failed multipart upload");
                }
                Err(e)
            }
        }
    }

    /// The parts of a multipart upload, `first` then the rest of `parts`, at most
    /// `upload_concurrency` in flight (each on its own task, so reading the next part from the
    /// client overlaps sending the previous ones). Returns the parts' ETags and the total size.
    async fn upload_parts<S>(
        &self,
        client: &Bucket,
        key: &str,
        upload_id: &str,
        first: Bytes,
        parts: &mut Parts<S>,
    ) -> Result<(Vec<Part>, u64), StorageError>
    where
        S: Stream<Item = io::Result<Bytes>> + Unpin,
    {
        let mut in_flight: JoinSet<Result<Part, StorageError>> = JoinSet::new();
        let mut done = Vec::new();
        let mut size = 0u64;
        let mut next = Some(first);
        let mut number = 0u32;
        loop {
            while in_flight.len() < self.upload_concurrency
                && let Some(part) = next.take()
            {
                number += 1;
                size += part.len() as u64;
                let ended = part.len() < PART_SIZE;
                let (storage, client, key, query) = (
                    self.clone(),
                    client.clone(),
                    key.to_owned(),
                    format!("partNumber={number}&uploadId={}", signing::uri_encode(upload_id, true)),
                );
                let part_number = number;
                in_flight.spawn(async move {
                    let response = storage.send(&client, Method::PUT, &key, Some(&query), part, None).await?;
                    let etag = response.headers().get(ETAG).and_then(|v| v.to_str().ok()).ok_or_else(|| {
                        StorageError::Refused { status: 200, message: "a part without an ETag".into() }
                    })?;
                    Ok(Part { part_number, etag: etag.to_owned() })
                });
                if !ended {
                    let part = parts.next().await?;
                    if !part.is_empty() {
                        next = Some(part);
                    }
                }
            }
            match in_flight.join_next().await {
                Some(Ok(part)) => done.push(part?),
                Some(Err(e)) => return Err(StorageError::Unreachable(format!("a part upload stopped: {e}"))),
                None => break,
            }
        }
        done.sort_by_key(|p| p.part_number);
        Ok((done, size))
    }

    /// One request signed with SigV4 and an unsigned payload: `PUT` of an object or a part.
    async fn send(
        &self,
        client: &Bucket,
        method: Method,
        key: &str,
        query: Option<&str>,
        body: Bytes,
        content_type: Option<&str>,
    ) -> Result<reqwest::Response, StorageError> {
        let config = |e: &dyn std::fmt::Display| StorageError::Config(e.to_string());
        let mut url = format!("{}/{}", client.url(), signing::uri_encode(key, false));
        if let Some(query) = query {
            url.push('?');
            url.push_str(query);
        }
        let url = reqwest::Url::parse(&url).map_err(|e| config(&e))?;
        let host = match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => return Err(config(&"the S3 endpoint has no host")),
        };
        let now = OffsetDateTime::now_utc();
        let date = format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        );
        let mut headers = HeaderMap::new();
        let value = |v: &str| HeaderValue::from_str(v).map_err(|e| config(&e));
        headers.insert(HOST, value(&host)?);
        headers.insert(HeaderName::from_static("x-amz-content-sha256"), HeaderValue::from_static(UNSIGNED_PAYLOAD));
        headers.insert(HeaderName::from_static("x-amz-date"), value(&date)?);
        if let Some(content_type) = content_type {
            headers.insert(CONTENT_TYPE, value(content_type)?);
        }
        if let Some(token) = self.credentials.session_token.as_ref().or(self.credentials.security_token.as_ref()) {
            headers.insert(HeaderName::from_static("x-amz-security-token"), value(token)?);
        }
        let region = client.region();
        let canonical = signing::canonical_request(method.as_str(), &url, &headers, UNSIGNED_PAYLOAD)?;
        let to_sign = signing::string_to_sign(&now, &region, &canonical)?;
        let secret = self.credentials.secret_key.as_deref().unwrap_or_default();
        let mut mac = signing::HmacSha256::new_from_slice(&signing::signing_key(&now, secret, &region, "s3")?)
            .map_err(|e| config(&e))?;
        mac.update(to_sign.as_bytes());
        let signature = hex::encode(mac.finalize().into_bytes());
        let access_key = self.credentials.access_key.as_deref().unwrap_or_default();
        let authorization = signing::authorization_header(
            access_key,
            &now,
            &region,
            &signing::signed_header_string(&headers),
            &signature,
        )?;
        headers.insert(AUTHORIZATION, value(&authorization)?);
        let response = client
            .http_client()
            .request(method, url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| StorageError::Unreachable(e.to_string()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        Err(StorageError::Refused { status: status.as_u16(), message: s3_error_code(&body).unwrap_or(body) })
    }

    /// A presigned GET URL valid for `ttl`, with the `Content-Disposition` and `Content-Type`
    /// the download should carry.
    pub async fn presign_get(
        &self,
        bucket: &str,
        key: &str,
        ttl: Duration,
        disposition: &str,
        content_type: &str,
    ) -> Result<String, StorageError> {
        let queries = HashMap::from([
            ("response-content-disposition".to_owned(), disposition.to_owned()),
            ("response-content-type".to_owned(), content_type.to_owned()),
        ]);
        let secs = u32::try_from(ttl.as_secs()).unwrap_or(u32::MAX).clamp(1, 604_800);
        // Signed for the public endpoint when there is one; the URL is never fetched from here.
        let signer = if self.presign_region == self.region {
            self.bucket(bucket)?
        } else {
            self.client(format!("presign:{bucket}"), bucket, &self.presign_region)?
        };
        Ok(signer.presign_get(key, secs, Some(queries)).await?)
    }

    /// The object's bytes as a stream.
    pub async fn get_stream(&self, bucket: &str, key: &str) -> Result<DataStream, StorageError> {
        Ok(self.bucket(bucket)?.get_object_stream(key).await?.bytes)
    }

    /// The object's bytes, refusing more than `limit` (read as they come, never past it).
    pub async fn get_bytes(&self, bucket: &str, key: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
        let client = self.bucket(bucket).map_err(|e| FetchError::Unavailable(e.to_string()))?;
        let response = match client.get_object_stream(key).await {
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

    /// Deletes an object; a missing one counts as deleted.
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), StorageError> {
        match self.bucket(bucket)?.delete_object(key).await.map_err(StorageError::from) {
            Ok(_) => Ok(()),
            Err(StorageError::Refused { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Creates the bucket `name`; one that already exists and is ours counts as created, so
    /// provisioning can be re-run.
    pub async fn ensure_bucket(&self, name: &str) -> Result<(), StorageError> {
        let config = BucketConfiguration::private();
        let created = if self.path_style {
            Bucket::create_with_path_style(name, self.region.clone(), self.credentials.clone(), config).await
        } else {
            Bucket::create(name, self.region.clone(), self.credentials.clone(), config).await
        };
        match created.map_err(StorageError::from) {
            Ok(response) if (200..300).contains(&response.response_code) => Ok(()),
            Ok(response) => Err(StorageError::Refused {
                status: response.response_code,
                message: s3_error_code(&response.response_text).unwrap_or(response.response_text),
            }),
            Err(StorageError::Refused { message, .. }) if message == "BucketAlreadyOwnedByYou" => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes the (empty) bucket `name`; a missing bucket counts as deleted.
    pub async fn delete_bucket(&self, name: &str) -> Result<(), StorageError> {
        match self.bucket(name)?.delete().await.map_err(StorageError::from) {
            Ok(_) => Ok(()),
            Err(StorageError::Refused { message, .. }) if message == "NoSuchBucket" => Ok(()),
            Err(e) => Err(e),
        }
    }
}
