//! Waking idle delivery workers, instead of each one polling PostgreSQL.
//!
//! - Whatever makes events due now (a scan's new events, a redelivery, a retried link, a breaker
//!   closed by an admin, a batch let go at shutdown) runs [`notify_due`] in the transaction that
//!   writes them: PostgreSQL sends the notification when that transaction commits, and never
//!   when it rolls back (several in one transaction make one).
//! - Each replica keeps one connection of its own, outside the pool, listening on [`CHANNEL`]
//!   ([`listen`]); a notification wakes one idle worker of the replica ([`Wake`]). A worker woken
//!   that finds work wakes another, which finds the next link's events or nothing; so a scan
//!   that wrote events for ten apps gets its links going side by side, and one that wrote events
//!   for one link costs one take that finds nothing.
//! - Events that become due later (a retry's backoff, a breaker's cooldown, the lease of a
//!   worker that was cut off) need no notification: an idle worker sleeps until the earliest of
//!   them ([`next_due`]), at most the fallback poll (`DELIVERY_FALLBACK_POLL_SECS`).
//! - The fallback poll is for what a notification could miss: a worker takes once per period at
//!   most when nothing woke it. The listener checks its connection as often; when the
//!   connection is lost it connects again (backing off while the database is away) and wakes a
//!   worker, which takes once, for whatever was notified meanwhile.

use std::sync::Arc;
use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use futures_util::StreamExt;
use service_kit::background::Background;
use service_kit::db;
use tokio::sync::Notify;

use crate::error::ApiError;

/// The PostgreSQL channel that says events may be due now.
pub const CHANNEL: &str = "docora_events";
/// The `application_name` of the listening connection (in `pg_stat_activity`).
pub const LISTENER_NAME: &str = "docora-watcher listener";

/// Tells the delivery workers of every replica that events may be due now. Run it in the
/// transaction that makes them due: the notification goes out when it commits.
pub async fn notify_due(conn: &mut db::Conn) -> Result<(), ApiError> {
    diesel::sql_query("NOTIFY docora_events").execute(conn).await?;
    Ok(())
}

/// Wakes this replica's idle delivery workers, one at a time. A wake-up that finds no worker
/// waiting is kept for the next one that goes idle (so none is lost between a worker's empty
/// take and its wait).
#[derive(Clone, Default)]
pub struct Wake(Arc<Notify>);

impl Wake {
    /// Wakes one idle worker (or the next to go idle).
    pub fn one(&self) {
        self.0.notify_one();
    }

    /// Waits until woken, or `at_most`.
    pub async fn wait(&self, at_most: Duration) {
        let _timed_out = tokio::time::timeout(at_most, self.0.notified()).await;
    }
}

/// How long an idle worker may sleep: until the earliest time a link's head becomes deliverable
/// (its retry is due, its lease runs out, its app's breaker cooldown ends), at most `fallback`;
/// `fallback` when no event waits. Counted by the database's clock. A head that looks
/// deliverable now (another worker's take was locking it) gives a short wait, never none, so a
/// worker never spins.
pub async fn next_due(pool: &db::Pool, fallback: Duration) -> Result<Duration, ApiError> {
    #[derive(diesel::QueryableByName)]
    struct Due {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
        seconds: Option<f64>,
    }
    let mut conn = db::conn(pool).await?;
    let due: Due = diesel::sql_query(
        "SELECT extract(epoch FROM min(greatest(h.next_attempt_at, h.lease_until, a.breaker_open_until)) - now()) \
                ::float8 AS seconds \
         FROM docora.app_repositories l \
         JOIN docora.apps a ON a.id = l.app_id \
         CROSS JOIN LATERAL (SELECT p.status, p.next_attempt_at, p.lease_until FROM docora.events p \
                             WHERE p.app_id = l.app_id AND p.repository_id = l.repository_id \
                               AND p.seq > l.delivered_seq AND p.status IN ('pending', 'failed') \
                             ORDER BY p.seq LIMIT 1) h \
         WHERE h.status = 'pending'",
    )
    .get_result(&mut conn)
    .await?;
    Ok(match due.seconds {
        None => fallback,
        Some(s) if s.is_finite() => Duration::from_secs_f64(s.clamp(0.02, fallback.as_secs_f64().max(0.02))),
        Some(_) => fallback,
    })
}

/// Listens on [`CHANNEL`] with a connection of its own and wakes a worker at each
/// notification, until the replica stops. Every `check` the connection is checked; a lost one
/// is opened again (after `retry`, doubled while it keeps failing, up to a minute), and a worker
/// is woken once it listens again.
pub async fn listen(url: String, wake: Wake, stop: Background, check: Duration, retry: Duration) {
    let mut delay = retry;
    while !stop.is_stopping() {
        match stop.unless_stopped(connect(&url)).await {
            None => return,
            Some(Ok(mut conn)) => {
                delay = retry;
                // Anything notified while this replica was not listening.
                wake.one();
                match stop.unless_stopped(relay(&mut conn, &wake, check)).await {
                    None => return,
                    Some(error) => tracing::warn!(error, "the delivery listener lost its connection; listening again"),
                }
            }
            Some(Err(error)) => {
                tracing::warn!(error = %error, "the delivery listener cannot connect");
                wake.one();
                stop.unless_stopped(tokio::time::sleep(delay)).await;
                delay = (delay * 2).min(Duration::from_secs(60));
            }
        }
    }
}

async fn connect(url: &str) -> Result<AsyncPgConnection, String> {
    let mut conn = AsyncPgConnection::establish(url).await.map_err(|e| e.to_string())?;
    conn.batch_execute(&format!("SET application_name = '{LISTENER_NAME}'; LISTEN {CHANNEL}"))
        .await
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

/// Wakes a worker per notification until the connection fails; returns why it did.
async fn relay(conn: &mut AsyncPgConnection, wake: &Wake, check: Duration) -> String {
    loop {
        {
            let mut notifications = std::pin::pin!(conn.notifications_stream());
            loop {
                match tokio::time::timeout(check, notifications.next()).await {
                    Ok(Some(Ok(_))) => wake.one(),
                    Ok(Some(Err(e))) => return e.to_string(),
                    Ok(None) => return "the connection closed".to_owned(),
                    // Quiet for a while: is the connection still there?
                    Err(_) => break,
                }
            }
        }
        if let Err(e) = conn.batch_execute("SELECT 1").await {
            return e.to_string();
        }
    }
}
