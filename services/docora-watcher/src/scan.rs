//! Scans: a repository due for one is claimed with a lease (so any number of replicas never scan
//! it twice at once, and no transaction stays open while git runs), fetched, its files compared
//! with the last snapshot, and the new snapshot and every app's events written in one
//! transaction (the durable outbox). A commit that did not move costs one fetch and no walk.
//!
//! Failures (git's, or a scan whose result the database refused) count up per repository; at
//! `threshold` in a row the circuit opens for `cooldown`, one `sync_failed` event goes to every
//! app watching, and no scan runs until it ends; then one trial scan runs, and a failure opens the
//! circuit again. A successful scan, a token update or a re-registration closes it.
//!
//! Paths are git's bytes: a name that is not UTF-8 is recorded (and sent) as its lossless text
//! form with its bytes beside it ([`crate::git::escape_path`]), so no two names ever collide.
//! The default branch is the one GitHub reports: the repository's `HEAD`, asked every
//! `branch_check` and when the branch scanned is gone (then GitHub's API if `HEAD` says nothing
//! new); a renamed branch is followed with only the difference sent. A repository with no branch
//! yet is empty, not failing.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde_json::json;
use service_kit::db;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::crypto::Cipher;
use crate::error::ApiError;
use crate::git::{Git, GitError, Want, is_branch_name};
use crate::repositories::tokens as link_tokens;
use crate::schema::docora::{app_repositories, events, repositories, repository_files};

/// What a scan needs.
#[derive(Clone)]
pub struct Scanner {
    pub pool: db::Pool,
    pub git: Git,
    /// Asked for a repository's default branch when its branch is gone.
    pub github: github::GithubClient,
    pub cipher: Cipher,
    /// `SCAN_INTERVAL_SECS`, default 300: how old a scan may get before the next.
    pub interval: Duration,
    /// `SCAN_LEASE_SECS`, default 900: how long a claimed scan may run before another replica
    /// may take the repository over.
    pub lease: Duration,
    /// `CIRCUIT_THRESHOLD`, default 5: git failures in a row that open the circuit.
    pub threshold: i32,
    /// `CIRCUIT_COOLDOWN_SECS`, default 1800: how long an open circuit stops scans.
    pub cooldown: Duration,
    /// `DEFAULT_BRANCH_CHECK_SECS`, default 3600: how often a scan first asks the repository
    /// which branch its `HEAD` (GitHub's default branch) names (zero: only when the branch
    /// scanned is gone).
    pub branch_check: Duration,
}

/// A repository claimed for a scan.
#[derive(Debug, Clone, Queryable)]
pub struct Claimed {
    pub id: String,
    pub owner: String,
    pub name: String,
    pub default_branch: String,
    pub last_commit_sha: Option<String>,
    /// When a scan last asked the repository for its default branch.
    pub branch_checked_at: Option<OffsetDateTime>,
    /// When this scan claimed it (its row of the scan history).
    pub started_at: OffsetDateTime,
}

/// How many scans of each repository the scan history keeps (older ones go as new ones come).
pub const SCAN_HISTORY_KEPT: i64 = 20;

/// What a scan did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanOutcome {
    /// The commit did not move and no app waits for a full sync: one fetch, nothing else.
    Unchanged {
        commit: String,
    },
    Scanned {
        commit: String,
        created: usize,
        updated: usize,
        deleted: usize,
        events: usize,
    },
    /// The repository has no commit yet: nothing to send until its first one.
    Empty,
    /// git failed, or the scan could not be recorded; `circuit_opened` when this failure opened
    /// the circuit (or opened it again after a failed trial).
    Failed {
        error: String,
        circuit_opened: bool,
    },
}

struct FileState {
    blob: String,
    sha256: String,
    size: i64,
    is_binary: bool,
}

/// How far into a file a NUL byte makes it binary (git's own rule).
const NUL_WINDOW: u64 = 8000;

/// Whether content is binary: a NUL byte in the first 8000 bytes (git's own rule), or not UTF-8.
pub fn is_binary(bytes: &[u8]) -> bool {
    bytes.iter().take(NUL_WINDOW as usize).any(|b| *b == 0) || std::str::from_utf8(bytes).is_err()
}

/// SHA-256, size and [`is_binary`] of content that arrives in pieces, so a file is never held
/// whole: what a scan learns of each changed blob.
#[derive(Default)]
pub struct ContentDigest {
    sha256: Sha256,
    size: u64,
    nul: bool,
    invalid_utf8: bool,
    /// A UTF-8 sequence cut by the end of the last piece (at most 3 bytes of it).
    carry: [u8; 4],
    carry_len: usize,
}

/// What [`ContentDigest`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digested {
    /// Lower-case hex.
    pub sha256: String,
    pub size: u64,
    pub is_binary: bool,
}

impl ContentDigest {
    pub fn update(&mut self, piece: &[u8]) {
        self.sha256.update(piece);
        if self.size < NUL_WINDOW {
            let window = usize::try_from(NUL_WINDOW - self.size).unwrap_or(usize::MAX).min(piece.len());
            self.nul |= piece[..window].contains(&0);
        }
        self.size += piece.len() as u64;
        if !self.invalid_utf8 {
            self.check_utf8(piece);
        }
    }

    fn check_utf8(&mut self, mut piece: &[u8]) {
        if self.carry_len > 0 {
            // Complete the cut sequence first: its lead byte says how long it is.
            let needed = match self.carry[0] {
                0xc0..=0xdf => 2,
                0xe0..=0xef => 3,
                _ => 4,
            };
            let take = (needed - self.carry_len).min(piece.len());
            self.carry[self.carry_len..self.carry_len + take].copy_from_slice(&piece[..take]);
            self.carry_len += take;
            piece = &piece[take..];
            if self.carry_len < needed {
                return;
            }
            if std::str::from_utf8(&self.carry[..needed]).is_err() {
                self.invalid_utf8 = true;
                return;
            }
            self.carry_len = 0;
        }
        match std::str::from_utf8(piece) {
            Ok(_) => {}
            // Cut at the end of the piece (`error_len` is None): the next piece may complete it.
            Err(e) if e.error_len().is_none() => {
                let rest = &piece[e.valid_up_to()..];
                self.carry[..rest.len()].copy_from_slice(rest);
                self.carry_len = rest.len();
            }
            Err(_) => self.invalid_utf8 = true,
        }
    }

    pub fn finish(self) -> Digested {
        Digested {
            sha256: hex::encode(self.sha256.finalize()),
            size: self.size,
            // A sequence still cut at the end is not UTF-8.
            is_binary: self.nul || self.invalid_utf8 || self.carry_len > 0,
        }
    }
}

impl Scanner {
    /// Claims the repository most overdue for a scan, if any.
    pub async fn claim(&self) -> Result<Option<Claimed>, ApiError> {
        let mut conn = db::conn(&self.pool).await?;
        let lease_until = OffsetDateTime::now_utc() + self.lease;
        let claimed = diesel::sql_query(
            "UPDATE docora.repositories SET scan_lease_until = $1, scan_started_at = now() WHERE id = ( \
               SELECT id FROM docora.repositories \
               WHERE next_scan_at <= now() \
                 AND (circuit_open_until IS NULL OR circuit_open_until <= now()) \
                 AND (scan_lease_until IS NULL OR scan_lease_until <= now()) \
               ORDER BY next_scan_at LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING id, owner, name, default_branch, last_commit_sha, branch_checked_at, scan_started_at",
        )
        .bind::<diesel::sql_types::Timestamptz, _>(lease_until)
        .get_result::<ClaimedRow>(&mut conn)
        .await
        .optional()?;
        Ok(claimed.map(|r| Claimed {
            id: r.id,
            owner: r.owner,
            name: r.name,
            default_branch: r.default_branch,
            last_commit_sha: r.last_commit_sha,
            branch_checked_at: r.branch_checked_at,
            started_at: r.scan_started_at,
        }))
    }

    /// Fetches the default branch with the apps' tokens in turn (anonymously when there are
    /// none); `None` when the repository has no commit yet. The default branch followed is set
    /// in `repo` (and recorded when the scan is): every `branch_check` the repository's `HEAD` is
    /// asked first (one ref listing, no API call); when the branch is gone and others exist, the
    /// `HEAD` is asked again, then GitHub's API, and a new default branch is fetched instead.
    async fn fetch(&self, repo: &mut Claimed) -> Result<Option<String>, GitError> {
        let tokens =
            link_tokens(&self.pool, &self.cipher, &repo.id).await.map_err(|e| GitError::Failed(e.to_string()))?;
        let now = OffsetDateTime::now_utc();
        let check_due =
            !self.branch_check.is_zero() && repo.branch_checked_at.is_none_or(|at| now - at >= self.branch_check);
        if check_due {
            match self.git.remote_head(&tokens, &repo.owner, &repo.name).await {
                Ok(head) => {
                    follow(repo, head);
                }
                // The fetch that follows says what is wrong, if anything.
                Err(e) => tracing::warn!(repository_id = repo.id, error = %e, "cannot ask for the default branch"),
            };
            repo.branch_checked_at = Some(now);
        }
        let missing = match self.fetch_branch(&tokens, repo).await {
            Err(GitError::NoSuchBranch(said)) => said,
            other => return other.map(Some),
        };
        // No branch at all: an empty repository, waiting for its first commit.
        if !self.git.has_branches(&tokens, &repo.owner, &repo.name).await? {
            return Ok(None);
        }
        // The branch is gone: renamed, most likely. The repository's HEAD says to what (unless it
        // was just asked), else GitHub's API.
        let head = if check_due { None } else { self.git.remote_head(&tokens, &repo.owner, &repo.name).await? };
        if !follow(repo, head) && !follow(repo, self.github_default_branch(repo, &tokens).await) {
            return Err(GitError::NoSuchBranch(missing));
        }
        repo.branch_checked_at = Some(now);
        self.fetch_branch(&tokens, repo).await.map(Some)
    }

    async fn fetch_branch(&self, tokens: &[String], repo: &Claimed) -> Result<String, GitError> {
        self.git.fetch_with(tokens, &repo.id, &repo.owner, &repo.name, Want::Branch(&repo.default_branch)).await
    }

    /// The repository's default branch as GitHub reports it, asked with the apps' tokens in turn
    /// (anonymously when there are none); `None` when GitHub cannot say.
    async fn github_default_branch(&self, repo: &Claimed, tokens: &[String]) -> Option<String> {
        let tokens: Vec<Option<&str>> =
            if tokens.is_empty() { vec![None] } else { tokens.iter().map(|t| Some(t.as_str())).collect() };
        for token in tokens {
            match self.github.repository(&repo.owner, &repo.name, token).await {
                Ok(found) => return found.default_branch,
                Err(e) => {
                    tracing::warn!(repository_id = repo.id, error = %e, "cannot ask GitHub for the default branch")
                }
            }
        }
        None
    }

    /// Scans a claimed repository and records what it found, or that it failed: a git failure,
    /// or a scan whose result could not be recorded, counts towards the circuit alike (never a
    /// scan left running).
    pub async fn scan(&self, repo: &Claimed) -> Result<ScanOutcome, ApiError> {
        match self.scan_and_record(repo).await {
            Err(e) => {
                tracing::error!(repository_id = repo.id, error = format!("{e:#}"), "scan could not be recorded");
                self.record_failure(repo, &Failure::unrecorded(&e)).await
            }
            outcome => outcome,
        }
    }

    async fn scan_and_record(&self, claimed: &Claimed) -> Result<ScanOutcome, ApiError> {
        let mut repo = claimed.clone();
        let repo = &mut repo;
        let commit = match self.fetch(repo).await {
            Ok(commit) => commit,
            Err(e) => return self.record_failure(repo, &Failure::git(&e)).await,
        };
        let mut conn = db::conn(&self.pool).await?;
        let links: Vec<(String, bool)> = app_repositories::table
            .filter(app_repositories::repository_id.eq(&repo.id))
            .order(app_repositories::app_id)
            .select((app_repositories::app_id, app_repositories::needs_full_sync))
            .load(&mut conn)
            .await?;
        drop(conn);
        if repo.last_commit_sha == commit && !links.iter().any(|(_, full)| *full) {
            let outcome = if commit.is_some() { "unchanged" } else { "empty" };
            self.finish(repo, commit.as_deref(), outcome, 0).await?;
            return Ok(commit.map_or(ScanOutcome::Empty, |commit| ScanOutcome::Unchanged { commit }));
        }

        let tree = match &commit {
            Some(commit) => match self.git.files(&repo.id, commit).await {
                Ok(tree) => tree,
                Err(e) => return self.record_failure(repo, &Failure::git(&e)).await,
            },
            None => Vec::new(),
        };
        let mut conn = db::conn(&self.pool).await?;
        let previous: HashMap<PathKey, FileState> = repository_files::table
            .filter(repository_files::repository_id.eq(&repo.id))
            .select((
                repository_files::path,
                repository_files::path_raw,
                repository_files::blob,
                repository_files::sha256,
                repository_files::size,
                repository_files::is_binary,
            ))
            .load::<(String, Vec<u8>, String, String, i64, bool)>(&mut conn)
            .await?
            .into_iter()
            .map(|(path, raw, blob, sha256, size, is_binary)| {
                ((path, raw), FileState { blob, sha256, size, is_binary })
            })
            .collect();
        drop(conn);

        // Only changed blobs are read and hashed, streamed through one git process.
        let mut batch = None;
        let mut current: Vec<(PathKey, FileState)> = Vec::with_capacity(tree.len());
        let (mut created, mut updated) = (Vec::new(), Vec::new());
        for entry in &tree {
            let key: PathKey = (entry.path.clone(), entry.raw.clone().unwrap_or_default());
            let state = match previous.get(&key) {
                Some(old) if old.blob == entry.blob => FileState {
                    blob: old.blob.clone(),
                    sha256: old.sha256.clone(),
                    size: old.size,
                    is_binary: old.is_binary,
                },
                old => {
                    let batch = match &mut batch {
                        Some(batch) => batch,
                        None => match self.git.batch(&repo.id) {
                            Ok(started) => batch.insert(started),
                            Err(e) => return self.record_failure(repo, &Failure::git(&e)).await,
                        },
                    };
                    let mut digest = ContentDigest::default();
                    if let Err(e) = batch.stream(&entry.blob, |piece| digest.update(piece)).await {
                        return self.record_failure(repo, &Failure::git(&e)).await;
                    }
                    let digest = digest.finish();
                    let state = FileState {
                        blob: entry.blob.clone(),
                        sha256: digest.sha256,
                        size: i64::try_from(digest.size).unwrap_or(i64::MAX),
                        is_binary: digest.is_binary,
                    };
                    match old {
                        Some(old) if old.sha256 == state.sha256 => {}
                        Some(old) => updated.push((key.clone(), old.sha256.clone())),
                        None => created.push(key.clone()),
                    }
                    state
                }
            };
            current.push((key, state));
        }
        drop(batch);
        let present: std::collections::HashSet<&PathKey> = current.iter().map(|(key, _)| key).collect();
        let mut deleted: Vec<(PathKey, String)> = previous
            .iter()
            .filter(|(key, _)| !present.contains(key))
            .map(|(key, old)| (key.clone(), old.sha256.clone()))
            .collect();
        deleted.sort();

        let by_path: HashMap<&PathKey, &FileState> = current.iter().map(|(p, s)| (p, s)).collect();
        let event = |app_id: &str, kind: &str, key: &PathKey, previous: Option<&str>| {
            let mut payload = match by_path.get(key) {
                Some(s) if kind != "delete" => json!({
                    "sha256": s.sha256, "previous_sha256": previous, "size": s.size,
                    "is_binary": s.is_binary, "blob": s.blob,
                }),
                _ => json!({"sha256": previous}),
            };
            // A name that is not UTF-8: its bytes go along (the path is its text form).
            if !key.1.is_empty() {
                payload["path_base64"] = json!(base64::engine::general_purpose::STANDARD.encode(&key.1));
            }
            (
                events::id.eq(Uuid::now_v7()),
                events::app_id.eq(app_id.to_owned()),
                events::repository_id.eq(repo.id.clone()),
                events::event.eq(kind.to_owned()),
                events::path.eq(Some(key.0.clone())),
                events::payload.eq(payload),
                events::commit_sha.eq(commit.clone()),
            )
        };
        // Per app: deletes, then creates, then updates (a full sync: every file as a create).
        let mut rows = Vec::new();
        for (app_id, full) in &links {
            if *full {
                rows.extend(current.iter().map(|(key, _)| event(app_id, "create", key, None)));
            } else {
                rows.extend(deleted.iter().map(|(key, sha)| event(app_id, "delete", key, Some(sha))));
                rows.extend(created.iter().map(|key| event(app_id, "create", key, None)));
                rows.extend(updated.iter().map(|(key, sha)| event(app_id, "update", key, Some(sha))));
            }
        }
        let event_count = rows.len();
        let mut conn = db::conn(&self.pool).await?;
        let full_apps: Vec<&String> = links.iter().filter(|(_, full)| *full).map(|(app, _)| app).collect();
        conn.transaction::<_, ApiError, _>(async |conn| {
            diesel::delete(repository_files::table.filter(repository_files::repository_id.eq(&repo.id)))
                .execute(conn)
                .await?;
            for chunk in current.chunks(1000) {
                let values: Vec<_> = chunk
                    .iter()
                    .map(|((path, raw), s)| {
                        (
                            repository_files::repository_id.eq(&repo.id),
                            repository_files::path.eq(path),
                            repository_files::path_raw.eq(raw),
                            repository_files::blob.eq(&s.blob),
                            repository_files::sha256.eq(&s.sha256),
                            repository_files::size.eq(s.size),
                            repository_files::is_binary.eq(s.is_binary),
                        )
                    })
                    .collect();
                diesel::insert_into(repository_files::table).values(values).execute(conn).await?;
            }
            for chunk in rows.chunks(1000) {
                diesel::insert_into(events::table).values(chunk.to_vec()).execute(conn).await?;
            }
            diesel::update(
                app_repositories::table
                    .filter(app_repositories::repository_id.eq(&repo.id))
                    .filter(app_repositories::app_id.eq_any(&full_apps)),
            )
            .set(app_repositories::needs_full_sync.eq(false))
            .execute(conn)
            .await?;
            if !rows.is_empty() {
                crate::wake::notify_due(conn).await?;
            }
            Ok(())
        })
        .await?;
        drop(conn);
        let outcome = if commit.is_some() { "scanned" } else { "empty" };
        self.finish(repo, commit.as_deref(), outcome, event_count).await?;
        let Some(commit) = commit else {
            return Ok(ScanOutcome::Empty);
        };
        Ok(ScanOutcome::Scanned {
            commit,
            created: created.len(),
            updated: updated.len(),
            deleted: deleted.len(),
            events: event_count,
        })
    }

    /// A successful scan (`commit` is `None` for an empty repository): the circuit closes, the
    /// lease goes, the next scan is scheduled, the branch followed is recorded, and the links'
    /// errors of an earlier failure go (a link whose deliveries failed keeps its own until the
    /// admin retries them); a link still `pending` with nothing left to deliver is `synced`. The
    /// scan goes into the history as `outcome` (`unchanged`, `scanned` or `empty`).
    ///
    /// A link registered while this scan ran (after it read the links) still waits for its full
    /// sync: it stays `pending`, and the next scan comes at once, as its registration asked, not
    /// after the interval.
    async fn finish(&self, repo: &Claimed, commit: Option<&str>, outcome: &str, events: usize) -> Result<(), ApiError> {
        let mut conn = db::conn(&self.pool).await?;
        conn.transaction::<_, ApiError, _>(async |conn| {
            // A registration updates the repository's row before it adds its link, in one
            // transaction: once this lock is ours, every such link is committed and seen below.
            let locked = repositories::table
                .filter(repositories::id.eq(&repo.id))
                .select(repositories::id)
                .for_update()
                .first::<String>(conn)
                .await
                .optional()?;
            // Unwatched by its last app while it was scanned: gone, with its history.
            if locked.is_none() {
                return Ok(());
            }
            let waiting: bool = diesel::select(diesel::dsl::exists(
                app_repositories::table
                    .filter(app_repositories::repository_id.eq(&repo.id))
                    .filter(app_repositories::needs_full_sync.eq(true)),
            ))
            .get_result(conn)
            .await?;
            let next = if waiting { OffsetDateTime::now_utc() } else { OffsetDateTime::now_utc() + self.interval };
            let found = diesel::update(repositories::table.filter(repositories::id.eq(&repo.id)))
                .set((
                    repositories::last_commit_sha.eq(commit),
                    repositories::default_branch.eq(&repo.default_branch),
                    repositories::branch_checked_at.eq(repo.branch_checked_at),
                    repositories::last_scan_at.eq(diesel::dsl::now),
                    repositories::next_scan_at.eq(next),
                    repositories::scan_lease_until.eq(None::<OffsetDateTime>),
                    repositories::scan_started_at.eq(None::<OffsetDateTime>),
                    repositories::consecutive_failures.eq(0),
                    repositories::circuit_open_until.eq(None::<OffsetDateTime>),
                    repositories::last_error.eq(None::<String>),
                ))
                .execute(conn)
                .await?;
            diesel::sql_query(
                "UPDATE docora.app_repositories l SET last_error = NULL, \
                   status = CASE WHEN l.status = 'pending' AND NOT l.needs_full_sync AND NOT EXISTS ( \
                                   SELECT 1 FROM docora.events e WHERE e.app_id = l.app_id \
                                   AND e.repository_id = l.repository_id AND e.status IN ('pending', 'failed')) \
                            THEN 'synced' ELSE l.status END \
                 WHERE l.repository_id = $1 AND l.status <> 'failed' \
                   AND (l.last_error IS NOT NULL OR (l.status = 'pending' AND NOT l.needs_full_sync AND NOT EXISTS ( \
                          SELECT 1 FROM docora.events e WHERE e.app_id = l.app_id \
                          AND e.repository_id = l.repository_id AND e.status IN ('pending', 'failed'))))",
            )
            .bind::<diesel::sql_types::Text, _>(&repo.id)
            .execute(conn)
            .await?;
            // Unwatched by its last app while it was scanned: gone, with its history.
            if found == 0 {
                return Ok(());
            }
            let recorded = ScanRecord { outcome, commit, events, error: None, circuit_opened: false };
            record_scan(conn, repo, &recorded).await
        })
        .await
    }

    /// A failed scan: counted; at `threshold` failures in a row the circuit opens and every
    /// watching app gets one `sync_failed` event. After the cooldown one trial scan runs (the
    /// circuit is half-open): a success closes the circuit, a failure opens it again for another
    /// cooldown (without another `sync_failed`: the apps were told when it first opened).
    async fn record_failure(&self, repo: &Claimed, failure: &Failure) -> Result<ScanOutcome, ApiError> {
        let Failure { kind, message, public } = failure;
        tracing::warn!(repository_id = repo.id, error = message, "scan failed");
        let (threshold, cooldown, interval) = (self.threshold, self.cooldown, self.interval);
        let mut conn = db::conn(&self.pool).await?;
        let opened = conn
            .transaction::<_, ApiError, _>(async |conn| {
                let failures = diesel::update(repositories::table.filter(repositories::id.eq(&repo.id)))
                    .set((
                        repositories::consecutive_failures.eq(repositories::consecutive_failures + 1),
                        repositories::last_error.eq(message),
                        repositories::scan_lease_until.eq(None::<OffsetDateTime>),
                        repositories::scan_started_at.eq(None::<OffsetDateTime>),
                        repositories::next_scan_at.eq(OffsetDateTime::now_utc() + interval),
                    ))
                    .returning((repositories::consecutive_failures, repositories::last_commit_sha))
                    .get_result::<(i32, Option<String>)>(conn)
                    .await?;
                let (failures, commit) = failures;
                let failed = |events: usize, opened: bool| ScanRecord {
                    outcome: "failed",
                    commit: commit.as_deref(),
                    events,
                    error: Some(message.as_str()),
                    circuit_opened: opened,
                };
                if failures < threshold {
                    record_scan(conn, repo, &failed(0, false)).await?;
                    return Ok(false);
                }
                let until = OffsetDateTime::now_utc() + cooldown;
                diesel::update(repositories::table.filter(repositories::id.eq(&repo.id)))
                    .set((repositories::circuit_open_until.eq(until), repositories::next_scan_at.eq(until)))
                    .execute(conn)
                    .await?;
                diesel::update(app_repositories::table.filter(app_repositories::repository_id.eq(&repo.id)))
                    .set(app_repositories::last_error.eq(Some(message)))
                    .execute(conn)
                    .await?;
                if failures > threshold {
                    record_scan(conn, repo, &failed(0, true)).await?;
                    return Ok(true);
                }
                let apps: Vec<String> = app_repositories::table
                    .filter(app_repositories::repository_id.eq(&repo.id))
                    .select(app_repositories::app_id)
                    .load(conn)
                    .await?;
                let details = json!({
                    "error": {"type": kind, "message": public},
                    "circuit_breaker": {"status": "open", "consecutive_failures": failures, "threshold": threshold,
                                        "cooldown_until": domain::timestamp::format_rfc3339(until)},
                });
                record_scan(conn, repo, &failed(apps.len(), true)).await?;
                for app_id in apps {
                    diesel::insert_into(events::table)
                        .values((
                            events::id.eq(Uuid::now_v7()),
                            events::app_id.eq(&app_id),
                            events::repository_id.eq(&repo.id),
                            events::event.eq("sync_failed"),
                            events::payload.eq(details.clone()),
                        ))
                        .execute(conn)
                        .await?;
                }
                crate::wake::notify_due(conn).await?;
                Ok(true)
            })
            .await?;
        Ok(ScanOutcome::Failed { error: message.clone(), circuit_opened: opened })
    }
}

/// A scan's row of the scan history.
struct ScanRecord<'a> {
    outcome: &'a str,
    commit: Option<&'a str>,
    events: usize,
    error: Option<&'a str>,
    circuit_opened: bool,
}

/// Adds a scan to the repository's history, in the transaction that records its outcome, and
/// drops the repository's scans past the last [`SCAN_HISTORY_KEPT`].
async fn record_scan(conn: &mut db::Conn, repo: &Claimed, scan: &ScanRecord<'_>) -> Result<(), ApiError> {
    use crate::schema::docora::scan_attempts;
    diesel::insert_into(scan_attempts::table)
        .values((
            scan_attempts::repository_id.eq(&repo.id),
            scan_attempts::started_at.eq(repo.started_at),
            scan_attempts::ended_at.eq(diesel::dsl::now),
            scan_attempts::outcome.eq(scan.outcome),
            scan_attempts::commit_sha.eq(scan.commit),
            scan_attempts::events.eq(i32::try_from(scan.events).unwrap_or(i32::MAX)),
            scan_attempts::error.eq(scan.error),
            scan_attempts::circuit_opened.eq(scan.circuit_opened),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    diesel::sql_query(
        "DELETE FROM docora.scan_attempts WHERE repository_id = $1 AND started_at < ( \
           SELECT started_at FROM docora.scan_attempts WHERE repository_id = $1 \
           ORDER BY started_at DESC OFFSET $2 LIMIT 1)",
    )
    .bind::<diesel::sql_types::Text, _>(&repo.id)
    .bind::<diesel::sql_types::BigInt, _>(SCAN_HISTORY_KEPT - 1)
    .execute(conn)
    .await?;
    Ok(())
}

/// Follows `branch`, the default branch as GitHub reports it, when it is a new one; returns
/// whether it was.
fn follow(repo: &mut Claimed, branch: Option<String>) -> bool {
    match branch {
        Some(branch) if branch != repo.default_branch && is_branch_name(&branch) => {
            tracing::info!(
                repository_id = repo.id,
                from = repo.default_branch,
                to = branch,
                "the default branch changed on GitHub: following it"
            );
            repo.default_branch = branch;
            true
        }
        _ => false,
    }
}

/// A file's key in a snapshot: its path's text and, when the name is not UTF-8, its bytes
/// (empty otherwise), as `repository_files` keys it.
type PathKey = (String, Vec<u8>);

/// Why a scan failed: `sync_failed`'s `error.type`, what the repository and its links record
/// (seen by the admin), and what the apps are told.
struct Failure {
    kind: &'static str,
    message: String,
    public: String,
}

impl Failure {
    /// git failed (what git said, secrets removed, for everyone).
    fn git(error: &GitError) -> Self {
        let message = error.to_string();
        Failure { kind: "git_failure", public: message.clone(), message }
    }

    /// The scan ran but its result could not be recorded (the database refused it): the cause
    /// is the operator's, the apps learn only that the scan failed on the service's side.
    fn unrecorded(error: &ApiError) -> Self {
        Failure {
            kind: "scan_failure",
            message: format!("the scan could not be recorded: {error}"),
            public: "the scan could not be recorded (an error on the service's side); it is retried at the next scan"
                .to_owned(),
        }
    }
}

#[derive(QueryableByName)]
struct ClaimedRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    owner: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    default_branch: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    last_commit_sha: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    branch_checked_at: Option<OffsetDateTime>,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    scan_started_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_is_detected_from_content() {
        assert!(!is_binary(b"hello\nworld"));
        assert!(!is_binary("héllo".as_bytes()));
        assert!(is_binary(&[0x89, b'P', b'N', b'G', 0, 0]));
        assert!(is_binary(&[0xff, 0xfe, 0xfd]));
    }

    /// Digests `content` cut into pieces of `piece` bytes.
    fn digest_in_pieces(content: &[u8], piece: usize) -> Digested {
        let mut digest = ContentDigest::default();
        for part in content.chunks(piece) {
            digest.update(part);
        }
        digest.finish()
    }

    #[test]
    fn a_digest_in_pieces_matches_the_whole_content_wherever_it_is_cut() {
        let mut nul_late = vec![b'a'; 9000];
        nul_late[8500] = 0;
        let mut nul_at_edge = vec![b'a'; 9000];
        nul_at_edge[7999] = 0;
        let samples: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"plain ascii text\n".to_vec(),
            "héllo wörld, ✓ and 🦀 across every cut".as_bytes().to_vec(),
            "🦀".as_bytes().to_vec(),
            "é".as_bytes()[..1].to_vec(), // cut at the very end: not UTF-8
            [b"ok ".as_slice(), &"🦀".as_bytes()[..2], b" then ascii"].concat(), // a broken sequence inside
            vec![0xed, 0xa0, 0x80],       // a surrogate: not UTF-8
            vec![0xf0, 0x9f, 0xa6, 0x80, 0xff], // valid, then a byte that never is
            nul_late,                     // a NUL after git's window: text
            nul_at_edge,                  // a NUL at its last byte: binary
            [vec![b'x'; 7998], "🦀".as_bytes().to_vec()].concat(), // a sequence across the window
        ];
        for content in &samples {
            let whole = Digested {
                sha256: hex::encode(Sha256::digest(content)),
                size: content.len() as u64,
                is_binary: is_binary(content),
            };
            for piece in [1, 2, 3, 5, 7, 4096, 7999, 8000, 8001, content.len().max(1)] {
                assert_eq!(digest_in_pieces(content, piece), whole, "{piece}-byte pieces of {content:?}");
            }
        }
        assert!(!digest_in_pieces(&samples[2], 1).is_binary);
        assert!(digest_in_pieces(&samples[4], 1).is_binary);
        assert!(!digest_in_pieces(&samples[8], 3).is_binary);
        assert!(digest_in_pieces(&samples[9], 3).is_binary);
    }
}
