//! Webhook delivery from the outbox (`docora.events`), per `specs/docora-webhooks.md`.
//!
//! - One event at a time per app and repository, in `seq` order: a worker takes a link's head
//!   (its oldest event not delivered, found with one index probe that starts past the link's
//!   last delivered event, `delivered_seq`, whatever the backlog) and the consecutive due events
//!   behind it, as one batch under one lease (no transaction stays open during the HTTP calls),
//!   so two workers never deliver one link's events concurrently or out of order. The batch's
//!   events go one after the other; the delivered ones are recorded together (one statement
//!   every [`RECORD_EVERY`] events or `record_interval`, and at the batch's end); a failure is
//!   recorded at once and ends the batch.
//! - Each attempt is signed afresh: `X-Docora-Signature: sha256=<hex HMAC-SHA256 of
//!   "{timestamp}.{body}">` with the app's `client_auth_key`, plus `X-Docora-App-Id`,
//!   `X-Docora-Timestamp`, `X-Docora-Delivery` (the event id, stable across retries; a
//!   redelivery's is its original's, with `X-Docora-Redelivery: true`) and `X-Docora-Event`.
//! - Each attempt goes to the attempt log (`docora.delivery_attempts`: the last request's
//!   headers and first 64 KiB of body, the response's status, headers and first 8 KiB), written
//!   by the statement that records the batch's outcomes, never in a transaction of its own.
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
//!   replica gets it, and a trial is a batch of one. A batch already going on another of the
//!   app's repositories when the breaker opens goes on until it fails (its successes close the
//!   breaker, as any success does).
//! - A batch is held with one lease, renewed by each recording of its delivered events, once
//!   half of it has gone, and before each further request of a chunked file; a worker that was
//!   cut off leaves a lease that runs out, and the whole batch, delivered but unrecorded events
//!   included, goes out again from another worker (with the same delivery ids, in order). Only
//!   the lease's holder records an outcome.
//! - Idle workers wait for work instead of polling: see [`crate::wake`]. A batch let go at
//!   shutdown before its end notifies the other replicas.
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

use crate::apps::{UrlPolicy, key_context};
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
    /// The same client without a pool of idle connections: a request that failed on a
    /// connection the receiver was closing goes again once through it (see
    /// [`Deliverer::send_signed`]).
    pub http_fresh: reqwest::Client,
    pub policy: UrlPolicy,
    /// `DELIVERY_MAX_ATTEMPTS`, default 5.
    pub max_attempts: i32,
    /// `DELIVERY_BACKOFF_SECS`, default 10: the first retry's delay, doubled for each further one.
    pub backoff: Duration,
    /// `DELIVERY_LEASE_SECS`: how long a delivery holds its batch before another worker may take
    /// it over; renewed as the batch goes on and before each piece of a chunked file, so longer
    /// than one request may take.
    pub lease: Duration,
    /// `DELIVERY_BREAKER_THRESHOLD`, default 10: an app's failed attempts in a row that open its
    /// breaker.
    pub breaker_threshold: i32,
    /// `DELIVERY_BREAKER_COOLDOWN_SECS`, default 60: how long an open breaker sends nothing.
    pub breaker_cooldown: Duration,
    /// `DELIVERY_BATCH_SIZE`, default 200: at most this many of a link's consecutive events are
    /// taken under one lease.
    pub batch_size: i64,
    /// `DELIVERY_RECORD_MILLIS`, default 250: delivered events are recorded together at least
    /// this often (and every [`RECORD_EVERY`] events, and when the batch ends).
    pub record_interval: Duration,
    pub reader: BlobReader,
    /// What the attempt under way sent and got back (for the attempt log).
    pub exchange: ExchangeLog,
    /// `ATTEMPT_LOG_REQUEST_BYTES`, default [`LOGGED_REQUEST_BYTES`]: how much of each request
    /// body the attempt log keeps.
    pub log_request_bytes: usize,
}

/// The first bytes of a request body the attempt log keeps by default
/// (`ATTEMPT_LOG_REQUEST_BYTES`).
pub const LOGGED_REQUEST_BYTES: usize = 64 * 1024;
/// The first bytes of a response body the attempt log keeps.
pub const LOGGED_RESPONSE_BYTES: usize = 8 * 1024;
/// The first bytes of the request body kept for an attempt the app acknowledged: the envelope
/// and the start of the content (the file itself can always be rebuilt from git). Failed
/// attempts keep `ATTEMPT_LOG_REQUEST_BYTES`. Writing every delivered body whole into the log
/// cost more PostgreSQL CPU than the rest of delivery (`bench/RESULTS.md`).
pub const DELIVERED_REQUEST_BYTES: usize = 2 * 1024;

/// The last request of an attempt and its response, bounded ([`LOGGED_REQUEST_BYTES`],
/// [`LOGGED_RESPONSE_BYTES`]): what the attempt log records. Headers are the ones sent (the
/// signature, never the key).
#[derive(Debug, Clone, Default)]
pub struct Exchange {
    url: String,
    request_headers: Value,
    request_body: String,
    request_body_bytes: i64,
    response_status: Option<i32>,
    response_headers: Option<Value>,
    response_body: Option<String>,
    response_body_truncated: bool,
}

impl Exchange {
    /// What the log keeps of an acknowledged attempt: the request body cut to
    /// [`DELIVERED_REQUEST_BYTES`] (on a character boundary; its whole length stays recorded).
    fn delivered(mut self) -> Self {
        if self.request_body.len() > DELIVERED_REQUEST_BYTES {
            let mut end = DELIVERED_REQUEST_BYTES;
            while !self.request_body.is_char_boundary(end) {
                end -= 1;
            }
            self.request_body.truncate(end);
            self.request_body.shrink_to_fit();
        }
        self
    }
}

/// The worker's [`Exchange`] under way (each worker has its own [`Deliverer`]).
#[derive(Clone, Default)]
pub struct ExchangeLog(Arc<std::sync::Mutex<Option<Exchange>>>);

impl ExchangeLog {
    fn set(&self, exchange: Exchange) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(exchange);
    }

    fn update(&self, f: impl FnOnce(&mut Exchange)) {
        if let Some(e) = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_mut() {
            f(e);
        }
    }

    fn take(&self) -> Option<Exchange> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }
}

/// The first `max` bytes of `bytes` as text (cut at a character's boundary when it is UTF-8;
/// NUL, which PostgreSQL's text refuses, replaced).
fn head_text(bytes: &[u8], max: usize) -> String {
    let head = &bytes[..bytes.len().min(max)];
    let text = match std::str::from_utf8(head) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(e) if e.error_len().is_none() => String::from_utf8_lossy(&head[..e.valid_up_to()]),
        Err(_) => String::from_utf8_lossy(head),
    };
    text.replace('\0', "\u{fffd}")
}

/// Deletes attempt-log rows older than `retention`, at most `batch` per statement, until none is
/// left; returns how many went. Run in the background (one short statement at a time).
pub async fn prune_attempts(pool: &db::Pool, retention: Duration, batch: i64) -> Result<usize, ApiError> {
    let before = OffsetDateTime::now_utc() - retention;
    let mut total = 0;
    loop {
        let mut conn = db::conn(pool).await?;
        let n = diesel::sql_query(
            "DELETE FROM docora.delivery_attempts WHERE ctid = ANY (ARRAY( \
               SELECT ctid FROM docora.delivery_attempts WHERE started_at < $1 LIMIT $2))",
        )
        .bind::<diesel::sql_types::Timestamptz, _>(before)
        .bind::<diesel::sql_types::BigInt, _>(batch)
        .execute(&mut conn)
        .await?;
        total += n;
        if i64::try_from(n).unwrap_or(0) < batch {
            return Ok(total);
        }
    }
}

/// Delivered events are recorded together at least every this many.
pub const RECORD_EVERY: usize = 64;
/// ... and once the attempt log they carry holds this many bytes of bodies, so the recording
/// statement (and the connection's buffers, which keep their size) stays small.
pub const RECORD_LOG_BYTES: usize = 256 << 10;

/// The batch a worker holds: one link's events from `from_seq` to `to_seq`, those not recorded
/// yet under `lease` (every event of the batch has the same lease, which identifies the holder).
#[derive(Debug, Clone)]
pub struct Held {
    app_id: String,
    repository_id: String,
    from_seq: i64,
    to_seq: i64,
    lease: OffsetDateTime,
}

/// One delivery attempt, as it is recorded (with the others of its batch, in one statement):
/// which event, its number, when it started and ended, and the error when it failed.
#[derive(Debug, Clone)]
struct Attempt {
    event_id: Uuid,
    /// The event's attempts with this one.
    attempts: i32,
    started_at: OffsetDateTime,
    ended_at: OffsetDateTime,
    error: Option<String>,
    /// What was sent and received (none when no request went out).
    exchange: Option<Exchange>,
}

impl Attempt {
    fn new(event: &Taken, started_at: OffsetDateTime, error: Option<String>, exchange: Option<Exchange>) -> Self {
        Attempt {
            event_id: event.id,
            attempts: event.attempts + 1,
            started_at,
            ended_at: OffsetDateTime::now_utc(),
            error,
            exchange,
        }
    }
}

/// A lease's end as PostgreSQL stores it (microseconds), so the holder can match it.
fn lease_at(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(at.nanosecond() / 1000 * 1000).unwrap_or(at)
}

/// The outcomes of a batch whose lease was lost: its last `unrecorded` successes were not
/// recorded (they go out again from whoever holds the events now).
fn lease_lost(mut outcomes: Vec<Delivered>, unrecorded: usize) -> Vec<Delivered> {
    for o in outcomes.iter_mut().rev().filter(|o| **o == Delivered::Ok).take(unrecorded) {
        *o = Delivered::LeaseLost;
    }
    outcomes
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
    /// Its place in the outbox: a link's events go in `seq` order.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub seq: i64,
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
    /// The lease taken (the batch's); it identifies the holder.
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    pub lease_until: OffsetDateTime,
    /// A redelivery: the event it copies (its `X-Docora-Delivery` is that one's).
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Uuid>)]
    pub redelivery_of: Option<Uuid>,
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

/// The take (see [`Deliverer::take_up_to`]): `$1` the lease's end, `$2` the batch's size at most.
/// Public for the backlog example (`examples/take_backlog.rs`), which shows its plan.
pub const TAKE_SQL: &str = "WITH heads AS ( \
       SELECT h.id FROM docora.app_repositories l \
       JOIN docora.apps a ON a.id = l.app_id \
       CROSS JOIN LATERAL (SELECT p.id, p.status, p.next_attempt_at, p.lease_until FROM docora.events p \
                           WHERE p.app_id = l.app_id AND p.repository_id = l.repository_id \
                             AND p.seq > l.delivered_seq AND p.status IN ('pending', 'failed') \
                           ORDER BY p.seq LIMIT 1) h \
       WHERE h.status = 'pending' AND h.next_attempt_at <= now() \
         AND (h.lease_until IS NULL OR h.lease_until <= now()) \
         AND (a.breaker_open_until IS NULL OR a.breaker_open_until <= now())), \
     candidate AS ( \
       SELECT e.id, e.app_id, e.repository_id, e.seq FROM docora.events e \
       WHERE e.id = ANY (ARRAY(SELECT id FROM heads)) \
         AND e.status = 'pending' AND (e.next_attempt_at <= now()) IS TRUE \
         AND (e.lease_until IS NULL OR e.lease_until <= now()) \
       ORDER BY e.next_attempt_at, e.seq LIMIT 1 FOR UPDATE SKIP LOCKED), \
     chosen AS ( \
       SELECT c.id, c.app_id, c.repository_id, c.seq, a.breaker_open_until IS NOT NULL AS trial \
       FROM candidate c JOIN docora.apps a ON a.id = c.app_id), \
     trial AS ( \
       UPDATE docora.apps a SET breaker_open_until = $1, breaker_trial = true FROM chosen c \
       WHERE c.trial AND a.id = c.app_id AND a.breaker_open_until <= now() RETURNING a.id), \
     batch AS ( \
       SELECT b.id, c.trial FROM chosen c CROSS JOIN LATERAL ( \
         SELECT q.id, bool_and(q.status = 'pending' AND q.next_attempt_at <= now() \
                               AND (q.lease_until IS NULL OR q.lease_until <= now())) \
                       OVER (ORDER BY q.seq) AS deliverable \
         FROM (SELECT p.id, p.seq, p.status, p.next_attempt_at, p.lease_until FROM docora.events p \
               WHERE p.app_id = c.app_id AND p.repository_id = c.repository_id AND p.seq >= c.seq \
                 AND p.status IN ('pending', 'failed') \
               ORDER BY p.seq LIMIT CASE WHEN c.trial THEN 1 ELSE $2 END) q) b \
       WHERE b.deliverable AND (NOT c.trial OR EXISTS (SELECT 1 FROM trial))) \
     UPDATE docora.events e SET lease_until = $1 \
     FROM batch b, docora.apps a, docora.repositories r \
     WHERE e.id = b.id AND a.id = e.app_id AND r.id = e.repository_id \
       AND e.status = 'pending' AND (e.lease_until IS NULL OR e.lease_until <= now()) \
     RETURNING e.id, e.seq, e.app_id, e.repository_id, e.event, e.path, e.payload, e.commit_sha, e.attempts, \
               b.trial, e.lease_until, e.redelivery_of, a.base_url, a.client_auth_key_enc, r.owner, r.name, r.default_branch";

impl Deliverer {
    /// Takes one deliverable event (a batch of one; see [`Deliverer::take_batch`]).
    pub async fn take(&self) -> Result<Option<Taken>, ApiError> {
        Ok(self.take_up_to(1).await?.into_iter().next())
    }

    /// Takes a batch: the oldest deliverable event among the links' heads and up to
    /// `batch_size - 1` of the same link's events that follow it (consecutive, pending, due, not
    /// leased), all under one lease, in `seq` order (see [`Deliverer::take_up_to`]).
    pub async fn take_batch(&self) -> Result<Vec<Taken>, ApiError> {
        self.take_up_to(self.batch_size).await
    }

    /// Takes up to `limit` consecutive events of one link under one lease, in one statement.
    ///
    /// The head of a link is its oldest event not delivered; it is deliverable when pending, due
    /// and not leased, and its app's breaker lets it through: closed, or half-open with the trial
    /// not taken yet (taken here, in the same statement; a trial is a batch of one).
    pub async fn take_up_to(&self, limit: i64) -> Result<Vec<Taken>, ApiError> {
        let mut conn = db::conn(&self.pool).await?;
        // The planner's estimates for the take are far above its real cost (a table of links
        // never analyzed is guessed at hundreds of rows), above `jit_above_cost`: pooled
        // connections have JIT off (`service_kit::db`), or it would compile the take every time.
        let lease_until = lease_at(OffsetDateTime::now_utc() + self.lease);
        // The heads' ids lead to their rows by primary key (`= ANY`, and a due-time condition
        // no index serves): the index of all pending events would be walked otherwise, dead
        // entries of delivered events included. Heads are found per link with one index probe
        // that starts past the link's last
        // delivered event (`delivered_seq`), so a take costs the same whatever the backlog behind
        // or ahead. Locking the chosen head re-checks its own conditions: one taken or delivered
        // meanwhile is skipped; the rest of the batch is that link's next events up to the first
        // one that is not deliverable now (failed, not due or leased), re-checked as they are
        // updated. Data-modifying CTEs run once, whatever the main statement reads: two workers
        // that pick events of one half-open app both reach the app's row; the second waits for
        // the first, then sees the breaker moved forward, takes no trial, and so takes no event.
        Ok(diesel::sql_query(TAKE_SQL)
            .bind::<diesel::sql_types::Timestamptz, _>(lease_until)
            .bind::<diesel::sql_types::BigInt, _>(limit.max(1))
            .load::<Taken>(&mut conn)
            .await
            .map(|mut batch| {
                batch.sort_by_key(|e| e.seq);
                batch
            })?)
    }

    /// Delivers a taken event and records its outcome (a batch of one).
    pub async fn deliver(&self, event: &Taken) -> Result<Delivered, ApiError> {
        let outcomes = self.deliver_batch(std::slice::from_ref(event), || false).await?;
        Ok(outcomes.into_iter().next().unwrap_or(Delivered::LeaseLost))
    }

    /// Delivers a batch taken by [`Deliverer::take_batch`] in order, one request at a time, and
    /// records the outcomes together: successes in one statement every [`RECORD_EVERY`] events
    /// or `record_interval`, and at the end (the same statement renews the lease of the rest of
    /// the batch, or at the end lets it go); a failure at once, with the successes before it,
    /// in one transaction, and the batch stops there (the link's later events wait behind it).
    /// When `stopping` says so, the batch stops before its next event: what was delivered is
    /// recorded and the rest is let go for any worker to take at once. Returns one outcome per
    /// event sent.
    pub async fn deliver_batch(
        &self,
        batch: &[Taken],
        stopping: impl Fn() -> bool,
    ) -> Result<Vec<Delivered>, ApiError> {
        let Some(first) = batch.first() else { return Ok(Vec::new()) };
        let mut held = Held {
            app_id: first.app_id.clone(),
            repository_id: first.repository_id.clone(),
            from_seq: first.seq,
            to_seq: batch.iter().map(|e| e.seq).max().unwrap_or(first.seq),
            lease: first.lease_until,
        };
        let mut outcomes = Vec::with_capacity(batch.len());
        // Delivered, not recorded yet.
        let mut unrecorded: Vec<Attempt> = Vec::new();
        let mut recorded_at = std::time::Instant::now();
        // Bytes of bodies the unrecorded attempts carry for the attempt log.
        let mut logged = 0;
        // Stopped before the batch's end: the rest is let go for another replica.
        let mut let_go = false;
        for event in batch {
            if stopping() {
                let_go = true;
                break;
            }
            // A long batch keeps its lease: renewed once half of it has gone.
            if held.lease < OffsetDateTime::now_utc() + self.lease / 2 && self.renew(&mut held).await.is_err() {
                return Ok(lease_lost(outcomes, unrecorded.len()));
            }
            let started = OffsetDateTime::now_utc();
            self.exchange.take();
            let outcome = self.send(event, &mut held).await;
            let exchange = self.exchange.take();
            let (error, app_side) = match outcome {
                Ok(()) => {
                    let exchange = exchange.map(Exchange::delivered);
                    logged += exchange
                        .as_ref()
                        .map_or(0, |e| e.request_body.len() + e.response_body.as_ref().map_or(0, String::len));
                    unrecorded.push(Attempt::new(event, started, None, exchange));
                    outcomes.push(Delivered::Ok);
                    if unrecorded.len() >= RECORD_EVERY
                        || logged >= RECORD_LOG_BYTES
                        || recorded_at.elapsed() >= self.record_interval
                    {
                        let next = lease_at(OffsetDateTime::now_utc() + self.lease);
                        let mut conn = db::conn(&self.pool).await?;
                        if !record(&mut conn, &held, &unrecorded, Some(next)).await? {
                            return Ok(lease_lost(outcomes, unrecorded.len()));
                        }
                        held.lease = next;
                        unrecorded.clear();
                        logged = 0;
                        recorded_at = std::time::Instant::now();
                    }
                    continue;
                }
                Err(SendError::Failed(error)) => (error, true),
                Err(SendError::Local(error)) => {
                    tracing::warn!(event_id = %event.id, error, "a delivery could not be prepared");
                    (error, false)
                }
                Err(SendError::LeaseLost) => {
                    outcomes.push(Delivered::LeaseLost);
                    return Ok(lease_lost(outcomes, unrecorded.len()));
                }
            };
            let failed = Attempt::new(event, started, Some(error), exchange);
            let outcome = self.record_failure(&held, event, &unrecorded, failed, app_side).await?;
            if outcome == Delivered::LeaseLost {
                outcomes.push(outcome);
                return Ok(lease_lost(outcomes, unrecorded.len()));
            }
            outcomes.push(outcome);
            return Ok(outcomes);
        }
        let mut conn = db::conn(&self.pool).await?;
        if !record(&mut conn, &held, &unrecorded, None).await? {
            return Ok(lease_lost(outcomes, unrecorded.len()));
        }
        if let_go {
            // Other replicas' idle workers may take the rest at once.
            crate::wake::notify_due(&mut conn).await?;
        }
        Ok(outcomes)
    }

    /// Records a failed attempt of `event` (retried later, or failed for good with its link),
    /// with the successes before it in the batch, the lease of the rest let go, and the app's
    /// breaker counting it when the app's side failed: one transaction.
    async fn record_failure(
        &self,
        held: &Held,
        event: &Taken,
        delivered: &[Attempt],
        failed: Attempt,
        app_side: bool,
    ) -> Result<Delivered, ApiError> {
        let error = failed.error.clone().unwrap_or_default();
        let attempts = failed.attempts;
        let now = OffsetDateTime::now_utc();
        let this = events::table
            .filter(events::id.eq(event.id))
            .filter(events::status.eq("pending"))
            .filter(events::lease_until.eq(held.lease));
        let link = app_repositories::table
            .filter(app_repositories::app_id.eq(&event.app_id))
            .filter(app_repositories::repository_id.eq(&event.repository_id));
        let (threshold, cooldown) = (self.breaker_threshold, self.breaker_cooldown);
        let mut all = delivered.to_vec();
        all.push(failed);
        let mut conn = db::conn(&self.pool).await?;
        conn.transaction::<_, ApiError, _>(async |conn| {
            let gave_up = attempts >= self.max_attempts;
            let next_attempt_at = if gave_up { now } else { now + self.retry_delay(attempts) };
            let recorded = diesel::update(this)
                .set((
                    events::status.eq(if gave_up { "failed" } else { "pending" }),
                    events::attempts.eq(attempts),
                    events::last_error.eq(&error),
                    events::next_attempt_at.eq(next_attempt_at),
                    events::lease_until.eq(None::<OffsetDateTime>),
                ))
                .execute(conn)
                .await?;
            if recorded == 0 {
                return Ok(Delivered::LeaseLost);
            }
            // The successes before it, and the rest of the batch let go.
            record(conn, held, &all, None).await?;
            if gave_up {
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
            Ok(if gave_up { Delivered::Failed(error) } else { Delivered::Retry(error) })
        })
        .await
    }

    /// The delay before the next attempt after `attempts` failed ones: the backoff for the first
    /// retry, doubled for each one after it, plus up to a quarter of it at random.
    fn retry_delay(&self, attempts: i32) -> Duration {
        let base = self.backoff.saturating_mul(1u32 << (attempts - 1).clamp(0, 16));
        let quarter = u64::try_from(base.as_millis() / 4).unwrap_or(u64::MAX);
        base.saturating_add(Duration::from_millis(rand::random::<u64>() % quarter.saturating_add(1)))
    }

    /// Extends the lease held on the batch (the events not recorded yet, delivered or not);
    /// [`SendError::LeaseLost`] when another worker holds them now.
    async fn renew(&self, held: &mut Held) -> Result<(), SendError> {
        let mut conn = db::conn(&self.pool).await.map_err(local)?;
        let until = lease_at(OffsetDateTime::now_utc() + self.lease);
        let renewed = diesel::update(
            events::table
                .filter(events::app_id.eq(&held.app_id))
                .filter(events::repository_id.eq(&held.repository_id))
                .filter(events::seq.between(held.from_seq, held.to_seq))
                .filter(events::status.eq("pending"))
                .filter(events::lease_until.eq(held.lease)),
        )
        .set(events::lease_until.eq(until))
        .execute(&mut conn)
        .await
        .map_err(local)?;
        if renewed == 0 {
            return Err(SendError::LeaseLost);
        }
        held.lease = until;
        Ok(())
    }

    /// Sends every request of an event, renewing `lease` before each further one.
    async fn send(&self, event: &Taken, lease: &mut Held) -> Result<(), SendError> {
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
        }
        let envelope = |file: Value| {
            let mut body = json!({
                "repository": repository, "file": file, "commit_sha": event.commit_sha,
                "timestamp": domain::timestamp::format_rfc3339_millis(OffsetDateTime::now_utc()),
            });
            // The file's SHA-256 before the change, beside `commit_sha` (the wire format's place).
            if event.event == "update" {
                body["previous_sha"] = p["previous_sha256"].clone();
            }
            body
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
    async fn send_file(&self, event: &Taken, lease: &mut Held, f: &File<'_>) -> Result<(), SendError> {
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
                self.renew(lease).await?;
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
        crate::apps::check_target(base_url, self.policy).await.map_err(|refused| refused.to_string())
    }

    async fn post(&self, url: &str, app_id: &str, key: &str, event: &Taken, body: &Value) -> Result<(), String> {
        let body = serde_json::to_vec(body).map_err(|e| e.to_string())?;
        let timestamp = OffsetDateTime::now_utc().unix_timestamp();
        let signature = signature(key, timestamp, &body);
        let logged = (head_text(&body, self.log_request_bytes), body.len());
        self.send_signed(url, app_id, event, timestamp, &signature, None, logged, body.into()).await
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
        // The attempt log's copy: the body's first bytes only.
        let mut head = prefix.to_vec();
        while let Some(piece) = content.next_piece().await? {
            escaped.clear();
            escape_json(&piece, &mut escaped);
            mac.update(&escaped);
            length += escaped.len();
            let room = self.log_request_bytes.saturating_sub(head.len());
            head.extend_from_slice(&escaped[..escaped.len().min(room)]);
        }
        content.finish().await?;
        mac.update(&suffix);
        let room = self.log_request_bytes.saturating_sub(head.len());
        head.extend_from_slice(&suffix[..suffix.len().min(room)]);
        let logged = (head_text(&head, self.log_request_bytes), length);
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
        Ok(self.send_signed(url, &event.app_id, event, timestamp, &signature, Some(length), logged, body).await?)
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
        (logged_body, body_bytes): (String, usize),
        body: reqwest::Body,
    ) -> Result<(), String> {
        let mut headers: Vec<(&str, String)> = vec![
            ("Content-Type", "application/json".to_owned()),
            ("X-Docora-App-Id", app_id.to_owned()),
            ("X-Docora-Timestamp", timestamp.to_string()),
            ("X-Docora-Signature", signature.to_owned()),
            // A redelivery keeps the original's delivery id and says it is one.
            ("X-Docora-Delivery", event.redelivery_of.unwrap_or(event.id).to_string()),
            ("X-Docora-Event", event.event.clone()),
        ];
        if event.redelivery_of.is_some() {
            headers.push(("X-Docora-Redelivery", "true".to_owned()));
        }
        let mut request = self.http.post(url);
        if let Some(length) = length {
            request = request.header("Content-Length", length.to_string());
        }
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        self.exchange.set(Exchange {
            url: url.to_owned(),
            request_headers: Value::Object(headers.iter().map(|(n, v)| ((*n).to_owned(), json!(v))).collect()),
            request_body: logged_body,
            request_body_bytes: i64::try_from(body_bytes).unwrap_or(i64::MAX),
            ..Exchange::default()
        });
        let request = request.body(body);
        // A request on a kept-alive connection can meet the receiver closing it as idle (Node's
        // and actix's servers do after 5 s): it fails before any answer, although the receiver
        // is fine. It goes again once, at once, on a new connection; a webhook may see a
        // delivery more than once anyway (same X-Docora-Delivery). A streamed body cannot go
        // twice: its failure is the attempt's.
        let again = request.try_clone().and_then(|r| r.build().ok());
        let sent = match request.send().await {
            Err(e) if !e.is_timeout() && !e.is_connect() && e.is_request() && again.is_some() => {
                tracing::debug!(url, error = %error_chain(&e), "a webhook request failed before any answer; sent again");
                match again {
                    Some(again) => reqwest::Client::execute(&self.http_fresh, again).await,
                    None => Err(e),
                }
            }
            sent => sent,
        };
        let mut response = sent.map_err(|e| {
            if e.is_timeout() {
                "the webhook timed out".to_owned()
            } else {
                format!("cannot reach the webhook: {}", error_chain(&e))
            }
        })?;
        let status = response.status();
        let response_headers: serde_json::Map<String, Value> = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), json!(head_text(v.as_bytes(), LOGGED_RESPONSE_BYTES))))
            .collect();
        // The body's first bytes only; the rest is not read (nor kept).
        let mut head = Vec::new();
        let mut truncated = false;
        while let Ok(Some(chunk)) = response.chunk().await {
            let room = LOGGED_RESPONSE_BYTES.saturating_sub(head.len());
            head.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if chunk.len() > room {
                truncated = true;
                break;
            }
        }
        self.exchange.update(|e| {
            e.response_status = Some(i32::from(status.as_u16()));
            e.response_headers = Some(Value::Object(response_headers));
            e.response_body = Some(head_text(&head, LOGGED_RESPONSE_BYTES));
            e.response_body_truncated = truncated;
        });
        if status.is_success() { Ok(()) } else { Err(format!("the webhook answered {}", status.as_u16())) }
    }
}

/// An error with its causes (reqwest's own text leaves them out: "error sending request for
/// url (…)" says nothing of a connection reset), without repeating one that its error already
/// says.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text = format!("{text}: {said}");
        }
        source = cause.source();
    }
    text
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

/// Records a batch's attempts in one statement: the delivered events (their link's
/// `delivered_seq` moved up to the last of them, the link `synced` when no event follows it, the
/// app's breaker closed, with no write when it already is), every attempt written to the
/// attempt log (the failed one, and the successes this statement records), and the lease of the batch's other
/// events renewed until `next_lease`, or let go when None. A failed attempt among `attempts` is
/// written by the caller in the same transaction (it is logged here). False when another worker holds the events now
/// (nothing of theirs is recorded).
async fn record(
    conn: &mut db::Conn,
    held: &Held,
    attempts: &[Attempt],
    next_lease: Option<OffsetDateTime>,
) -> Result<bool, ApiError> {
    #[derive(QueryableByName)]
    struct Recorded {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text, Timestamptz};
    let ids: Vec<Uuid> = attempts.iter().map(|a| a.event_id).collect();
    let numbers: Vec<i32> = attempts.iter().map(|a| a.attempts).collect();
    let started: Vec<OffsetDateTime> = attempts.iter().map(|a| a.started_at).collect();
    let ended: Vec<OffsetDateTime> = attempts.iter().map(|a| a.ended_at).collect();
    let errors: Vec<Option<String>> = attempts.iter().map(|a| a.error.clone()).collect();
    let ex = |f: &dyn Fn(&Exchange) -> Option<Value>| -> Vec<Option<Value>> {
        attempts.iter().map(|a| a.exchange.as_ref().and_then(f)).collect()
    };
    let urls: Vec<Option<&str>> = attempts.iter().map(|a| a.exchange.as_ref().map(|e| e.url.as_str())).collect();
    let request_headers = ex(&|e| Some(e.request_headers.clone()));
    let request_bodies: Vec<Option<&str>> =
        attempts.iter().map(|a| a.exchange.as_ref().map(|e| e.request_body.as_str())).collect();
    let request_bytes: Vec<Option<i64>> =
        attempts.iter().map(|a| a.exchange.as_ref().map(|e| e.request_body_bytes)).collect();
    let statuses: Vec<Option<i32>> =
        attempts.iter().map(|a| a.exchange.as_ref().and_then(|e| e.response_status)).collect();
    let response_headers = ex(&|e| e.response_headers.clone());
    let response_bodies: Vec<Option<&str>> =
        attempts.iter().map(|a| a.exchange.as_ref().and_then(|e| e.response_body.as_deref())).collect();
    let cut: Vec<bool> =
        attempts.iter().map(|a| a.exchange.as_ref().is_some_and(|e| e.response_body_truncated)).collect();
    let delivered = attempts.iter().filter(|a| a.error.is_none()).count();
    let recorded = diesel::sql_query(
        "WITH tried AS ( \
           SELECT * FROM unnest($1::uuid[], $2::int4[], $3::timestamptz[], $4::timestamptz[], $5::text[], \
                                $12::text[], $13::jsonb[], $14::text[], $15::int8[], $16::int4[], $17::jsonb[], \
                                $18::text[], $19::bool[]) \
                  AS t(event_id, attempts, started_at, ended_at, error, url, request_headers, request_body, \
                       request_body_bytes, response_status, response_headers, response_body, response_cut)), \
         done AS ( \
           UPDATE docora.events e SET status = 'delivered', delivered_at = t.ended_at, attempts = t.attempts, \
                  lease_until = NULL, last_error = NULL \
           FROM tried t WHERE t.error IS NULL AND e.id = t.event_id AND e.status = 'pending' AND e.lease_until = $6 \
           RETURNING e.id, e.seq), \
         logged AS ( \
           INSERT INTO docora.delivery_attempts (event_id, attempt, started_at, ended_at, request_url, \
                  request_headers, request_body, request_body_bytes, response_status, response_headers, \
                  response_body, response_body_truncated, error) \
           SELECT t.event_id, t.attempts, t.started_at, t.ended_at, t.url, t.request_headers, t.request_body, \
                  t.request_body_bytes, t.response_status, t.response_headers, t.response_body, t.response_cut, t.error \
           FROM tried t WHERE t.error IS NOT NULL OR t.event_id IN (SELECT id FROM done) \
           ON CONFLICT DO NOTHING), \
         rest AS ( \
           UPDATE docora.events e SET lease_until = $7 \
           WHERE e.app_id = $8 AND e.repository_id = $9 AND e.seq BETWEEN $10 AND $11 \
             AND e.status = 'pending' AND e.lease_until = $6 AND e.id <> ALL($1::uuid[]) \
           RETURNING 1), \
         last AS ( \
           SELECT m.seq, NOT EXISTS (SELECT 1 FROM docora.events e WHERE e.app_id = $8 AND e.repository_id = $9 \
                                     AND e.seq > m.seq) AS caught_up \
           FROM (SELECT max(seq) AS seq FROM done) m WHERE m.seq IS NOT NULL), \
         link AS ( \
           UPDATE docora.app_repositories l SET delivered_seq = greatest(l.delivered_seq, last.seq), \
                  status = CASE WHEN last.caught_up THEN 'synced' ELSE l.status END, \
                  updated_at = CASE WHEN last.caught_up THEN now() ELSE l.updated_at END \
           FROM last WHERE l.app_id = $8 AND l.repository_id = $9), \
         closed AS ( \
           UPDATE docora.apps a SET delivery_failures = 0, breaker_open_until = NULL, breaker_trial = false \
           WHERE a.id = $8 AND EXISTS (SELECT 1 FROM last) \
             AND (a.delivery_failures <> 0 OR a.breaker_open_until IS NOT NULL OR a.breaker_trial)) \
         SELECT count(*) AS n FROM done",
    )
    .bind::<Array<diesel::sql_types::Uuid>, _>(&ids)
    .bind::<Array<Integer>, _>(&numbers)
    .bind::<Array<Timestamptz>, _>(&started)
    .bind::<Array<Timestamptz>, _>(&ended)
    .bind::<Array<Nullable<Text>>, _>(&errors)
    .bind::<Timestamptz, _>(held.lease)
    .bind::<Nullable<Timestamptz>, _>(next_lease)
    .bind::<Text, _>(&held.app_id)
    .bind::<Text, _>(&held.repository_id)
    .bind::<BigInt, _>(held.from_seq)
    .bind::<BigInt, _>(held.to_seq)
    .bind::<Array<Nullable<Text>>, _>(&urls)
    .bind::<Array<Nullable<diesel::sql_types::Jsonb>>, _>(&request_headers)
    .bind::<Array<Nullable<Text>>, _>(&request_bodies)
    .bind::<Array<Nullable<BigInt>>, _>(&request_bytes)
    .bind::<Array<Nullable<Integer>>, _>(&statuses)
    .bind::<Array<Nullable<diesel::sql_types::Jsonb>>, _>(&response_headers)
    .bind::<Array<Nullable<Text>>, _>(&response_bodies)
    .bind::<Array<diesel::sql_types::Bool>, _>(&cut)
    .get_result::<Recorded>(conn)
    .await?;
    Ok(usize::try_from(recorded.n).is_ok_and(|n| n == delivered))
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
