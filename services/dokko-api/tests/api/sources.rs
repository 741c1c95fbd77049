//! Document sources: the one source provisioned with the tenant, with every field of the contract.

use serde_json::json;

use crate::{TestApp, keys};

#[tokio::test]
async fn the_tenant_sees_its_one_document_source_with_every_field() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let client = app.machine(&org).await;

    let list = client.get("/api/v1/document-sources").await;
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(
        list.body,
        json!({
            "items": [{
                "id": org.source_id, "type": "S3", "identifier": org.bucket, "tenant_id": org.id,
                "status": "unlocked", "is_locked": false
            }],
            "has_next_page": false, "page_number": 1, "page_count": 1, "page_size": 10, "total_records": 1
        })
    );

    let one = client.get(&format!("/api/v1/document-sources/{}", org.source_id)).await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(
        keys(&one.body),
        [
            "agent",
            "bedrock_chunking_strategy",
            "bedrock_data_source_id",
            "bedrock_embedding_model",
            "bedrock_fm_model_arn",
            "bedrock_knowledge_base_id",
            "bedrock_parser_strategy",
            "bedrock_parsing_prompt",
            "id",
            "identifier",
            "is_locked",
            "llm_chat_configuration",
            "status",
            "tenant_id",
            "type",
        ]
    );
    assert_eq!(one.body["identifier"], org.bucket.as_str());
    assert_eq!(one.body["bedrock_chunking_strategy"], "fixed_size");
    assert_eq!(one.body["bedrock_parser_strategy"], "default");
    assert!(one.body["bedrock_embedding_model"].is_null(), "keyword search only by default");
    assert!(one.body["llm_chat_configuration"].is_null());

    let absent = client.get("/api/v1/document-sources/550e8400-e29b-41d4-a716-446655440000").await;
    assert_eq!(absent.status, 404, "{}", absent.text);
    assert_eq!(absent.error(), "document source not found");
    assert_eq!(client.get("/api/v1/document-sources/123").await.status, 422);
    assert_eq!(app.anonymous().get("/api/v1/document-sources").await.status, 401);
}
