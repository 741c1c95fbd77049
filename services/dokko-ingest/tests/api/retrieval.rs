//! Retrieval: the answer's shape and order, top_k, permissions and repositories, tenants, and
//! vector search fused with keywords.

use serde_json::json;

use crate::{Stack, str_of};

#[tokio::test]
async fn answers_carry_the_chunk_its_file_and_metadata_best_first() {
    let stack = Stack::spawn().await;
    let org = stack.org("acme").await;
    let repo = org.repository("zoo", &[]).await;
    let ids = org
        .upload(
            &repo,
            &[
                ("penguins.txt", b"Penguins penguins penguins: the penguin enclosure is cold."),
                ("mixed.txt", b"The zoo has lions, zebras and one penguin."),
                ("lions.txt", b"Lions sleep most of the day."),
            ],
        )
        .await;
    org.set_metadata(&ids[0], json!({"habitat": "antarctic"})).await;
    org.process().await;
    let res = org.retrieve(json!({"query": "penguin", "top_k": 5})).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let results = res.body["results"].as_array().expect("results");
    assert_eq!(results.len(), 2, "{}", res.text);
    let first = &results[0];
    assert_eq!(first["key"], "penguins.txt");
    assert_eq!(first["file_id"], ids[0].as_str());
    assert_eq!(first["repository_id"], repo.as_str());
    assert_eq!(first["chunk_index"], 0);
    assert!(str_of(first, "content").contains("enclosure is cold"));
    assert_eq!(first["metadata"]["habitat"], "antarctic");
    assert_eq!(first["metadata"]["key"], "penguins.txt", "system keys come along");
    assert!(first["score"].as_f64().expect("score") > results[1]["score"].as_f64().expect("score"));
    // top_k caps the answer; the default is 10.
    assert_eq!(org.search_with(json!({"query": "penguin lions", "top_k": 1})).await.len(), 1);
    assert_eq!(org.search_with(json!({"query": "penguin lions"})).await.len(), 3);
    assert!(org.search("unicorns").await.is_empty());
}

#[tokio::test]
async fn long_files_are_chunked_and_each_chunk_knows_its_place() {
    let stack = Stack::spawn().await;
    let org = stack.org("acme").await;
    let repo = org.repository("books", &[]).await;
    let mut text = String::new();
    for i in 0..30 {
        text.push_str(&format!("Paragraph {i} talks about ordinary things like chairs and tables.\n\n"));
    }
    text.push_str("The final paragraph reveals the treasure under the lighthouse.\n");
    org.upload(&repo, &[("novel.md", text.as_bytes())]).await;
    org.process().await;
    let chunks = stack.db.count("SELECT count(*) AS n FROM ingest.chunks").await;
    assert!(chunks > 3, "a 2,000-character file in 400-character chunks: {chunks}");
    let res = org.retrieve(json!({"query": "treasure lighthouse", "top_k": 1})).await;
    let hit = &res.body["results"][0];
    assert!(str_of(hit, "content").contains("treasure under the lighthouse"), "{hit}");
    assert_eq!(hit["chunk_index"].as_i64(), Some(chunks - 1), "the last chunk");
}

#[tokio::test]
async fn permissions_and_repositories_limit_the_search_at_query_time() {
    let stack = Stack::spawn().await;
    let org = stack.org("acme").await;
    let hr = org.permission("hr").await;
    let eng = org.permission("engineering").await;
    let people = org.repository("people", &[&hr]).await;
    let code = org.repository("code", &[&eng]).await;
    let open = org.repository("open", &[]).await;
    org.upload(&people, &[("salaries.txt", b"Salary bands for the handbook.")]).await;
    org.upload(&code, &[("style.txt", b"Code style for the handbook.")]).await;
    org.upload(&open, &[("welcome.txt", b"Welcome to the handbook.")]).await;
    org.process().await;

    let mut all = org.search("handbook").await;
    all.sort();
    assert_eq!(all, ["salaries.txt", "style.txt", "welcome.txt"]);
    assert_eq!(org.search_with(json!({"query": "handbook", "permission_ids": [hr]})).await, ["salaries.txt"]);
    let mut both = org.search_with(json!({"query": "handbook", "permission_ids": [hr, eng]})).await;
    both.sort();
    assert_eq!(both, ["salaries.txt", "style.txt"]);
    assert!(org.search_with(json!({"query": "handbook", "permission_ids": []})).await.is_empty());
    assert_eq!(org.search_with(json!({"query": "handbook", "repository_ids": [open]})).await, ["welcome.txt"]);
    assert!(
        org.search_with(json!({"query": "handbook", "repository_ids": [open], "permission_ids": [hr]}))
            .await
            .is_empty()
    );

    // Giving the code repository the hr permission counts on the next query, without a job.
    let res =
        org.client.patch_json(&format!("/api/v1/repositories/{code}"), &json!({"permission_ids": [hr, eng]})).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let mut now = org.search_with(json!({"query": "handbook", "permission_ids": [hr]})).await;
    now.sort();
    assert_eq!(now, ["salaries.txt", "style.txt"]);
}

#[tokio::test]
async fn tenants_never_see_each_others_chunks() {
    let stack = Stack::spawn().await;
    let acme = stack.org("acme").await;
    let globex = stack.org("globex").await;
    let acme_repo = acme.repository("secrets", &[]).await;
    let globex_repo = globex.repository("plans", &[]).await;
    acme.upload(&acme_repo, &[("formula.txt", b"The secret formula is caramel.")]).await;
    globex.upload(&globex_repo, &[("plan.txt", b"The secret plan is a volcano lair.")]).await;
    acme.process().await;
    globex.process().await;
    assert_eq!(acme.search("secret").await, ["formula.txt"]);
    assert_eq!(globex.search("secret").await, ["plan.txt"]);
    // Naming the other tenant's repository finds nothing.
    assert!(globex.search_with(json!({"query": "secret", "repository_ids": [acme_repo]})).await.is_empty());
}

#[tokio::test]
async fn a_source_never_processed_answers_nothing() {
    let stack = Stack::spawn().await;
    let org = stack.org("acme").await;
    let repo = org.repository("docs", &[]).await;
    org.upload(&repo, &[("a.txt", b"unprocessed words")]).await;
    assert!(org.search("unprocessed").await.is_empty());
}

#[tokio::test]
async fn vector_search_finds_what_keywords_cannot_and_fuses_with_them() {
    let stack = Stack::spawn_with_embeddings().await;
    let embeddings = stack.embeddings.as_ref().expect("embeddings server");
    // The test server's vectors treat "automobile" as "car".
    embeddings.synonyms("automobile", "car");
    let org = stack.org("acme").await;
    let repo = org.repository("garage", &[]).await;
    org.upload(
        &repo,
        &[("car.txt", b"Car maintenance every spring."), ("bike.txt", b"Bicycle maintenance every autumn.")],
    )
    .await;
    org.process().await;
    assert!(embeddings.inputs() >= 2, "chunks were embedded");
    let stored = stack.db.count("SELECT count(*) AS n FROM ingest.chunks WHERE embedding IS NOT NULL").await;
    assert_eq!(stored, 2);
    // No chunk contains "automobile": only the vectors can find car.txt.
    assert_eq!(org.search("automobile").await.first().map(String::as_str), Some("car.txt"));
    // Keywords still count: "bicycle" ranks bike.txt first.
    assert_eq!(org.search("bicycle").await.first().map(String::as_str), Some("bike.txt"));
    // An embeddings outage at query time falls back to keyword search.
    embeddings.set_failing(true);
    assert_eq!(org.search("bicycle").await, ["bike.txt"]);
}

#[tokio::test]
async fn a_replica_that_did_not_run_the_job_answers_from_the_database() {
    let mut stack = Stack::spawn().await;
    let org = stack.org("acme").await;
    let repo = org.repository("docs", &[]).await;
    org.upload(&repo, &[("a.txt", b"Marmalade recipes from Seville."), ("b.txt", b"Tea from Assam.")]).await;
    org.process().await;
    // The same service started on an empty index folder rebuilds from the ingest schema.
    stack.stop_ingest();
    stack.start_ingest(true, |_| {});
    assert_eq!(org.search("marmalade").await, ["a.txt"]);
    org.delete(&repo, &["a.txt"]).await;
    org.process().await;
    assert!(org.search("marmalade").await.is_empty());
    assert_eq!(org.search("assam").await, ["b.txt"]);
}
