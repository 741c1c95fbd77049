//! The services' database pool (`service_kit::db`) against a real PostgreSQL.

use diesel_async::RunQueryDsl;
use service_kit::Env;
use service_kit::db;
use service_kit::settings::DatabaseSettings;
use testkit::TestDb;

/// An HTTP worker that opens a connection, then stops (as every worker does when the server
/// shuts down) while a background worker holds that connection: the connection must go on
/// working, or the background work finishing in the shutdown grace fails with "connection closed".
#[tokio::test]
async fn a_connection_outlives_the_runtime_that_opened_it() {
    let test_db = TestDb::new("kit_pool", |_| async { Ok(()) }).await.expect("test database");
    let env = Env::default().with("DATABASE_URL", &test_db.url).with("DATABASE_POOL_SIZE", "2");
    let pool = db::pool(&DatabaseSettings::from_env(&env).expect("settings")).expect("pool");

    // The "worker": a runtime of its own on a thread of its own, which opens the connection and
    // ends.
    let worker_pool = pool.clone();
    let conn = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move { db::conn(&worker_pool).await.expect("a connection") })
    })
    .join()
    .expect("the worker thread");

    // The "background worker" goes on with it.
    let mut conn = conn;
    let answered = diesel::sql_query("SELECT 1").execute(&mut conn).await;
    assert_eq!(answered.map_err(|e| e.to_string()), Ok(1));
    drop(conn);
    // And the pool hands it out again, working.
    let mut again = db::conn(&pool).await.expect("a connection");
    assert_eq!(diesel::sql_query("SELECT 1").execute(&mut again).await.map_err(|e| e.to_string()), Ok(1));
    assert_eq!(pool.status().size, 1, "one connection, reused");
}

/// Pooled connections run with JIT off: the services' short statements would otherwise pay
/// tens of milliseconds of compilation whenever the planner's estimate crosses `jit_above_cost`
/// (docora-watcher's take did).
#[tokio::test]
async fn pooled_connections_have_jit_off() {
    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        jit: String,
    }
    let test_db = TestDb::new("kit_pool_jit", |_| async { Ok(()) }).await.expect("test database");
    let env = Env::default().with("DATABASE_URL", &test_db.url);
    let pool = db::pool(&DatabaseSettings::from_env(&env).expect("settings")).expect("pool");
    let mut conn = db::conn(&pool).await.expect("a connection");
    let setting: Setting = diesel::sql_query("SHOW jit").get_result(&mut conn).await.expect("SHOW jit");
    assert_eq!(setting.jit, "off");
}
