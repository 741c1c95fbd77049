//! Webhook delivery from the outbox (`docora.events`), per `specs/docora-webhooks.md`.
//!
//! - One event at a time per app and repository, in `seq` order: a worker only takes the oldest
//!   undelivered event of a link, holding it with a lease (no transaction stays open during the
//!   HTTP call), so two workers never deliver one link's events concurrently or out of order.
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
//! - A base URL that resolves to a private, loopback or link-local address is refused unless the
//!   operator allows it.

use std::time::Duration;

use base64::Engine;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use service_kit::db;
use sha2::Sha256;
use time::OffsetDateTime;
use tokio::io::AsyncReadExt;
use uuid::Uuid;

use crate::apps::{UrlPolicy, is_private, key_context};
use crate::crypto::Cipher;
use crate::error::ApiError;
use crate::git::Git;
use crate::schema::docora::{app_repositories, apps, events, repositories};

/// Raw bytes per base64 piece: 524,288 base64 characters.
const PIECE_BYTES: usize = 524_288 / 4 * 3;
/// Binary files larger than this are sent in pieces.
const CHUNK_THRESHOLD: i64 = 1 << 20;

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
    /// How long one delivery may hold its event: the webhook timeout times the pieces, plus margin.
    pub lease: Duration,
}

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
}

/// What one delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    Ok,
    /// Will be retried at the given time.
    Retry(String),
    /// Gave up: the event and its link are failed.
    Failed(String),
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
    /// Takes the oldest deliverable event of some link (its link's head, due, not leased).
    pub async fn take(&self) -> Result<Option<Taken>, ApiError> {
        let mut conn = db::conn(&self.pool).await?;
        let lease_until = OffsetDateTime::now_utc() + self.lease;
        Ok(diesel::sql_query(
            "UPDATE docora.events SET lease_until = $1 WHERE id = ( \
               SELECT e.id FROM docora.events e \
               WHERE e.status = 'pending' AND e.next_attempt_at <= now() \
                 AND (e.lease_until IS NULL OR e.lease_until <= now()) \
                 AND NOT EXISTS (SELECT 1 FROM docora.events p \
                                 WHERE p.app_id = e.app_id AND p.repository_id = e.repository_id \
                                   AND p.status IN ('pending', 'failed') AND p.seq < e.seq) \
               ORDER BY e.next_attempt_at, e.seq LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING id, app_id, repository_id, event, path, payload, commit_sha, attempts",
        )
        .bind::<diesel::sql_types::Timestamptz, _>(lease_until)
        .get_result::<Taken>(&mut conn)
        .await
        .optional()?)
    }

    /// Delivers a taken event and records the outcome.
    pub async fn deliver(&self, event: &Taken) -> Result<Delivered, ApiError> {
        let outcome = self.send(event).await;
        let mut conn = db::conn(&self.pool).await?;
        let filter = events::table.filter(events::id.eq(event.id));
        match outcome {
            Ok(()) => {
                diesel::update(filter)
                    .set((
                        events::status.eq("delivered"),
                        events::delivered_at.eq(diesel::dsl::now),
                        events::attempts.eq(event.attempts + 1),
                        events::lease_until.eq(None::<OffsetDateTime>),
                        events::last_error.eq(None::<String>),
                    ))
                    .execute(&mut conn)
                    .await?;
                let remaining: i64 = events::table
                    .filter(events::app_id.eq(&event.app_id))
                    .filter(events::repository_id.eq(&event.repository_id))
                    .filter(events::status.ne("delivered"))
                    .count()
                    .get_result(&mut conn)
                    .await?;
                if remaining == 0 {
                    diesel::update(
                        app_repositories::table
                            .filter(app_repositories::app_id.eq(&event.app_id))
                            .filter(app_repositories::repository_id.eq(&event.repository_id)),
                    )
                    .set((app_repositories::status.eq("synced"), app_repositories::updated_at.eq(diesel::dsl::now)))
                    .execute(&mut conn)
                    .await?;
                }
                Ok(Delivered::Ok)
            }
            Err(error) => {
                let attempts = event.attempts + 1;
                if attempts >= self.max_attempts {
                    diesel::update(filter)
                        .set((
                            events::status.eq("failed"),
                            events::attempts.eq(attempts),
                            events::last_error.eq(&error),
                            events::lease_until.eq(None::<OffsetDateTime>),
                        ))
                        .execute(&mut conn)
                        .await?;
                    diesel::update(
                        app_repositories::table
                            .filter(app_repositories::app_id.eq(&event.app_id))
                            .filter(app_repositories::repository_id.eq(&event.repository_id)),
                    )
                    .set((app_repositories::status.eq("failed"), app_repositories::last_error.eq(&error)))
                    .execute(&mut conn)
                    .await?;
                    return Ok(Delivered::Failed(error));
                }
                let base = self.backoff.saturating_mul(1u32 << attempts.clamp(0, 16));
                let jitter = Duration::from_millis(rand::random::<u64>() % (base.as_millis() as u64 / 4 + 1));
                diesel::update(filter)
                    .set((
                        events::attempts.eq(attempts),
                        events::last_error.eq(&error),
                        events::next_attempt_at.eq(OffsetDateTime::now_utc() + base + jitter),
                        events::lease_until.eq(None::<OffsetDateTime>),
                    ))
                    .execute(&mut conn)
                    .await?;
                Ok(Delivered::Retry(error))
            }
        }
    }

    /// Sends every request of an event; the error says what went wrong, secrets aside.
    async fn send(&self, event: &Taken) -> Result<(), String> {
        let mut conn = db::conn(&self.pool).await.map_err(|e| e.to_string())?;
        let (base_url, sealed_key): (String, Vec<u8>) = apps::table
            .filter(apps::id.eq(&event.app_id))
            .select((apps::base_url, apps::client_auth_key_enc))
            .first(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        let (owner, name): (String, String) = repositories::table
            .filter(repositories::id.eq(&event.repository_id))
            .select((repositories::owner, repositories::name))
            .first(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        drop(conn);
        let key = self.cipher.open_text(&sealed_key, &key_context(&event.app_id)).map_err(|e| e.to_string())?;
        self.check_target(&base_url).await?;
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
            return self.post(&url, &event.app_id, &key, event, &body).await;
        }
        let path = event.path.clone().unwrap_or_default();
        let p = &event.payload;
        let mut file = json!({"path": path, "sha": p["sha256"]});
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
            return self.post(&url, &event.app_id, &key, event, &envelope(file)).await;
        }
        let blob = p["blob"].as_str().unwrap_or_default();
        let binary = p["is_binary"].as_bool().unwrap_or(false);
        let size = p["size"].as_i64().unwrap_or(0);
        let mut child = self.git.open(&event.repository_id, blob).map_err(|e| e.to_string())?;
        let mut content = child.stdout.take().ok_or("git gave no output")?;
        if !binary {
            let mut text = String::new();
            content.read_to_string(&mut text).await.map_err(|e| format!("reading the file from the clone: {e}"))?;
            file["content"] = json!(text);
            return self.post(&url, &event.app_id, &key, event, &envelope(file)).await;
        }
        file["content_encoding"] = json!("base64");
        let engine = base64::engine::general_purpose::STANDARD;
        if size <= CHUNK_THRESHOLD {
            let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            content.read_to_end(&mut bytes).await.map_err(|e| format!("reading the file from the clone: {e}"))?;
            file["content"] = json!(engine.encode(&bytes));
            return self.post(&url, &event.app_id, &key, event, &envelope(file)).await;
        }
        // In pieces, read from the clone as they go out.
        let total = usize::try_from(size).unwrap_or(0).div_ceil(PIECE_BYTES);
        let mut piece = vec![0u8; PIECE_BYTES];
        for index in 0..total {
            let mut filled = 0;
            while filled < PIECE_BYTES {
                let n = content
                    .read(&mut piece[filled..])
                    .await
                    .map_err(|e| format!("reading the file from the clone: {e}"))?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            let mut part = file.clone();
            part["content"] = json!(engine.encode(&piece[..filled]));
            part["chunk"] = json!({"id": event.id, "index": index, "total": total});
            self.post(&url, &event.app_id, &key, event, &envelope(part)).await?;
        }
        Ok(())
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
        let response = self
            .http
            .post(url)
            .header("Content-Type", "application/json")
            .header("X-Docora-App-Id", app_id)
            .header("X-Docora-Timestamp", timestamp.to_string())
            .header("X-Docora-Signature", signature(key, timestamp, &body))
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
