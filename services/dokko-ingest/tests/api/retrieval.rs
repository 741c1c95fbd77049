//! Retrieval: the answer's shape and order, top_k, permissions and repositories, tenants,
//! vector search fused with keywords and `search_type`, and forgetting at once what was deleted,
//! moved, or is no longer allowed (no processing job in between).

use serde_json::json;

use crate::embedding::garage;
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
    garage(&org).await;
    org.process().await;
    org.wait_embedded().await;
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

/// Moves or renames items: (path, type, new path).
async fn move_items(org: &crate::Org, repository_id: &str, moves: &[(&str, &str, &str)]) {
    let items: Vec<_> =
        moves.iter().map(|(path, kind, to)| json!({"path": path, "type": kind, "new_path": to})).collect();
    let ops = json!({ "items": items }).to_string();
    let path = format!("/api/v1/repositories/{repository_id}/items");
    let res =
        crate::multipart(&org.client, reqwest::Method::PATCH, &path, &[crate::Part::Field("operations", &ops)]).await;
    assert_eq!(res.status, 200, "{}", res.text);
}

#[tokio::test]
async fn deleted_files_and_folders_are_forgotten_as_soon_as_the_delete_answers() {
    let stack = Stack::spawn().await;
    let org = stack.org("acme").await;
    let repo = org.repository("docs", &[]).await;
    let ids = org
        .upload(
            &repo,
            &[
                ("secret/memo.txt", b"The launch codes are in the quarterly memo."),
                ("secret/plan.txt", b"The quarterly plan mentions the launch."),
                ("public/news.txt", b"Quarterly news: the launch went well."),
            ],
        )
        .await;
    org.process().await;
    let mut found = org.search("quarterly launch").await;
    found.sort();
    assert_eq!(found, ["public/news.txt", "secret/memo.txt", "secret/plan.txt"]);

    // One file: gone from retrieval the moment the DELETE has answered, no job since.
    org.delete(&repo, &["secret/memo.txt"]).await;
    assert_eq!(org.client.get(&format!("/api/v1/files/{}", ids[0])).await.status, 404);
    let res = org.retrieve(json!({"query": "launch codes memo", "top_k": 10})).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(!res.text.contains("launch codes") && !res.text.contains(&ids[0]), "{}", res.text);
    let mut found = org.search("quarterly launch").await;
    found.sort();
    assert_eq!(found, ["public/news.txt", "secret/plan.txt"]);

    // A folder with everything under it.
    let path = format!("/api/v1/repositories/{repo}/items");
    let res = org
        .client
        .send(
            org.client
                .request(reqwest::Method::DELETE, &path)
                .json(&json!({"items": [{"path": "secret", "type": "folder"}]})),
        )
        .await;
    assert!(res.status == 200 || res.status == 204, "{} {}", res.status, res.text);
    assert_eq!(org.search("quarterly launch").await, ["public/news.txt"]);

    // And after the next job, as before.
    org.process().await;
    assert_eq!(org.search("quarterly launch").await, ["public/news.txt"]);
}

#[tokio::test]
async fn files_deleted_in_numbers_leave_top_k_full() {
    let stack = Stack::spawn().await;
    let org = stack.org("acme").await;
    let repo = org.repository("docs", &[]).await;
    // Thirty files that rank first for "zebra" and three that rank after them.
    let strong: Vec<(String, Vec<u8>)> =
        (0..30).map(|i| (format!("strong/{i:02}.txt"), b"Zebra zebra zebra: stripes.".to_vec())).collect();
    let weak: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| (format!("weak/{i}.txt"), b"A long note on many animals, a zebra among them, and grass.".to_vec()))
        .collect();
    let files: Vec<(&str, &[u8])> = strong.iter().chain(&weak).map(|(p, b)| (p.as_str(), b.as_slice())).collect();
    org.upload(&repo, &files).await;
    org.process().await;
    assert!(org.search_with(json!({"query": "zebra", "top_k": 3})).await.iter().all(|k| k.starts_with("strong/")));
    let path = format!("/api/v1/repositories/{repo}/items");
    let res = org
        .client
        .send(
            org.client
                .request(reqwest::Method::DELETE, &path)
                .json(&json!({"items": [{"path": "strong", "type": "folder"}]})),
        )
        .await;
    assert!(res.status == 200 || res.status == 204, "{} {}", res.status, res.text);
    // dokko-ingest still holds the thirty; the answer is the three others all the same.
    let mut found = org.search_with(json!({"query": "zebra", "top_k": 3})).await;
    found.sort();
    assert_eq!(found, ["weak/0.txt", "weak/1.txt", "weak/2.txt"]);
    assert_eq!(org.search_with(json!({"query": "zebra", "top_k": 1})).await.len(), 1);
}

#[tokio::test]
async fn moved_files_answer_with_their_current_key_at_once() {
    let stack = Stack::spawn().await;
    let org = stack.org("acme").await;
    let repo = org.repository("docs", &[]).await;
    let ids = org
        .upload(
            &repo,
            &[("drafts/memo.txt", b"Budget memo for the harbour project."), ("old/plan.txt", b"Harbour plan.")],
        )
        .await;
    org.process().await;
    move_items(&org, &repo, &[("drafts/memo.txt", "file", "final/budget.txt"), ("old", "folder", "archive/2024")])
        .await;
    let res = org.retrieve(json!({"query": "harbour", "top_k": 10})).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let results = res.body["results"].as_array().expect("results");
    let mut keys: Vec<&str> = results.iter().map(|r| str_of(r, "key")).collect();
    keys.sort();
    assert_eq!(keys, ["archive/2024/plan.txt", "final/budget.txt"], "{}", res.text);
    let memo = results.iter().find(|r| r["file_id"] == ids[0].as_str()).expect("the memo, by its file id");
    assert_eq!(memo["key"], "final/budget.txt");
    assert_eq!(memo["metadata"]["key"], "final/budget.txt", "the metadata is the file's current one");
    assert_eq!(memo["metadata"]["filename"], "budget.txt");
    assert!(!res.text.contains("drafts/memo.txt") && !res.text.contains("old/plan.txt"), "{}", res.text);
    // A filter on the old key matches nothing any more.
    let old = json!({"query": "harbour", "filter": {"startsWith": {"key": "key", "value": "drafts/"}}});
    assert!(org.search_with(old).await.is_empty());
}

#[tokio::test]
async fn a_repository_that_loses_a_permission_is_forgotten_at_once() {
    let stack = Stack::spawn().await;
    let org = stack.org("acme").await;
    let hr = org.permission("hr").await;
    let people = org.repository("people", &[&hr]).await;
    org.upload(&people, &[("salaries.txt", b"Salary bands for the handbook.")]).await;
    org.process().await;
    assert_eq!(org.search_with(json!({"query": "salary", "permission_ids": [hr]})).await, ["salaries.txt"]);
    let res = org.client.patch_json(&format!("/api/v1/repositories/{people}"), &json!({"permission_ids": []})).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(org.search_with(json!({"query": "salary", "permission_ids": [hr]})).await.is_empty());
    // Without a permission restriction the caller still finds it.
    assert_eq!(org.search("salary").await, ["salaries.txt"]);
}

#[tokio::test]
async fn filters_see_the_metadata_as_it_is_now() {
    let stack = Stack::spawn().await;
    let org = stack.org("acme").await;
    let repo = org.repository("docs", &[]).await;
    let ids = org
        .upload(&repo, &[("contract.txt", b"Contract terms for the supplier."), ("notes.txt", b"Supplier notes.")])
        .await;
    org.set_metadata(&ids[0], json!({"department": "legal"})).await;
    org.set_metadata(&ids[1], json!({"department": "legal"})).await;
    org.process().await;
    let legal = json!({"query": "supplier", "filter": {"equals": {"key": "department", "value": "legal"}}});
    let mut found = org.search_with(legal.clone()).await;
    found.sort();
    assert_eq!(found, ["contract.txt", "notes.txt"]);
    // The contract moves to another department: a filter on the old value no longer finds it,
    // and the answer shows the current metadata.
    org.set_metadata(&ids[0], json!({"department": "purchasing"})).await;
    assert_eq!(org.search_with(legal.clone()).await, ["notes.txt"]);
    let res = org.retrieve(json!({"query": "contract terms", "top_k": 1})).await;
    assert_eq!(res.body["results"][0]["metadata"]["department"], "purchasing", "{}", res.text);
    // A file that only now matches is found after the next job.
    let purchasing = json!({"query": "supplier", "filter": {"equals": {"key": "department", "value": "purchasing"}}});
    org.process().await;
    assert_eq!(org.search_with(purchasing).await, ["contract.txt"]);
    assert_eq!(org.search_with(legal).await, ["notes.txt"]);
}

#[tokio::test]
async fn search_type_chooses_keyword_semantic_or_both() {
    let stack = Stack::spawn_with_embeddings().await;
    let embeddings = stack.embeddings.as_ref().expect("embeddings server");
    embeddings.synonyms("automobile", "car");
    let org = stack.org("acme").await;
    garage(&org).await;
    org.process().await;
    org.wait_embedded().await;
    let search = |search_type: &str| json!({"query": "automobile", "search_type": search_type});
    // No chunk has the word: keywords find nothing, vectors find the car.
    assert!(org.search_with(search("KEYWORD")).await.is_empty());
    assert_eq!(org.search_with(search("SEMANTIC")).await.first().map(String::as_str), Some("car.txt"));
    assert_eq!(org.search_with(search("HYBRID")).await.first().map(String::as_str), Some("car.txt"));
    assert_eq!(
        org.search_with(json!({"query": "automobile"})).await.first().map(String::as_str),
        Some("car.txt"),
        "HYBRID is the default"
    );
    // Semantic scores are cosine similarities.
    let res = org.retrieve(search("SEMANTIC")).await;
    let score = res.body["results"][0]["score"].as_f64().expect("score");
    assert!(score > 0.0 && score <= 1.0 + 1e-6, "{}", res.text);
    // An embeddings outage: HYBRID answers by keywords, SEMANTIC cannot answer.
    embeddings.set_failing(true);
    assert_eq!(org.search_with(json!({"query": "bicycle", "search_type": "HYBRID"})).await, ["bike.txt"]);
    let res = org.retrieve(json!({"query": "bicycle", "search_type": "SEMANTIC"})).await;
    assert_eq!(res.status, 503, "{}", res.text);
}

#[tokio::test]
async fn search_type_is_validated_and_semantic_needs_a_model() {
    let stack = Stack::spawn_with(|env| env.with("EMBEDDINGS", "none")).await;
    let org = stack.org("acme").await;
    let repo = org.repository("docs", &[]).await;
    org.upload(&repo, &[("a.txt", b"Keyword search still works.")]).await;
    org.process().await;
    let res = org.retrieve(json!({"query": "keyword", "search_type": "FUZZY"})).await;
    assert_eq!(res.status, 422, "{}", res.text);
    assert!(res.text.contains("search_type") && res.text.contains("HYBRID"), "{}", res.text);
    let res = org.retrieve(json!({"query": "keyword", "search_type": "SEMANTIC"})).await;
    assert_eq!(res.status, 400, "{}", res.text);
    assert!(res.text.contains("SEMANTIC needs an embedding model"), "{}", res.text);
    // The OpenAPI document lists the three.
    let doc = stack.anonymous().get("/openapi.json").await;
    assert_eq!(doc.body["components"]["schemas"]["SearchType"]["enum"], json!(["HYBRID", "SEMANTIC", "KEYWORD"]));
    let request = &doc.body["components"]["schemas"]["RetrieveRequest"]["properties"];
    assert!(request["search_type"].is_object(), "{request}");
    // Without a model, HYBRID (the default) and KEYWORD are keyword search.
    assert_eq!(org.search_with(json!({"query": "keyword", "search_type": "KEYWORD"})).await, ["a.txt"]);
    assert_eq!(org.search_with(json!({"query": "keyword", "search_type": "HYBRID"})).await, ["a.txt"]);
    assert_eq!(org.search("keyword").await, ["a.txt"]);
}

/// A bag-of-words vector (hashed into 64 dimensions); refuses any batch with "pending" in it.
fn vectors_except_pending(texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
    anyhow::ensure!(!texts.iter().any(|t| t.to_lowercase().contains("pending")), "not now");
    Ok(texts
        .iter()
        .map(|text| {
            let mut vector = vec![0f32; 64];
            for word in text.to_lowercase().split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
                let slot = word.bytes().fold(7usize, |h, b| h.wrapping_mul(31).wrapping_add(usize::from(b))) % 64;
                vector[slot] += 1.0;
            }
            let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
            vector.iter().map(|x| x / norm).collect()
        })
        .collect())
}

#[tokio::test]
async fn files_still_waiting_for_vectors_are_found_by_keywords_under_hybrid() {
    let server = testkit::EmbeddingsServer::start_with(std::sync::Arc::new(vectors_except_pending))
        .expect("embeddings server starts");
    let stack = Stack::spawn_with_server(server, |env| env).await;
    let org = stack.org("acme").await;
    let repo = org.repository("garage", &[]).await;
    org.upload(&repo, &[("car.txt", b"Car maintenance every spring.")]).await;
    org.process().await;
    org.wait_embedded().await;
    // This file's vector cannot be computed (yet): the endpoint refuses it.
    org.upload(&repo, &[("bike.txt", b"Bicycle maintenance, pending review.")]).await;
    let status = org.process().await;
    assert_eq!(status["statistics"]["chunksToEmbed"], 1, "{status}");
    // HYBRID (the default) finds it by its keywords meanwhile.
    assert!(org.search_with(json!({"query": "bicycle"})).await.contains(&"bike.txt".to_owned()));
    let mut both = org.search_with(json!({"query": "maintenance", "search_type": "HYBRID"})).await;
    both.sort();
    assert_eq!(both, ["bike.txt", "car.txt"]);
    // Semantic search knows only the chunks that have a vector.
    let semantic = org.search_with(json!({"query": "bicycle maintenance", "search_type": "SEMANTIC"})).await;
    assert_eq!(semantic, ["car.txt"]);
}
