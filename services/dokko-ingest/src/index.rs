//! The search index of each document source: tantivy (BM25) on this replica's disk, one index
//! per source under `INDEX_DIR/{source id}`, plus the in-memory catalog of the source's files
//! (what filters and answers need) and, when embeddings are on, the chunks' vectors (quantised,
//! [`crate::quantized`]).
//!
//! All of it is derived from the ingest schema, which stays the record: each index stores, as
//! its commit payload, the source version it holds, and [`SourceIndex::sync`] brings it to the
//! database's version by re-indexing the files whose content changed since (`files.change_seq`).
//! The same routine serves the replica that ran a job, a replica that did not, a restarted
//! replica with an index on disk, and one starting from an empty folder (a full rebuild).
//!
//! Vectors are written in the background, after the job ([`crate::vectors`]): each write moves
//! the source's `vectors_version`, and [`SourceIndex::sync_vectors`] brings the vectors in memory
//! to it, from one consistent snapshot of the database: the vectors of files whose content
//! changed since the version it holds are dropped and read again, then those written since
//! are added. A vector is searchable as soon as a query sees its version.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::{Map, Value};
use service_kit::db;
use tantivy::collector::{FilterCollector, TopDocs};
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, Schema, TextFieldIndexing, TextOptions, Value as _,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term, doc};
use uuid::Uuid;

use crate::quantized::QuantizedVectors;
use crate::schema::ingest::{chunks, files, sources};

/// The analyzer of chunk text and queries: words of letters and digits, accents folded,
/// lower-cased, English stop words dropped, English stemming.
const ANALYZER: &str = "dokko_en";
/// The indexing memory of one sync (tantivy flushes a segment when it is full).
const WRITER_MEMORY: usize = 64 << 20;
/// Files whose chunks one sync step reads from the database at a time.
const SYNC_BATCH: usize = 256;

#[derive(Debug, Clone, Copy)]
struct Fields {
    file_ord: Field,
    position: Field,
    content: Field,
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let file_ord = builder.add_u64_field("file_ord", INDEXED | FAST | STORED);
    let position = builder.add_u64_field("position", STORED);
    let text = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default().set_tokenizer(ANALYZER).set_index_option(IndexRecordOption::WithFreqs),
        )
        .set_stored();
    let content = builder.add_text_field("content", text);
    (builder.build(), Fields { file_ord, position, content })
}

fn analyzer() -> TextAnalyzer {
    let builder = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(AsciiFoldingFilter)
        .filter(LowerCaser)
        .dynamic();
    let builder = match StopWordFilter::new(Language::English) {
        Some(stop_words) => builder.filter_dynamic(stop_words),
        None => builder,
    };
    builder.filter_dynamic(Stemmer::new(Language::English)).build()
}

/// A file of the source as retrieval sees it.
#[derive(Debug, Clone)]
pub struct CatalogFile {
    pub file_id: Uuid,
    pub repository_id: Uuid,
    pub path: String,
    pub metadata: Map<String, Value>,
}

/// The source's indexed files at one version, by their index number (`ord`).
#[derive(Debug, Default)]
pub struct Catalog {
    pub version: i64,
    pub files: HashMap<i64, CatalogFile>,
}

/// A set of file numbers (a bitmap over the catalog's range).
#[derive(Debug, Default)]
pub struct OrdSet {
    base: u64,
    words: Vec<u64>,
    len: usize,
}

impl OrdSet {
    pub fn new(ords: impl IntoIterator<Item = i64>) -> Self {
        let ords: Vec<u64> = ords.into_iter().filter_map(|o| u64::try_from(o).ok()).collect();
        let (Some(&min), Some(&max)) = (ords.iter().min(), ords.iter().max()) else {
            return Self::default();
        };
        let mut words = vec![0u64; usize::try_from((max - min) / 64 + 1).unwrap_or(0)];
        for ord in &ords {
            let bit = ord - min;
            words[(bit / 64) as usize] |= 1 << (bit % 64);
        }
        Self { base: min, words, len: ords.len() }
    }

    pub fn contains(&self, ord: u64) -> bool {
        let Some(bit) = ord.checked_sub(self.base) else { return false };
        self.words.get((bit / 64) as usize).is_some_and(|word| word & (1 << (bit % 64)) != 0)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// One chunk found by a search.
#[derive(Debug, Clone)]
pub struct Hit {
    pub score: f32,
    pub file_ord: i64,
    pub position: i32,
    /// Filled by keyword search (stored in the index); vector hits leave it empty.
    pub content: Option<String>,
}

/// The vectors of a source in memory, and the versions they hold.
#[derive(Debug, Default)]
pub struct Vectors {
    pub store: QuantizedVectors,
    /// The source version whose file contents they reflect.
    version: i64,
    /// The source's `vectors_version` they hold.
    vectors_version: i64,
    /// The model they come from (the source's `embedding_model`).
    model: Option<String>,
}

/// A chunk's file, position, stored vector and the vectors version it was written at.
type VectorRow = (i64, i32, Option<Vec<u8>>, Option<i64>);

/// Vectors read from the database per step of a sync.
const VECTOR_PAGE: i64 = 4096;

/// Every source index this replica has opened.
pub struct Indexes {
    dir: PathBuf,
    /// The model whose vectors this replica searches; `None`: keyword only.
    model: Option<String>,
    open: Mutex<HashMap<Uuid, Arc<SourceIndex>>>,
}

impl std::fmt::Debug for Indexes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Indexes").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl Indexes {
    /// Indexes under `dir`; with `model`, the vectors of that model are kept in memory for
    /// vector search.
    pub fn new(dir: PathBuf, model: Option<String>) -> Self {
        Self { dir, model, open: Mutex::default() }
    }

    /// The index of `source_id`, opened (or created) on first use.
    pub fn source(&self, source_id: Uuid) -> anyhow::Result<Arc<SourceIndex>> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(index) = open.get(&source_id) {
            return Ok(index.clone());
        }
        let index = Arc::new(SourceIndex::open(self.dir.join(source_id.to_string()), source_id, self.model.clone())?);
        open.insert(source_id, index.clone());
        Ok(index)
    }
}

pub struct SourceIndex {
    source_id: Uuid,
    index: Index,
    reader: IndexReader,
    fields: Fields,
    /// The source version the committed index holds.
    applied: AtomicI64,
    /// One sync at a time.
    syncing: tokio::sync::Mutex<()>,
    /// One vector sync at a time.
    vectors_syncing: tokio::sync::Mutex<()>,
    catalog: RwLock<Arc<Catalog>>,
    /// Allowed-file sets already computed at the catalog's version.
    allowed: Mutex<AllowedSets>,
    /// The model searched, and the vectors (in memory only: read again after a start).
    vectors: Option<(String, Arc<RwLock<Vectors>>)>,
}

/// The allowed-file sets of one catalog version, by what chose them (the repositories and the
/// filter of a query): queries with the same permissions and filter share one set until the
/// source's version moves, instead of evaluating the filter against every file each time.
#[derive(Default)]
struct AllowedSets {
    version: i64,
    sets: HashMap<String, Arc<OrdSet>>,
}

/// At most this many sets are kept per source (then they start over).
const MAX_ALLOWED_SETS: usize = 64;

impl SourceIndex {
    fn open(dir: PathBuf, source_id: Uuid, model: Option<String>) -> anyhow::Result<Self> {
        let (schema, fields) = schema();
        std::fs::create_dir_all(&dir)?;
        let index = match Index::open_in_dir(&dir) {
            Ok(index) if index.schema() == schema => index,
            existing => {
                // Missing, unreadable or of another schema: start empty; sync rebuilds it.
                if existing.is_ok() {
                    tracing::warn!(%source_id, "index schema changed; rebuilding the index");
                }
                std::fs::remove_dir_all(&dir)?;
                std::fs::create_dir_all(&dir)?;
                Index::create_in_dir(&dir, schema)?
            }
        };
        index.tokenizers().register(ANALYZER, analyzer());
        let applied = index.load_metas()?.payload.and_then(|p| p.parse::<i64>().ok()).unwrap_or(0);
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        Ok(Self {
            source_id,
            index,
            reader,
            fields,
            applied: AtomicI64::new(applied),
            syncing: tokio::sync::Mutex::new(()),
            vectors_syncing: tokio::sync::Mutex::new(()),
            catalog: RwLock::default(),
            allowed: Mutex::default(),
            vectors: model.map(|model| (model, Arc::default())),
        })
    }

    /// The catalog, reloaded when the source's version moved, and the index brought up to date
    /// (waiting at most `wait` for a sync another request started; after that, the last
    /// committed index answers, while the catalog still keeps deleted files out).
    pub async fn refresh(self: &Arc<Self>, pool: &db::Pool, wait: Duration) -> anyhow::Result<Arc<Catalog>> {
        let mut conn = db::conn(pool).await?;
        let (version, vectors_version) = self.versions(&mut conn).await?;
        let current = self.catalog();
        let catalog = if current.version == version {
            current
        } else {
            let rows: Vec<(i64, Uuid, Uuid, String, Value)> = files::table
                .filter(files::source_id.eq(self.source_id))
                .filter(files::state.eq("indexed"))
                .select((files::ord, files::file_id, files::repository_id, files::path, files::metadata))
                .load(&mut conn)
                .await?;
            let files = rows
                .into_iter()
                .map(|(ord, file_id, repository_id, path, metadata)| {
                    let metadata = match metadata {
                        Value::Object(map) => map,
                        _ => Map::new(),
                    };
                    (ord, CatalogFile { file_id, repository_id, path, metadata })
                })
                .collect();
            let fresh = Arc::new(Catalog { version, files });
            *self.catalog.write().unwrap_or_else(PoisonError::into_inner) = fresh.clone();
            fresh
        };
        drop(conn);
        let behind = self.behind(version);
        // The vectors' sync runs on its own (a first load of a large source takes a while): a
        // query that stops waiting for it does not cancel it, and one running is not started again.
        let vectors_sync = (self.vectors_behind(version, vectors_version) && !self.vectors_syncing()).then(|| {
            let (index, pool) = (self.clone(), pool.clone());
            tokio::spawn(async move { index.sync_vectors(&pool).await })
        });
        if behind || vectors_sync.is_some() {
            let syncs = async {
                if behind {
                    self.sync(pool).await?;
                }
                if let Some(vectors_sync) = vectors_sync {
                    vectors_sync.await??;
                }
                anyhow::Ok(())
            };
            match tokio::time::timeout(wait, syncs).await {
                Ok(synced) => synced?,
                Err(_) => {
                    tracing::info!(source_id = %self.source_id, "index sync still running; answering from the last commit")
                }
            }
        }
        Ok(catalog)
    }

    /// The source's version in the database (0 before its first change).
    async fn version(&self, conn: &mut db::Conn) -> anyhow::Result<i64> {
        Ok(self.versions(conn).await?.0)
    }

    /// The source's version and vectors version in the database.
    async fn versions(&self, conn: &mut db::Conn) -> anyhow::Result<(i64, i64)> {
        let versions = sources::table
            .find(self.source_id)
            .select((sources::version, sources::vectors_version))
            .first(conn)
            .await
            .optional()?;
        Ok(versions.unwrap_or((0, 0)))
    }

    fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn behind(&self, version: i64) -> bool {
        AtomicI64::load(&self.applied, Ordering::Acquire) != version
    }

    fn vectors_syncing(&self) -> bool {
        self.vectors_syncing.try_lock().is_err()
    }

    fn vectors_behind(&self, version: i64, vectors_version: i64) -> bool {
        self.vectors.as_ref().is_some_and(|(_, vectors)| {
            let held = vectors.read().unwrap_or_else(PoisonError::into_inner);
            held.version != version || held.vectors_version != vectors_version
        })
    }

    /// Brings the keyword index to the source's version in the database.
    pub async fn sync(&self, pool: &db::Pool) -> anyhow::Result<()> {
        let _one_at_a_time = self.syncing.lock().await;
        let mut conn = db::conn(pool).await?;
        let target = self.version(&mut conn).await?;
        let applied = AtomicI64::load(&self.applied, Ordering::Acquire);
        if applied == target {
            return Ok(());
        }
        // An index ahead of the database (a restored database) is rebuilt from scratch.
        let rebuild = applied > target;
        let index_from = if rebuild { 0 } else { applied };
        let changed: Vec<(i64, String, i64)> = files::table
            .filter(files::source_id.eq(self.source_id))
            .filter(files::change_seq.gt(index_from))
            .select((files::ord, files::state, files::change_seq))
            .order(files::change_seq)
            .load(&mut conn)
            .await?;
        let mut writer: IndexWriter<TantivyDocument> = self.index.writer_with_num_threads(1, WRITER_MEMORY)?;
        if rebuild {
            writer.delete_all_documents()?;
        }
        let fields = self.fields;
        for batch in changed.chunks(SYNC_BATCH) {
            let for_index: Vec<i64> = batch.iter().map(|(o, _, _)| *o).collect();
            let live: Vec<i64> = batch.iter().filter(|(_, state, _)| state == "indexed").map(|(o, _, _)| *o).collect();
            let rows: Vec<(i64, i32, String)> = chunks::table
                .filter(chunks::file_ord.eq_any(&live))
                .select((chunks::file_ord, chunks::position, chunks::content))
                .order((chunks::file_ord, chunks::position))
                .load(&mut conn)
                .await?;
            writer = tokio::task::spawn_blocking(move || -> anyhow::Result<IndexWriter<TantivyDocument>> {
                for ord in &for_index {
                    writer.delete_term(Term::from_field_u64(fields.file_ord, *ord as u64));
                }
                for (ord, position, content) in rows {
                    writer.add_document(doc!(
                        fields.file_ord => ord as u64,
                        fields.position => position as u64,
                        fields.content => content,
                    ))?;
                }
                Ok(writer)
            })
            .await??;
        }
        drop(conn);
        let payload = target.to_string();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut commit = writer.prepare_commit()?;
            commit.set_payload(&payload);
            commit.commit()?;
            writer.wait_merging_threads()?;
            Ok(())
        })
        .await??;
        self.reader.reload()?;
        self.applied.store(target, Ordering::Release);
        tracing::debug!(source_id = %self.source_id, version = target, files = changed.len(), "index synced");
        Ok(())
    }

    /// Brings the vectors in memory to the database, from one snapshot (a repeatable-read
    /// transaction): the vectors of files whose content changed since the version held are
    /// dropped and read again, then the vectors written since the vectors version held are
    /// added. Vectors of another model than this replica's are not kept.
    pub async fn sync_vectors(&self, pool: &db::Pool) -> anyhow::Result<()> {
        let Some((model, vectors)) = &self.vectors else { return Ok(()) };
        let _one_at_a_time = self.vectors_syncing.lock().await;
        let source_id = self.source_id;
        let mut conn = db::conn(pool).await?;
        let loaded = conn
            .build_transaction()
            .repeatable_read()
            .read_only()
            .run(async |conn| -> anyhow::Result<usize> {
                let source: Option<(i64, i64, Option<String>)> = sources::table
                    .find(source_id)
                    .select((sources::version, sources::vectors_version, sources::embedding_model))
                    .first(conn)
                    .await
                    .optional()?;
                let (version, vectors_version, source_model) = source.unwrap_or((0, 0, None));
                let (held_version, held_vectors) = {
                    let mut held = vectors.write().unwrap_or_else(PoisonError::into_inner);
                    if held.model != source_model {
                        // Another model's vectors (or none yet): start over.
                        held.store.clear();
                        held.version = 0;
                        held.vectors_version = 0;
                        held.model.clone_from(&source_model);
                    }
                    if source_model.as_deref().is_some_and(|m| m != model) {
                        // Not this replica's model: nothing to search with.
                        held.version = version;
                        held.vectors_version = vectors_version;
                        return Ok(0);
                    }
                    (held.version, held.vectors_version)
                };
                let mut loaded = 0;
                // Files whose content changed: their vectors go, the current ones come back.
                let changed: Vec<i64> = files::table
                    .filter(files::source_id.eq(source_id))
                    .filter(files::change_seq.gt(held_version))
                    .select(files::ord)
                    .load(conn)
                    .await?;
                {
                    let mut held = vectors.write().unwrap_or_else(PoisonError::into_inner);
                    for ord in &changed {
                        held.store.remove_file(*ord);
                    }
                }
                for batch in changed.chunks(SYNC_BATCH) {
                    let rows: Vec<(i64, i32, Option<Vec<u8>>)> = chunks::table
                        .filter(chunks::file_ord.eq_any(batch))
                        .filter(chunks::embedding.is_not_null())
                        .select((chunks::file_ord, chunks::position, chunks::embedding))
                        .load(conn)
                        .await?;
                    loaded += apply_vectors(vectors, rows);
                }
                // Vectors written since, in files whose content did not change.
                if held_version > 0 {
                    let mut after = (held_vectors, 0i64, -1i32);
                    loop {
                        let rows: Vec<VectorRow> = chunks::table
                            .inner_join(files::table)
                            .filter(files::source_id.eq(source_id))
                            .filter(files::change_seq.le(held_version))
                            .filter(chunks::embedded_seq.gt(held_vectors))
                            .filter(
                                diesel::dsl::sql::<diesel::sql_types::Bool>(
                                    "(chunks.embedded_seq, chunks.file_ord, chunks.position) > (",
                                )
                                .bind::<diesel::sql_types::BigInt, _>(after.0)
                                .sql(", ")
                                .bind::<diesel::sql_types::BigInt, _>(after.1)
                                .sql(", ")
                                .bind::<diesel::sql_types::Integer, _>(after.2)
                                .sql(")"),
                            )
                            .order((chunks::embedded_seq, chunks::file_ord, chunks::position))
                            .limit(VECTOR_PAGE)
                            .select((chunks::file_ord, chunks::position, chunks::embedding, chunks::embedded_seq))
                            .load(conn)
                            .await?;
                        let Some(last) = rows.last() else { break };
                        after = (last.3.unwrap_or(held_vectors), last.0, last.1);
                        let full = rows.len() as i64 == VECTOR_PAGE;
                        loaded += apply_vectors(vectors, rows.into_iter().map(|(o, p, e, _)| (o, p, e)).collect());
                        if !full {
                            break;
                        }
                    }
                }
                let mut held = vectors.write().unwrap_or_else(PoisonError::into_inner);
                held.version = version;
                held.vectors_version = vectors_version;
                Ok(loaded)
            })
            .await?;
        tracing::debug!(%source_id, loaded, "vectors synced");
        Ok(())
    }

    /// The vectors of the source in memory (`None` when this replica keeps none).
    pub fn vectors(&self) -> Option<Arc<RwLock<Vectors>>> {
        self.vectors.as_ref().map(|(_, vectors)| vectors.clone())
    }

    /// The files of `catalog` that `choose` keeps, computed once per catalog version and `key`
    /// (which must name everything `choose` depends on).
    pub fn allowed(&self, catalog: &Catalog, key: &str, choose: impl Fn(&CatalogFile) -> bool) -> Arc<OrdSet> {
        let lock = || self.allowed.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(set) = Some(lock()).filter(|c| c.version == catalog.version).and_then(|c| c.sets.get(key).cloned())
        {
            return set;
        }
        let set = Arc::new(OrdSet::new(catalog.files.iter().filter_map(|(ord, file)| choose(file).then_some(*ord))));
        let mut cache = lock();
        if cache.version < catalog.version || cache.sets.len() >= MAX_ALLOWED_SETS {
            cache.version = catalog.version;
            cache.sets.clear();
        }
        // A query still on an older catalog (another one moved it meanwhile) does not keep its set.
        if cache.version == catalog.version {
            cache.sets.insert(key.to_owned(), set.clone());
        }
        set
    }

    /// The best `limit` chunks for `query` (BM25) among the files in `allowed`.
    pub async fn keyword(&self, query: &str, limit: usize, allowed: Arc<OrdSet>) -> anyhow::Result<Vec<Hit>> {
        let mut analyzer = self.index.tokenizer_for_field(self.fields.content)?;
        let mut counts: HashMap<String, f32> = HashMap::new();
        let mut stream = analyzer.token_stream(query);
        while let Some(token) = stream.next() {
            *counts.entry(token.text.clone()).or_default() += 1.0;
        }
        if counts.is_empty() || allowed.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let fields = self.fields;
        let mut terms: Vec<(String, f32)> = counts.into_iter().collect();
        terms.sort_by(|a, b| a.0.cmp(&b.0));
        let clauses: Vec<(Occur, Box<dyn Query>)> = terms
            .into_iter()
            .map(|(text, count)| {
                let term = TermQuery::new(Term::from_field_text(fields.content, &text), IndexRecordOption::WithFreqs);
                let query: Box<dyn Query> =
                    if count > 1.0 { Box::new(BoostQuery::new(Box::new(term), count)) } else { Box::new(term) };
                (Occur::Should, query)
            })
            .collect();
        let searcher = self.reader.searcher();
        tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Hit>> {
            let query = BooleanQuery::new(clauses);
            let collector = FilterCollector::new(
                "file_ord".to_owned(),
                move |ord: u64| allowed.contains(ord),
                TopDocs::with_limit(limit).order_by_score(),
            );
            let top = searcher.search(&query, &collector)?;
            top.into_iter()
                .map(|(score, address)| {
                    let doc: TantivyDocument = searcher.doc(address)?;
                    let file_ord = doc.get_first(fields.file_ord).and_then(|v| v.as_u64()).unwrap_or_default();
                    let position = doc.get_first(fields.position).and_then(|v| v.as_u64()).unwrap_or_default();
                    let content = doc.get_first(fields.content).and_then(|v| v.as_str()).map(str::to_owned);
                    Ok(Hit {
                        score,
                        file_ord: i64::try_from(file_ord).unwrap_or_default(),
                        position: i32::try_from(position).unwrap_or_default(),
                        content,
                    })
                })
                .collect()
        })
        .await?
    }

    /// The `limit` chunks nearest to `query` (cosine similarity, from the quantised vectors)
    /// among the files in `allowed`, best first; empty when this replica keeps no vectors. Up to
    /// some 20 ms at a million chunks: async callers use [`SourceIndex::vector`].
    pub fn nearest(&self, query: &[f32], limit: usize, allowed: &OrdSet) -> Vec<Hit> {
        let Some((_, vectors)) = &self.vectors else { return Vec::new() };
        nearest_in(vectors, query, limit, allowed)
    }

    /// [`SourceIndex::nearest`] on the blocking pool, as [`SourceIndex::keyword`] runs.
    pub async fn vector(&self, query: Vec<f32>, limit: usize, allowed: Arc<OrdSet>) -> anyhow::Result<Vec<Hit>> {
        let Some((_, vectors)) = &self.vectors else { return Ok(Vec::new()) };
        let vectors = vectors.clone();
        Ok(tokio::task::spawn_blocking(move || nearest_in(&vectors, &query, limit, &allowed)).await?)
    }
}

fn nearest_in(vectors: &RwLock<Vectors>, query: &[f32], limit: usize, allowed: &OrdSet) -> Vec<Hit> {
    let vectors = vectors.read().unwrap_or_else(PoisonError::into_inner);
    vectors
        .store
        .nearest(query, limit, allowed)
        .into_iter()
        .map(|((file_ord, position), score)| Hit { score, file_ord, position, content: None })
        .collect()
}

/// Puts rows of (file, position, stored vector) into the vectors in memory; how many.
fn apply_vectors(vectors: &RwLock<Vectors>, rows: Vec<(i64, i32, Option<Vec<u8>>)>) -> usize {
    let mut held = vectors.write().unwrap_or_else(PoisonError::into_inner);
    let mut applied = 0;
    for (ord, position, embedding) in rows {
        if let Some(embedding) = embedding {
            held.store.insert((ord, position), &decode_vector(&embedding));
            applied += 1;
        }
    }
    applied
}

/// An embedding as stored: little-endian f32s.
pub fn encode_vector(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn decode_vector(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ord_sets_hold_exactly_their_members() {
        let set = OrdSet::new([70, 5, 6, 200]);
        assert_eq!(set.len(), 4);
        for ord in [5, 6, 70, 200] {
            assert!(set.contains(ord), "{ord}");
        }
        for ord in [0, 4, 7, 69, 71, 199, 201, 100_000] {
            assert!(!set.contains(ord), "{ord}");
        }
        assert!(!OrdSet::new([]).contains(0));
    }

    #[test]
    fn allowed_sets_are_reused_within_a_version_and_recomputed_after() {
        let dir = std::env::temp_dir().join(format!("dokko-ingest-allowed-{}", Uuid::new_v4().simple()));
        let index = SourceIndex::open(dir.clone(), Uuid::new_v4(), None).expect("index");
        let file = |path: &str| CatalogFile {
            file_id: Uuid::new_v4(),
            repository_id: Uuid::nil(),
            path: path.to_owned(),
            metadata: Map::new(),
        };
        let catalog = |version, paths: &[&str]| Catalog {
            version,
            files: paths.iter().enumerate().map(|(i, p)| (i as i64, file(p))).collect(),
        };
        let v1 = catalog(1, &["a.md", "b.txt", "c.md"]);
        let md = |f: &CatalogFile| f.path.ends_with(".md");
        let first = index.allowed(&v1, "md", md);
        assert_eq!((first.len(), first.contains(0), first.contains(1), first.contains(2)), (2, true, false, true));
        // The same key at the same version: the set already computed (the closure is not asked).
        let again = index.allowed(&v1, "md", |_| panic!("recomputed"));
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(index.allowed(&v1, "all", |_| true).len(), 3, "another key, another set");
        // The version moved: computed again from the new catalog.
        let v2 = catalog(2, &["a.txt", "b.md"]);
        let moved = index.allowed(&v2, "md", md);
        assert_eq!((moved.len(), moved.contains(1)), (1, true));
        // A query still on the older catalog gets its own answer, and does not replace the newer.
        assert_eq!(index.allowed(&v1, "md", md).len(), 2);
        assert!(Arc::ptr_eq(&moved, &index.allowed(&v2, "md", |_| panic!("recomputed"))));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_analyzer_stems_folds_and_drops_stop_words() {
        let mut analyzer = analyzer();
        let mut stream = analyzer.token_stream("The Libraries' retrieval of Café indexes");
        let mut tokens = Vec::new();
        while let Some(token) = stream.next() {
            tokens.push(token.text.clone());
        }
        assert_eq!(tokens, ["librari", "retriev", "cafe", "index"]);
    }

    #[test]
    fn vectors_round_trip() {
        let vector = [0.5f32, -1.25, 3.0];
        assert_eq!(decode_vector(&encode_vector(&vector)), vector);
    }
}
