//! Bad input on every text field (NUL and other control characters: a 4xx naming the field,
//! never a 5xx) and a wrong method on every path (405 with `Allow`).

use reqwest::Method;
use serde_json::json;
use testkit::bad_input::{self, assert_handled};

use crate::{TestApp, create_repo, create_tag, str_of};

#[tokio::test]
async fn control_characters_in_any_text_field_never_give_a_server_error() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.user("alice");
    let tag = create_tag(&alice, "rust").await;
    let repo = create_repo(&alice, "101").await;
    let (tag_id, repo_id) = (str_of(&tag, "id"), str_of(&repo, "id"));
    for bad in bad_input::all() {
        let cases = [
            ("POST /api/v1/tag", "name", alice.post_json("/api/v1/tag", &json!({ "name": bad })).await),
            ("PUT /api/v1/tag", "name", alice.put_json("/api/v1/tag", &json!({ "id": tag_id, "name": bad })).await),
            (
                "POST /api/v1/repo",
                "github_repo_id",
                alice.post_json("/api/v1/repo", &json!({ "github_repo_id": bad })).await,
            ),
            (
                "POST /api/v1/repo",
                "repository_name",
                alice.post_json("/api/v1/repo", &json!({ "github_repo_id": "7", "repository_name": bad })).await,
            ),
            (
                "POST /api/v1/repo",
                "user_login",
                alice.post_json("/api/v1/repo", &json!({ "github_repo_id": "8", "user_login": bad })).await,
            ),
            (
                "PUT /api/v1/repo",
                "github_repo_id",
                alice.put_json("/api/v1/repo", &json!({ "id": repo_id, "github_repo_id": bad })).await,
            ),
            (
                "PUT /api/v1/repo",
                "repository_name",
                alice.put_json("/api/v1/repo", &json!({ "id": repo_id, "repository_name": bad })).await,
            ),
            (
                "PUT /api/v1/repo",
                "user_login",
                alice.put_json("/api/v1/repo", &json!({ "id": repo_id, "user_login": bad })).await,
            ),
        ];
        for (what, field, res) in &cases {
            assert_handled(res, what, field, bad);
        }
        let segment = bad_input::encode(bad);
        for path in [
            format!("/api/v1/tag/{segment}"),
            format!("/api/v1/repo/{segment}"),
            format!("/api/v1/user/{segment}"),
            format!("/api/v1/tags/repo/{segment}"),
            format!("/api/v1/repos/tag/{segment}"),
        ] {
            assert_handled(&alice.get(&path).await, &format!("GET {path}"), "path parameter", bad);
        }
        let path = format!("/api/v1/tag/{tag_id}/repo/{segment}");
        assert_handled(&alice.post(&path).await, &format!("POST {path}"), "path parameter", bad);
        let path = format!("/api/v1/tags?{segment}={segment}");
        assert_handled(&alice.get(&path).await, &format!("GET {path}"), "query parameter", bad);
    }
    // Names refuse control characters (format characters such as U+202E are text).
    let tags = alice.get("/api/v1/tags").await;
    let names: Vec<&str> = tags.body.as_array().into_iter().flatten().filter_map(|t| t["name"].as_str()).collect();
    assert!(names.contains(&"rust") && !names.iter().any(|n| n.chars().any(char::is_control)), "{names:?}");
}

#[tokio::test]
async fn a_nul_is_refused_naming_the_field_and_the_path_parameter() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.user("alice");
    let res = alice.post_json("/api/v1/tag", &json!({ "name": "a\u{0}b" })).await;
    assert_eq!(res.status, 400);
    assert_eq!(res.body, json!({"error": "invalid JSON body: name must not contain a NUL character (U+0000)"}));
    let res = alice.get("/api/v1/tag/ab%00cd").await;
    assert_eq!(res.status, 400);
    assert_eq!(res.body, json!({"error": "path parameter id must not contain a NUL character (U+0000)"}));
    let res = alice.get("/api/v1/tags?sort=%00").await;
    assert_eq!(res.status, 400);
    assert_eq!(res.body, json!({"error": "query parameter sort must not contain a NUL character (U+0000)"}));
}

#[tokio::test]
async fn a_wrong_method_answers_405_with_allow_on_every_path() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.user("alice");
    let id = "0190f0e4-0000-7000-8000-000000000001";
    for (method, path, allow) in [
        (Method::DELETE, "/api/v1/tags".to_owned(), "GET"),
        (Method::POST, "/api/v1/repos".to_owned(), "GET"),
        (Method::PUT, "/api/v1/users".to_owned(), "GET"),
        (Method::DELETE, format!("/api/v1/user/{id}"), "GET"),
        (Method::PATCH, "/api/v1/tag".to_owned(), "POST, PUT"),
        (Method::POST, format!("/api/v1/tag/{id}"), "GET, DELETE"),
        (Method::GET, format!("/api/v1/tag/{id}/repo/{id}"), "POST"),
        (Method::GET, format!("/api/v1/repo-tag-assoc/{id}"), "DELETE"),
        (Method::DELETE, format!("/api/v1/tags/repo/{id}"), "GET"),
        (Method::POST, format!("/api/v1/repos/tag/{id}"), "GET"),
        (Method::POST, "/healthz".to_owned(), "GET"),
        (Method::DELETE, "/openapi.json".to_owned(), "GET"),
    ] {
        let res = alice.send(alice.request(method.clone(), &path)).await;
        assert_eq!(res.status, 405, "{method} {path}: {}", res.text);
        assert_eq!(res.headers["allow"], allow, "{method} {path}");
        assert_eq!(
            res.body,
            json!({"error": format!("method {method} is not allowed on {path} (allowed: {allow})")}),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn the_openapi_document_declares_every_answer_and_constraint() {
    let app = TestApp::spawn().await;
    let doc = app.anonymous().get("/openapi.json").await.body;
    let answers = |path: &str, method: &str| -> Vec<String> {
        doc["paths"][path][method]["responses"].as_object().map(|r| r.keys().cloned().collect()).unwrap_or_default()
    };
    assert_eq!(answers("/api/v1/tag", "post"), ["201", "400", "401", "405", "409", "413", "503"]);
    assert_eq!(answers("/api/v1/tags", "get"), ["200", "401", "405", "503"]);
    assert_eq!(answers("/api/v1/tag/{id}", "get"), ["200", "400", "401", "404", "405", "503"]);
    let name = &doc["components"]["schemas"]["CreateTag"]["properties"]["name"];
    assert_eq!((name["minLength"].as_u64(), name["maxLength"].as_u64()), (Some(1), Some(255)), "{name}");
    let id = &doc["components"]["schemas"]["CreateRepo"]["properties"]["github_repo_id"];
    assert_eq!(id["maxLength"].as_u64(), Some(100), "{id}");
}
