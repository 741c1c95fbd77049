//! The embedding worker: computes, in the background, the vectors of chunks that have none.
//!
//! A job stores chunks without vectors, so files are searchable by keyword as soon as the job
//! ends, at the speed of keyword indexing. Each replica with an embedder runs one worker, which:
//!
//! 1. **claims** a batch of chunks without a vector (`EMBEDDINGS_BATCH`), oldest files first,
//!    with a lease (`FOR UPDATE SKIP LOCKED` on the pick, then `embed_lease_until`), so workers
//!    of several replicas never embed the same chunk, and chunks of a worker that died are taken
//!    up again when its lease runs out;
//! 2. **embeds** them, one batch at a time (the embedded model on the blocking pool);
//! 3. **writes** the vectors only where the file's content is still the one embedded (the file's
//!    `change_seq` is checked in the same statement): a file changed or deleted meanwhile never
//!    gets a stale vector. Each write moves the source's `vectors_version` (source row locked
//!    last, as for `version`), which is how every replica learns there are vectors to load
//!    ([`crate::index::SourceIndex::sync_vectors`]).
//!
//! While this replica runs an ingestion job, the worker waits between batches: on a small
//! machine the model would otherwise slow the job down (vectors come after; keyword search
//! serves meanwhile). A source whose vectors come from another model (the setting changed) has
//! them dropped and computed again.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bytea, Integer, Interval, Text, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, RunQueryDsl};
use service_kit::background::Background;
use service_kit::db;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::embeddings::Embedder;
use crate::index::encode_vector;

/// How long a claim holds chunks without being written.
const LEASE: Duration = Duration::from_secs(300);

pub struct Worker {
    pub pool: db::Pool,
    pub embedder: Embedder,
    /// Chunks per batch.
    pub batch: usize,
    /// Ingestion jobs this replica is running: the worker waits while there are any.
    pub jobs_running: Arc<AtomicUsize>,
    /// Wakes the worker (chunks were stored, a job ended).
    pub wake: Arc<Notify>,
    /// How long an idle worker sleeps before looking again.
    pub poll: Duration,
    pub background: Background,
}

/// A claimed chunk, with the version of its file's content when it was claimed.
#[derive(Debug, QueryableByName)]
pub struct Claimed {
    #[diesel(sql_type = BigInt)]
    pub file_ord: i64,
    #[diesel(sql_type = Integer)]
    pub position: i32,
    #[diesel(sql_type = Text)]
    pub content: String,
    #[diesel(sql_type = SqlUuid)]
    pub source_id: Uuid,
    #[diesel(sql_type = BigInt)]
    pub change_seq: i64,
}

#[derive(QueryableByName)]
struct Written {
    #[diesel(sql_type = BigInt)]
    file_ord: i64,
    #[diesel(sql_type = Integer)]
    position: i32,
}

#[derive(QueryableByName)]
struct Version {
    #[diesel(sql_type = BigInt)]
    vectors_version: i64,
}

#[derive(QueryableByName)]
struct ModelRow {
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    embedding_model: Option<String>,
}

impl Worker {
    /// Runs until the service stops.
    pub async fn run(self) {
        let mut ready_sources: HashSet<Uuid> = HashSet::new();
        let mut failing = false;
        while !self.background.is_stopping() {
            if AtomicUsize::load(&self.jobs_running, Ordering::Acquire) > 0 {
                self.idle().await;
                continue;
            }
            match self.step(&mut ready_sources).await {
                Ok(0) => self.idle().await,
                Ok(_) => {
                    if failing {
                        tracing::info!("embedding works again");
                        failing = false;
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(
                            error = format!("{e:#}"),
                            "embedding failed; retrying (chunks stay keyword-searchable)"
                        );
                        failing = true;
                    }
                    ready_sources.clear();
                    self.background.unless_stopped(tokio::time::sleep(self.poll.max(Duration::from_secs(5)))).await;
                }
            }
        }
    }

    async fn idle(&self) {
        self.background.unless_stopped(tokio::time::timeout(self.poll, self.wake.notified())).await;
    }

    /// One batch: claimed, embedded, written; how many chunks were claimed.
    pub async fn step(&self, ready_sources: &mut HashSet<Uuid>) -> anyhow::Result<usize> {
        let claimed = self.claim().await?;
        if claimed.is_empty() {
            return Ok(0);
        }
        let model = self.embedder.model().to_owned();
        for chunk in &claimed {
            if !ready_sources.contains(&chunk.source_id) {
                self.adopt(chunk.source_id, &model).await?;
                ready_sources.insert(chunk.source_id);
            }
        }
        let texts: Vec<String> = claimed.iter().map(|c| c.content.clone()).collect();
        let vectors = match self.embedder.embed(&texts).await {
            Ok(vectors) if vectors.len() == claimed.len() => vectors,
            Ok(vectors) => {
                self.release(&claimed).await;
                anyhow::bail!("{} vectors for {} chunks", vectors.len(), claimed.len());
            }
            Err(e) => {
                self.release(&claimed).await;
                return Err(e.into());
            }
        };
        let written = self.write(&claimed, &vectors).await?;
        tracing::debug!(claimed = claimed.len(), written, "chunks embedded");
        Ok(claimed.len())
    }

    /// Writes the vectors of claimed chunks (in order), except where the file's content changed
    /// since the claim (or the file is gone); how many were written.
    pub async fn write(&self, claimed: &[Claimed], vectors: &[Vec<f32>]) -> anyhow::Result<usize> {
        let mut written_count = 0;
        let mut by_source: BTreeMap<Uuid, Vec<usize>> = BTreeMap::new();
        for (index, chunk) in claimed.iter().enumerate().take(vectors.len()) {
            by_source.entry(chunk.source_id).or_default().push(index);
        }
        let mut conn = db::conn(&self.pool).await?;
        for (source_id, chunks) in by_source {
            let (mut ords, mut positions, mut blobs, mut seqs) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for index in chunks {
                let chunk = &claimed[index];
                ords.push(chunk.file_ord);
                positions.push(chunk.position);
                blobs.push(encode_vector(&vectors[index]));
                seqs.push(chunk.change_seq);
            }
            let written = conn
                .transaction::<_, anyhow::Error, _>(async |conn| {
                    // Only where the file still has the content embedded, and the chunk no vector.
                    let written: Vec<Written> = diesel::sql_query(
                        "UPDATE ingest.chunks c SET embedding = v.embedding, embed_lease_until = NULL
                         FROM unnest($1::bigint[], $2::int[], $3::bytea[], $4::bigint[])
                                AS v(file_ord, position, embedding, change_seq),
                              ingest.files f
                         WHERE c.file_ord = v.file_ord AND c.position = v.position AND c.embedding IS NULL
                           AND f.ord = c.file_ord AND f.change_seq = v.change_seq AND f.state = 'indexed'
                         RETURNING c.file_ord, c.position",
                    )
                    .bind::<Array<BigInt>, _>(&ords)
                    .bind::<Array<Integer>, _>(&positions)
                    .bind::<Array<Bytea>, _>(&blobs)
                    .bind::<Array<BigInt>, _>(&seqs)
                    .load(conn)
                    .await?;
                    if written.is_empty() {
                        return Ok(written);
                    }
                    // Last: the source's row, so vectors versions follow commit order.
                    let version: Version = diesel::sql_query(
                        "UPDATE ingest.sources SET vectors_version = nextval('ingest.change_seq')
                         WHERE id = $1 RETURNING vectors_version",
                    )
                    .bind::<SqlUuid, _>(source_id)
                    .get_result(conn)
                    .await?;
                    let (ords, positions): (Vec<i64>, Vec<i32>) =
                        written.iter().map(|w| (w.file_ord, w.position)).unzip();
                    diesel::sql_query(
                        "UPDATE ingest.chunks c SET embedded_seq = $3
                         FROM unnest($1::bigint[], $2::int[]) AS w(file_ord, position)
                         WHERE c.file_ord = w.file_ord AND c.position = w.position",
                    )
                    .bind::<Array<BigInt>, _>(&ords)
                    .bind::<Array<Integer>, _>(&positions)
                    .bind::<BigInt, _>(version.vectors_version)
                    .execute(conn)
                    .await?;
                    Ok(written)
                })
                .await?;
            written_count += written.len();
        }
        Ok(written_count)
    }

    /// Up to `batch` chunks without a vector, leased to this worker.
    pub async fn claim(&self) -> anyhow::Result<Vec<Claimed>> {
        let mut conn = db::conn(&self.pool).await?;
        let lease = diesel::data_types::PgInterval::from_microseconds(LEASE.as_micros() as i64);
        Ok(diesel::sql_query(
            "WITH pick AS (
                 SELECT c.file_ord, c.position FROM ingest.chunks c
                 WHERE c.embedding IS NULL AND (c.embed_lease_until IS NULL OR c.embed_lease_until < now())
                 ORDER BY c.file_ord, c.position
                 LIMIT $1 FOR UPDATE SKIP LOCKED)
             UPDATE ingest.chunks c SET embed_lease_until = now() + $2
             FROM pick, ingest.files f
             WHERE c.file_ord = pick.file_ord AND c.position = pick.position AND f.ord = c.file_ord
             RETURNING c.file_ord, c.position, c.content, f.source_id, f.change_seq",
        )
        .bind::<BigInt, _>(self.batch as i64)
        .bind::<Interval, _>(lease)
        .load(&mut conn)
        .await?)
    }

    /// Gives claimed chunks back at once (embedding failed).
    async fn release(&self, claimed: &[Claimed]) {
        let released = async {
            let mut conn = db::conn(&self.pool).await?;
            let ords: Vec<i64> = claimed.iter().map(|c| c.file_ord).collect();
            let positions: Vec<i32> = claimed.iter().map(|c| c.position).collect();
            diesel::sql_query(
                "UPDATE ingest.chunks c SET embed_lease_until = NULL
                 FROM unnest($1::bigint[], $2::int[]) AS w(file_ord, position)
                 WHERE c.file_ord = w.file_ord AND c.position = w.position",
            )
            .bind::<Array<BigInt>, _>(&ords)
            .bind::<Array<Integer>, _>(&positions)
            .execute(&mut conn)
            .await?;
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = released {
            tracing::info!(error = format!("{e:#}"), "cannot release claimed chunks; their lease will run out");
        }
    }

    /// Makes `model` the model of the source's vectors: when they come from another one, they
    /// are dropped (and computed again by the workers).
    pub async fn adopt(&self, source_id: Uuid, model: &str) -> anyhow::Result<()> {
        let mut conn = db::conn(&self.pool).await?;
        conn.transaction::<_, anyhow::Error, _>(async |conn| {
            let current: ModelRow =
                diesel::sql_query("SELECT embedding_model FROM ingest.sources WHERE id = $1 FOR UPDATE")
                    .bind::<SqlUuid, _>(source_id)
                    .get_result(conn)
                    .await?;
            if current.embedding_model.as_deref() == Some(model) {
                return Ok(());
            }
            let dropped = diesel::sql_query(
                "UPDATE ingest.chunks c SET embedding = NULL, embedded_seq = NULL
                 FROM ingest.files f
                 WHERE f.source_id = $1 AND c.file_ord = f.ord AND c.embedding IS NOT NULL",
            )
            .bind::<SqlUuid, _>(source_id)
            .execute(conn)
            .await?;
            diesel::sql_query(
                "UPDATE ingest.sources SET embedding_model = $2, vectors_version = nextval('ingest.change_seq')
                 WHERE id = $1",
            )
            .bind::<SqlUuid, _>(source_id)
            .bind::<Text, _>(model)
            .execute(conn)
            .await?;
            tracing::info!(%source_id, model, previous = current.embedding_model, dropped, "the source's vectors now come from this model");
            Ok(())
        })
        .await
    }
}

/// The source's embedding progress: chunks with a vector, chunks waiting for one.
pub async fn progress(conn: &mut db::Conn, source_id: Uuid) -> anyhow::Result<(i64, i64)> {
    #[derive(QueryableByName)]
    struct Counts {
        #[diesel(sql_type = BigInt)]
        total: i64,
        #[diesel(sql_type = BigInt)]
        waiting: i64,
    }
    let counts: Counts = diesel::sql_query(
        "SELECT (SELECT coalesce(sum(chunk_count), 0)::bigint FROM ingest.files
                 WHERE source_id = $1 AND state = 'indexed') AS total,
                (SELECT count(*) FROM ingest.chunks c JOIN ingest.files f ON f.ord = c.file_ord
                 WHERE f.source_id = $1 AND f.state = 'indexed' AND c.embedding IS NULL) AS waiting",
    )
    .bind::<SqlUuid, _>(source_id)
    .get_result(conn)
    .await?;
    Ok(((counts.total - counts.waiting).max(0), counts.waiting))
}
