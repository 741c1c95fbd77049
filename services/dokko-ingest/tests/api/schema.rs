//! `schema.rs` against the migrations.

#[tokio::test]
async fn schema_rs_declares_exactly_what_the_migrations_create() {
    let db = testkit::TestDb::new("dokko_ingest_schema", |url| async move { dokko_ingest::migrate(&url).await })
        .await
        .expect("test database");
    testkit::schema_check::assert_matches(&db, "ingest", include_str!("../../src/schema.rs")).await;
}
