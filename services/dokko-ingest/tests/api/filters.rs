//! Every filter operator through the retrieve endpoint, and malformed filters.

use serde_json::{Value, json};

use crate::Stack;

/// Three files sharing the word "report", with different metadata.
async fn fixture(stack: &Stack) -> crate::Org {
    let org = stack.org("acme").await;
    let repo = org.repository("reports", &[]).await;
    let ids = org
        .upload(
            &repo,
            &[
                ("legal/contract.txt", b"Annual report of the legal team."),
                ("finance/q1.txt", b"Quarterly report of the finance team."),
                ("misc/notes.txt", b"An informal report without metadata."),
            ],
        )
        .await;
    org.set_metadata(
        &ids[0],
        json!({"department": "legal", "year": 2021, "tags": ["contract", "eu"], "confidential": true}),
    )
    .await;
    org.set_metadata(
        &ids[1],
        json!({"department": "finance", "year": 2024, "tags": ["budget"], "confidential": false}),
    )
    .await;
    org.process().await;
    org
}

async fn matching(org: &crate::Org, filter: Value) -> Vec<String> {
    let mut keys = org.search_with(json!({"query": "report", "top_k": 10, "filter": filter})).await;
    keys.sort();
    keys
}

#[tokio::test]
async fn each_operator_selects_the_right_files() {
    let stack = Stack::spawn().await;
    let org = fixture(&stack).await;
    let legal = "legal/contract.txt";
    let finance = "finance/q1.txt";
    let notes = "misc/notes.txt";
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({"equals": {"key": "department", "value": "legal"}}), vec![legal]),
        (json!({"notEquals": {"key": "department", "value": "legal"}}), vec![finance, notes]),
        (json!({"greaterThan": {"key": "year", "value": 2021}}), vec![finance]),
        (json!({"greaterThanOrEquals": {"key": "year", "value": 2021}}), vec![finance, legal]),
        (json!({"lessThan": {"key": "year", "value": 2024}}), vec![legal]),
        (json!({"lessThanOrEquals": {"key": "year", "value": 2024}}), vec![finance, legal]),
        (json!({"in": {"key": "department", "value": ["finance", "hr"]}}), vec![finance]),
        (json!({"notIn": {"key": "department", "value": ["finance"]}}), vec![legal, notes]),
        (json!({"startsWith": {"key": "key", "value": "legal/"}}), vec![legal]),
        (json!({"listContains": {"key": "tags", "value": "eu"}}), vec![legal]),
        (json!({"stringContains": {"key": "filename", "value": "note"}}), vec![notes]),
        (json!({"equals": {"key": "confidential", "value": true}}), vec![legal]),
        (json!({"equals": {"key": "ext", "value": "txt"}}), vec![finance, legal, notes]),
        (
            json!({"andAll": [{"equals": {"key": "department", "value": "legal"}},
                              {"greaterThan": {"key": "year", "value": 2022}}]}),
            vec![],
        ),
        (
            json!({"orAll": [{"equals": {"key": "department", "value": "finance"}},
                             {"startsWith": {"key": "key", "value": "misc/"}}]}),
            vec![finance, notes],
        ),
    ];
    for (filter, expected) in cases {
        assert_eq!(matching(&org, filter.clone()).await, expected, "{filter}");
    }
}

#[tokio::test]
async fn a_malformed_filter_is_400_saying_where() {
    let stack = Stack::spawn().await;
    let org = fixture(&stack).await;
    let cases = [
        (json!({"equalz": {"key": "a", "value": 1}}), "filter: unknown operator \"equalz\""),
        (
            json!({"andAll": [{"equals": {"key": "a", "value": 1}}, {"in": {"key": "b", "value": "x"}}]}),
            "filter.andAll[1].in.value: expected a non-empty list",
        ),
        (json!({"greaterThan": {"key": "year"}}), "filter.greaterThan: missing field value"),
    ];
    for (filter, expected) in cases {
        let res = org.retrieve(json!({"query": "report", "filter": filter})).await;
        assert_eq!(res.status, 400, "{}", res.text);
        assert!(res.error().contains(expected), "{} does not say {expected}", res.error());
    }
    for (body, status) in [
        (json!({"query": ""}), 400),
        (json!({"query": "report", "top_k": 0}), 400),
        (json!({"query": "report", "top_k": 101}), 400),
        (json!({"query": 3}), 422),
        (json!({"top_k": 3}), 422),
        (json!({"query": "report", "unknown": 1}), 422),
    ] {
        let res = org.retrieve(body.clone()).await;
        assert_eq!(res.status, status, "{body}: {}", res.text);
    }
}
