//! Vectors: computed in the background after the job, never stale, the same from the embedded
//! model and from an endpoint serving it, and keyword-only (said so) without a model.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use diesel::QueryableByName;
use dokko_ingest::embeddings::{Embedder, EmbeddingSettings};
use serde_json::{Value, json};
use service_kit::{Env, db};
use testkit::EmbeddingsServer;

use crate::{INTERNAL_SECRET, Org, Stack};

/// Every stored vector, by file path and chunk position.
async fn stored_vectors(stack: &Stack) -> BTreeMap<(String, i32), Vec<f32>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        path: String,
        #[diesel(sql_type = diesel::sql_types::Integer)]
        position: i32,
        #[diesel(sql_type = diesel::sql_types::Bytea)]
        embedding: Vec<u8>,
    }
    use diesel_async::RunQueryDsl;
    let mut conn = stack.db.conn().await.expect("connection");
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT f.path, c.position, c.embedding FROM ingest.chunks c JOIN ingest.files f ON f.ord = c.file_ord
         WHERE c.embedding IS NOT NULL",
    )
    .load(&mut conn)
    .await
    .expect("vectors");
    rows.into_iter()
        .map(|r| {
            let vector = r.embedding.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            ((r.path, r.position), vector)
        })
        .collect()
}

/// dokko-ingest's own answer about its embeddings (`GET /internal/v1/embedding`).
async fn embedding_status(stack: &Stack) -> Value {
    let token =
        auth::service_token::ServiceTokens::new(INTERNAL_SECRET.as_bytes(), "dokko-api").bearer().expect("token");
    let ingest = stack.ingest.as_ref().expect("dokko-ingest runs");
    let client = testkit::Client::new(ingest.url()).with_header("Authorization", &format!("Bearer {token}"));
    let res = client.get("/internal/v1/embedding").await;
    assert_eq!(res.status, 200, "{}", res.text);
    res.body
}

/// A repository `garage` with a file about cars and one about bicycles, uploaded (not processed).
pub(crate) async fn garage(org: &Org) -> String {
    let repo = org.repository("garage", &[]).await;
    org.upload(
        &repo,
        &[("car.txt", b"Car maintenance every spring."), ("bike.txt", b"Bicycle maintenance every autumn.")],
    )
    .await;
    repo
}

#[tokio::test]
async fn vectors_come_in_the_background_and_the_status_shows_their_progress() {
    let mut stack = Stack::spawn_with_embeddings().await;
    let embeddings = stack.embeddings.as_ref().expect("embeddings server");
    embeddings.synonyms("automobile", "car");
    let org = stack.org("acme").await;
    garage(&org).await;
    let status = org.process().await;
    // Bedrock's five counters keep their meaning; the embedding progress is beside them.
    let statistics = &status["statistics"];
    assert_eq!(statistics["numberOfDocumentsScanned"], 2, "{status}");
    assert_eq!(statistics["numberOfNewDocumentsIndexed"], 2, "{status}");
    assert_eq!(
        statistics["chunksEmbedded"].as_i64().expect("chunksEmbedded")
            + statistics["chunksToEmbed"].as_i64().expect("chunksToEmbed"),
        2,
        "{status}"
    );
    // Searchable by keyword as soon as the job ended.
    assert_eq!(org.search("maintenance").await.len(), 2);
    let status = org.wait_embedded().await;
    assert_eq!(status["statistics"]["chunksEmbedded"], 2, "{status}");
    assert_eq!(stack.db.count("SELECT count(*) AS n FROM ingest.chunks WHERE embedded_seq IS NOT NULL").await, 2);
    assert_eq!(stack.db.text("SELECT embedding_model AS t FROM ingest.sources").await, "test-bag-of-words");
    // Found by meaning once the vectors exist: no chunk says "automobile".
    assert_eq!(org.search("automobile").await.first().map(String::as_str), Some("car.txt"));
    let status = embedding_status(&stack).await;
    assert_eq!(status, json!({"engine": "endpoint", "model": "test-bag-of-words", "reason": null}));
    assert_eq!(source_model(&org).await, "test-bag-of-words");
    // A replica starting afresh loads the vectors from the database.
    stack.stop_ingest();
    stack.start_ingest(true, |_| {});
    assert_eq!(org.search("automobile").await.first().map(String::as_str), Some("car.txt"));
}

/// The document source's `bedrock_embedding_model`, as clients see it.
async fn source_model(org: &Org) -> Value {
    let res = org.client.get(&format!("/api/v1/document-sources/{}", org.source_id)).await;
    assert_eq!(res.status, 200, "{}", res.text);
    res.body["bedrock_embedding_model"].clone()
}

#[tokio::test]
async fn a_vector_of_content_that_changed_meanwhile_is_never_written() {
    // The service embeds nothing itself; this test's worker does, one step at a time.
    let stack = Stack::spawn_with(|env| env.with("EMBEDDINGS", "none")).await;
    let server = EmbeddingsServer::start().expect("embeddings server");
    let org = stack.org("acme").await;
    let repo = garage(&org).await;
    org.process().await;
    let env = Env::default().with("EMBEDDINGS_URL", server.url()).with("EMBEDDINGS_MODEL", "test-bag-of-words");
    let settings = EmbeddingSettings::from_env(&env, std::path::Path::new("/nonexistent")).expect("settings");
    let (embedder, _) = Embedder::load(&settings).expect("embedder");
    let worker = dokko_ingest::vectors::Worker {
        pool: db::pool(&stack.ingest_settings.database).expect("pool"),
        embedder: embedder.expect("an endpoint"),
        batch: 100,
        jobs_running: Arc::new(AtomicUsize::new(0)),
        wake: Arc::default(),
        poll: Duration::from_millis(50),
        background: service_kit::background::Background::new(),
    };
    let claimed = worker.claim().await.expect("claim");
    assert_eq!(claimed.len(), 2);
    // A second worker finds nothing to take: both chunks are leased.
    assert!(worker.claim().await.expect("claim").is_empty());
    // While the vectors are computed, car.txt changes and bike.txt goes.
    org.replace(&repo, "car.txt", b"Tractor repairs before the harvest.").await;
    org.delete(&repo, &["bike.txt"]).await;
    org.process().await;
    worker.adopt(claimed[0].source_id, "test-bag-of-words").await.expect("adopt");
    let vectors = vec![vec![1.0; 64]; claimed.len()];
    assert_eq!(worker.write(&claimed, &vectors).await.expect("write"), 0, "stale vectors were written");
    assert!(stored_vectors(&stack).await.is_empty());
    // The new content is embedded by the next step, and only it.
    let written = worker.step(&mut HashSet::new()).await.expect("step");
    assert_eq!(written, 1);
    let stored = stored_vectors(&stack).await;
    assert_eq!(stored.keys().cloned().collect::<Vec<_>>(), [("car.txt".to_owned(), 0)]);
    assert!(stored.values().all(|v| v != &vec![1.0; 64]));
}

#[tokio::test]
async fn without_the_model_search_is_keyword_only_and_says_so() {
    let missing = std::env::temp_dir().join(format!("no-model-{}", uuid::Uuid::new_v4()));
    let stack = Stack::spawn_with(|env| env.with("EMBEDDINGS_MODEL_DIR", missing.to_string_lossy())).await;
    let status = embedding_status(&stack).await;
    assert_eq!(status["engine"], "embedded");
    assert_eq!(status["model"], Value::Null);
    let reason = status["reason"].as_str().expect("a reason");
    assert!(reason.contains("keyword only") && reason.contains(&*missing.to_string_lossy()), "{reason}");
    let org = stack.org("acme").await;
    assert_eq!(source_model(&org).await, Value::Null);
    garage(&org).await;
    let status = org.process().await;
    assert!(status["statistics"].get("chunksToEmbed").is_none(), "{status}");
    assert_eq!(org.search("bicycle").await, ["bike.txt"]);
    assert_eq!(stack.db.count("SELECT count(*) AS n FROM ingest.chunks WHERE embedding IS NOT NULL").await, 0);
}

#[tokio::test]
async fn the_embedded_model_and_an_endpoint_serving_it_give_the_same_vectors() {
    let dir = tokio::task::spawn_blocking(|| embed::ensure_model(&embed::test_model_dir()))
        .await
        .expect("join")
        .expect("the model (fetched once into target/models)");
    let model = Arc::new(
        tokio::task::spawn_blocking({
            let dir = dir.clone();
            move || embed::Model::load(&dir)
        })
        .await
        .expect("join")
        .expect("model loads"),
    );
    let files: [(&str, &[u8]); 3] = [
        ("weather.txt", b"The weather is lovely today."),
        ("stadium.txt", b"He drove to the stadium."),
        ("long.md", &[b"# Notes\n\nA paragraph about gardens and rain. ".repeat(40), b"Last line.".to_vec()].concat()),
    ];
    let mut runs = Vec::new();
    for endpoint in [false, true] {
        let stack = if endpoint {
            let serving = model.clone();
            let server = EmbeddingsServer::start_with(Arc::new(move |inputs: &[String]| {
                let texts: Vec<&str> = inputs.iter().map(String::as_str).collect();
                serving.embed(&texts)
            }))
            .expect("server");
            Stack::spawn_with_server(server, |env| env.with("EMBEDDINGS_MODEL", embed::MODEL_NAME)).await
        } else {
            let dir = dir.clone();
            Stack::spawn_with(move |env| env.with("EMBEDDINGS_MODEL_DIR", dir.to_string_lossy())).await
        };
        let status = embedding_status(&stack).await;
        assert_eq!(status["model"], embed::MODEL_NAME, "{status}");
        assert_eq!(status["engine"], if endpoint { "endpoint" } else { "embedded" });
        let org = stack.org("acme").await;
        let repo = org.repository("notes", &[]).await;
        org.upload(&repo, &files).await;
        org.process().await;
        org.wait_embedded().await;
        // Found by meaning: no word of the query is in weather.txt.
        assert_eq!(org.search("It's so sunny outside!").await.first().map(String::as_str), Some("weather.txt"));
        runs.push(stored_vectors(&stack).await);
    }
    let (embedded, served) = (&runs[0], &runs[1]);
    assert!(embedded.len() >= 4, "{:?}", embedded.keys());
    assert_eq!(embedded.keys().collect::<Vec<_>>(), served.keys().collect::<Vec<_>>());
    for (key, vector) in embedded {
        let other = &served[key];
        assert_eq!(vector.len(), 384);
        let cosine: f32 = vector.iter().zip(other).map(|(a, b)| a * b).sum();
        assert!(cosine > 0.9999, "{key:?}: cosine {cosine}");
    }
}
