//! The git smart-HTTP server, driven by the real `git` CLI.

use std::path::Path;
use std::process::Output;

use testkit::git_server::{GitServer, auth_header, basic_auth};

fn git(server: &GitServer, dir: &Path, args: &[&str]) -> Output {
    server.git_command().current_dir(dir).args(args).output().expect("git runs")
}

fn git_ok(server: &GitServer, dir: &Path, args: &[&str]) -> String {
    let out = git(server, dir, args);
    assert!(out.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn git_err(server: &GitServer, dir: &Path, args: &[&str]) -> String {
    let out = git(server, dir, args);
    assert!(!out.status.success(), "git {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Deterministic pseudo-random bytes (incompressible enough to make a real pack).
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (seed >> 56) as u8
        })
        .collect()
}

#[test]
fn clones_and_fetches_a_public_repo() {
    let server = GitServer::start().expect("git server starts");
    let repo = server.create_repo("octo", "hello").expect("repo");
    let big = noise(3 * 1024 * 1024, 7);
    repo.write("README.md", b"# hello\n").write("src/deep/nested/lib.rs", b"pub fn f() {}\n").write("blob.bin", &big);
    let first = repo.commit("first").expect("commit");
    assert_eq!(first.len(), 40);
    assert_eq!(repo.head(), first);
    assert!(repo.url().ends_with("/octo/hello.git"));

    let dir = server.scratch_dir().expect("dir");
    git_ok(&server, &dir, &["clone", "-q", &repo.url(), "c"]);
    let clone = dir.join("c");
    assert_eq!(std::fs::read(clone.join("README.md")).expect("file"), b"# hello\n");
    assert_eq!(std::fs::read(clone.join("src/deep/nested/lib.rs")).expect("file"), b"pub fn f() {}\n");
    assert_eq!(std::fs::read(clone.join("blob.bin")).expect("file"), big);
    assert_eq!(git_ok(&server, &clone, &["rev-parse", "HEAD"]), first);
    assert_eq!(server.advertisements("octo", "hello"), 1);
    let after_clone = server.fetches("octo", "hello");
    assert!(after_clone >= 1);

    // A new commit, then a fetch sees it.
    repo.write("README.md", b"# hello again\n").remove("src/deep");
    let second = repo.commit("second").expect("commit");
    assert_ne!(second, first);
    git_ok(&server, &clone, &["fetch", "-q", "origin"]);
    assert_eq!(git_ok(&server, &clone, &["rev-parse", "origin/main"]), second);
    git_ok(&server, &clone, &["merge", "-q", "--ff-only", "origin/main"]);
    assert!(!clone.join("src/deep").exists());
    assert_eq!(server.advertisements("octo", "hello"), 2);
    assert!(server.fetches("octo", "hello") > after_clone);

    // Without `.git`, and case-insensitively, like GitHub.
    let url = format!("{}/Octo/Hello", server.url());
    git_ok(&server, &dir, &["clone", "-q", &url, "c2"]);
    assert_eq!(git_ok(&server, &dir.join("c2"), &["rev-parse", "HEAD"]), second);

    // Nothing needed a credential.
    assert!(server.requests().iter().all(|r| !r.had_auth && r.status == 200));
}

#[test]
fn fetch_counts_per_protocol_version() {
    let server = GitServer::start().expect("git server starts");
    let repo = server.create_repo("octo", "counted").expect("repo");
    repo.write("a.txt", b"a").commit("a").expect("commit");
    let dir = server.scratch_dir().expect("dir");

    // Protocol v2 (git's default): a clone is ls-refs + fetch; a fetch finding nothing new is ls-refs.
    git_ok(&server, &dir, &["-c", "protocol.version=2", "clone", "-q", &repo.url(), "v2"]);
    assert_eq!(server.fetches("octo", "counted"), 2);
    git_ok(&server, &dir.join("v2"), &["-c", "protocol.version=2", "fetch", "-q"]);
    assert_eq!(server.fetches("octo", "counted"), 3);
    assert_eq!(server.advertisements("octo", "counted"), 2);

    // Protocol v0: a clone negotiates once; a fetch finding nothing new does not negotiate.
    git_ok(&server, &dir, &["-c", "protocol.version=0", "clone", "-q", &repo.url(), "v0"]);
    assert_eq!(server.fetches("octo", "counted"), 4);
    git_ok(&server, &dir.join("v0"), &["-c", "protocol.version=0", "fetch", "-q"]);
    assert_eq!(server.fetches("octo", "counted"), 4);
    assert_eq!(server.advertisements("octo", "counted"), 4);
}

#[test]
fn fetch_with_many_local_commits_negotiates_in_both_protocols() {
    // Many `have` lines make git gzip its request bodies; http-backend inflates them.
    let server = GitServer::start().expect("git server starts");
    let repo = server.create_repo("octo", "busy").expect("repo");
    repo.write("a.txt", b"a").commit("a").expect("commit");
    let dir = server.scratch_dir().expect("dir");
    for version in ["0", "2"] {
        let name = format!("v{version}");
        let proto = format!("protocol.version={version}");
        git_ok(&server, &dir, &["-c", &proto, "clone", "-q", &repo.url(), &name]);
        let clone = dir.join(&name);
        for i in 0..80 {
            git_ok(&server, &clone, &["commit", "-q", "--allow-empty", "-m", &format!("local {i}")]);
        }
        let new = repo.write(&format!("{name}.txt"), b"x").commit("remote").expect("commit");
        git_ok(&server, &clone, &["-c", &proto, "fetch", "-q", "origin"]);
        assert_eq!(git_ok(&server, &clone, &["rev-parse", "origin/main"]), new);
    }
}

#[test]
fn private_repos_need_an_allowed_token() {
    let server = GitServer::start().expect("git server starts");
    let repo = server.create_repo("octo", "secret").expect("repo");
    repo.write("key.txt", b"s3cr3t").commit("first").expect("commit");
    server.set_private("octo", "secret", true);
    server.allow_token("octo", "secret", "ghp_good");
    let dir = server.scratch_dir().expect("dir");

    // No credential: 401 asking for Basic auth; git cannot prompt, so it fails.
    let err = git_err(&server, &dir, &["clone", "-q", &repo.url(), "none"]);
    assert!(err.contains("terminal prompts disabled") || err.contains("Authentication failed"), "{err}");
    // A wrong token.
    let wrong = format!("http.extraHeader={}", auth_header("ghp_wrong"));
    let err = git_err(&server, &dir, &["-c", &wrong, "clone", "-q", &repo.url(), "wrong"]);
    assert!(err.contains("Authentication failed") || err.contains("terminal prompts disabled"), "{err}");

    // The allowed token, in a header rather than the URL.
    let good = format!("http.extraHeader={}", auth_header("ghp_good"));
    git_ok(&server, &dir, &["-c", &good, "clone", "-q", &repo.url(), "good"]);
    assert_eq!(std::fs::read(dir.join("good/key.txt")).expect("file"), b"s3cr3t");
    assert!(server.fetches("octo", "secret") >= 1);
    let log = server.requests();
    assert!(log.iter().any(|r| r.had_auth && r.status == 200));
    assert!(log.iter().any(|r| !r.had_auth && r.status == 401));
    assert!(!format!("{log:?}").contains("ghp_good"), "the token is never logged");
    // The clone's config does not hold the token either.
    let config = std::fs::read_to_string(dir.join("good/.git/config")).expect("config");
    assert!(!config.contains("ghp_good"));

    // Revoked: refused again.
    server.revoke_token("ghp_good");
    let err = git_err(&server, &dir.join("good"), &["-c", &good, "fetch", "-q"]);
    assert!(err.contains("Authentication failed") || err.contains("terminal prompts disabled"), "{err}");

    // Public again: no token needed.
    server.set_private("octo", "secret", false);
    git_ok(&server, &dir, &["clone", "-q", &repo.url(), "public"]);
}

#[tokio::test]
async fn http_answers() {
    let server = GitServer::start().expect("git server starts");
    let repo = server.create_repo("octo", "secret").expect("repo");
    repo.write("a", b"a").commit("a").expect("commit");
    server.set_private("octo", "secret", true);
    server.allow_token("octo", "secret", "tok");
    let client = reqwest::Client::new();
    let refs = format!("{}/octo/secret.git/info/refs?service=git-upload-pack", server.url());

    let res = client.get(&refs).send().await.expect("answered");
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers().get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Basic realm=\"git\""));
    let res = client.get(&refs).header("authorization", basic_auth("nope")).send().await.expect("answered");
    assert_eq!(res.status(), 401);
    let res = client.get(&refs).header("authorization", basic_auth("tok")).send().await.expect("answered");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/x-git-upload-pack-advertisement")
    );
    let body = res.text().await.expect("body");
    assert!(body.starts_with("001e# service=git-upload-pack\n"), "{body}");
    assert!(body.contains(&repo.head()));

    // A protocol v0 negotiation sent chunked (no Content-Length), as git does with big requests.
    let request = format!("0032want {}\n00000009done\n", repo.head());
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = request.into_bytes().chunks(7).map(|c| Ok(c.to_vec())).collect();
    let res = client
        .post(format!("{}/octo/secret.git/git-upload-pack", server.url()))
        .header("authorization", basic_auth("tok"))
        .header("content-type", "application/x-git-upload-pack-request")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .send()
        .await
        .expect("answered");
    assert_eq!(res.status(), 200);
    let pack = res.bytes().await.expect("body");
    assert!(pack.starts_with(b"0008NAK\n"), "{:?}", String::from_utf8_lossy(&pack[..pack.len().min(100)]));
    assert!(pack.windows(4).any(|w| w == b"PACK"));
    assert_eq!(server.fetches("octo", "secret"), 1);

    // Unknown repository.
    let res = client.get(format!("{}/octo/nope.git/info/refs?service=git-upload-pack", server.url())).send().await;
    assert_eq!(res.expect("answered").status(), 404);
    // Pushes are refused, even with a good token.
    let push = format!("{}/octo/secret.git/info/refs?service=git-receive-pack", server.url());
    let res = client.get(&push).header("authorization", basic_auth("tok")).send().await.expect("answered");
    assert_eq!(res.status(), 403);
    let res = client.post(format!("{}/octo/secret.git/git-receive-pack", server.url())).send().await;
    assert_eq!(res.expect("answered").status(), 403);
    // The dumb protocol is not served.
    let res = client.get(format!("{}/octo/secret.git/info/refs", server.url())).send().await;
    assert_eq!(res.expect("answered").status(), 403);
    let res = client.get(format!("{}/octo/secret.git/HEAD", server.url())).send().await;
    assert_eq!(res.expect("answered").status(), 404);
}

#[test]
fn pushing_over_http_is_refused() {
    let server = GitServer::start().expect("git server starts");
    let repo = server.create_repo("octo", "ro").expect("repo");
    let first = repo.write("a", b"a").commit("a").expect("commit");
    let dir = server.scratch_dir().expect("dir");
    git_ok(&server, &dir, &["clone", "-q", &repo.url(), "c"]);
    let clone = dir.join("c");
    git_ok(&server, &clone, &["commit", "-q", "--allow-empty", "-m", "mine"]);
    git_err(&server, &clone, &["push", "-q", "origin", "HEAD:main"]);
    assert_eq!(repo.head(), first);
}

#[tokio::test]
async fn failing_answers_500() {
    let server = GitServer::start().expect("git server starts");
    let repo = server.create_repo("octo", "flaky").expect("repo");
    repo.write("a", b"a").commit("a").expect("commit");
    let dir = server.scratch_dir().expect("dir");
    server.set_failing(true);
    let err = git_err(&server, &dir, &["clone", "-q", &repo.url(), "c"]);
    assert!(err.contains("500"), "{err}");
    let res = reqwest::get(format!("{}/octo/flaky.git/info/refs?service=git-upload-pack", server.url())).await;
    assert_eq!(res.expect("answered").status(), 500);
    assert_eq!(server.fetches("octo", "flaky"), 0);
    server.set_failing(false);
    git_ok(&server, &dir, &["clone", "-q", &repo.url(), "c"]);
}

#[test]
fn dotted_names_and_default_branch() {
    let server = GitServer::start().expect("git server starts");
    let repo = server.create_repo("some-org", "my.repo").expect("repo");
    assert!(repo.url().ends_with("/some-org/my.repo.git"));
    let on_main = repo.write("a.txt", b"main").commit("on main").expect("commit");
    repo.set_default_branch("trunk").expect("default branch");
    assert_eq!(repo.head(), on_main);
    let on_trunk = repo.write("a.txt", b"trunk").commit("on trunk").expect("commit");
    assert_eq!(repo.head(), on_trunk);

    let dir = server.scratch_dir().expect("dir");
    git_ok(&server, &dir, &["clone", "-q", &repo.url(), "c"]);
    let clone = dir.join("c");
    assert_eq!(git_ok(&server, &clone, &["rev-parse", "--abbrev-ref", "HEAD"]), "trunk");
    assert_eq!(git_ok(&server, &clone, &["rev-parse", "HEAD"]), on_trunk);
    assert_eq!(std::fs::read(clone.join("a.txt")).expect("file"), b"trunk");
    // `main` is still there, unchanged.
    assert_eq!(git_ok(&server, &clone, &["rev-parse", "origin/main"]), on_main);
    // Without the suffix too.
    git_ok(&server, &dir, &["clone", "-q", &format!("{}/some-org/my.repo", server.url()), "c2"]);

    // Commits on another branch leave the default branch alone.
    repo.switch_branch("feature").expect("branch");
    let on_feature = repo.write("b.txt", b"b").commit("feature").expect("commit");
    assert_eq!(repo.head(), on_trunk);
    git_ok(&server, &clone, &["fetch", "-q"]);
    assert_eq!(git_ok(&server, &clone, &["rev-parse", "origin/feature"]), on_feature);

    // A default branch set before any commit.
    let empty = server.create_repo("some-org", "fresh").expect("repo");
    empty.set_default_branch("develop").expect("default branch");
    let c = empty.write("x", b"x").commit("x").expect("commit");
    assert_eq!(empty.head(), c);
    git_ok(&server, &dir, &["clone", "-q", &empty.url(), "c3"]);
    assert_eq!(git_ok(&server, &dir.join("c3"), &["rev-parse", "--abbrev-ref", "HEAD"]), "develop");

    assert!(server.create_repo("some-org", "my.repo").is_err(), "duplicate");
    assert!(server.create_repo("a/b", "x").is_err());
    assert!(server.create_repo("a", "..").is_err());
}

#[test]
fn temp_dir_is_removed_on_drop() {
    let server = GitServer::start().expect("git server starts");
    let repo = server.create_repo("o", "r").expect("repo");
    let root = repo.bare_dir().parent().and_then(Path::parent).and_then(Path::parent).expect("root").to_owned();
    assert!(root.exists());
    drop(server);
    assert!(!root.exists());
}
