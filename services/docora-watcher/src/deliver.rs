//! Webhook delivery from the outbox (`docora.events`), per `specs/docora-webhooks.md`.
//!
//! - One event at a time per app and repository, in `seq` order: a worker only takes the oldest
//!   undelivered event of a link (found with one index probe per link, whatever the backlog),
//!   holding it with a lease (no transaction stays open during the HTTP call), so two workers
//!   never deliver one link's events concurrently or out of order.
//! - Each attempt is signed afresh: `X-Docora-Signature: sha256=<hex HMAC-SHA256 of
//!   "{timestamp}.{body}">` with the app's `client_auth_key`, plus `X-Docora-App-Id`,
//!   `X-Docora-Timestamp`, `X-Docora-Delivery` (the event id, stable across retries) and
//!   `X-Docora-Event`.
//! - Text files go whole as UTF-8; binary files as base64, and over 1 MiB in pieces of 524,288
//!   base64 characters (one request each, `file.chunk = {id, index, total}`), read from the clone
//!   as they are sent.
//! - A failure (non-2xx, timeout, connection error) is retried with exponential backoff and
//!   jitter; after `max_attempts` the event and its link are marked failed, and the link's later
//!   events wait until the admin retries.
//! - The per-app delivery breaker: `breaker_threshold` failed attempts in a row, whatever the
//!   repository, open it for `breaker_cooldown`, during which nothing is sent to the app (its
//!   events wait, their attempts untouched). Then one trial attempt goes out (half-open): a
//!   success closes the breaker, a failure opens it again. Its state is in `docora.apps`, so every
//!   replica honours it; taking the trial is a conditional update of the app's row, so only one
//!   replica gets it.
//! - A delivery holds its event with a lease that it renews before each further request of a
//!   chunked file, so the lease only has to outlast one request; a worker that was cut off
//!   leaves a lease that runs out, and the event goes out again (with the same delivery id). Only
//!   the lease's holder records an outcome.
//! - A base URL that resolves to a private, loopback or link-local address is refused unless the
//!   operator allows it.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{Value, json};
use service_kit::db;
use sha2::Sha256;
use time::OffsetDateTime;
use tokio::io::AsyncReadExt;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::apps::{UrlPolicy, is_private, key_context};
use crate::crypto::Cipher;
use crate::error::ApiError;
use crate::git::{BlobBatch, Git, Want};
use crate::repositories::tokens as link_tokens;
use crate::schema::docora::{app_repositories, events};

/// Raw bytes per base64 piece: 524,288 base64 characters.
const PIECE_BYTES: usize = 524_288 / 4 * 3;
/// Text files larger than this stream from the clone (read twice: to sign, then to send)
/// instead of being held whole.
const STREAM_THRESHOLD: usize = 1 << 20;
/// Binary files larger than this are sent in pieces.
const CHUNK_THRESHOLD: usize = 1 << 20;

#[derive(Clone)]
pub struct Deliverer {
    pub pool: db::Pool,
    pub git: Git,
    pub cipher: Cipher,
    pub http: reqwest::Client,
    pub policy: UrlPolicy,
    /// `DELIVERY_MAX_ATTEMPTS`, default 5.
    pub max_attempts: i32,
    /// `DELIVERY_BACKOFF_SECS`, default 10: the first retry's delay, doubled each time.
    pub backoff: Duration,
    /// `DELIVERY_LEASE_SECS`: how long a delivery holds its event before another worker may take
    /// it over; renewed before each request, so longer than one request may take.
    pub lease: Duration,
    /// `DELIVERY_BREAKER_THRESHOLD`, default 10: an app's failed attempts in a row that open its
    /// breaker.
    pub breaker_threshold: i32,
    /// `DELIVERY_BREAKER_COOLDOWN_SECS`, default 60: how long an open breaker sends nothing.
    pub breaker_cooldown: Duration,
    pub reader: BlobReader,
}

/// The worker's `git cat-file --batch` for the files read whole (up to 1 MiB), started for the
/// repository being delivered and kept while its events follow one another: a git process per
/// file cost more than the rest of the delivery. Each worker builds its own [`Deliverer`], so no
/// worker waits on another's reader.
#[derive(Clone, Default)]
pub struct BlobReader(Arc<tokio::sync::Mutex<Option<(String, BlobBatch)>>>);

/// An event taken for delivery, with what its requests need.
#[derive(Debug, Clone, QueryableByName)]
pub struct Taken {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub app_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub repository_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub event: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub path: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    pub payload: Value,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub commit_sha: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub attempts: i32,
    /// This is the app's breaker trial (the breaker was open and its cooldown has passed).
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub trial: bool,
    /// The lease taken; it identifies the holder.
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    pub lease_until: OffsetDateTime,
    /// The app's webhook base URL.
    #[diesel(sql_type = diesel::sql_types::Text)]
    base_url: String,
    /// The app's signing key, sealed.
    #[diesel(sql_type = diesel::sql_types::Binary)]
    client_auth_key_enc: Vec<u8>,
    #[diesel(sql_type = diesel::sql_types::Text)]
    owner: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    default_branch: String,
}

/// What one delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    Ok,
    /// Will be retried at the given time.
    Retry(String),
    /// Gave up: the event and its link are failed.
    Failed(String),
    /// The lease ran out meanwhile and another worker took the event over: nothing recorded.
    LeaseLost,
}

/// A created or updated file's event, as its requests need it.
struct File<'a> {
    url: &'a str,
    key: &'a str,
    /// The event's `file` object, without its content.
    file: Value,
    /// Wraps a `file` object into the request's body.
    envelope: &'a dyn Fn(Value) -> Value,
    blob: &'a str,
    binary: bool,
    size: usize,
}

/// Why sending stopped.
enum SendError {
    /// The app's side failed: the webhook answered an error, timed out or cannot be reached (what
    /// went wrong, secrets aside). Counts towards the app's breaker.
    Failed(String),
    /// This side could not prepare the request: the database, or the file's content (git). Retried
    /// like a failure, but not held against the app's breaker.
    Local(String),
    /// Another worker holds the event now.
    LeaseLost,
}

impl From<String> for SendError {
    fn from(error: String) -> Self {
        SendError::Failed(error)
    }
}

impl SendError {
    /// As the error of a streamed body.
    fn into_io(self) -> std::io::Error {
        match self {
            SendError::Failed(e) | SendError::Local(e) => std::io::Error::other(e),
            SendError::LeaseLost => std::io::Error::other("the lease was lost"),
        }
    }
}

/// A failure on this side (see [`SendError::Local`]).
fn local(error: impl std::fmt::Display) -> SendError {
    SendError::Local(error.to_string())
}

type HmacSha256 = Hmac<Sha256>;

/// `sha256=` + lowercase hex HMAC-SHA256 of `{timestamp}.{body}` keyed with `key`.
pub fn signature(key: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        HmacSha256::new_from_slice(key.as_bytes()).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl Deliverer {
    /// Takes the oldest deliverable event among the links' heads (a link's head is its oldest
    /// event not delivered; it is deliverable when pending, due and not leased), of an app whose
    /// breaker lets it through: closed, or half-open with the trial not taken yet (taken here, in
    /// the same statement).
    pub async fn take(&self) -> Result<Option<Taken>, ApiError> {
        let mut conn = db::conn(&self.pool).await?;
        let lease_until = OffsetDateTime::now_utc() + self.lease;
        // Heads are found per link, one probe of `events_link_unfinished_idx` each, so a take
        // costs the same whatever the backlog. Locking the chosen event re-checks its own
        // conditions: one delivered meanwhile is skipped. Data-modifying CTEs run once, whatever
        // the main statement reads: two workers that pick events of one half-open app both reach
        // the app's row; the second waits for the first, then sees the breaker moved forward,
        // takes no trial, and so takes no event.
        Ok(diesel::sql_query(
            "WITH heads AS ( \
               SELECT h.id FROM docora.app_repositories l \
               JOIN docora.apps a ON a.id = l.app_id \
               CROSS JOIN LATERAL (SELECT p.id, p.status, p.next_attempt_at, p.lease_until FROM docora.events p \
                                   WHERE p.app_id = l.app_id AND p.repository_id = l.repository_id \
                                     AND p.status IN ('pending', 'failed') \
                                   ORDER BY p.seq LIMIT 1) h \
               WHERE h.status = 'pending' AND h.next_attempt_at <= now() \
                 AND (h.lease_until IS NULL OR h.lease_until <= now()) \
                 AND (a.breaker_open_until IS NULL OR a.breaker_open_until <= now())), \
             candidate AS ( \
               SELECT e.id, a.id AS app_id, a.breaker_open_until IS NOT NULL AS trial \
               FROM docora.events e JOIN docora.apps a ON a.id = e.app_id \
               WHERE e.id IN (SELECT id FROM heads) \
                 AND e.status = 'pending' AND e.next_attempt_at <= now() \
                 AND (e.lease_until IS NULL OR e.lease_until <= now()) \
               ORDER BY e.next_attempt_at, e.seq LIMIT 1 FOR UPDATE OF e SKIP LOCKED), \
             trial AS ( \
               UPDATE docora.apps a SET breaker_open_until = $1, breaker_trial = true FROM candidate c \
               WHERE c.trial AND a.id = c.app_id AND a.breaker_open_until <= now() RETURNING a.id) \
             UPDATE docora.events e SET lease_until = $1 \
             FROM candidate c, docora.apps a, docora.repositories r \
             WHERE e.id = c.id AND a.id = e.app_id AND r.id = e.repository_id \
               AND (NOT c.trial OR EXISTS (SELECT 1 FROM trial)) \
             RETURNING e.id, e.app_id, e.repository_id, e.event, e.path, e.payload, e.commit_sha, e.attempts, \
                       c.trial, e.lease_until, a.base_url, a.client_auth_key_enc, r.owner, r.name, r.default_branch",
        )
        .bind::<diesel::sql_types::Timestamptz, _>(lease_until)
        .get_result::<Taken>(&mut conn)
        .await
        .optional()?)
    }

    /// Delivers a taken event and records the outcome (for the event, its link and its app's
    /// breaker, in one transaction).
    pub async fn deliver(&self, event: &Taken) -> Result<Delivered, ApiError> {
        let mut lease = event.lease_until;
        let outcome = self.send(event, &mut lease).await;
        let (error, app_side) = match outcome {
            Ok(()) => (None, false),
            Err(SendError::Failed(error)) => (Some(error), true),
            Err(SendError::Local(error)) => {
                tracing::warn!(event_id = %event.id, error, "a delivery could not be prepared");
                (Some(error), false)
            }
            Err(SendError::LeaseLost) => return Ok(Delivered::LeaseLost),
        };
        let attempts = event.attempts + 1;
        let now = OffsetDateTime::now_utc();
        let held = events::table
            .filter(events::id.eq(event.id))
            .filter(events::status.eq("pending"))
            .filter(events::lease_until.eq(lease));
        let link = app_repositories::table
            .filter(app_repositories::app_id.eq(&event.app_id))
            .filter(app_repositories::repository_id.eq(&event.repository_id));
        let mut conn = db::conn(&self.pool).await?;
        let Some(error) = error else {
            return record_delivered(&mut conn, event, lease, attempts).await;
        };
        let (threshold, cooldown) = (self.breaker_threshold, self.breaker_cooldown);
        let outcome = conn
            .transaction::<_, ApiError, _>(async |conn| {
                let failed = attempts >= self.max_attempts;
                let recorded = if failed {
                    diesel::update(held)
                        .set((
                            events::status.eq("failed"),
                            events::attempts.eq(attempts),
                            events::last_error.eq(&error),
                            events::lease_until.eq(None::<OffsetDateTime>),
                        ))
                        .execute(conn)
                        .await?
                } else {
                    diesel::update(held)
                        .set((
                            events::attempts.eq(attempts),
                            events::last_error.eq(&error),
                            events::next_attempt_at.eq(now + self.retry_delay(attempts)),
                            events::lease_until.eq(None::<OffsetDateTime>),
                        ))
                        .execute(conn)
                        .await?
                };
                if recorded == 0 {
                    return Ok(Delivered::LeaseLost);
                }
                if failed {
                    diesel::update(link)
                        .set((app_repositories::status.eq("failed"), app_repositories::last_error.eq(&error)))
                        .execute(conn)
                        .await?;
                }
                if app_side
                    && let Some((failures, until)) =
                        breaker_failure(conn, &event.app_id, event.trial, threshold, now + cooldown).await?
                {
                    tracing::warn!(app_id = event.app_id, failures, until = %until, "delivery breaker open");
                }
                Ok(if failed { Delivered::Failed(error) } else { Delivered::Retry(error) })
            })
            .await?;
        Ok(outcome)
    }

    /// The delay before attempt `attempts + 1`: the backoff doubled per attempt, plus up to a
    /// quarter of it at random.
    fn retry_delay(&self, attempts: i32) -> Duration {
        let base = self.backoff.saturating_mul(1u32 << attempts.clamp(0, 16));
        let quarter = u64::try_from(base.as_millis() / 4).unwrap_or(u64::MAX);
        base.saturating_add(Duration::from_millis(rand::random::<u64>() % quarter.saturating_add(1)))
    }

    /// Extends the lease held on `event` before a further request; [`SendError::LeaseLost`] when
    /// another worker holds it now.
    async fn renew(&self, event: &Taken, lease: &mut OffsetDateTime) -> Result<(), SendError> {
        let mut conn = db::conn(&self.pool).await.map_err(local)?;
        let renewed: Option<OffsetDateTime> = diesel::update(
            events::table
                .filter(events::id.eq(event.id))
                .filter(events::status.eq("pending"))
                .filter(events::lease_until.eq(*lease)),
        )
        .set(events::lease_until.eq(OffsetDateTime::now_utc() + self.lease))
        .returning(events::lease_until)
        .get_result::<Option<OffsetDateTime>>(&mut conn)
        .await
        .optional()
        .map_err(local)?
        .flatten();
        match renewed {
            Some(until) => {
                *lease = until;
                Ok(())
            }
            None => Err(SendError::LeaseLost),
        }
    }

    /// Sends every request of an event, renewing `lease` before each further one.
    async fn send(&self, event: &Taken, lease: &mut OffsetDateTime) -> Result<(), SendError> {
        let (base_url, owner, name) = (&event.base_url, &event.owner, &event.name);
        let key = self.cipher.open_text(&event.client_auth_key_enc, &key_context(&event.app_id)).map_err(local)?;
        self.check_target(base_url).await?;
        let repository = json!({
            "repository_id": event.repository_id, "github_url": format!("https://github.com/{owner}/{name}"),
            "owner": owner, "name": name,
        });
        let url = format!("{base_url}/{}", event.event);
        if event.event == "sync_failed" {
            let mut body = event.payload.clone();
            body["event"] = json!("sync_failed");
            body["repository"] = repository;
            body["retry_count"] = json!(event.attempts);
            body["timestamp"] = json!(domain::timestamp::format_rfc3339_millis(OffsetDateTime::now_utc()));
            return Ok(self.post(&url, &event.app_id, &key, event, &body).await?);
        }
        let path = event.path.clone().unwrap_or_default();
        let p = &event.payload;
        let mut file = json!({"path": path, "sha": p["sha256"]});
        // A name that is not UTF-8: `path` is its text form, `path_base64` its bytes.
        if let Some(raw) = p.get("path_base64") {
            file["path_base64"] = raw.clone();
        }
        if event.event != "delete" {
            file["size"] = p["size"].clone();
            if event.event == "update" {
                file["previous_sha"] = p["previous_sha256"].clone();
            }
        }
        let envelope = |file: Value| {
            json!({
                "repository": repository, "file": file, "commit_sha": event.commit_sha,
                "timestamp": domain::timestamp::format_rfc3339_millis(OffsetDateTime::now_utc()),
            })
        };
        if event.event == "delete" {
            return Ok(self.post(&url, &event.app_id, &key, event, &envelope(file)).await?);
        }
        let blob = p["blob"].as_str().unwrap_or_default();
        let binary = p["is_binary"].as_bool().unwrap_or(false);
        let size = usize::try_from(p["size"].as_u64().unwrap_or(0)).unwrap_or(usize::MAX);
        let file = File { url: &url, key: &key, file, envelope: &envelope, blob, binary, size };
        match self.send_file(event, lease, &file).await {
            // Nothing was sent: a missing blob fails the first read, before any request. This
            // replica's clone lacks it (another replica scanned its commit): fetch, then again.
            Err(SendError::Local(_)) if !self.git.has(&event.repository_id, blob).await => {
                self.ensure_blob(event, blob).await?;
                self.send_file(event, lease, &file).await
            }
            outcome => outcome,
        }
    }

    /// Sends the requests of a created or updated file, its content read from the clone.
    async fn send_file(&self, event: &Taken, lease: &mut OffsetDateTime, f: &File<'_>) -> Result<(), SendError> {
        let File { url, key, envelope, blob, binary, size, .. } = *f;
        let mut file = f.file.clone();
        let path = event.path.as_deref().unwrap_or_default();
        if !binary && size > STREAM_THRESHOLD {
            return self.post_streamed(url, key, event, envelope(file), blob, size).await;
        }
        if !binary {
            let text = String::from_utf8(self.read_whole(&event.repository_id, blob, size).await?)
                .map_err(|_| local(format!("{path} in the clone is not UTF-8 text")))?;
            file["content"] = json!(text);
            return Ok(self.post(url, &event.app_id, key, event, &envelope(file)).await?);
        }
        file["content_encoding"] = json!("base64");
        let engine = base64::engine::general_purpose::STANDARD;
        if size <= CHUNK_THRESHOLD {
            let bytes = self.read_whole(&event.repository_id, blob, size).await?;
            file["content"] = json!(engine.encode(&bytes));
            return Ok(self.post(url, &event.app_id, key, event, &envelope(file)).await?);
        }
        // In pieces, read from the clone as they go out.
        let mut content = Content::open(&self.git, &event.repository_id, blob, size)?;
        let total = size.div_ceil(PIECE_BYTES);
        for index in 0..total {
            if index > 0 {
                self.renew(event, lease).await?;
            }
            let piece = content.read(PIECE_BYTES.min(size - index * PIECE_BYTES)).await?;
            if index + 1 == total {
                content.finish().await?;
            }
            let mut part = file.clone();
            part["content"] = json!(engine.encode(&piece));
            part["chunk"] = json!({"id": event.id, "index": index, "total": total});
            self.post(url, &event.app_id, key, event, &envelope(part)).await?;
        }
        Ok(())
    }

    /// A file of at most 1 MiB, read whole from the clone through the worker's
    /// [`BlobReader`], checked to have the size the scan recorded.
    async fn read_whole(&self, repository_id: &str, blob: &str, size: usize) -> Result<Vec<u8>, SendError> {
        let mut reader = self.reader.0.lock().await;
        let batch = match reader.as_mut() {
            Some((held, batch)) if held == repository_id => batch,
            _ => {
                *reader = None;
                let batch = self.git.batch(repository_id).map_err(local)?;
                &mut reader.insert((repository_id.to_owned(), batch)).1
            }
        };
        let mut bytes = Vec::with_capacity(size);
        let read = batch
            .stream(blob, |piece| {
                // A blob larger than recorded is not taken in beyond what was recorded.
                let room = size.saturating_sub(bytes.len());
                bytes.extend_from_slice(&piece[..piece.len().min(room)]);
            })
            .await;
        match read {
            Ok(n) if usize::try_from(n).is_ok_and(|n| n == size) => Ok(bytes),
            Ok(n) => Err(local(format!("the file in the clone is {n} bytes, not the {size} the scan recorded"))),
            Err(e) => {
                // Out of step with git, or the blob is missing: the next read starts a new one.
                *reader = None;
                Err(local(format!("reading blob {blob} from the clone: {e}")))
            }
        }
    }

    /// Lets the worker's git process go while there is nothing to deliver.
    pub async fn idle(&self) {
        *self.reader.0.lock().await = None;
    }

    /// Makes sure this replica's clone holds the event's blob: a replica that did not scan the
    /// commit fetches it (or, when the commit has left the repository, the branch's tip, which
    /// may still hold the same content).
    async fn ensure_blob(&self, event: &Taken, blob: &str) -> Result<(), SendError> {
        let (owner, name, branch) = (&event.owner, &event.name, event.default_branch.as_str());
        let repository_id = &event.repository_id;
        let tokens = link_tokens(&self.pool, &self.cipher, repository_id).await.map_err(local)?;
        let mut wants: Vec<Want<'_>> = event.commit_sha.as_deref().map(Want::Commit).into_iter().collect();
        wants.push(Want::Branch(branch));
        let path = event.path.as_deref().unwrap_or_default();
        let commit = event.commit_sha.as_deref().unwrap_or("?");
        match self.git.ensure_blob(&tokens, repository_id, owner, name, blob, &wants).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(local(format!(
                "the content of {path} (blob {blob}) is no longer on GitHub: neither commit {commit} nor {branch} holds it"
            ))),
            Err(e) => Err(local(format!("cannot fetch commit {commit} for {path}: {e}"))),
        }
    }

    /// Refuses targets on private addresses unless allowed (checked at every delivery: DNS
    /// can change after onboarding).
    async fn check_target(&self, base_url: &str) -> Result<(), String> {
        if self.policy.allow_private {
            return Ok(());
        }
        let rest = base_url.split_once("://").map_or(base_url, |(_, rest)| rest);
        let authority = rest.split('/').next().unwrap_or_default();
        let with_port = if authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
            authority.to_owned()
        } else {
            format!("{authority}:443")
        };
        let addresses =
            tokio::net::lookup_host(with_port).await.map_err(|e| format!("cannot resolve {authority}: {e}"))?;
        for address in addresses {
            if is_private(address.ip()) {
                return Err(format!("{authority} resolves to a private address ({}); refused", address.ip()));
            }
        }
        Ok(())
    }

    async fn post(&self, url: &str, app_id: &str, key: &str, event: &Taken, body: &Value) -> Result<(), String> {
        let body = serde_json::to_vec(body).map_err(|e| e.to_string())?;
        let timestamp = OffsetDateTime::now_utc().unix_timestamp();
        let signature = signature(key, timestamp, &body);
        self.send_signed(url, app_id, event, timestamp, &signature, None, body.into()).await
    }

    /// Posts a text file's event whose content streams from the clone twice, never held whole:
    /// once to sign the body (and learn its length), once to send it. The body is the envelope
    /// serialized around a marker, with the content JSON-escaped in its place.
    async fn post_streamed(
        &self,
        url: &str,
        key: &str,
        event: &Taken,
        mut envelope: Value,
        blob: &str,
        size: usize,
    ) -> Result<(), SendError> {
        let marker = format!("docora-content-{}", Uuid::new_v4().simple());
        envelope["file"]["content"] = json!(marker);
        let whole = serde_json::to_vec(&envelope).map_err(local)?;
        let quoted = format!("\"{marker}\"");
        let at = whole
            .windows(quoted.len())
            .position(|w| w == quoted.as_bytes())
            .ok_or_else(|| local("the content marker is missing from the body"))?;
        // The string's quotes stay around the content.
        let prefix = bytes::Bytes::copy_from_slice(&whole[..=at]);
        let suffix = bytes::Bytes::copy_from_slice(&whole[at + quoted.len() - 1..]);

        let timestamp = OffsetDateTime::now_utc().unix_timestamp();
        let mut mac = HmacSha256::new_from_slice(key.as_bytes()).map_err(local)?;
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(&prefix);
        let mut length = prefix.len() + suffix.len();
        let mut content = Content::open(&self.git, &event.repository_id, blob, size)?;
        let mut escaped = Vec::new();
        while let Some(piece) = content.next_piece().await? {
            escaped.clear();
            escape_json(&piece, &mut escaped);
            mac.update(&escaped);
            length += escaped.len();
        }
        content.finish().await?;
        mac.update(&suffix);
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));

        enum Part {
            Prefix,
            Content,
            Done,
        }
        let content = Content::open(&self.git, &event.repository_id, blob, size)?;
        let stream = futures_util::stream::unfold((Part::Prefix, content), move |(part, mut content)| {
            let (prefix, suffix) = (prefix.clone(), suffix.clone());
            async move {
                match part {
                    Part::Prefix => Some((Ok(prefix), (Part::Content, content))),
                    Part::Content => match content.next_piece().await {
                        Ok(Some(piece)) => {
                            let mut escaped = Vec::with_capacity(piece.len() + piece.len() / 8);
                            escape_json(&piece, &mut escaped);
                            Some((Ok(bytes::Bytes::from(escaped)), (Part::Content, content)))
                        }
                        Ok(None) => match content.finish().await {
                            Ok(()) => Some((Ok(suffix), (Part::Done, content))),
                            Err(e) => Some((Err(e.into_io()), (Part::Done, content))),
                        },
                        Err(e) => Some((Err(e.into_io()), (Part::Done, content))),
                    },
                    Part::Done => None,
                }
            }
        });
        let body = reqwest::Body::wrap_stream(stream);
        Ok(self.send_signed(url, &event.app_id, event, timestamp, &signature, Some(length), body).await?)
    }

    /// Sends a signed body to the webhook (a streamed one of `length` bytes).
    #[allow(clippy::too_many_arguments)]
    async fn send_signed(
        &self,
        url: &str,
        app_id: &str,
        event: &Taken,
        timestamp: i64,
        signature: &str,
        length: Option<usize>,
        body: reqwest::Body,
    ) -> Result<(), String> {
        let mut request = self.http.post(url);
        if let Some(length) = length {
            request = request.header("Content-Length", length.to_string());
        }
        let response = request
            .header("Content-Type", "application/json")
            .header("X-Docora-App-Id", app_id)
            .header("X-Docora-Timestamp", timestamp.to_string())
            .header("X-Docora-Signature", signature)
            .header("X-Docora-Delivery", event.id.to_string())
            .header("X-Docora-Event", &event.event)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    "the webhook timed out".to_owned()
                } else {
                    format!("cannot reach the webhook: {e}")
                }
            })?;
        let status = response.status();
        if status.is_success() { Ok(()) } else { Err(format!("the webhook answered {}", status.as_u16())) }
    }
}

/// Appends `text` (UTF-8, possibly cut anywhere) to `out` escaped as the inside of a JSON
/// string. Only ASCII bytes are escaped, so a multi-byte character cut between pieces passes
/// through whole.
fn escape_json(text: &[u8], out: &mut Vec<u8>) {
    for &b in text {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x00..=0x1f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            _ => out.push(b),
        }
    }
}

/// A blob being read from the clone (`git cat-file blob`), checked to have exactly the size the
/// scan recorded: a blob the clone lacks, or a git that dies midway, is an error, never a short
/// or empty file sent as the content.
struct Content {
    child: tokio::process::Child,
    stdout: tokio::process::ChildStdout,
    left: usize,
}

impl Content {
    fn open(git: &Git, repository_id: &str, blob: &str, size: usize) -> Result<Self, SendError> {
        let mut child = git.open(repository_id, blob).map_err(local)?;
        let stdout = child.stdout.take().ok_or_else(|| local("git gave no output"))?;
        Ok(Content { child, stdout, left: size })
    }

    /// The next `n` bytes.
    async fn read(&mut self, n: usize) -> Result<Vec<u8>, SendError> {
        let mut bytes = vec![0u8; n];
        let mut filled = 0;
        while filled < n {
            match self.stdout.read(&mut bytes[filled..]).await {
                Ok(0) => return Err(self.failed().await),
                Ok(read) => filled += read,
                Err(e) => return Err(local(format!("reading the file from the clone: {e}"))),
            }
        }
        self.left = self.left.saturating_sub(n);
        Ok(bytes)
    }

    /// The next piece of the content (up to 64 KiB), or None at its end.
    async fn next_piece(&mut self) -> Result<Option<Vec<u8>>, SendError> {
        if self.left == 0 {
            return Ok(None);
        }
        let n = self.left.min(64 * 1024);
        self.read(n).await.map(Some)
    }

    /// Checks that everything was read and git ended well.
    async fn finish(&mut self) -> Result<(), SendError> {
        let mut extra = [0u8; 1];
        match self.stdout.read(&mut extra).await {
            Ok(0) if self.left == 0 => {}
            _ => return Err(local("the file in the clone is not the size the scan recorded")),
        }
        match self.child.wait().await {
            Ok(status) if status.success() => Ok(()),
            _ => Err(self.failed().await),
        }
    }

    async fn failed(&mut self) -> SendError {
        let status = self.child.wait().await.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
        local(format!("git cat-file ended early ({status}): the blob is missing from the clone or was cut short"))
    }
}

/// Records a delivered event in one statement: the event, its link `synced` when no event
/// follows it, and the app's breaker closed (no write when it already is). `LeaseLost` when
/// another worker holds the event now.
async fn record_delivered(
    conn: &mut db::Conn,
    event: &Taken,
    lease: OffsetDateTime,
    attempts: i32,
) -> Result<Delivered, ApiError> {
    #[derive(QueryableByName)]
    struct Recorded {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let recorded = diesel::sql_query(
        "WITH done AS ( \
           UPDATE docora.events SET status = 'delivered', delivered_at = now(), attempts = $3, \
                  lease_until = NULL, last_error = NULL \
           WHERE id = $1 AND status = 'pending' AND lease_until = $2 \
           RETURNING app_id, repository_id, seq), \
         synced AS ( \
           UPDATE docora.app_repositories l SET status = 'synced', updated_at = now() FROM done d \
           WHERE l.app_id = d.app_id AND l.repository_id = d.repository_id \
             AND NOT EXISTS (SELECT 1 FROM docora.events e WHERE e.app_id = d.app_id \
                             AND e.repository_id = d.repository_id AND e.seq > d.seq)), \
         closed AS ( \
           UPDATE docora.apps a SET delivery_failures = 0, breaker_open_until = NULL, breaker_trial = false \
           FROM done d WHERE a.id = d.app_id \
             AND (a.delivery_failures <> 0 OR a.breaker_open_until IS NOT NULL OR a.breaker_trial)) \
         SELECT count(*) AS n FROM done",
    )
    .bind::<diesel::sql_types::Uuid, _>(event.id)
    .bind::<diesel::sql_types::Timestamptz, _>(lease)
    .bind::<diesel::sql_types::Integer, _>(attempts)
    .get_result::<Recorded>(conn)
    .await?;
    Ok(if recorded.n == 0 { Delivered::LeaseLost } else { Delivered::Ok })
}

/// A delivery attempt to the app failed: counted; the breaker opens (until `open_until`) when
/// the count reaches `threshold` while it was closed, or when this was its trial. Returns the
/// count and the breaker's end when this failure opened it.
async fn breaker_failure(
    conn: &mut db::Conn,
    app_id: &str,
    trial: bool,
    threshold: i32,
    open_until: OffsetDateTime,
) -> Result<Option<(i32, OffsetDateTime)>, ApiError> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        delivery_failures: i32,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        opened: bool,
    }
    // In SET, every column reads its value from before the update.
    let row: Option<Row> = diesel::sql_query(
        "UPDATE docora.apps SET delivery_failures = delivery_failures + 1, \
           breaker_open_until = CASE WHEN $2 OR (breaker_open_until IS NULL AND delivery_failures + 1 >= $3) \
                                     THEN $4 ELSE breaker_open_until END, \
           breaker_trial = breaker_trial AND NOT $2 \
         WHERE id = $1 \
         RETURNING delivery_failures, breaker_open_until IS NOT DISTINCT FROM $4 AS opened",
    )
    .bind::<diesel::sql_types::Text, _>(app_id)
    .bind::<diesel::sql_types::Bool, _>(trial)
    .bind::<diesel::sql_types::Integer, _>(threshold)
    .bind::<diesel::sql_types::Timestamptz, _>(open_until)
    .get_result(conn)
    .await
    .optional()?;
    Ok(row.filter(|r| r.opened).map(|r| (r.delivery_failures, open_until)))
}

/// An app's delivery breaker, as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DeliveryBreaker {
    /// `closed`; `open` (nothing is sent to the app before `open_until`); or `half_open` (the
    /// cooldown is over: one trial attempt may go, or is going).
    pub status: String,
    /// Failed attempts in a row, across the app's repositories.
    pub consecutive_failures: i32,
    #[serde(with = "domain::timestamp::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub open_until: Option<OffsetDateTime>,
}

impl DeliveryBreaker {
    /// From the app's `delivery_failures`, `breaker_open_until` and `breaker_trial`.
    pub fn new(failures: i32, open_until: Option<OffsetDateTime>, trial: bool, now: OffsetDateTime) -> Self {
        let status = match open_until {
            None => "closed",
            Some(until) if trial || until <= now => "half_open",
            Some(_) => "open",
        };
        DeliveryBreaker { status: status.to_owned(), consecutive_failures: failures, open_until }
    }
}
