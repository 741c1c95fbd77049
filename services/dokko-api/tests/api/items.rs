//! Repository files and folders: upload, tree, replace, delete, download; bad input per item;
//! storage failures leave the bucket and the database in agreement.

use futures_util::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use testkit::s3::FailMode;

use crate::{Org, Part, TestApp, create_repository, is_uuid, multipart, objects, str_of, upload};

async fn setup() -> (TestApp, Org, String) {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let repo = create_repository(&org.admin, org.source_id, "handbook", &[]).await;
    let id = str_of(&repo, "id").to_owned();
    (app, org, id)
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[tokio::test]
async fn files_and_folders_are_uploaded_and_listed_as_a_tree() {
    let (app, org, repo) = setup().await;
    let pdf = b"%PDF-1.4 pretend".as_slice();
    let md = b"# Guide\n\nHello".as_slice();
    let path = format!("/api/v1/repositories/{repo}/items");
    let res = multipart(
        &org.admin,
        reqwest::Method::POST,
        &path,
        &[
            Part::File("files", "report.pdf", pdf),
            Part::File("files", "docs/2024/guide.md", md),
            Part::Field("folders", r#"["reports", "assets/images"]"#),
        ],
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["status"], "success");
    assert_eq!(res.body["total_succeeded"], 4);
    assert_eq!(res.body["total_failed"], 0);
    assert_eq!(res.body["failed"], json!([]));
    let succeeded: Vec<&str> = res.body["succeeded"]
        .as_array()
        .expect("list")
        .iter()
        .map(|s| s["identifier"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(succeeded, ["reports", "assets/images", "report.pdf", "docs/2024/guide.md"]);
    assert_eq!(res.body["succeeded"][3]["display_name"], "guide.md");
    assert!(res.body["result"]["files"]["report.pdf"].is_object(), "{}", res.body["result"]);

    let tree = org.admin.get(&path).await;
    assert_eq!(tree.status, 200, "{}", tree.text);
    let report = &tree.body["files"]["report.pdf"];
    assert_eq!(
        crate::keys(report),
        ["e_tag", "ext", "file_id", "is_locked", "key", "last_modified", "name", "size", "version_id"]
    );
    assert_eq!(report["name"], "report.pdf");
    assert_eq!(report["ext"], "pdf");
    assert_eq!(report["key"], "report.pdf");
    assert_eq!(report["size"], pdf.len());
    assert_eq!(report["e_tag"], sha(pdf));
    assert_eq!(report["version_id"], "v1");
    assert_eq!(report["is_locked"], false);
    assert!(is_uuid(&report["file_id"]));
    assert!(crate::is_recent_rfc3339(&report["last_modified"]));
    let guide = &tree.body["folders"]["docs"]["folders"]["2024"]["files"]["guide.md"];
    assert_eq!(guide["key"], "docs/2024/guide.md");
    assert_eq!(tree.body["folders"]["docs"]["is_locked"], false);
    assert_eq!(tree.body["folders"]["docs"]["repository"], json!({}));
    assert_eq!(
        tree.body["folders"]["reports"],
        json!({"folders": {}, "files": {}, "repository": {}, "is_locked": false})
    );
    assert!(tree.body["folders"]["assets"]["folders"]["images"].is_object());
    assert_eq!(tree.body["repository"], json!({}));

    // The bytes are in the tenant's bucket, one object per file, under the repository.
    let keys = objects(&app, &org);
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().all(|k| k.starts_with(&format!("repositories/{repo}/objects/"))), "{keys:?}");
    let stored: Vec<Vec<u8>> = keys.iter().map(|k| app.s3.object(&org.bucket, k).expect("object")).collect();
    assert!(stored.contains(&pdf.to_vec()) && stored.contains(&md.to_vec()));
    assert_eq!(crate::count(&app.db, "SELECT count(*) AS n FROM dokko.object_journal").await, 0);
}

#[tokio::test]
async fn re_uploading_a_path_replaces_the_content_and_keeps_the_file_id() {
    let (app, org, repo) = setup().await;
    upload(&org.admin, &repo, &[("notes.txt", b"first")]).await;
    let before = org.admin.get(&format!("/api/v1/repositories/{repo}/items")).await.body["files"]["notes.txt"].clone();
    let res = upload(&org.admin, &repo, &[("notes.txt", b"second version")]).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let after = org.admin.get(&format!("/api/v1/repositories/{repo}/items")).await.body["files"]["notes.txt"].clone();
    assert_eq!(after["file_id"], before["file_id"]);
    assert_eq!(after["version_id"], "v2");
    assert_eq!(after["size"], 14);
    assert_eq!(after["e_tag"], sha(b"second version"));
    let keys = objects(&app, &org);
    assert_eq!(keys.len(), 1, "the old object is deleted: {keys:?}");
    assert_eq!(app.s3.object(&org.bucket, &keys[0]).as_deref(), Some(b"second version".as_slice()));
}

#[tokio::test]
async fn uploads_of_one_new_path_at_once_all_succeed_and_lose_nothing() {
    let (app, org, repo) = setup().await;
    // Eight requests at once, each with a file of its own and the same new shared path.
    let bodies: Vec<(String, Vec<u8>)> =
        (0..8).map(|i| (format!("inbox/own-{i}.txt"), format!("request {i}").into_bytes())).collect();
    let batches: Vec<[(&str, &[u8]); 2]> = bodies
        .iter()
        .map(|(own, bytes)| [(own.as_str(), bytes.as_slice()), ("inbox/shared.txt", bytes.as_slice())])
        .collect();
    let answers = futures_util::future::join_all(batches.iter().map(|batch| upload(&org.admin, &repo, batch))).await;
    for res in &answers {
        assert_eq!(res.status, 200, "{}", res.text);
        assert_eq!(res.body["total_succeeded"], 2, "{}", res.text);
    }
    let tree = org.admin.get(&format!("/api/v1/repositories/{repo}/items")).await;
    let inbox = &tree.body["folders"]["inbox"]["files"];
    for (own, bytes) in &bodies {
        let name = own.trim_start_matches("inbox/");
        assert_eq!(inbox[name]["e_tag"], sha(bytes), "{own} in {inbox}");
    }
    // The shared path was written eight times, one after another: the last content is one of
    // the eight, and the objects it replaced are gone.
    let shared = &inbox["shared.txt"];
    assert_eq!(shared["version_id"], "v8", "{shared}");
    assert!(bodies.iter().any(|(_, bytes)| shared["e_tag"] == sha(bytes)), "{shared}");
    assert_eq!(objects(&app, &org).len(), 9);
}

#[tokio::test]
async fn bad_items_fail_one_by_one_with_codes_and_write_nothing() {
    let (app, org, repo) = setup().await;
    let res = upload(
        &org.admin,
        &repo,
        &[
            ("ok.md", b"fine"),
            ("bad-file.exe", b"MZ"),
            ("/abs.txt", b"x"),
            ("a/../b.txt", b"x"),
            ("a//b.txt", b"x"),
            ("handbook/x.txt", b"x"),
            ("back\\\\slash.txt", b"x"),
            // One backslash as a browser sends it: not an escape, a backslash in the path.
            ("docs\\guide.txt", b"x"),
        ],
    )
    .await;
    assert_eq!(res.status, 207, "{}", res.text);
    assert_eq!(res.body["status"], "partial");
    assert_eq!(res.body["total_succeeded"], 1);
    assert_eq!(res.body["total_failed"], 7);
    let failed = res.body["failed"].as_array().expect("list");
    assert_eq!(failed[0]["identifier"], "bad-file.exe");
    assert_eq!(failed[0]["display_name"], "bad-file.exe");
    assert_eq!(failed[0]["code"], "INVALID_TYPE");
    assert!(failed[0]["message"].as_str().unwrap_or_default().contains("Unsupported file type"));
    assert!(failed[1..].iter().all(|f| f["code"] == "INVALID_PATH"), "{failed:?}");
    assert_eq!(objects(&app, &org).len(), 1);

    let all_bad = upload(&org.admin, &repo, &[("x.exe", b"MZ"), ("y.bin", b"0"), ("docs/README", b"r")]).await;
    assert_eq!(all_bad.status, 500, "{}", all_bad.text);
    assert_eq!(all_bad.body["status"], "failure");
    assert_eq!(all_bad.body["total_succeeded"], 0);
    let message = all_bad.body["failed"][2]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("Unsupported file type: README has no extension; supported: txt"), "{message}");

    // A file where a folder is, and a folder where a file is.
    upload(&org.admin, &repo, &[("guides.md/a.md", b"a")]).await;
    let clash = upload(
        &org.admin,
        &repo,
        &[("guides.md", b"a file named like the folder"), ("ok.md/inner.md", b"under a file")],
    )
    .await;
    assert_eq!(clash.status, 500, "{}", clash.text);
    assert!(
        clash.body["failed"].as_array().expect("list").iter().all(|f| f["code"] == "PATH_CONFLICT"),
        "{}",
        clash.text
    );
    assert_eq!(objects(&app, &org).len(), 2, "refused uploads leave no object");
    assert_eq!(crate::count(&app.db, "SELECT count(*) AS n FROM dokko.object_journal").await, 0);
}

#[tokio::test]
async fn malformed_requests_are_400_and_leave_nothing_behind() {
    let (app, org, repo) = setup().await;
    let path = format!("/api/v1/repositories/{repo}/items");
    let res = multipart(
        &org.admin,
        reqwest::Method::POST,
        &path,
        &[Part::File("files", "kept.md", b"would be written"), Part::Field("folders", "[not json")],
    )
    .await;
    assert_eq!(res.status, 400, "{}", res.text);
    assert!(res.error().contains("folders must be a JSON array"), "{}", res.text);
    assert!(objects(&app, &org).is_empty(), "the file uploaded before the bad field is removed");
    assert_eq!(crate::count(&app.db, "SELECT count(*) AS n FROM dokko.files").await, 0);

    let empty = multipart(&org.admin, reqwest::Method::POST, &path, &[]).await;
    assert_eq!(empty.status, 400, "{}", empty.text);
    let not_multipart = org.admin.post_json(&path, &json!({"files": []})).await;
    assert_eq!(not_multipart.status, 400, "{}", not_multipart.text);
    let bad_folder =
        multipart(&org.admin, reqwest::Method::POST, &path, &[Part::Field("folders", r#"["ok", "../up"]"#)]).await;
    assert_eq!(bad_folder.status, 207, "{}", bad_folder.text);
    assert_eq!(bad_folder.body["failed"][0]["code"], "INVALID_PATH");
    assert_eq!(org.admin.get("/api/v1/repositories/550e8400-e29b-41d4-a716-446655440000/items").await.status, 404);
}

#[tokio::test]
async fn size_limits_fail_the_file_not_the_request() {
    let app = TestApp::spawn_with(|env| env.with("MAX_FILE_BYTES", "1000")).await;
    let org = app.org("acme").await;
    let repo = create_repository(&org.admin, org.source_id, "handbook", &[]).await;
    let repo = str_of(&repo, "id");
    let big = vec![b'x'; 5000];
    let res = upload(&org.admin, repo, &[("big.txt", &big), ("small.txt", b"small")]).await;
    assert_eq!(res.status, 207, "{}", res.text);
    assert_eq!(res.body["failed"][0]["code"], "FILE_TOO_LARGE");
    assert_eq!(res.body["succeeded"][0]["identifier"], "small.txt");
    assert_eq!(objects(&app, &org).len(), 1, "the refused file leaves no object");
    assert_eq!(crate::count(&app.db, "SELECT count(*) AS n FROM dokko.object_journal").await, 0);
}

#[tokio::test]
async fn a_storage_failure_fails_the_file_and_the_database_agrees_with_the_bucket() {
    let (app, org, repo) = setup().await;
    app.s3.fail(FailMode::Writes);
    let res = upload(&org.admin, &repo, &[("a.md", b"a"), ("b.md", b"b")]).await;
    assert_eq!(res.status, 500, "{}", res.text);
    assert!(res.body["failed"].as_array().expect("list").iter().all(|f| f["code"] == "STORAGE_ERROR"), "{}", res.text);
    app.s3.fail(FailMode::Off);
    assert_eq!(crate::count(&app.db, "SELECT count(*) AS n FROM dokko.files").await, 0);
    assert!(objects(&app, &org).is_empty());
    // Whatever could not be cleaned up at once is listed for the sweeper, never forgotten.
    let pool = app.pool();
    let storage = dokko_api::storage::Storage::new(&app.settings.s3).expect("storage");
    dokko_api::files::journal::sweep(&pool, &storage, std::time::Duration::ZERO).await.expect("sweep");
    assert_eq!(crate::count(&app.db, "SELECT count(*) AS n FROM dokko.object_journal").await, 0);
    pool.close();
}

#[tokio::test]
async fn files_and_folders_are_deleted_with_their_objects() {
    let (app, org, repo) = setup().await;
    upload(&org.admin, &repo, &[("keep.md", b"k"), ("old.md", b"o"), ("temp/a.md", b"a"), ("temp/deep/b.md", b"b")])
        .await;
    let path = format!("/api/v1/repositories/{repo}/items");
    let body = json!({"items": ["old.md", {"path": "temp", "type": "folder"}, "missing.md"]});
    let res = org.admin.send(org.admin.request(reqwest::Method::DELETE, &path).json(&body)).await;
    assert_eq!(res.status, 207, "{}", res.text);
    assert_eq!(res.body["total_succeeded"], 2);
    assert_eq!(res.body["failed"][0]["identifier"], "missing.md");
    assert_eq!(res.body["failed"][0]["code"], "NOT_FOUND");
    let tree = org.admin.get(&path).await;
    assert_eq!(
        tree.body["files"].as_object().map(|f| f.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["keep.md".to_owned()])
    );
    assert_eq!(tree.body["folders"], json!({}));
    assert_eq!(objects(&app, &org).len(), 1);

    let bad = org.admin.send(org.admin.request(reqwest::Method::DELETE, &path).json(&json!({"items": "old.md"}))).await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    upload(&org.admin, &repo, &[("docs/a.md", b"a")]).await;
    let folder =
        org.admin.send(org.admin.request(reqwest::Method::DELETE, &path).json(&json!({"items": ["docs"]}))).await;
    assert_eq!(folder.status, 500, "{}", folder.text);
    assert_eq!(
        folder.body["failed"][0]["message"],
        r#"docs is a folder, not a file: delete it as {"path": "docs", "type": "folder"}"#
    );
    let bad = org.admin.send(org.admin.request(reqwest::Method::DELETE, &path).json(&json!({"items": [5]}))).await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert_eq!(bad.error(), "invalid JSON body at items[0]: the value has none of the accepted forms");
}

#[tokio::test]
async fn content_is_served_by_presigned_url_or_streamed() {
    let (app, org, repo) = setup().await;
    let bytes = b"# Title\n\nsome markdown".as_slice();
    upload(&org.admin, &repo, &[("docs/report.md", bytes)]).await;
    let path = format!("/api/v1/repositories/{repo}/items/content");

    let res = org.admin.post_json(&path, &json!({"path": "docs/report.md", "as_attachment": true})).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let url = str_of(&res.body, "url");
    assert!(url.starts_with(&app.s3.endpoint()), "{url}");
    let fetched = reqwest::get(url).await.expect("download");
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.bytes().await.expect("bytes").as_ref(), bytes);

    let direct = org
        .admin
        .request(reqwest::Method::POST, &path)
        .json(&json!({"path": "docs/report.md", "as_attachment": false, "direct": true}))
        .send()
        .await
        .expect("direct");
    assert_eq!(direct.status(), 200);
    let header = |name: &str| direct.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(header("content-type"), "text/markdown; charset=utf-8");
    assert!(
        header("content-disposition").starts_with("inline; filename=\"report.md\""),
        "{}",
        header("content-disposition")
    );
    assert_eq!(header("content-length"), bytes.len().to_string());
    assert_eq!(direct.bytes().await.expect("bytes").as_ref(), bytes);

    let missing = org.admin.post_json(&path, &json!({"path": "docs/none.md"})).await;
    assert_eq!(missing.status, 404, "{}", missing.text);
    let bad = org.admin.post_json(&path, &json!({"path": "/docs/report.md"})).await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    let malformed = org.admin.post_json(&path, &json!({"direct": true})).await;
    assert_eq!(malformed.status, 422, "{}", malformed.text);
}

#[tokio::test]
async fn deleting_the_repository_deletes_its_objects() {
    let (app, org, repo) = setup().await;
    upload(&org.admin, &repo, &[("a.md", b"a"), ("b/c.md", b"c")]).await;
    assert_eq!(objects(&app, &org).len(), 2);
    assert_eq!(org.admin.delete(&format!("/api/v1/repositories/{repo}")).await.status, 204);
    assert!(objects(&app, &org).is_empty());
    assert_eq!(crate::count(&app.db, "SELECT count(*) AS n FROM dokko.files").await, 0);
}

#[tokio::test]
async fn the_folder_structure_shows_every_repository_of_the_source() {
    let (_app, org, repo) = setup().await;
    let other = create_repository(&org.admin, org.source_id, "engineering", &[]).await;
    upload(&org.admin, &repo, &[("docs/guide.pdf", b"%PDF")]).await;
    upload(&org.admin, str_of(&other, "id"), &[("readme.md", b"hi")]).await;
    let res = org.admin.get(&format!("/api/v1/document-sources/{}/folder-structure", org.source_id)).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let handbook = &res.body["folders"]["handbook"];
    assert_eq!(handbook["repository"], json!({"id": repo, "name": "handbook"}));
    let guide = &handbook["folders"]["docs"]["files"]["guide.pdf"];
    assert_eq!(guide["key"], "docs/guide.pdf");
    assert_eq!(guide["filename"], "guide.pdf");
    assert_eq!(guide["size"], 4);
    assert_eq!(guide["bucket_name"], org.bucket.as_str());
    assert!(crate::is_recent_rfc3339(&guide["created_at"]) && crate::is_recent_rfc3339(&guide["updated_at"]));
    assert!(res.body["folders"]["engineering"]["files"]["readme.md"].is_object());
    assert_eq!(res.body["files"], json!({}));
    let _: &Value = &res.body["is_locked"];
}

async fn tree(org: &Org, repo: &str) -> Value {
    org.admin.get(&format!("/api/v1/repositories/{repo}/items")).await.body
}

#[tokio::test]
async fn files_and_folders_move_and_rename_then_contents_are_replaced() {
    let (app, org, repo) = setup().await;
    upload(
        &org.admin,
        &repo,
        &[("docs/old-name.pdf", b"%PDF old"), ("docs/report.md", b"v1"), ("temp/a.md", b"a"), ("temp/deep/b.md", b"b")],
    )
    .await;
    let before = tree(&org, &repo).await;
    let old_id = before["folders"]["docs"]["files"]["old-name.pdf"]["file_id"].clone();
    let path = format!("/api/v1/repositories/{repo}/items");
    let ops = json!({"items": [
        {"path": "docs/old-name.pdf", "type": "file", "new_path": "docs/new-name.pdf"},
        {"path": "temp", "type": "folder", "new_path": "archive/2024"},
        {"path": "docs/report.md", "type": "file"}
    ]})
    .to_string();
    let res = multipart(
        &org.admin,
        reqwest::Method::PATCH,
        &path,
        &[Part::Field("operations", &ops), Part::File("files", "docs/report.md", b"v2 content")],
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["total_succeeded"], 3);
    let after = tree(&org, &repo).await;
    let docs = &after["folders"]["docs"]["files"];
    assert!(docs.get("old-name.pdf").is_none());
    assert_eq!(docs["new-name.pdf"]["file_id"], old_id, "a rename keeps the file");
    assert_eq!(docs["new-name.pdf"]["key"], "docs/new-name.pdf");
    assert_eq!(docs["report.md"]["version_id"], "v2");
    assert_eq!(docs["report.md"]["e_tag"], sha(b"v2 content"));
    assert!(after["folders"].get("temp").is_none());
    assert_eq!(
        after["folders"]["archive"]["folders"]["2024"]["folders"]["deep"]["files"]["b.md"]["key"],
        "archive/2024/deep/b.md"
    );
    assert_eq!(objects(&app, &org).len(), 4, "moves copy nothing; the replaced content's old object is gone");
    let moved = &res.body["result"]["folders"]["archive"]["folders"]["2024"];
    assert_eq!(moved["folders"]["deep"]["files"]["b.md"]["key"], "archive/2024/deep/b.md", "{}", res.body["result"]);

    // An empty folder moves too, and the answer shows it where it went.
    let created = multipart(&org.admin, reqwest::Method::POST, &path, &[Part::Field("folders", r#"["drafts"]"#)]).await;
    assert_eq!(created.status, 200, "{}", created.text);
    let ops = json!({"items": [{"path": "drafts", "type": "folder", "new_path": "old/drafts"}]}).to_string();
    let res = multipart(&org.admin, reqwest::Method::PATCH, &path, &[Part::Field("operations", &ops)]).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(res.body["result"]["folders"]["old"]["folders"]["drafts"].is_object(), "{}", res.body["result"]);
    assert!(tree(&org, &repo).await["folders"]["old"]["folders"]["drafts"].is_object());
}

#[tokio::test]
async fn moves_onto_existing_paths_and_bad_operations_fail_item_by_item() {
    let (app, org, repo) = setup().await;
    upload(&org.admin, &repo, &[("a.md", b"a"), ("b.md", b"b"), ("dir/x.md", b"x")]).await;
    let path = format!("/api/v1/repositories/{repo}/items");
    let ops = json!({"items": [
        {"path": "a.md", "type": "file", "new_path": "b.md"},
        {"path": "dir", "type": "folder", "new_path": "dir/inside"},
        {"path": "missing.md", "type": "file", "new_path": "m.md"},
        {"path": "a.md", "type": "file", "new_path": "/abs.md"},
        {"path": "b.md", "type": "file"}
    ]})
    .to_string();
    let res = multipart(
        &org.admin,
        reqwest::Method::PATCH,
        &path,
        &[Part::Field("operations", &ops), Part::File("files", "stray.md", b"s")],
    )
    .await;
    assert_eq!(res.status, 500, "{}", res.text);
    let codes: Vec<&str> =
        res.body["failed"].as_array().expect("list").iter().map(|f| f["code"].as_str().unwrap_or_default()).collect();
    assert_eq!(codes, ["PATH_CONFLICT", "INVALID_PATH", "NOT_FOUND", "INVALID_PATH", "MISSING_FILE", "NO_OPERATION"]);
    let after = tree(&org, &repo).await;
    assert_eq!(after["files"]["a.md"]["e_tag"], sha(b"a"), "nothing lost");
    assert_eq!(after["files"]["b.md"]["e_tag"], sha(b"b"));
    assert_eq!(objects(&app, &org).len(), 3, "the stray file's object is removed");

    let missing = multipart(&org.admin, reqwest::Method::PATCH, &path, &[Part::File("files", "a.md", b"x")]).await;
    assert_eq!(missing.status, 400, "{}", missing.text);
    let malformed =
        multipart(&org.admin, reqwest::Method::PATCH, &path, &[Part::Field("operations", "{items: nope}")]).await;
    assert_eq!(malformed.status, 400, "{}", malformed.text);
    assert!(malformed.error().contains("operations must be JSON"), "{}", malformed.text);
    assert_eq!(objects(&app, &org).len(), 3);
}

#[tokio::test]
async fn another_tenant_reaches_none_of_the_items() {
    let (_app, org, repo) = setup().await;
    upload(&org.admin, &repo, &[("a.md", b"a")]).await;
    let app2 = &_app;
    let other = app2.org("globex").await;
    let path = format!("/api/v1/repositories/{repo}/items");
    assert_eq!(other.admin.get(&path).await.status, 404);
    assert_eq!(upload(&other.admin, &repo, &[("x.md", b"x")]).await.status, 404);
    let ops = json!({"items": [{"path": "a.md", "new_path": "b.md"}]}).to_string();
    assert_eq!(
        multipart(&other.admin, reqwest::Method::PATCH, &path, &[Part::Field("operations", &ops)]).await.status,
        404
    );
    let del =
        other.admin.send(other.admin.request(reqwest::Method::DELETE, &path).json(&json!({"items": ["a.md"]}))).await;
    assert_eq!(del.status, 404);
    assert_eq!(other.admin.post_json(&format!("{path}/content"), &json!({"path": "a.md"})).await.status, 404);
    assert!(tree(&org, &repo).await["files"]["a.md"].is_object());
}

#[tokio::test]
async fn presigned_urls_stop_working_after_their_lifetime() {
    let app = TestApp::spawn_with(|env| env.with("PRESIGN_TTL_SECS", "1")).await;
    let org = app.org("acme").await;
    let repo = create_repository(&org.admin, org.source_id, "handbook", &[]).await;
    let repo = str_of(&repo, "id");
    upload(&org.admin, repo, &[("a.md", b"a")]).await;
    let res =
        org.admin.post_json(&format!("/api/v1/repositories/{repo}/items/content"), &json!({"path": "a.md"})).await;
    let url = str_of(&res.body, "url").to_owned();
    assert_eq!(reqwest::get(&url).await.expect("get").status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(reqwest::get(&url).await.expect("get").status(), 403);
}

/// Peak resident memory (VmHWM) of process `pid`, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The service binary as a process of its own on the test's database and S3 server, so its
/// memory is measured alone.
struct ServiceProcess {
    child: std::process::Child,
    url: String,
}

impl ServiceProcess {
    async fn start(app: &TestApp) -> ServiceProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_dokko-api"));
        command.env_clear().env("RUST_LOG", "warn").env("LISTEN_ADDR", format!("127.0.0.1:{port}"));
        for (name, value) in crate::test_env(&app.db.url, &app.s3).vars() {
            command.env(name, value);
        }
        let child = command.stdout(std::process::Stdio::null()).spawn().expect("dokko-api starts");
        // Killed and reaped on drop, whatever happens next.
        let service = ServiceProcess { child, url: format!("http://127.0.0.1:{port}") };
        for _ in 0..200 {
            if reqwest::get(format!("{}/readyz", service.url)).await.is_ok_and(|r| r.status() == 200) {
                return service;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("dokko-api did not become ready");
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_large_file_streams_through_with_bounded_memory() {
    let (app, org, repo) = setup().await;
    let service = ServiceProcess::start(&app).await;
    let client =
        testkit::Client::new(service.url.clone()).with_header("Authorization", &format!("Bearer {}", org.admin_token));
    const SIZE: usize = 256 << 20;
    const CHUNK: usize = 1 << 20;
    let boundary = "----large-file-boundary";
    let head = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.txt\"\r\n\r\n");
    let tail = format!("\r\n--{boundary}--\r\n");
    // The body is generated as it is sent: the client never holds the file either.
    let chunks = futures_util::stream::iter(
        std::iter::once(bytes::Bytes::from(head))
            .chain((0..SIZE / CHUNK).map(|i| bytes::Bytes::from(vec![b'a' + (i % 26) as u8; CHUNK])))
            .chain(std::iter::once(bytes::Bytes::from(tail))),
    )
    .map(Ok::<_, std::io::Error>);
    let res = client
        .request(reqwest::Method::POST, &format!("/api/v1/repositories/{repo}/items"))
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let peak = peak_rss(service.child.id());
    assert!(peak < 128 << 20, "the service peaked at {} MiB for a {} MiB upload", peak >> 20, SIZE >> 20);
    let item = &tree(&org, &repo).await["files"]["big.txt"];
    assert_eq!(item["size"], SIZE);
    assert_eq!(objects(&app, &org).len(), 1);

    // And back out, streamed.
    let mut download = client
        .request(reqwest::Method::POST, &format!("/api/v1/repositories/{repo}/items/content"))
        .json(&json!({"path": "big.txt", "direct": true}))
        .send()
        .await
        .expect("download");
    assert_eq!(download.status(), 200);
    let mut received = 0usize;
    let mut hasher = Sha256::new();
    while let Some(chunk) = download.chunk().await.expect("chunk") {
        received += chunk.len();
        hasher.update(&chunk);
    }
    assert_eq!(received, SIZE);
    assert_eq!(hex::encode(hasher.finalize()), item["e_tag"].as_str().unwrap_or_default());
    let peak = peak_rss(service.child.id());
    assert!(peak < 128 << 20, "the service peaked at {} MiB after a {} MiB download", peak >> 20, SIZE >> 20);
}

#[tokio::test]
async fn a_request_over_the_upload_limit_fails_the_rest_and_keeps_what_fit() {
    let app = TestApp::spawn_with(|env| env.with("MAX_UPLOAD_BYTES", "3000")).await;
    let org = app.org("acme").await;
    let repo = create_repository(&org.admin, org.source_id, "handbook", &[]).await;
    let repo = str_of(&repo, "id");
    let kib = vec![b'k'; 1024];
    let res = upload(&org.admin, repo, &[("a.txt", &kib), ("b.txt", &kib), ("c.txt", &kib), ("d.txt", &kib)]).await;
    assert_eq!(res.status, 207, "{}", res.text);
    assert_eq!(res.body["total_succeeded"], 2);
    let codes: Vec<&str> =
        res.body["failed"].as_array().expect("list").iter().map(|f| f["code"].as_str().unwrap_or_default()).collect();
    assert_eq!(codes, ["REQUEST_TOO_LARGE", "REQUEST_TOO_LARGE"]);
    assert_eq!(objects(&app, &org).len(), 2);
    assert_eq!(crate::count(&app.db, "SELECT count(*) AS n FROM dokko.object_journal").await, 0);
}

#[tokio::test]
async fn storage_failing_in_the_middle_of_a_multipart_upload_leaves_no_trace() {
    let (app, org, repo) = setup().await;
    upload(&org.admin, &repo, &[("keep.md", b"kept")]).await;
    let big = vec![b'z'; 20 << 20];
    // A few requests in (initiate, first part…), every S3 request fails, cleanup included.
    app.s3.fail(FailMode::AfterRequests(2));
    let res = upload(&org.admin, &repo, &[("big.txt", &big)]).await;
    assert_eq!(res.status, 500, "{}", res.text);
    assert_eq!(res.body["failed"][0]["code"], "STORAGE_ERROR");
    app.s3.fail(FailMode::Off);
    assert_eq!(crate::count(&app.db, "SELECT count(*) AS n FROM dokko.files").await, 1, "no row without its object");
    // The object the failed upload may have left is listed, never forgotten; the sweeper removes it.
    let pool = app.pool();
    let storage = dokko_api::storage::Storage::new(&app.settings.s3).expect("storage");
    dokko_api::files::journal::sweep(&pool, &storage, std::time::Duration::ZERO).await.expect("sweep");
    pool.close();
    assert_eq!(crate::count(&app.db, "SELECT count(*) AS n FROM dokko.object_journal").await, 0);
    let keys = objects(&app, &org);
    assert_eq!(keys.len(), 1, "only the kept file's object: {keys:?}");
    assert_eq!(app.s3.object(&org.bucket, &keys[0]).as_deref(), Some(b"kept".as_slice()));
    assert_eq!(tree(&org, &repo).await["files"]["keep.md"]["e_tag"], sha(b"kept"));
}

/// The keys a column lists, comma-joined by the SQL (`… AS t`).
async fn keys_of(app: &TestApp, sql: &str) -> Vec<String> {
    let text = app.db.text(sql).await;
    text.split(',').filter(|k| !k.is_empty()).map(str::to_owned).collect()
}

#[tokio::test]
async fn storage_failing_partway_through_a_batch_leaves_every_object_recorded_or_journalled() {
    let (app, org, repo) = setup().await;
    let files: Vec<(String, Vec<u8>)> =
        (0..24).map(|i| (format!("batch/f{i:02}.md"), format!("file {i}").into_bytes())).collect();
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (p.as_str(), b.as_slice())).collect();
    // Ten PUTs are stored, then storage fails (the cleanup's deletes included), with PUTs in flight.
    app.s3.fail(FailMode::AfterRequests(10));
    let res = upload(&org.admin, &repo, &refs).await;
    app.s3.fail(FailMode::Off);
    assert_eq!(res.status, 207, "{}", res.text);
    let failed = res.body["failed"].as_array().expect("list");
    let succeeded = res.body["succeeded"].as_array().expect("list");
    assert!(!failed.is_empty() && !succeeded.is_empty(), "{}", res.text);
    assert_eq!(failed.len() + succeeded.len(), files.len(), "{}", res.text);
    assert!(failed.iter().all(|f| f["code"] == "STORAGE_ERROR"), "{}", res.text);

    // Every row has its object, with its bytes; the rows are the files reported stored.
    let rows = keys_of(
        &app,
        "SELECT coalesce(string_agg(path || '=' || object_key, ',' ORDER BY path), '') AS t FROM dokko.files",
    )
    .await;
    let mut stored: Vec<&str> = succeeded.iter().map(|s| s["identifier"].as_str().unwrap_or_default()).collect();
    stored.sort_unstable();
    let paths: Vec<&str> = rows.iter().map(|r| r.split_once('=').map_or("", |(p, _)| p)).collect();
    assert_eq!(paths, stored, "no row without its file reported stored, none missing");
    for row in &rows {
        let (path, key) = row.split_once('=').expect("path=key");
        let expected = &files.iter().find(|(p, _)| p == path).expect("an uploaded path").1;
        assert_eq!(app.s3.object(&org.bucket, key).as_ref(), Some(expected), "the object of {path}");
    }
    // Every object in the bucket is a row's or listed in the journal: none is unaccounted for.
    let journalled =
        keys_of(&app, "SELECT coalesce(string_agg(object_key, ','), '') AS t FROM dokko.object_journal").await;
    let row_keys: Vec<&str> = rows.iter().filter_map(|r| r.split_once('=').map(|(_, k)| k)).collect();
    for key in objects(&app, &org) {
        assert!(
            row_keys.contains(&key.as_str()) || journalled.contains(&key),
            "{key} is neither a row's nor journalled"
        );
    }
    // The sweeper then leaves exactly the rows' objects.
    let pool = app.pool();
    let storage = dokko_api::storage::Storage::new(&app.settings.s3).expect("storage");
    dokko_api::files::journal::sweep(&pool, &storage, std::time::Duration::ZERO).await.expect("sweep");
    pool.close();
    assert_eq!(crate::count(&app.db, "SELECT count(*) AS n FROM dokko.object_journal").await, 0);
    let mut left = objects(&app, &org);
    left.sort();
    let mut expected: Vec<String> = row_keys.iter().map(|k| (*k).to_owned()).collect();
    expected.sort();
    assert_eq!(left, expected);
}

#[tokio::test]
async fn non_ascii_names_arrive_through_either_filename_form() {
    let (_app, org, repo) = setup().await;
    let boundary = "----utf8-boundary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename*=UTF-8''r%C3%A9sum%C3%A9s/%C3%BCbersicht.md\r\n\r\nhallo\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"notes/día.txt\"\r\n\r\nhola\r\n--{boundary}--\r\n"
    );
    let res = org
        .admin
        .send_raw(
            reqwest::Method::POST,
            &format!("/api/v1/repositories/{repo}/items"),
            &format!("multipart/form-data; boundary={boundary}"),
            body,
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let tree = tree(&org, &repo).await;
    assert_eq!(tree["folders"]["résumés"]["files"]["übersicht.md"]["key"], "résumés/übersicht.md");
    assert_eq!(tree["folders"]["notes"]["files"]["día.txt"]["size"], 4);
}

#[tokio::test]
async fn a_client_gone_in_the_middle_of_an_upload_leaves_no_trace() {
    let (app, org, repo) = setup().await;
    upload(&org.admin, &repo, &[("keep.md", b"kept")]).await;
    let boundary = "----broken-boundary";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"small.md\"\r\n\r\nsmall\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.txt\"\r\n\r\n"
    );
    // Past two parts of the multipart upload, then the body breaks off.
    let chunks = futures_util::stream::iter(
        std::iter::once(Ok(bytes::Bytes::from(head)))
            .chain((0..20).map(|_| Ok(bytes::Bytes::from(vec![b'x'; 1 << 20]))))
            .chain(std::iter::once(Err(std::io::Error::other("the client went away")))),
    );
    let sent = org
        .admin
        .request(reqwest::Method::POST, &format!("/api/v1/repositories/{repo}/items"))
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await;
    assert!(sent.is_err(), "the request cannot have succeeded: {sent:?}");
    // The service finishes the request on its own: wait until no upload is journalled any more.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while crate::count(&app.db, "SELECT count(*) AS n FROM dokko.object_journal").await > 0 {
        assert!(std::time::Instant::now() < deadline, "the journal still lists uploads of the broken request");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Nothing of the broken request was recorded, and nothing of it is left in the bucket.
    assert_eq!(crate::count(&app.db, "SELECT count(*) AS n FROM dokko.files").await, 1, "no row without its object");
    let keys = objects(&app, &org);
    assert_eq!(keys.len(), 1, "only the kept file's object: {keys:?}");
    assert_eq!(app.s3.object(&org.bucket, &keys[0]).as_deref(), Some(b"kept".as_slice()));
}

#[tokio::test]
async fn a_batch_with_files_in_each_others_way_records_the_first_of_each() {
    let (_app, org, repo) = setup().await;
    upload(&org.admin, &repo, &[("stored.md", b"s"), ("dir.md/inside.md", b"i")]).await;
    let res = upload(
        &org.admin,
        &repo,
        &[
            ("a.md", b"1"),
            ("a.md/b.md", b"2"),
            ("c.md/d.md", b"3"),
            ("c.md", b"4"),
            ("stored.md/x.md", b"5"),
            ("dir.md", b"6"),
            ("stored.md", b"7"),
        ],
    )
    .await;
    assert_eq!(res.status, 207, "{}", res.text);
    let failed: Vec<(&str, &str)> = res.body["failed"]
        .as_array()
        .expect("list")
        .iter()
        .map(|f| (f["identifier"].as_str().unwrap_or_default(), f["code"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(
        failed,
        [
            ("a.md/b.md", "PATH_CONFLICT"),
            ("c.md", "PATH_CONFLICT"),
            ("stored.md/x.md", "PATH_CONFLICT"),
            ("dir.md", "PATH_CONFLICT")
        ]
    );
    let tree = tree(&org, &repo).await;
    assert_eq!(tree["files"]["a.md"]["e_tag"], sha(b"1"));
    assert_eq!(tree["folders"]["c.md"]["files"]["d.md"]["e_tag"], sha(b"3"));
    assert_eq!(tree["files"]["stored.md"]["e_tag"], sha(b"7"));
    assert_eq!(tree["files"]["stored.md"]["version_id"], "v2");
}
