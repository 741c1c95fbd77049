//! PostgreSQL through diesel-async: the pool, migrations, and error classification.
//!
//! Every service keeps its tables and its migration bookkeeping in a schema named after it. At
//! start it takes a PostgreSQL advisory lock (so two replicas booting at once do not race),
//! creates the schema if missing and runs its embedded migrations with the schema first on the
//! `search_path`, so diesel's `__diesel_schema_migrations` table lives there too.

use std::sync::OnceLock;
use std::time::Duration;

use diesel::result::{ConnectionError, ConnectionResult, DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::deadpool::{Object, Pool as DeadPool, PoolError};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use diesel_migrations::EmbeddedMigrations;
use futures_util::FutureExt;

use crate::settings::DatabaseSettings;

pub type Pool = DeadPool<AsyncPgConnection>;
pub type Conn = Object<AsyncPgConnection>;

/// Builds the pool. Connections are opened lazily, so this succeeds even when the database is
/// down (`/readyz` says so until it is back).
pub fn pool(settings: &DatabaseSettings) -> anyhow::Result<Pool> {
    let mut config = ManagerConfig::default();
    // `Verified` would send an extra query on every checkout; a broken connection is detected
    // by the driver and discarded anyway.
    config.recycling_method = RecyclingMethod::Fast;
    config.custom_setup = Box::new(|url| establish_on_driver(url.to_owned()).boxed());
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(settings.url.expose(), config);
    Ok(DeadPool::builder(manager)
        .max_size(settings.pool_size)
        .wait_timeout(Some(settings.timeout))
        .create_timeout(Some(settings.timeout))
        .recycle_timeout(Some(settings.timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()?)
}

/// Opens a connection whose socket is driven by the process-wide [`driver`] runtime.
///
/// A diesel-async connection spawns the task that drives its socket on the runtime that opens
/// it. Opened from an HTTP worker (a handler that found the pool empty), that task would die
/// with the worker's runtime when the server stops, while a background worker finishing its
/// work during the shutdown grace may hold the very connection: its queries would fail with
/// "connection closed". Opened on the driver runtime, a connection lives as long as the pool
/// keeps it, whichever thread uses it.
///
/// JIT compilation is turned off for the session: the services run short statements whose
/// planner estimates can still cross `jit_above_cost` (docora-watcher's take did, and paid tens
/// of milliseconds of compilation for a statement that runs in one).
async fn establish_on_driver(url: String) -> ConnectionResult<AsyncPgConnection> {
    driver()
        .spawn(async move {
            let mut conn = AsyncPgConnection::establish(&url).await?;
            conn.batch_execute("SET jit = off")
                .await
                .map_err(|e| ConnectionError::BadConnection(format!("cannot set up the session: {e}")))?;
            Ok(conn)
        })
        .await
        .map_err(|e| ConnectionError::BadConnection(format!("the connection task failed: {e}")))?
}

/// The runtime that drives the sockets of pooled connections: two threads of its own, for the
/// life of the process. (A/B runs with `bench/giistr-load.sh` and `bench/dokko-load.sh` against
/// connections driven by the runtime that opened them showed no difference beyond the machine's
/// noise; one thread was slower on 100-row pages, where it parsed every connection's rows.)
fn driver() -> &'static tokio::runtime::Handle {
    static DRIVER: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    DRIVER
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("db-driver")
                .enable_all()
                .build()
                // Only fails when the OS refuses threads, and then nothing else could run either.
                .expect("the database driver runtime starts")
        })
        .handle()
}

/// A connection from the pool.
pub async fn conn(pool: &Pool) -> Result<Conn, DbError> {
    pool.get().await.map_err(DbError::from)
}

/// Whether the database answers a trivial query within `timeout`.
pub async fn ping(pool: &Pool, timeout: Duration) -> Result<(), DbError> {
    let check = async {
        let mut conn = conn(pool).await?;
        diesel::sql_query("SELECT 1").execute(&mut conn).await?;
        Ok::<_, DbError>(())
    };
    tokio::time::timeout(timeout, check)
        .await
        .map_err(|_| DbError::Unavailable("database did not answer in time".into()))?
}

/// A 64-bit advisory lock key derived from a name (FNV-1a), stable across builds.
pub fn advisory_key(name: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// Creates `schema` if missing and runs the pending `migrations` in it, under an advisory lock.
/// Returns how many migrations ran.
pub async fn migrate(
    database_url: &str,
    schema: &'static str,
    migrations: EmbeddedMigrations,
) -> anyhow::Result<usize> {
    anyhow::ensure!(
        !schema.is_empty() && schema.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
        "schema name {schema:?} must be lower-case letters and underscores"
    );
    let url = database_url.to_owned();
    // diesel's migration harness is synchronous: run it on a blocking thread with the async
    // connection wrapped (no libpq needed).
    tokio::task::spawn_blocking(move || blocking::migrate(&url, schema, migrations)).await?
}

/// Reverts every applied migration of `schema` (each `down.sql`), newest first. Used by tests to
/// prove the down migrations work; an operator rolling back a release can call it too.
pub async fn revert_all(
    database_url: &str,
    schema: &'static str,
    migrations: EmbeddedMigrations,
) -> anyhow::Result<usize> {
    let url = database_url.to_owned();
    tokio::task::spawn_blocking(move || blocking::revert_all(&url, schema, migrations)).await?
}

mod blocking {
    use diesel::{Connection, RunQueryDsl};
    use diesel_async::AsyncPgConnection;
    use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
    use diesel_migrations::{EmbeddedMigrations, MigrationHarness};

    pub(super) fn migrate(url: &str, schema: &str, migrations: EmbeddedMigrations) -> anyhow::Result<usize> {
        let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(url)
            .map_err(|e| anyhow::anyhow!("cannot connect to the database to migrate: {e}"))?;
        let key = super::advisory_key(&format!("migrations:{schema}"));
        diesel::sql_query(format!("SELECT pg_advisory_lock({key})")).execute(&mut conn)?;
        let run = || -> anyhow::Result<usize> {
            diesel::sql_query(format!("CREATE SCHEMA IF NOT EXISTS {schema}")).execute(&mut conn)?;
            diesel::sql_query(format!("SET search_path TO {schema}")).execute(&mut conn)?;
            let applied = conn
                .run_pending_migrations(migrations)
                .map_err(|e| anyhow::anyhow!("migrations of schema {schema} failed: {e}"))?;
            Ok(applied.len())
        };
        let outcome = run();
        // The lock also goes when the connection closes; release it explicitly anyway.
        let _unlocked = diesel::sql_query(format!("SELECT pg_advisory_unlock({key})")).execute(&mut conn);
        outcome
    }

    pub(super) fn revert_all(url: &str, schema: &str, migrations: EmbeddedMigrations) -> anyhow::Result<usize> {
        let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(url)
            .map_err(|e| anyhow::anyhow!("cannot connect to the database: {e}"))?;
        diesel::sql_query(format!("SET search_path TO {schema}")).execute(&mut conn)?;
        let reverted = conn
            .revert_all_migrations(migrations)
            .map_err(|e| anyhow::anyhow!("reverting migrations of schema {schema} failed: {e}"))?;
        Ok(reverted.len())
    }
}

/// A database failure sorted by what the API should answer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("row not found")]
    NotFound,
    #[error("unique constraint {constraint} violated")]
    UniqueViolation { constraint: String },
    #[error("foreign key constraint {constraint} violated")]
    ForeignKeyViolation { constraint: String },
    #[error("check constraint {constraint} violated")]
    CheckViolation { constraint: String },
    /// Every pooled connection is busy: the service is overloaded (503, retry later).
    #[error("no database connection became free in time")]
    PoolTimeout,
    /// The database cannot be reached (503).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Other(#[source] DieselError),
}

impl DbError {
    /// The constraint name for unique, foreign-key and check violations.
    pub fn constraint(&self) -> Option<&str> {
        match self {
            DbError::UniqueViolation { constraint }
            | DbError::ForeignKeyViolation { constraint }
            | DbError::CheckViolation { constraint } => Some(constraint),
            _ => None,
        }
    }

    /// Whether the failure is the database being away or overloaded rather than a bug.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, DbError::PoolTimeout | DbError::Unavailable(_))
    }

    /// The status an API answers with: not found and a missing reference 404, unique violation
    /// 409, pool timeout or lost database 503, anything else 500.
    pub fn status(&self) -> actix_web::http::StatusCode {
        use actix_web::http::StatusCode;
        match self {
            DbError::NotFound | DbError::ForeignKeyViolation { .. } => StatusCode::NOT_FOUND,
            DbError::UniqueViolation { .. } => StatusCode::CONFLICT,
            DbError::PoolTimeout | DbError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            DbError::CheckViolation { .. } | DbError::Other(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the caller is told. `conflict` says what a violated unique constraint (by name)
    /// means; `missing_reference` is the message of a foreign-key violation. 5xx causes go to
    /// the log and the caller sees a generic message.
    pub fn public_message(&self, conflict: fn(&str) -> &'static str, missing_reference: &str) -> String {
        match self {
            DbError::NotFound => "not found".to_owned(),
            DbError::UniqueViolation { constraint } => conflict(constraint).to_owned(),
            DbError::ForeignKeyViolation { .. } => missing_reference.to_owned(),
            e if e.is_unavailable() => {
                tracing::warn!(error = %e, "database unavailable");
                "the database is unavailable; try again shortly".to_owned()
            }
            e => {
                tracing::error!(error = ?e, "database error");
                "internal server error".to_owned()
            }
        }
    }
}

impl From<DieselError> for DbError {
    fn from(error: DieselError) -> Self {
        match error {
            DieselError::NotFound => DbError::NotFound,
            DieselError::DatabaseError(kind, ref info) => {
                let constraint = info.constraint_name().unwrap_or_default().to_owned();
                match kind {
                    DatabaseErrorKind::UniqueViolation => DbError::UniqueViolation { constraint },
                    DatabaseErrorKind::ForeignKeyViolation => DbError::ForeignKeyViolation { constraint },
                    DatabaseErrorKind::CheckViolation => DbError::CheckViolation { constraint },
                    DatabaseErrorKind::ClosedConnection => DbError::Unavailable(info.message().to_owned()),
                    _ => DbError::Other(error),
                }
            }
            other => DbError::Other(other),
        }
    }
}

impl From<PoolError> for DbError {
    fn from(error: PoolError) -> Self {
        match error {
            PoolError::Timeout(_) => DbError::PoolTimeout,
            other => DbError::Unavailable(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn advisory_keys_are_stable_and_distinct() {
        assert_eq!(super::advisory_key("migrations:giistr"), super::advisory_key("migrations:giistr"));
        assert_ne!(super::advisory_key("migrations:giistr"), super::advisory_key("migrations:dokko"));
    }
}
