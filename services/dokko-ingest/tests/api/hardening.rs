//! Bad input on every text field of the internal API (NUL and other control characters: a 4xx
//! naming the field, never a 5xx).

use serde_json::json;
use testkit::Client;
use testkit::bad_input::{self, assert_handled};

use crate::{INTERNAL_SECRET, Stack};

#[tokio::test]
async fn control_characters_in_any_text_field_never_give_a_server_error() {
    let stack = Stack::spawn().await;
    let org = stack.org("acme").await;
    let token = auth::service_token::ServiceTokens::new(INTERNAL_SECRET.as_bytes(), "dokko-api")
        .bearer()
        .expect("service token");
    let ingest = Client::new(stack.ingest.as_ref().expect("dokko-ingest runs").url())
        .with_header("Authorization", &format!("Bearer {token}"));
    let (source, tenant) = (org.source_id, org.id);
    for bad in bad_input::all() {
        let retrieve = format!("/internal/v1/sources/{source}/retrieve");
        let cases = [
            (
                "retrieve",
                "query",
                ingest
                    .post_json(&retrieve, &json!({"tenant_id": tenant, "query": bad, "top_k": 5, "repository_ids": []}))
                    .await,
            ),
            (
                "start job",
                "bucket",
                ingest
                    .post_json(
                        &format!("/internal/v1/sources/{source}/jobs"),
                        &json!({"tenant_id": tenant, "bucket": bad}),
                    )
                    .await,
            ),
            (
                "latest job",
                // A query value that does not parse is named only as the query string (actix's
                // query errors carry no field name); a NUL names the parameter.
                if bad.contains('\0') { "query parameter tenant_id" } else { "query string" },
                ingest
                    .get(&format!("/internal/v1/sources/{source}/jobs/latest?tenant_id={}", bad_input::encode(bad)))
                    .await,
            ),
            (
                "job files",
                "status",
                ingest
                    .get(&format!(
                        "/internal/v1/sources/{source}/jobs/latest/files?tenant_id={tenant}&status={}",
                        bad_input::encode(bad)
                    ))
                    .await,
            ),
            (
                "latest job",
                "path parameter",
                ingest
                    .get(&format!("/internal/v1/sources/{}/jobs/latest?tenant_id={tenant}", bad_input::encode(bad)))
                    .await,
            ),
        ];
        for (what, field, res) in &cases {
            assert_handled(res, what, field, bad);
        }
    }
}
