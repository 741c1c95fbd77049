//! dokko-ingest: turns a tenant's files into a search index and answers retrieval queries. It is
//! called by dokko-api only (service tokens), which serves the public Document Processing API
//! of `001_e0e965b7027d3e8c.txt` and the retrieve endpoint (see the README's dokko-ingest
//! section).
//!
//! Where things are:
//! - jobs (start, status, per-file outcomes): [`jobs`]; the runners doing the work: [`runner`];
//! - the file list pulled from dokko-api: [`source_files`]; bytes from object storage:
//!   the shared `object-storage` crate; text extraction: the `extract` crate, run in a child process
//!   (`dokko-ingest extract-child`); chunking: [`chunking`]; embeddings (the engines):
//!   [`embeddings`], computed in the background by [`vectors`];
//! - the search index, the file catalog and vectors: [`index`] (vectors quantised in memory:
//!   [`quantized`]); retrieval: [`retrieve`]; metadata filters: [`filter`];
//! - who may call: [`internal`]; errors and their statuses: [`error`];
//! - settings and start-up: this file.

pub mod chunking;
pub mod embeddings;
pub mod error;
pub mod filter;
pub mod index;
pub mod internal;
pub mod jobs;
pub mod quantized;
pub mod retrieve;
pub mod runner;
pub mod schema;
pub mod source_files;
pub mod vectors;

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::web;
use auth::service_token::ServiceTokens;
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use service_kit::background::Background;
use service_kit::http::{BadInputStatus, Running, ServiceApp};
use service_kit::settings::{DatabaseSettings, HttpSettings, Secret};
use service_kit::{Env, SettingsError, db};
use tokio::sync::Notify;
use utoipa::OpenApi;
use uuid::Uuid;

use crate::chunking::Chunker;
use crate::embeddings::{Embedder, EmbeddingSettings, EmbeddingStatus};
use crate::index::Indexes;
use crate::runner::{Extraction, Runner};
use crate::source_files::SourceFiles;
use object_storage::{S3Settings, Storage};

pub const NAME: &str = "dokko-ingest";
pub const PORT: u16 = 8083;
pub const SCHEMA: &str = "ingest";
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/ingest");
/// The subcommand the extractor child runs as.
pub const EXTRACT_CHILD: &str = "extract-child";

/// Everything dokko-ingest reads from its environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    /// `INTERNAL_TOKEN_SECRET` (required, at least 32 bytes; the same as dokko-api's): signs
    /// and verifies the service tokens between dokko-api and dokko-ingest.
    pub internal_token_secret: Secret<String>,
    /// `DOKKO_API_URL`, default `http://localhost:8082`: where the file lists come from.
    pub dokko_api_url: String,
    /// `DOKKO_API_TIMEOUT_SECS`, default 30.
    pub dokko_api_timeout: Duration,
    pub s3: S3Settings,
    /// `INDEX_DIR`, default `{temp dir}/dokko-ingest`: this replica's search indexes (derived
    /// data, rebuilt from the database when missing; one folder per replica).
    pub index_dir: PathBuf,
    /// `CHUNK_SIZE`, default 1500 characters.
    pub chunk_size: usize,
    /// `CHUNK_OVERLAP`, default 150 characters.
    pub chunk_overlap: usize,
    /// `MAX_FILE_BYTES`, default 100 MiB: larger files fail without being read.
    pub max_file_bytes: u64,
    /// `EXTRACT_TIMEOUT_SECS`, default 60: one file's extraction.
    pub extract_timeout: Duration,
    /// `EXTRACT_MEMORY_MB`, default 1024: the extractor child's address-space limit.
    pub extract_memory_mb: u64,
    /// `EXTRACT_MAX_TEXT_MB`, default 32: more extracted text than this fails the file.
    pub extract_max_text_mb: usize,
    /// `EXTRACT_CONCURRENCY`, default the number of CPUs: files of one job in flight.
    pub extract_concurrency: usize,
    /// `EXTRACTOR_PROGRAM`, default this binary: the program run as `{program} extract-child`.
    pub extractor_program: Option<PathBuf>,
    /// `JOB_WORKERS`, default 2: jobs (of different sources) this replica runs at once; 0 runs
    /// none (an API-only replica).
    pub job_workers: usize,
    /// `JOB_LEASE_SECS`, default 60: a job whose runner stopped renewing is taken up again after it.
    pub job_lease: Duration,
    /// `JOB_MAX_CLAIMS`, default 3: takes of one job before it is failed.
    pub job_max_claims: i32,
    /// `WORKER_POLL_MILLIS`, default 1000: how often idle runners look for jobs.
    pub worker_poll: Duration,
    /// `EMBEDDINGS` (`embedded` by default, `endpoint` with `EMBEDDINGS_URL`, or `none`) and
    /// its engine's settings.
    pub embeddings: EmbeddingSettings,
}

impl Settings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let internal_token_secret = env.required_secret("INTERNAL_TOKEN_SECRET")?;
        if internal_token_secret.expose().len() < 32 {
            return Err(SettingsError::new("INTERNAL_TOKEN_SECRET", "must be at least 32 bytes"));
        }
        let cpus = std::thread::available_parallelism().map_or(2, usize::from);
        let chunk_size = env.number_or("CHUNK_SIZE", 1500, 100..=100_000)?;
        let chunk_overlap = env.number_or("CHUNK_OVERLAP", 150, 0..=50_000)?;
        if chunk_overlap >= chunk_size {
            return Err(SettingsError::new("CHUNK_OVERLAP", "must be smaller than CHUNK_SIZE"));
        }
        let index_dir = env.get("INDEX_DIR").map_or_else(|| std::env::temp_dir().join(NAME), PathBuf::from);
        let embeddings = EmbeddingSettings::from_env(env, &index_dir)?;
        Ok(Self {
            http: HttpSettings::from_env(env, PORT)?,
            database: DatabaseSettings::from_env(env)?,
            internal_token_secret,
            dokko_api_url: env.http_url_or("DOKKO_API_URL", "http://localhost:8082")?,
            dokko_api_timeout: env.seconds_or("DOKKO_API_TIMEOUT_SECS", 30)?,
            s3: S3Settings::from_env(env, 60)?,
            index_dir,
            chunk_size,
            chunk_overlap,
            max_file_bytes: env.number_or("MAX_FILE_BYTES", 100 << 20, 1..=(1u64 << 40))?,
            extract_timeout: env.seconds_or("EXTRACT_TIMEOUT_SECS", 60)?,
            extract_memory_mb: env.number_or("EXTRACT_MEMORY_MB", 1024, 64..=65_536)?,
            extract_max_text_mb: env.number_or("EXTRACT_MAX_TEXT_MB", 32, 1..=4096)?,
            extract_concurrency: env.number_or("EXTRACT_CONCURRENCY", cpus, 1..=256)?,
            extractor_program: env.get("EXTRACTOR_PROGRAM").map(PathBuf::from),
            job_workers: env.number_or("JOB_WORKERS", 2, 0..=64)?,
            job_lease: Duration::from_secs(env.number_or("JOB_LEASE_SECS", 60, 3..=86_400)?),
            job_max_claims: env.number_or("JOB_MAX_CLAIMS", 3, 1..=100)?,
            worker_poll: Duration::from_millis(env.number_or("WORKER_POLL_MILLIS", 1000, 10..=60_000)?),
            embeddings,
        })
    }

    /// How files are extracted: the configured program, or this very binary.
    pub fn extraction(&self) -> anyhow::Result<Extraction> {
        let program = match &self.extractor_program {
            Some(program) => program.clone(),
            None => std::env::current_exe()?,
        };
        Ok(Extraction {
            program,
            args: vec![EXTRACT_CHILD.to_owned()],
            limits: extract::Limits {
                timeout: self.extract_timeout,
                max_input_bytes: self.max_file_bytes,
                max_output_bytes: self.extract_max_text_mb << 20,
                max_memory_bytes: self.extract_memory_mb << 20,
                // What a compressed package (Office files, PDF streams) may inflate to.
                max_decompressed_bytes: (self.extract_memory_mb << 20) / 2,
            },
        })
    }
}

/// What every handler shares.
pub struct AppState {
    pub pool: db::Pool,
    pub indexes: Arc<Indexes>,
    pub embedder: Option<Embedder>,
    /// What the service embeds with (or why it does not).
    pub embedding: EmbeddingStatus,
    /// Wakes this replica's runners when a job starts.
    pub wake: Arc<Notify>,
}

/// Creates the schema and runs pending migrations.
pub async fn migrate(database_url: &str) -> anyhow::Result<()> {
    let applied = db::migrate(database_url, SCHEMA, MIGRATIONS).await?;
    if applied > 0 {
        tracing::info!(applied, "migrations applied");
    }
    Ok(())
}

/// Every route of the service.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(jobs::configure).configure(retrieve::configure);
}

/// Migrates, starts the job runners, then serves on `listener` until stopped.
pub async fn start(settings: Settings, listener: TcpListener) -> anyhow::Result<Running> {
    migrate(settings.database.url.expose()).await?;
    let pool = db::pool(&settings.database)?;
    let secret = settings.internal_token_secret.expose().as_bytes();
    let peers = web::Data::new(internal::Peers(ServiceTokens::new(secret, NAME)));
    let embedding_settings = settings.embeddings.clone();
    let (embedder, embedding) = tokio::task::spawn_blocking(move || Embedder::load(&embedding_settings)).await??;
    match (&embedder, &embedding.reason) {
        (Some(embedder), _) => tracing::info!(engine = embedding.engine, model = embedder.model(), "vector search on"),
        (None, Some(reason)) if embedding.engine != "none" => tracing::warn!("{reason}"),
        (None, reason) => tracing::info!(reason, "vector search off"),
    }
    let indexes = Arc::new(Indexes::new(settings.index_dir.clone(), embedder.as_ref().map(|e| e.model().to_owned())));
    let wake = Arc::new(Notify::new());
    let embed_wake = Arc::new(Notify::new());
    let state = web::Data::new(AppState {
        pool: pool.clone(),
        indexes: indexes.clone(),
        embedder: embedder.clone(),
        embedding,
        wake: wake.clone(),
    });
    let background = Background::new();
    let jobs_running = Arc::new(AtomicUsize::new(0));
    if let Some(embedder) = embedder {
        let worker = vectors::Worker {
            pool: pool.clone(),
            embedder,
            batch: settings.embeddings.batch(),
            jobs_running: jobs_running.clone(),
            wake: embed_wake.clone(),
            poll: settings.worker_poll,
            background: background.clone(),
        };
        background.spawn("embedding worker", worker.run());
    }
    let runner = Arc::new(Runner {
        pool: pool.clone(),
        storage: Storage::new(&settings.s3)?,
        source_files: SourceFiles::new(
            &settings.dokko_api_url,
            Arc::new(ServiceTokens::new(secret, NAME)),
            settings.dokko_api_timeout,
        )?,
        indexes,
        chunker: Arc::new(Chunker::new(settings.chunk_size, settings.chunk_overlap)?),
        extraction: settings.extraction()?,
        lease: settings.job_lease,
        max_claims: settings.job_max_claims,
        concurrency: settings.extract_concurrency,
        max_file_bytes: settings.max_file_bytes,
        me: Uuid::new_v4(),
        background: background.clone(),
        embed_wake,
    });
    for i in 0..settings.job_workers {
        spawn_runner(&background, i, runner.clone(), wake.clone(), settings.worker_poll, jobs_running.clone());
    }
    let app = ServiceApp {
        name: NAME,
        pool,
        openapi: ApiDoc::openapi(),
        configure: move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(peers.clone()).app_data(state.clone()).configure(routes);
        },
        bad_input: BadInputStatus {
            json: StatusCode::UNPROCESSABLE_ENTITY,
            path: StatusCode::NOT_FOUND,
            query: StatusCode::UNPROCESSABLE_ENTITY,
            form: StatusCode::UNPROCESSABLE_ENTITY,
        },
        cors_headers: &[],
        background,
    };
    Ok(service_kit::http::serve(listener, &settings.http, app)?)
}

/// One job runner: claims a job, runs it, looks again; sleeps when there is none. On shutdown it
/// claims no more jobs, and the one it runs is handed over between files ([`Runner::run`]).
fn spawn_runner(
    background: &Background,
    i: usize,
    runner: Arc<Runner>,
    wake: Arc<Notify>,
    poll: Duration,
    jobs_running: Arc<AtomicUsize>,
) {
    let stop = background.clone();
    background.spawn(format!("job runner {i}"), async move {
        while !stop.is_stopping() {
            match runner.claim().await {
                Ok(Some(job)) => {
                    jobs_running.fetch_add(1, Ordering::AcqRel);
                    runner.run(job).await;
                    jobs_running.fetch_sub(1, Ordering::AcqRel);
                }
                Ok(None) => {
                    stop.unless_stopped(tokio::time::timeout(poll, wake.notified())).await;
                }
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), "cannot claim a job");
                    stop.unless_stopped(tokio::time::sleep(poll)).await;
                }
            }
        }
    });
}

/// The OpenAPI security scheme of the service tokens.
const BEARER: service_kit::http::BearerScheme = service_kit::http::BearerScheme("service token");

#[derive(OpenApi)]
#[openapi(
    info(title = "dokko-ingest", description = "Internal: ingestion jobs and retrieval for dokko-api. Every route takes a service token (Authorization: Bearer, audience dokko:internal) signed with INTERNAL_TOKEN_SECRET."),
    paths(jobs::start_job, jobs::latest_job, jobs::latest_job_files, jobs::embedding, retrieve::retrieve),
    modifiers(&BEARER)
)]
pub struct ApiDoc;
