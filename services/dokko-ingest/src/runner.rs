//! The job runners: each replica runs `JOB_WORKERS` of them. A runner claims a RUNNING job
//! whose lease is free (`FOR UPDATE SKIP LOCKED`, so two replicas never run one job), keeps the
//! lease alive while it works, and carries the job through its two phases:
//!
//! 1. **listing**: pages of the source's files from dokko-api go into `job_files` (scanned
//!    counts them), the cursor saved with each page; then files the source no longer has are
//!    marked deleted.
//! 2. **processing**: each listed file is compared with what is indexed: unchanged (nothing to
//!    do), metadata alone changed (updated without re-extraction), or new/modified (read from
//!    object storage, extracted in a child process, chunked, and written with its chunks, which
//!    get their vectors later, in the background: [`crate::vectors`]). A file that cannot be read is recorded as failed with its
//!    reason. Each file is one transaction that also moves the job's counters.
//!
//! Every step is recorded as it happens, so a job whose runner died (a crash) is taken up again
//! where it stopped once its lease runs out; a job taken `JOB_MAX_CLAIMS` times without finishing
//! ends FAILED with that reason. A runner told to stop (the service shutting down) stops between
//! files: the files in hand finish and commit, then it hands the job over (frees its lease, and
//! its take does not count against `JOB_MAX_CLAIMS`), so another replica goes on at once. The
//! index is brought up to date from the database during the job (every few seconds) and at its
//! end ([`crate::index`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Interval, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, RunQueryDsl};
use domain::ingest::SourceFile;
use futures_util::{StreamExt, TryStreamExt};
use serde_json::Value;
use service_kit::background::Background;
use service_kit::db;
use uuid::Uuid;

use crate::chunking::Chunker;
use crate::index::Indexes;
use crate::jobs::Job;
use crate::schema::ingest::{chunks, files, job_files, jobs, sources};
use crate::source_files::{ListError, SourceFiles};
use object_storage::{FetchError, Storage};

/// How a file's text is extracted: this program (the service's own binary by default) run with
/// `args`, under `limits`.
#[derive(Debug, Clone)]
pub struct Extraction {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub limits: extract::Limits,
}

/// Why a job stopped before its end.
#[derive(Debug, thiserror::Error)]
enum Stop {
    /// The job cannot go on: it ends FAILED with this reason.
    #[error("{0}")]
    Failed(String),
    /// Another runner took the job (this one was too slow to renew its lease).
    #[error("the job's lease was lost")]
    LeaseLost,
    /// The service is shutting down: the job is handed over to another runner.
    #[error("the service is stopping")]
    HandOver,
    /// The database or the index failed: the job stays RUNNING and is taken up again later.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<diesel::result::Error> for Stop {
    fn from(error: diesel::result::Error) -> Self {
        Stop::Internal(error.into())
    }
}

impl From<db::DbError> for Stop {
    fn from(error: db::DbError) -> Self {
        Stop::Internal(error.into())
    }
}

/// Files of the source listed per request to dokko-api.
const LIST_PAGE: u32 = 500;
/// Pending files read per step of processing.
const PROCESS_BATCH: i64 = 64;
/// Chunk rows per INSERT.
const INSERT_ROWS: usize = 1000;
/// How often a running job brings the index up to date, so progress is searchable.
const SYNC_EVERY: Duration = Duration::from_secs(10);

pub struct Runner {
    pub pool: db::Pool,
    pub storage: Storage,
    pub source_files: SourceFiles,
    pub indexes: Arc<Indexes>,
    pub chunker: Arc<Chunker>,
    pub extraction: Extraction,
    /// `JOB_LEASE_SECS`: how long a claim holds without renewal.
    pub lease: Duration,
    /// `JOB_MAX_CLAIMS`: takes of one job before it is failed.
    pub max_claims: i32,
    /// `EXTRACT_CONCURRENCY`: files of one job processed at once.
    pub concurrency: usize,
    /// `MAX_FILE_BYTES`: larger files fail without being read.
    pub max_file_bytes: u64,
    /// This runner's identity in `jobs.lease_owner`.
    pub me: Uuid,
    /// The service's background work: told to stop on shutdown, a runner hands its job over.
    pub background: Background,
    /// Wakes the embedding worker when a job ends.
    pub embed_wake: Arc<tokio::sync::Notify>,
}

/// What the job found for one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    New,
    Modified,
    Metadata,
    Unchanged,
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::New => "new",
            Outcome::Modified => "modified",
            Outcome::Metadata => "metadata",
            Outcome::Unchanged => "unchanged",
            Outcome::Failed => "failed",
        }
    }
}

/// The indexed state of a file, as the last job left it.
#[derive(Debug, Queryable)]
struct Known {
    ord: i64,
    repository_id: Uuid,
    path: String,
    sha256: String,
    metadata: Value,
    state: String,
}

/// A listed file waiting for processing.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = job_files, check_for_backend(diesel::pg::Pg))]
struct Pending {
    file_id: Uuid,
    repository_id: Uuid,
    path: String,
    sha256: String,
    size: i64,
    object_key: String,
    metadata: Value,
}

#[derive(QueryableByName)]
struct Version {
    #[diesel(sql_type = BigInt)]
    version: i64,
}

impl Runner {
    /// Claims the oldest RUNNING job whose lease is free.
    pub async fn claim(&self) -> anyhow::Result<Option<Job>> {
        let mut conn = db::conn(&self.pool).await?;
        let job = diesel::sql_query(
            "UPDATE ingest.jobs SET lease_owner = $1, lease_until = now() + $2, claims = claims + 1
             WHERE id = (SELECT id FROM ingest.jobs
                         WHERE status = 'RUNNING' AND (lease_until IS NULL OR lease_until < now())
                         ORDER BY started_at FOR UPDATE SKIP LOCKED LIMIT 1)
             RETURNING *",
        )
        .bind::<SqlUuid, _>(self.me)
        .bind::<Interval, _>(interval(self.lease))
        .get_result::<Job>(&mut conn)
        .await
        .optional()?;
        Ok(job)
    }

    /// Runs a claimed job until it ends or this runner loses it.
    pub async fn run(&self, job: Job) {
        let job_id = job.id;
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = tokio::spawn(heartbeat(self.pool.clone(), job_id, self.me, self.lease, lost.clone()));
        let outcome = if job.claims > self.max_claims {
            Err(Stop::Failed(format!(
                "the job was interrupted {} times without finishing (see the service's logs)",
                job.claims - 1
            )))
        } else {
            self.work(&job, &lost).await
        };
        heartbeat.abort();
        let finished = match outcome {
            Ok(()) => self.end(&job, "COMPLETED", None).await,
            Err(Stop::Failed(reason)) => {
                tracing::warn!(%job_id, reason, "ingestion job failed");
                self.end(&job, "FAILED", Some(reason)).await
            }
            Err(Stop::LeaseLost) => {
                tracing::warn!(%job_id, "ingestion job taken by another runner");
                Ok(())
            }
            Err(Stop::HandOver) => self.hand_over(&job).await,
            Err(Stop::Internal(e)) => {
                tracing::warn!(%job_id, error = format!("{e:#}"), "ingestion job interrupted; it will be taken up again");
                Ok(())
            }
        };
        if let Err(e) = finished {
            tracing::warn!(%job_id, error = format!("{e:#}"), "cannot record the job's end; it will be taken up again");
        }
    }

    async fn work(&self, job: &Job, lost: &AtomicBool) -> Result<(), Stop> {
        let mut conn = db::conn(&self.pool).await?;
        let bucket: String = sources::table.find(job.source_id).select(sources::bucket).first(&mut conn).await?;
        drop(conn);
        if job.phase == "listing" {
            self.list(job, lost).await?;
        }
        self.process(job, &bucket, lost).await
    }

    /// Phase 1: the source's files into `job_files`, then the deletions.
    async fn list(&self, job: &Job, lost: &AtomicBool) -> Result<(), Stop> {
        let mut cursor = job.list_cursor.as_deref().and_then(|c| c.parse::<Uuid>().ok());
        loop {
            if lost.load(Ordering::Acquire) {
                return Err(Stop::LeaseLost);
            }
            if self.background.is_stopping() {
                return Err(Stop::HandOver);
            }
            let page = self.source_files.page(job.source_id, cursor, LIST_PAGE).await.map_err(|e| match e {
                ListError::SourceGone => Stop::Failed(e.to_string()),
                ListError::Failed(reason) => Stop::Failed(format!("cannot list the document source's files: {reason}")),
            })?;
            let next = page.next;
            let last = page.files.last().map(|f| f.file_id);
            let listed = page.files;
            let mut conn = db::conn(&self.pool).await?;
            conn.transaction::<_, Stop, _>(async |conn| {
                let mut inserted = 0;
                for batch in listed.chunks(INSERT_ROWS) {
                    inserted += diesel::insert_into(job_files::table)
                        .values(batch.iter().map(|f| listed_row(job.id, f)).collect::<Vec<_>>())
                        .on_conflict_do_nothing()
                        .execute(conn)
                        .await?;
                }
                let cursor = next.or(last).map(|c| c.to_string());
                let updated = diesel::update(owned(job.id, self.me))
                    .set((
                        jobs::scanned.eq(jobs::scanned + inserted as i64),
                        jobs::list_cursor.eq(cursor),
                        jobs::updated_at.eq(diesel::dsl::now),
                    ))
                    .execute(conn)
                    .await?;
                if updated == 0 { Err(Stop::LeaseLost) } else { Ok(()) }
            })
            .await?;
            match next {
                Some(after) => cursor = Some(after),
                None => break,
            }
        }
        self.delete_gone(job).await
    }

    /// Files indexed (or failed) before that the listing no longer has: removed and counted.
    async fn delete_gone(&self, job: &Job) -> Result<(), Stop> {
        let mut conn = db::conn(&self.pool).await?;
        let source_id = job.source_id;
        conn.transaction::<_, Stop, _>(async |conn| {
            let listed = job_files::table.filter(job_files::job_id.eq(job.id)).select(job_files::file_id);
            let gone_query = || {
                files::table
                    .filter(files::source_id.eq(source_id))
                    .filter(files::state.ne("deleted"))
                    .filter(files::file_id.ne_all(listed))
            };
            let gone: i64 = gone_query().count().get_result(conn).await?;
            let mut removed_ords = Vec::new();
            if gone > 0 {
                let removed: Vec<(i64, Uuid, Uuid, String, String)> = diesel::update(gone_query())
                    .set((
                        files::state.eq("deleted"),
                        files::chunk_count.eq(0),
                        files::error.eq(None::<String>),
                        files::updated_at.eq(diesel::dsl::now),
                    ))
                    .returning((files::ord, files::file_id, files::repository_id, files::path, files::sha256))
                    .get_results(conn)
                    .await?;
                removed_ords = removed.iter().map(|r| r.0).collect();
                diesel::delete(chunks::table.filter(chunks::file_ord.eq_any(&removed_ords))).execute(conn).await?;
                for batch in removed.chunks(INSERT_ROWS) {
                    let rows: Vec<_> = batch
                        .iter()
                        .map(|(_, file_id, repository_id, path, sha256)| {
                            (
                                job_files::job_id.eq(job.id),
                                job_files::file_id.eq(*file_id),
                                job_files::repository_id.eq(*repository_id),
                                job_files::path.eq(path),
                                job_files::sha256.eq(sha256),
                                job_files::size.eq(0),
                                job_files::object_key.eq(""),
                                job_files::outcome.eq(Some("deleted")),
                            )
                        })
                        .collect();
                    diesel::insert_into(job_files::table).values(rows).execute(conn).await?;
                }
            }
            let updated = diesel::update(owned(job.id, self.me))
                .set((
                    jobs::deleted.eq(jobs::deleted + gone),
                    jobs::phase.eq("processing"),
                    jobs::updated_at.eq(diesel::dsl::now),
                ))
                .execute(conn)
                .await?;
            if updated == 0 {
                return Err(Stop::LeaseLost);
            }
            if !removed_ords.is_empty() {
                stamp_version(conn, source_id, &removed_ords).await?;
            }
            Ok(())
        })
        .await
    }

    /// Phase 2: every pending file, `EXTRACT_CONCURRENCY` at a time.
    async fn process(&self, job: &Job, bucket: &str, lost: &AtomicBool) -> Result<(), Stop> {
        let index = self.indexes.source(job.source_id)?;
        let mut last_sync = Instant::now();
        loop {
            if lost.load(Ordering::Acquire) {
                return Err(Stop::LeaseLost);
            }
            let mut conn = db::conn(&self.pool).await?;
            let pending: Vec<Pending> = job_files::table
                .filter(job_files::job_id.eq(job.id))
                .filter(job_files::outcome.is_null())
                .order(job_files::seq)
                .limit(PROCESS_BATCH)
                .select(Pending::as_select())
                .load(&mut conn)
                .await?;
            drop(conn);
            if pending.is_empty() {
                break;
            }
            if self.background.is_stopping() {
                return Err(Stop::HandOver);
            }
            // Told to stop, no further file starts; those under way finish and commit.
            futures_util::stream::iter(pending)
                .take_while(|_| std::future::ready(!self.background.is_stopping()))
                .map(|file| self.process_file(job, bucket, file))
                .buffer_unordered(self.concurrency.max(1))
                .try_collect::<Vec<()>>()
                .await?;
            if last_sync.elapsed() >= SYNC_EVERY {
                index.sync(&self.pool).await?;
                last_sync = Instant::now();
            }
        }
        Ok(())
    }

    async fn process_file(&self, job: &Job, bucket: &str, file: Pending) -> Result<(), Stop> {
        let mut conn = db::conn(&self.pool).await?;
        let known: Option<Known> = files::table
            .filter(files::source_id.eq(job.source_id))
            .filter(files::file_id.eq(file.file_id))
            .select((files::ord, files::repository_id, files::path, files::sha256, files::metadata, files::state))
            .first(&mut conn)
            .await
            .optional()?;
        drop(conn);
        let indexed = known.as_ref().filter(|k| k.state == "indexed");
        if let Some(known) = indexed.filter(|k| k.sha256 == file.sha256) {
            let same =
                known.metadata == file.metadata && known.path == file.path && known.repository_id == file.repository_id;
            return if same {
                self.record(job, &file, Outcome::Unchanged, None).await
            } else {
                self.update_metadata(job, &file, known.ord).await
            };
        }
        let outcome = if indexed.is_some() { Outcome::Modified } else { Outcome::New };
        match self.read(bucket, &file).await? {
            Ok(chunks) => self.store(job, &file, outcome, chunks).await,
            Err(reason) => self.store_failure(job, &file, reason).await,
        }
    }

    /// The file's chunks, or why the file cannot be read. Errors of the job's own dependencies
    /// (storage down, the extractor missing) stop it.
    async fn read(&self, bucket: &str, file: &Pending) -> Result<Result<Vec<String>, String>, Stop> {
        if u64::try_from(file.size).unwrap_or(u64::MAX) > self.max_file_bytes {
            return Ok(Err(FetchError::TooLarge(self.max_file_bytes).to_string()));
        }
        let bytes = match self.storage.get_bytes(bucket, &file.object_key, self.max_file_bytes).await {
            Ok(bytes) => bytes,
            Err(FetchError::Unavailable(reason)) => {
                return Err(Stop::Failed(format!("object storage failed: {reason}")));
            }
            Err(e) => return Ok(Err(e.to_string())),
        };
        let args: Vec<&str> = self.extraction.args.iter().map(String::as_str).collect();
        let extracted = match extract::extract_isolated(
            &self.extraction.program,
            &args,
            &file.path,
            &bytes,
            &self.extraction.limits,
        )
        .await
        {
            Ok(extracted) => extracted,
            Err(extract::ExtractError::Io(e)) => {
                return Err(Stop::Failed(format!("the text extractor cannot run: {e}")));
            }
            Err(e) => return Ok(Err(e.to_string())),
        };
        drop(bytes);
        let chunker = self.chunker.clone();
        let markdown = extracted.format == extract::Format::Markdown;
        let text = searchable_text(extracted);
        let chunks =
            tokio::task::spawn_blocking(move || chunker.chunks(&text, markdown)).await.map_err(anyhow::Error::from)?;
        Ok(Ok(chunks))
    }

    /// Writes a new or modified file with its chunks (without vectors: the embedding worker
    /// computes them after).
    async fn store(&self, job: &Job, file: &Pending, outcome: Outcome, texts: Vec<String>) -> Result<(), Stop> {
        let mut conn = db::conn(&self.pool).await?;
        conn.transaction::<_, Stop, _>(async |conn| {
            let count = i32::try_from(texts.len()).unwrap_or(i32::MAX);
            let ord = upsert_file(conn, job.source_id, file, "indexed", None, count).await?;
            diesel::delete(chunks::table.filter(chunks::file_ord.eq(ord))).execute(conn).await?;
            let rows: Vec<_> = texts
                .iter()
                .enumerate()
                .map(|(position, content)| {
                    (
                        chunks::file_ord.eq(ord),
                        chunks::position.eq(i32::try_from(position).unwrap_or(i32::MAX)),
                        chunks::content.eq(content.replace('\0', "")),
                    )
                })
                .collect();
            for batch in rows.chunks(INSERT_ROWS) {
                diesel::insert_into(chunks::table).values(batch).execute(conn).await?;
            }
            progress(conn, job.id, self.me, file.file_id, outcome, None).await?;
            stamp_version(conn, job.source_id, &[ord]).await
        })
        .await
    }

    /// Records a file that cannot be read: its earlier chunks (stale now) go.
    async fn store_failure(&self, job: &Job, file: &Pending, reason: String) -> Result<(), Stop> {
        tracing::info!(job_id = %job.id, file_id = %file.file_id, reason, "file not indexed");
        let mut conn = db::conn(&self.pool).await?;
        conn.transaction::<_, Stop, _>(async |conn| {
            let ord = upsert_file(conn, job.source_id, file, "failed", Some(&reason), 0).await?;
            diesel::delete(chunks::table.filter(chunks::file_ord.eq(ord))).execute(conn).await?;
            progress(conn, job.id, self.me, file.file_id, Outcome::Failed, Some(&reason)).await?;
            stamp_version(conn, job.source_id, &[ord]).await
        })
        .await
    }

    /// Same content, new metadata (or path, or repository): no re-extraction.
    async fn update_metadata(&self, job: &Job, file: &Pending, ord: i64) -> Result<(), Stop> {
        let mut conn = db::conn(&self.pool).await?;
        conn.transaction::<_, Stop, _>(async |conn| {
            diesel::update(files::table.find(ord))
                .set((
                    files::metadata.eq(&file.metadata),
                    files::path.eq(&file.path),
                    files::repository_id.eq(file.repository_id),
                    files::updated_at.eq(diesel::dsl::now),
                ))
                .execute(conn)
                .await?;
            progress(conn, job.id, self.me, file.file_id, Outcome::Metadata, None).await?;
            // Metadata is read from the catalog, not the index: no file's content version moves.
            stamp_version(conn, job.source_id, &[]).await
        })
        .await
    }

    /// Records an outcome that changes nothing indexed.
    async fn record(&self, job: &Job, file: &Pending, outcome: Outcome, reason: Option<&str>) -> Result<(), Stop> {
        let mut conn = db::conn(&self.pool).await?;
        conn.transaction::<_, Stop, _>(async |conn| {
            progress(conn, job.id, self.me, file.file_id, outcome, reason).await
        })
        .await
    }

    /// Frees the job's lease so that another runner takes it up at once (`claim` takes a job
    /// whose lease is NULL), and takes back this runner's claim: a hand-over is not one of the
    /// interrupted takes that `JOB_MAX_CLAIMS` limits.
    async fn hand_over(&self, job: &Job) -> anyhow::Result<()> {
        let mut conn = db::conn(&self.pool).await?;
        let released = diesel::update(owned(job.id, self.me))
            .set((
                jobs::lease_owner.eq(None::<Uuid>),
                jobs::lease_until.eq(None::<time::OffsetDateTime>),
                jobs::claims.eq(jobs::claims - 1),
            ))
            .execute(&mut conn)
            .await?;
        if released == 1 {
            tracing::info!(job_id = %job.id, "the service is stopping: ingestion job handed over");
        }
        Ok(())
    }

    /// Brings the index up to date, then closes the job.
    async fn end(&self, job: &Job, status: &str, reason: Option<String>) -> anyhow::Result<()> {
        // The index is derived: failing to sync it now does not undo the job (queries sync it).
        match self.indexes.source(job.source_id) {
            Ok(index) => {
                if let Err(e) = index.sync(&self.pool).await {
                    tracing::warn!(source_id = %job.source_id, error = format!("{e:#}"), "index sync failed");
                }
            }
            Err(e) => tracing::warn!(source_id = %job.source_id, error = format!("{e:#}"), "cannot open the index"),
        }
        let mut conn = db::conn(&self.pool).await?;
        let ended = diesel::update(owned(job.id, self.me))
            .set((
                jobs::status.eq(status),
                jobs::error.eq(reason),
                jobs::updated_at.eq(diesel::dsl::now),
                jobs::lease_owner.eq(None::<Uuid>),
                jobs::lease_until.eq(None::<time::OffsetDateTime>),
            ))
            .returning(Job::as_returning())
            .get_result(&mut conn)
            .await
            .optional()?;
        let Some(ended) = ended else { return Ok(()) };
        // Only the last job's per-file listing is kept.
        let older = jobs::table.filter(jobs::source_id.eq(job.source_id)).filter(jobs::id.ne(job.id)).select(jobs::id);
        diesel::delete(job_files::table.filter(job_files::job_id.eq_any(older))).execute(&mut conn).await?;
        drop(conn);
        tracing::info!(job_id = %job.id, status, "ingestion job ended");
        self.embed_wake.notify_one();
        // Best effort: dokko-api also learns it from the next status request.
        if let Err(e) = self.source_files.report_job(job.source_id, &ended.view()).await {
            tracing::warn!(job_id = %job.id, error = e, "cannot tell dokko-api that the job ended");
        }
        Ok(())
    }
}

/// The job's row, if this runner still holds it.
type OwnedJob = diesel::dsl::Filter<
    jobs::table,
    diesel::dsl::And<
        diesel::dsl::And<diesel::dsl::Eq<jobs::id, Uuid>, diesel::dsl::Eq<jobs::lease_owner, Uuid>>,
        diesel::dsl::Eq<jobs::status, &'static str>,
    >,
>;

/// The job, if this runner still holds it.
fn owned(job_id: Uuid, me: Uuid) -> OwnedJob {
    jobs::table.filter(jobs::id.eq(job_id).and(jobs::lease_owner.eq(me)).and(jobs::status.eq("RUNNING")))
}

/// Renews the lease every third of its length; flags `lost` when another runner has the job.
async fn heartbeat(pool: db::Pool, job_id: Uuid, me: Uuid, lease: Duration, lost: Arc<AtomicBool>) {
    let mut every = tokio::time::interval(lease / 3);
    every.tick().await;
    loop {
        every.tick().await;
        let renewed = async {
            let mut conn = db::conn(&pool).await?;
            let until = time::OffsetDateTime::now_utc() + lease;
            anyhow::Ok(diesel::update(owned(job_id, me)).set(jobs::lease_until.eq(until)).execute(&mut conn).await?)
        }
        .await;
        match renewed {
            Ok(0) => {
                lost.store(true, Ordering::Release);
                return;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(%job_id, error = format!("{e:#}"), "cannot renew the job's lease"),
        }
    }
}

/// The text to chunk: the extracted text, headed by the document's title when the text does not
/// already show it near its top (PDF and Office metadata titles; a Markdown or HTML title is
/// already its first heading, and indexing it twice would skew its ranking).
fn searchable_text(extracted: extract::Extracted) -> String {
    match extracted.title.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(title) if !extracted.text.lines().take(3).any(|line| line.contains(title)) => {
            format!("{title}\n\n{}", extracted.text)
        }
        _ => extracted.text,
    }
}

/// The last statement of every transaction that changes a source's files: moves the source to
/// its next version and stamps it on the files in `content_changed` (whose chunks the index must
/// take again). The source row's lock, taken here and held until commit, hands versions out in
/// commit order, so "everything up to version v" is a consistent cut; taking it last keeps the
/// time it is held (and files of one job wait on each other) down to the commit itself.
async fn stamp_version(conn: &mut db::Conn, source_id: Uuid, content_changed: &[i64]) -> Result<(), Stop> {
    let row: Version = diesel::sql_query(
        "UPDATE ingest.sources SET version = nextval('ingest.change_seq') WHERE id = $1 RETURNING version",
    )
    .bind::<SqlUuid, _>(source_id)
    .get_result(conn)
    .await?;
    if !content_changed.is_empty() {
        diesel::update(files::table.filter(files::ord.eq_any(content_changed)))
            .set(files::change_seq.eq(row.version))
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Inserts or updates the file's indexed row (its content version is stamped at commit); its `ord`.
async fn upsert_file(
    conn: &mut db::Conn,
    source_id: Uuid,
    file: &Pending,
    state: &str,
    error: Option<&str>,
    chunk_count: i32,
) -> Result<i64, Stop> {
    let values = (
        files::source_id.eq(source_id),
        files::file_id.eq(file.file_id),
        files::repository_id.eq(file.repository_id),
        files::path.eq(&file.path),
        files::sha256.eq(&file.sha256),
        files::metadata.eq(&file.metadata),
        files::state.eq(state),
        files::error.eq(error),
        files::chunk_count.eq(chunk_count),
        // Stamped with the real version at the end of the transaction (`stamp_version`).
        files::change_seq.eq(0),
    );
    Ok(diesel::insert_into(files::table)
        .values(values)
        .on_conflict((files::source_id, files::file_id))
        .do_update()
        .set((
            files::repository_id.eq(file.repository_id),
            files::path.eq(&file.path),
            files::sha256.eq(&file.sha256),
            files::metadata.eq(&file.metadata),
            files::state.eq(state),
            files::error.eq(error),
            files::chunk_count.eq(chunk_count),
            files::updated_at.eq(diesel::dsl::now),
        ))
        .returning(files::ord)
        .get_result(conn)
        .await?)
}

/// Marks the file done in the job and moves the job's counter, if this runner still holds it.
async fn progress(
    conn: &mut db::Conn,
    job_id: Uuid,
    me: Uuid,
    file_id: Uuid,
    outcome: Outcome,
    reason: Option<&str>,
) -> Result<(), Stop> {
    diesel::update(job_files::table.find((job_id, file_id)))
        .set((
            job_files::outcome.eq(outcome.as_str()),
            job_files::reason.eq(reason),
            job_files::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    let job = owned(job_id, me);
    let updated = match outcome {
        Outcome::New => {
            diesel::update(job)
                .set((jobs::new_indexed.eq(jobs::new_indexed + 1), jobs::updated_at.eq(diesel::dsl::now)))
                .execute(conn)
                .await?
        }
        Outcome::Modified | Outcome::Metadata => {
            diesel::update(job)
                .set((jobs::modified_indexed.eq(jobs::modified_indexed + 1), jobs::updated_at.eq(diesel::dsl::now)))
                .execute(conn)
                .await?
        }
        Outcome::Failed => {
            diesel::update(job)
                .set((jobs::failed.eq(jobs::failed + 1), jobs::updated_at.eq(diesel::dsl::now)))
                .execute(conn)
                .await?
        }
        Outcome::Unchanged => diesel::update(job).set(jobs::updated_at.eq(diesel::dsl::now)).execute(conn).await?,
    };
    if updated == 0 { Err(Stop::LeaseLost) } else { Ok(()) }
}

/// A listed file, as the job records it.
#[derive(Insertable)]
#[diesel(table_name = job_files)]
struct ListedRow<'a> {
    job_id: Uuid,
    file_id: Uuid,
    repository_id: Uuid,
    path: &'a str,
    sha256: &'a str,
    size: i64,
    object_key: &'a str,
    metadata: Value,
}

fn listed_row(job_id: Uuid, file: &SourceFile) -> ListedRow<'_> {
    ListedRow {
        job_id,
        file_id: file.file_id,
        repository_id: file.repository_id,
        path: &file.path,
        sha256: &file.sha256,
        size: file.size,
        object_key: &file.object_key,
        metadata: Value::Object(file.metadata.clone()),
    }
}

/// A duration as a PostgreSQL interval.
fn interval(duration: Duration) -> diesel::data_types::PgInterval {
    diesel::data_types::PgInterval::from_microseconds(i64::try_from(duration.as_micros()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use extract::{Extracted, Format};

    use super::searchable_text;

    fn extracted(format: Format, title: Option<&str>, text: &str) -> Extracted {
        Extracted { format, title: title.map(str::to_owned), text: text.to_owned() }
    }

    #[test]
    fn a_title_is_indexed_once() {
        // Markdown and HTML show their title as the first heading: not added again.
        let markdown = extracted(Format::Markdown, Some("Quarterly report"), "# Quarterly report\n\nRevenue grew.");
        assert_eq!(searchable_text(markdown), "# Quarterly report\n\nRevenue grew.");
        // A PDF's metadata title the text does not show is added on top.
        let pdf = extracted(Format::Pdf, Some("Quarterly report"), "Revenue grew.");
        assert_eq!(searchable_text(pdf), "Quarterly report\n\nRevenue grew.");
        let untitled = extracted(Format::Text, None, "Revenue grew.");
        assert_eq!(searchable_text(untitled), "Revenue grew.");
    }
}
