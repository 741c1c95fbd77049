//! The admin's view of a repository: its sync health (scans) apart from each watching app's
//! delivery state, shared by the overview, the queue, the repository page and
//! `GET /admin/api/repositories` (every repository's sync health) and
//! `GET /admin/api/repositories/{repository_id}`.
//!
//! Sync health is read from the repository's row and its scan history (`docora.scan_attempts`,
//! the last [`crate::scan::SCAN_HISTORY_KEPT`] scans): an error belongs to the scan that had it,
//! so a later successful scan is seen beside it and the repository no longer reads as failing.

use actix_web::web;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Serialize;
use service_kit::db;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::AppState;
use crate::admin_api::Admin;
use crate::error::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/api/repositories", web::get().to(list_repositories))
        .route("/admin/api/repositories/{repository_id}", web::get().to(get_repository));
}

/// How long a repository may be overdue, with no scan running, before it counts as stuck.
pub const STUCK_AFTER: time::Duration = time::Duration::minutes(5);

/// What the sync health of a repository is read from.
#[derive(Debug, QueryableByName)]
pub struct SyncRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub owner: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub name: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub is_private: bool,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub default_branch: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub last_commit_sha: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    pub last_scan_at: Option<OffsetDateTime>,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    pub next_scan_at: OffsetDateTime,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub consecutive_failures: i32,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    pub circuit_open_until: Option<OffsetDateTime>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub last_error: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    pub scan_lease_until: Option<OffsetDateTime>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    pub scan_started_at: Option<OffsetDateTime>,
}

const SYNC_SELECT: &str = "SELECT id, owner, name, is_private, default_branch, last_commit_sha, last_scan_at, \
       next_scan_at, consecutive_failures, circuit_open_until, last_error, scan_lease_until, scan_started_at \
     FROM docora.repositories ";

impl SyncRow {
    pub fn github_url(&self) -> String {
        format!("https://github.com/{}/{}", self.owner, self.name)
    }

    /// The repository's sync state and why (see [`SyncFacts::health`]).
    pub fn health(&self, now: OffsetDateTime) -> (&'static str, String) {
        SyncFacts {
            last_scan_at: self.last_scan_at,
            next_scan_at: self.next_scan_at,
            consecutive_failures: self.consecutive_failures,
            circuit_open_until: self.circuit_open_until,
            last_error: self.last_error.clone(),
            scan_lease_until: self.scan_lease_until,
            scan_started_at: self.scan_started_at,
        }
        .health(now)
    }

    /// The circuit: `closed`, `open` (no scan before `circuit_open_until`) or `half_open` (one
    /// trial scan next).
    pub fn circuit(&self, now: OffsetDateTime) -> &'static str {
        match self.circuit_open_until {
            Some(until) if until > now => "open",
            Some(_) => "half_open",
            None => "closed",
        }
    }
}

/// What a repository's sync health is read from.
pub struct SyncFacts {
    pub last_scan_at: Option<OffsetDateTime>,
    pub next_scan_at: OffsetDateTime,
    pub consecutive_failures: i32,
    pub circuit_open_until: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    pub scan_lease_until: Option<OffsetDateTime>,
    pub scan_started_at: Option<OffsetDateTime>,
}

impl SyncFacts {
    /// The repository's sync state and why, in words: `circuit_open`, `failing`, `stuck` (a scan
    /// abandoned past its lease, or overdue with none running), `scanning`, `never_scanned` or
    /// `ok`.
    pub fn health(&self, now: OffsetDateTime) -> (&'static str, String) {
        let at = domain::timestamp::format_rfc3339;
        let error = self.last_error.clone().unwrap_or_else(|| "no error recorded".to_owned());
        let running = self.scan_lease_until.is_some_and(|until| until > now);
        match (self.circuit_open_until, self.scan_started_at) {
            (Some(until), _) if until > now => (
                "circuit_open",
                format!("circuit open until {} after {} failed scans: {error}", at(until), self.consecutive_failures),
            ),
            _ if self.consecutive_failures > 0 => {
                ("failing", format!("the last {} scans failed: {error}", self.consecutive_failures))
            }
            (_, Some(started)) if !running => (
                "stuck",
                format!(
                    "a scan started {} and its lease ran out {} before it finished: its worker stopped or was \
                     cut off (SCAN_LEASE_SECS); a scan worker takes it again when one is free",
                    at(started),
                    at(self.scan_lease_until.unwrap_or(started))
                ),
            ),
            _ if running => (
                "scanning",
                format!(
                    "a scan is running since {} (its lease ends {})",
                    self.scan_started_at.map_or_else(|| "a moment".to_owned(), at),
                    at(self.scan_lease_until.unwrap_or(now))
                ),
            ),
            _ if self.next_scan_at < now - STUCK_AFTER => (
                "stuck",
                format!(
                    "{} due since {} and no scan is running: are the scan workers up (SCAN_WORKERS)?",
                    if self.last_scan_at.is_none() { "never scanned;" } else { "overdue;" },
                    at(self.next_scan_at)
                ),
            ),
            _ if self.last_scan_at.is_none() => {
                ("never_scanned", format!("never scanned yet; due {}", at(self.next_scan_at)))
            }
            _ => ("ok", format!("scanning well; next scan due {}", at(self.next_scan_at))),
        }
    }
}

/// A repository's sync health in short.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SyncHealth {
    /// `ok`, `scanning`, `never_scanned`, `stuck`, `failing` or `circuit_open`.
    pub state: String,
    /// Why, in words.
    pub reason: String,
}

impl From<(&'static str, String)> for SyncHealth {
    fn from((state, reason): (&'static str, String)) -> Self {
        SyncHealth { state: state.to_owned(), reason }
    }
}

/// A repository that needs a look: its scans fail, its circuit is open, it was never scanned,
/// or it is stuck (overdue with no scan running, or a scan abandoned past its lease).
#[derive(Debug, Serialize, ToSchema)]
pub struct RepositoryHealth {
    pub repository_id: String,
    pub github_url: String,
    /// `circuit_open`, `failing`, `stuck`, `never_scanned` or `scanning`.
    pub state: String,
    /// Why, in words.
    pub reason: String,
    /// The last successful scan.
    #[serde(with = "domain::timestamp::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_scan_at: Option<OffsetDateTime>,
    pub consecutive_failures: i32,
    pub last_error: Option<String>,
}

/// The repositories that need a look, by URL.
pub async fn needing_a_look(conn: &mut db::Conn) -> Result<Vec<RepositoryHealth>, ApiError> {
    let now = OffsetDateTime::now_utc();
    let rows: Vec<SyncRow> = diesel::sql_query(format!(
        "{SYNC_SELECT} WHERE consecutive_failures > 0 OR circuit_open_until IS NOT NULL OR last_scan_at IS NULL \
            OR (scan_started_at IS NOT NULL AND (scan_lease_until IS NULL OR scan_lease_until <= now())) \
            OR (next_scan_at < $1 AND (scan_lease_until IS NULL OR scan_lease_until <= now())) \
         ORDER BY owner, name"
    ))
    .bind::<diesel::sql_types::Timestamptz, _>(now - STUCK_AFTER)
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let (state, reason) = r.health(now);
            (state != "ok").then(|| RepositoryHealth {
                repository_id: r.id.clone(),
                github_url: r.github_url(),
                state: state.to_owned(),
                reason,
                last_scan_at: r.last_scan_at,
                consecutive_failures: r.consecutive_failures,
                last_error: r.last_error,
            })
        })
        .collect())
}

/// One scan of the scan history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScanView {
    #[serde(with = "domain::timestamp::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: OffsetDateTime,
    pub duration_ms: i64,
    /// `unchanged` (the commit did not move), `scanned` (events written), `empty` (no commit
    /// yet) or `failed`.
    pub outcome: String,
    /// The commit scanned (for a failure: the last one recorded).
    pub commit_sha: Option<String>,
    /// Events written for the apps; for a failure that opened the circuit, its `sync_failed`s.
    pub events: i32,
    /// This scan's error (a failed scan only).
    pub error: Option<String>,
    /// This failure opened the circuit.
    pub circuit_opened: bool,
}

/// The sync side of a repository: its scans, apart from any app's deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncState {
    /// `ok`, `scanning`, `never_scanned`, `stuck`, `failing` or `circuit_open`.
    pub state: String,
    /// Why, in words.
    pub reason: String,
    /// The last scan attempt, whatever its outcome (none: never scanned, or the history was
    /// written before it was kept).
    pub last_attempt: Option<ScanView>,
    /// The last successful scan.
    #[serde(with = "domain::timestamp::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_success_at: Option<OffsetDateTime>,
    /// The commit of the last successful scan (none: never scanned, or no commit yet).
    pub current_commit: Option<String>,
    pub default_branch: String,
    #[serde(with = "domain::timestamp::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub next_scan_at: OffsetDateTime,
    /// The running scan's start (none: none runs; set with its lease run out: abandoned).
    #[serde(with = "domain::timestamp::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub scan_started_at: Option<OffsetDateTime>,
    #[serde(with = "domain::timestamp::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub scan_lease_until: Option<OffsetDateTime>,
    /// `closed`, `open` or `half_open` (one trial scan next).
    pub circuit: String,
    #[serde(with = "domain::timestamp::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub circuit_open_until: Option<OffsetDateTime>,
    /// Failed scans in a row (0 once one succeeds).
    pub consecutive_failures: i32,
    /// The error of the failing scans (none once one succeeds).
    pub error: Option<String>,
}

/// The last delivered event of a link: every event of the link up to it is delivered.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveredUpTo {
    pub event_id: uuid::Uuid,
    pub event: String,
    pub path: Option<String>,
    pub commit_sha: Option<String>,
    #[serde(with = "domain::timestamp::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "domain::timestamp::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub delivered_at: Option<OffsetDateTime>,
}

/// One app watching the repository, and where its deliveries stand.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkDelivery {
    pub app_id: String,
    pub app_name: String,
    /// The link's status: `pending` (events to deliver), `synced` (all delivered) or `failed`
    /// (an event gave up; the link waits for a retry).
    pub status: String,
    /// `up_to_date`, `delivering`, `retrying` (its next event failed and waits to be sent again),
    /// `failed` or `full_sync_next` (the next scan sends every file).
    pub delivery_state: String,
    pub needs_full_sync: bool,
    pub delivered_up_to: Option<DeliveredUpTo>,
    /// Events waiting, and events that gave up.
    pub pending: i64,
    pub failed: i64,
    #[serde(with = "domain::timestamp::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub oldest_pending_at: Option<OffsetDateTime>,
    /// The link's next event (the oldest not delivered), where the delivery error is.
    pub next_event_id: Option<uuid::Uuid>,
    /// Why the next event is not delivered yet (its last failed attempt), none while nothing
    /// failed.
    pub last_delivery_error: Option<String>,
}

/// A repository as the admin sees it: sync state, scan history, and each app's deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepositoryDetail {
    pub repository_id: String,
    pub github_url: String,
    pub is_private: bool,
    pub sync: SyncState,
    /// The last scans, newest first.
    pub scans: Vec<ScanView>,
    /// The apps watching it, by name.
    pub links: Vec<LinkDelivery>,
}

#[derive(QueryableByName)]
struct LinkRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    app_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    app_name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    needs_full_sync: bool,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    link_error: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Uuid>)]
    delivered_id: Option<uuid::Uuid>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    delivered_event: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    delivered_path: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    delivered_commit: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    delivered_created_at: Option<OffsetDateTime>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    delivered_at: Option<OffsetDateTime>,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pending: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    failed: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Uuid>)]
    head_id: Option<uuid::Uuid>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    head_created_at: Option<OffsetDateTime>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Integer>)]
    head_attempts: Option<i32>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    head_error: Option<String>,
}

type ScanRow = (OffsetDateTime, OffsetDateTime, String, Option<String>, i32, Option<String>, bool);

fn scan_view(r: ScanRow) -> ScanView {
    ScanView {
        started_at: r.0,
        duration_ms: i64::try_from((r.1 - r.0).whole_milliseconds()).unwrap_or(0),
        outcome: r.2,
        commit_sha: r.3,
        events: r.4,
        error: r.5,
        circuit_opened: r.6,
    }
}

/// A repository with its sync state, scan history and the deliveries of every app watching it.
pub async fn repository_detail(conn: &mut db::Conn, repository_id: &str) -> Result<RepositoryDetail, ApiError> {
    use crate::schema::docora::scan_attempts as s;
    let now = OffsetDateTime::now_utc();
    let row: SyncRow = diesel::sql_query(format!("{SYNC_SELECT} WHERE id = $1"))
        .bind::<diesel::sql_types::Text, _>(repository_id)
        .get_result(conn)
        .await
        .optional()?
        .ok_or_else(|| ApiError::NotFound(format!("no repository {repository_id}")))?;
    let scans: Vec<ScanView> = s::table
        .filter(s::repository_id.eq(repository_id))
        .order(s::started_at.desc())
        .limit(crate::scan::SCAN_HISTORY_KEPT)
        .select((s::started_at, s::ended_at, s::outcome, s::commit_sha, s::events, s::error, s::circuit_opened))
        .load::<ScanRow>(conn)
        .await?
        .into_iter()
        .map(scan_view)
        .collect();
    let links: Vec<LinkRow> = diesel::sql_query(
        "SELECT l.app_id, a.app_name, l.status, l.needs_full_sync, l.last_error AS link_error, \
                d.id AS delivered_id, d.event AS delivered_event, d.path AS delivered_path, \
                d.commit_sha AS delivered_commit, d.created_at AS delivered_created_at, d.delivered_at, \
                (SELECT count(*) FROM docora.events e WHERE e.app_id = l.app_id \
                   AND e.repository_id = l.repository_id AND e.status = 'pending') AS pending, \
                (SELECT count(*) FROM docora.events e WHERE e.app_id = l.app_id \
                   AND e.repository_id = l.repository_id AND e.status = 'failed') AS failed, \
                h.id AS head_id, h.created_at AS head_created_at, h.attempts AS head_attempts, \
                h.last_error AS head_error \
         FROM docora.app_repositories l JOIN docora.apps a ON a.id = l.app_id \
         LEFT JOIN docora.events d ON d.app_id = l.app_id AND d.repository_id = l.repository_id \
                                  AND d.seq = l.delivered_seq AND l.delivered_seq > 0 \
         LEFT JOIN LATERAL (SELECT e.id, e.created_at, e.attempts, e.last_error FROM docora.events e \
                            WHERE e.app_id = l.app_id AND e.repository_id = l.repository_id \
                              AND e.status IN ('pending', 'failed') ORDER BY e.seq LIMIT 1) h ON true \
         WHERE l.repository_id = $1 ORDER BY a.app_name, l.app_id",
    )
    .bind::<diesel::sql_types::Text, _>(repository_id)
    .load(conn)
    .await?;
    let links = links
        .into_iter()
        .map(|l| {
            let retrying = l.head_attempts.unwrap_or(0) > 0 && l.head_error.is_some();
            let delivery_state = if l.status == "failed" || l.failed > 0 {
                "failed"
            } else if retrying {
                "retrying"
            } else if l.pending > 0 {
                "delivering"
            } else if l.needs_full_sync {
                "full_sync_next"
            } else {
                "up_to_date"
            };
            // A delivery error: the next event's last failed attempt (a link that gave up keeps
            // its own); a scan's error is the repository's, not the link's.
            let last_delivery_error = if l.status == "failed" {
                l.head_error.clone().or(l.link_error)
            } else {
                l.head_error.clone().filter(|_| retrying)
            };
            LinkDelivery {
                delivered_up_to: l.delivered_id.zip(l.delivered_created_at).map(|(event_id, created_at)| {
                    DeliveredUpTo {
                        event_id,
                        event: l.delivered_event.clone().unwrap_or_default(),
                        path: l.delivered_path.clone(),
                        commit_sha: l.delivered_commit.clone(),
                        created_at,
                        delivered_at: l.delivered_at,
                    }
                }),
                app_id: l.app_id,
                app_name: l.app_name,
                status: l.status,
                delivery_state: delivery_state.to_owned(),
                needs_full_sync: l.needs_full_sync,
                pending: l.pending,
                failed: l.failed,
                oldest_pending_at: l.head_created_at,
                next_event_id: l.head_id,
                last_delivery_error,
            }
        })
        .collect();
    let (state, reason) = row.health(now);
    let failing = row.consecutive_failures > 0;
    let sync = SyncState {
        state: state.to_owned(),
        reason,
        last_attempt: None,
        last_success_at: row.last_scan_at,
        current_commit: row.last_commit_sha.clone(),
        default_branch: row.default_branch.clone(),
        next_scan_at: row.next_scan_at,
        scan_started_at: row.scan_started_at,
        scan_lease_until: row.scan_lease_until,
        circuit: row.circuit(now).to_owned(),
        circuit_open_until: row.circuit_open_until,
        consecutive_failures: row.consecutive_failures,
        error: row.last_error.clone().filter(|_| failing),
    };
    let last_attempt = <[ScanView]>::first(&scans).cloned();
    Ok(RepositoryDetail {
        repository_id: row.id.clone(),
        github_url: row.github_url(),
        is_private: row.is_private,
        sync: SyncState { last_attempt, ..sync },
        scans,
        links,
    })
}

/// A repository: its sync state apart from each app's deliveries, and its last scans.
#[utoipa::path(get, path = "/admin/api/repositories/{repository_id}", tag = "admin",
    params(("repository_id" = String, Path)),
    responses((status = 200, body = RepositoryDetail), (status = 401, body = domain::ErrorBody),
              (status = 404, body = domain::ErrorBody)))]
pub(crate) async fn get_repository(
    _admin: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<web::Json<RepositoryDetail>, ApiError> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(web::Json(repository_detail(&mut conn, &path.into_inner()).await?))
}

/// A repository's sync health, in the list of every repository.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepositorySummary {
    pub repository_id: String,
    pub github_url: String,
    pub sync: SyncHealth,
    /// The last successful scan.
    #[serde(with = "domain::timestamp::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_scan_at: Option<OffsetDateTime>,
    #[serde(with = "domain::timestamp::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub next_scan_at: OffsetDateTime,
    pub current_commit: Option<String>,
    /// Apps watching it.
    pub apps: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RepositoryList {
    items: Vec<RepositorySummary>,
}

#[derive(QueryableByName)]
struct SummaryRow {
    #[diesel(embed)]
    sync: SyncRow,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    apps: i64,
}

/// Every repository with its sync health, by URL.
pub async fn repository_summaries(conn: &mut db::Conn) -> Result<Vec<RepositorySummary>, ApiError> {
    let now = OffsetDateTime::now_utc();
    let rows: Vec<SummaryRow> = diesel::sql_query(
        "SELECT r.id, r.owner, r.name, r.is_private, r.default_branch, r.last_commit_sha, r.last_scan_at, \
                r.next_scan_at, r.consecutive_failures, r.circuit_open_until, r.last_error, r.scan_lease_until, \
                r.scan_started_at, \
                (SELECT count(*) FROM docora.app_repositories l WHERE l.repository_id = r.id) AS apps \
         FROM docora.repositories r ORDER BY r.owner, r.name",
    )
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| RepositorySummary {
            repository_id: r.sync.id.clone(),
            github_url: r.sync.github_url(),
            sync: r.sync.health(now).into(),
            last_scan_at: r.sync.last_scan_at,
            next_scan_at: r.sync.next_scan_at,
            current_commit: r.sync.last_commit_sha,
            apps: r.apps,
        })
        .collect())
}

/// Every repository with its sync health.
#[utoipa::path(get, path = "/admin/api/repositories", tag = "admin",
    responses((status = 200, body = RepositoryList), (status = 401, body = domain::ErrorBody)))]
pub(crate) async fn list_repositories(
    _admin: Admin,
    state: web::Data<AppState>,
) -> Result<web::Json<RepositoryList>, ApiError> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(web::Json(RepositoryList { items: repository_summaries(&mut conn).await? }))
}
