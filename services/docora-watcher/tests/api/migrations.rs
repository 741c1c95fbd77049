//! The migrations: every one has a working `down.sql`, and nothing lands outside the schema.

#[tokio::test]
async fn migrations_go_down_and_up_again_inside_the_docora_schema() {
    let db = testkit::TestDb::new("docora", |url| async move { docora_watcher::migrate(&url).await })
        .await
        .expect("test database");
    let tables =
        |schema: &str| format!("SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = '{schema}'");
    let breaker_columns = "SELECT count(*) AS n FROM information_schema.columns \
                           WHERE table_schema = 'docora' AND table_name = 'apps' \
                           AND column_name IN ('delivery_failures', 'breaker_open_until', 'breaker_trial')";
    let migrated = crate::count(&db, &tables("docora")).await;
    assert_eq!(crate::count(&db, breaker_columns).await, 3);
    assert_eq!(crate::count(&db, &tables("public")).await, 0, "nothing outside the service's schema");
    let reverted =
        service_kit::db::revert_all(&db.url, docora_watcher::SCHEMA, docora_watcher::MIGRATIONS).await.expect("down");
    assert!(reverted >= 5, "{reverted}");
    assert_eq!(crate::count(&db, &tables("docora")).await, 1, "only diesel's bookkeeping is left");
    docora_watcher::migrate(&db.url).await.expect("up again");
    assert_eq!(crate::count(&db, &tables("docora")).await, migrated);
    assert_eq!(crate::count(&db, breaker_columns).await, 3);
}

#[tokio::test]
async fn schema_rs_declares_exactly_what_the_migrations_create() {
    let db = testkit::TestDb::new("docora", |url| async move { docora_watcher::migrate(&url).await })
        .await
        .expect("test database");
    testkit::schema_check::assert_matches(&db, "docora", include_str!("../../src/schema.rs")).await;
}
