//! The in-process S3 server, driven through rust-s3 the way the services use it: path-style
//! addressing, a custom region whose endpoint is the server, static credentials.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use s3::creds::Credentials;
use s3::error::S3Error;
use s3::{Bucket, BucketConfiguration, Region};
use testkit::S3Server;
use testkit::s3::{FailMode, S3Options};

fn region(server: &S3Server) -> Region {
    Region::Custom { region: server.region().to_owned(), endpoint: server.endpoint() }
}

fn credentials(server: &S3Server) -> Credentials {
    Credentials::new(Some(server.access_key()), Some(server.secret_key()), None, None, None)
        .expect("static credentials")
}

/// A handle on a bucket, the way a service builds one from its settings.
fn bucket(server: &S3Server, name: &str) -> Box<Bucket> {
    Bucket::new(name, region(server), credentials(server)).expect("bucket handle").with_path_style()
}

async fn created(server: &S3Server, name: &str) -> Box<Bucket> {
    let response =
        Bucket::create_with_path_style(name, region(server), credentials(server), BucketConfiguration::default())
            .await
            .expect("create bucket");
    assert_eq!(response.response_code, 200);
    response.bucket
}

/// The HTTP status of a failed rust-s3 call (`fail-on-err` turns every non-2xx into
/// `HttpFailWithBody`).
fn status(error: &S3Error) -> Option<u16> {
    match error {
        S3Error::HttpFailWithBody(status, _) => Some(*status),
        _ => None,
    }
}

/// Deterministic, non-repeating-looking bytes.
fn payload(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_u32;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0]
        })
        .collect()
}

#[tokio::test]
async fn bucket_creation_is_idempotent_for_its_owner() {
    let server = S3Server::start().expect("s3 server");
    assert!(!server.bucket_exists("docs"));

    created(&server, "docs").await;
    assert!(server.bucket_exists("docs"));
    assert!(!server.bucket_exists("other"));

    // Again: rust-s3 reports the 409 as an error; "owned by you" is what services treat as done.
    let again =
        Bucket::create_with_path_style("docs", region(&server), credentials(&server), BucketConfiguration::default())
            .await;
    let Err(again) = again else { panic!("a second create succeeded") };
    match &again {
        S3Error::HttpFailWithBody(409, body) => {
            assert!(body.contains("<Code>BucketAlreadyOwnedByYou</Code>"), "{body}")
        }
        other => panic!("unexpected: {other:?}"),
    }
    assert!(server.bucket_exists("docs"));
    assert!(bucket(&server, "docs").exists().await.expect("list buckets"));
}

#[tokio::test]
async fn objects_round_trip_and_match_the_storage() {
    let server = S3Server::start().expect("s3 server");
    let docs = created(&server, "docs").await;

    let put = docs.put_object("/a/b/c.txt", b"nested").await.expect("put nested");
    assert_eq!(put.status_code(), 200);
    docs.put_object_with_content_type("top.json", b"{\"k\":1}", "application/json").await.expect("put top");
    docs.put_object("a/d.txt", b"second").await.expect("put a/d");
    docs.put_object("b/e.txt", b"other prefix").await.expect("put b/e");

    let got = docs.get_object("a/b/c.txt").await.expect("get");
    assert_eq!(got.status_code(), 200);
    assert_eq!(got.as_slice(), b"nested");

    let (head, code) = docs.head_object("top.json").await.expect("head");
    assert_eq!(code, 200);
    assert_eq!(head.content_length, Some(7));
    assert_eq!(head.content_type.as_deref(), Some("application/json"));

    let pages = docs.list("a/".to_owned(), None).await.expect("list a/");
    let mut listed: Vec<String> = pages.iter().flat_map(|p| p.contents.iter().map(|o| o.key.clone())).collect();
    listed.sort();
    assert_eq!(listed, ["a/b/c.txt", "a/d.txt"]);

    let pages = docs.list(String::new(), Some("/".to_owned())).await.expect("list with delimiter");
    let top: Vec<String> = pages.iter().flat_map(|p| p.contents.iter().map(|o| o.key.clone())).collect();
    let mut prefixes: Vec<String> =
        pages.iter().flat_map(|p| p.common_prefixes.iter().flatten().map(|c| c.prefix.clone())).collect();
    prefixes.sort();
    assert_eq!(top, ["top.json"]);
    assert_eq!(prefixes, ["a/", "b/"]);

    assert_eq!(server.keys("docs"), ["a/b/c.txt", "a/d.txt", "b/e.txt", "top.json"]);
    assert_eq!(server.object("docs", "a/b/c.txt").as_deref(), Some(&b"nested"[..]));
    assert_eq!(server.object("docs", "missing"), None);
    assert_eq!(server.object("nope", "a/b/c.txt"), None);
    assert!(server.keys("nope").is_empty());

    let deleted = docs.delete_object("a/d.txt").await.expect("delete");
    assert_eq!(deleted.status_code(), 204);
    assert_eq!(server.keys("docs"), ["a/b/c.txt", "b/e.txt", "top.json"]);
    assert_eq!(server.object("docs", "a/d.txt"), None);

    let missing = docs.get_object("a/d.txt").await.expect_err("deleted object");
    assert_eq!(status(&missing), Some(404), "{missing:?}");
    assert!(matches!(&missing, S3Error::HttpFailWithBody(_, body) if body.contains("NoSuchKey")), "{missing:?}");
    let missing = docs.head_object("a/d.txt").await.expect_err("head of a deleted object");
    assert_eq!(status(&missing), Some(404), "{missing:?}");
    assert!(!docs.object_exists("a/d.txt").await.expect("object_exists"));
    assert!(docs.object_exists("top.json").await.expect("object_exists"));
}

#[tokio::test]
async fn large_objects_stream_up_in_parts_and_stream_back() {
    let server = S3Server::start().expect("s3 server");
    let docs = created(&server, "docs").await;
    let data = payload(12 * 1024 * 1024 + 12_345);

    let before = server.requests();
    let mut reader = std::io::Cursor::new(data.clone());
    let put = docs.put_object_stream(&mut reader, "big/file.bin").await.expect("streaming put");
    assert_eq!(put.status_code(), 200);
    assert_eq!(put.uploaded_bytes(), data.len());
    // initiate, two parts (8 MiB + the rest), complete: a real multipart upload.
    assert_eq!(server.requests() - before, 4);

    assert_eq!(server.keys("docs"), ["big/file.bin"]);
    assert!(server.object("docs", "big/file.bin") == Some(data.clone()), "stored bytes differ");

    let mut out: Vec<u8> = Vec::new();
    let code = docs.get_object_to_writer("big/file.bin", &mut out).await.expect("streaming get");
    assert_eq!(code, 200);
    assert_eq!(out.len(), data.len());
    assert!(out == data, "streamed bytes differ");
}

#[tokio::test]
async fn presigned_gets_work_until_they_expire() {
    let server = S3Server::start().expect("s3 server");
    let docs = created(&server, "docs").await;
    docs.put_object("shared/report.pdf", b"%PDF-1.7 tiny").await.expect("put");
    let http = reqwest::Client::new();

    let url = docs.presign_get("shared/report.pdf", 60, None).await.expect("presign");
    assert!(url.starts_with(&format!("{}/docs/shared/report.pdf?", server.endpoint())), "{url}");
    let response = http.get(&url).send().await.expect("presigned get");
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.expect("body").as_ref(), b"%PDF-1.7 tiny");

    // The signature covers the path: the same query on another key is refused.
    let other = url.replace("report.pdf", "other.pdf");
    assert_eq!(http.get(&other).send().await.expect("tampered").status(), 403);

    let short = docs.presign_get("shared/report.pdf", 1, None).await.expect("presign 1 s");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let response = http.get(&short).send().await.expect("expired get");
    assert_eq!(response.status(), 403);
    let body = response.text().await.expect("error body");
    assert!(body.contains("<Code>AccessDenied</Code>") && body.contains("expired"), "{body}");
}

#[tokio::test]
async fn requests_need_the_right_signature() {
    let server = S3Server::start().expect("s3 server");
    let docs = created(&server, "docs").await;
    docs.put_object("k", b"v").await.expect("put");

    let wrong = Credentials::new(Some(server.access_key()), Some("not-the-secret"), None, None, None).expect("creds");
    let impostor = Bucket::new("docs", region(&server), wrong).expect("bucket").with_path_style();
    let error = impostor.get_object("k").await.expect_err("wrong secret");
    assert_eq!(status(&error), Some(403), "{error:?}");
    assert!(matches!(&error, S3Error::HttpFailWithBody(_, b) if b.contains("SignatureDoesNotMatch")), "{error:?}");
    let error = impostor.put_object("k", b"overwritten").await.expect_err("wrong secret put");
    assert_eq!(status(&error), Some(403), "{error:?}");

    let unknown = Credentials::new(Some("AKIDUNKNOWN"), Some(server.secret_key()), None, None, None).expect("creds");
    let stranger = Bucket::new("docs", region(&server), unknown).expect("bucket").with_path_style();
    let error = stranger.get_object("k").await.expect_err("unknown access key");
    assert_eq!(status(&error), Some(403), "{error:?}");

    // Unsigned requests are refused too.
    let unsigned = reqwest::get(format!("{}/docs/k", server.endpoint())).await.expect("unsigned get");
    assert_eq!(unsigned.status(), 403);

    assert_eq!(server.object("docs", "k").as_deref(), Some(&b"v"[..]));
}

#[tokio::test]
async fn failing_writes_store_nothing_while_reads_work() {
    let server = S3Server::start().expect("s3 server");
    let docs = created(&server, "docs").await;
    docs.put_object("kept", b"before").await.expect("put");

    server.fail(FailMode::Writes);
    let error = docs.put_object("new", b"lost").await.expect_err("put while writes fail");
    assert_eq!(status(&error), Some(500), "{error:?}");
    assert!(matches!(&error, S3Error::HttpFailWithBody(_, b) if b.contains("<Code>InternalError</Code>")), "{error:?}");
    let error = docs.put_object("kept", b"overwrite").await.expect_err("overwrite while writes fail");
    assert_eq!(status(&error), Some(500), "{error:?}");
    let error = docs.delete_object("kept").await.expect_err("delete while writes fail");
    assert_eq!(status(&error), Some(500), "{error:?}");

    let error =
        docs.initiate_multipart_upload("big", "application/octet-stream").await.expect_err("POST while writes fail");
    assert_eq!(status(&error), Some(500), "{error:?}");
    let mut reader = std::io::Cursor::new(payload(9 * 1024 * 1024));
    let error = docs.put_object_stream(&mut reader, "big").await.expect_err("multipart while writes fail");
    assert_eq!(status(&error), Some(500), "{error:?}");

    assert_eq!(docs.get_object("kept").await.expect("get still works").as_slice(), b"before");
    assert_eq!(server.keys("docs"), ["kept"]);
    assert_eq!(server.object("docs", "kept").as_deref(), Some(&b"before"[..]));

    server.fail(FailMode::Off);
    docs.put_object("new", b"stored").await.expect("put after recovery");
    assert_eq!(server.keys("docs"), ["kept", "new"]);
}

#[tokio::test]
async fn failing_after_some_requests_and_recovering() {
    let server = S3Server::start().expect("s3 server");
    let docs = created(&server, "docs").await;

    server.fail(FailMode::AfterRequests(2));
    let before = server.requests();
    docs.put_object("one", b"1").await.expect("first allowed request");
    docs.put_object("two", b"2").await.expect("second allowed request");
    let error = docs.put_object("three", b"3").await.expect_err("third request fails");
    assert_eq!(status(&error), Some(500), "{error:?}");
    let error = docs.delete_object("one").await.expect_err("still failing");
    assert_eq!(status(&error), Some(500), "{error:?}");
    assert_eq!(server.requests() - before, 4);
    assert_eq!(server.keys("docs"), ["one", "two"]);

    server.fail(FailMode::All);
    let error = bucket(&server, "docs").list(String::new(), None).await.expect_err("reads fail too");
    assert_eq!(status(&error), Some(500), "{error:?}");

    server.fail(FailMode::Off);
    docs.put_object("three", b"3").await.expect("put after recovery");
    assert_eq!(docs.get_object("one").await.expect("get").as_slice(), b"1");
    assert_eq!(server.keys("docs"), ["one", "three", "two"]);
}

#[tokio::test]
async fn a_multipart_upload_failing_midway_stores_nothing() {
    let server = S3Server::start().expect("s3 server");
    let docs = created(&server, "docs").await;

    // Initiate and one part pass, then the server breaks (the abort fails as well).
    server.fail(FailMode::AfterRequests(2));
    let mut reader = std::io::Cursor::new(payload(17 * 1024 * 1024));
    let error = docs.put_object_stream(&mut reader, "big").await.expect_err("upload breaks midway");
    assert_eq!(status(&error), Some(500), "{error:?}");
    assert!(server.keys("docs").is_empty(), "{:?}", server.keys("docs"));
    assert_eq!(server.object("docs", "big"), None);

    server.fail(FailMode::Off);
    let data = payload(9 * 1024 * 1024);
    let mut reader = std::io::Cursor::new(data.clone());
    docs.put_object_stream(&mut reader, "big").await.expect("upload after recovery");
    assert!(server.object("docs", "big") == Some(data), "stored bytes differ");
}

/// From plain synchronous code, with a runtime made just for the client; then fixed options,
/// data kept across restarts, and the temporary directory of `start` removed on drop.
#[test]
fn usable_without_a_test_runtime_and_kept_data_survives_restarts() {
    let root = std::env::temp_dir().join(format!("testkit-s3-kept-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let options = S3Options {
        root: root.join("nested"),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        access_key: "stack-access".to_owned(),
        secret_key: "stack-secret".to_owned(),
        region: "garage".to_owned(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("client runtime");

    let mut server = S3Server::start_with(options.clone()).expect("s3 server");
    assert_eq!(server.endpoint(), format!("http://127.0.0.1:{port}"));
    assert_eq!((server.access_key(), server.secret_key(), server.region()), ("stack-access", "stack-secret", "garage"));
    runtime.block_on(async {
        let docs = created(&server, "docs").await;
        docs.put_object("kept.txt", b"kept").await.expect("put");
    });
    server.stop();
    assert!(runtime.block_on(bucket(&server, "docs").get_object("kept.txt")).is_err(), "served after stop");
    // Inspection still reads the storage after the server stopped.
    assert_eq!(server.object("docs", "kept.txt").as_deref(), Some(&b"kept"[..]));
    drop(server);

    let server = S3Server::start_with(options).expect("s3 server again");
    assert!(server.bucket_exists("docs"));
    let got = runtime.block_on(bucket(&server, "docs").get_object("kept.txt")).expect("get after restart");
    assert_eq!(got.as_slice(), b"kept");
    drop(server);
    assert!(root.join("nested").is_dir(), "start_with keeps its data");
    std::fs::remove_dir_all(&root).expect("clean up");

    let server = S3Server::start().expect("temporary s3 server");
    let temp = server.root().to_owned();
    assert!(temp.is_dir());
    assert_eq!(server.region(), "us-east-1");
    assert_ne!(server.access_key(), server.secret_key());
    drop(server);
    assert!(!temp.exists(), "the temporary data directory is removed on drop");
}
