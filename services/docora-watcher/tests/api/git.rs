//! git against real repositories served over smart HTTP by the test kit, with token checks.

use std::time::Duration;

use docora_watcher::git::{Git, GitError, Want};
use testkit::GitServer;

fn git_for(server: &GitServer) -> (Git, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("docora-git-test-{}", uuid_like()));
    (Git::new(&server.url(), dir.clone(), Duration::from_secs(30)), dir)
}

fn uuid_like() -> String {
    format!(
        "{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
    )
}

#[tokio::test]
async fn a_public_repository_is_fetched_listed_and_read() {
    let server = GitServer::start().expect("git server");
    let repo = server.create_repo("octo", "hello.world").expect("repo");
    repo.write("README.md", b"# Hello\n")
        .write("src/main.rs", b"fn main() {}\n")
        .write("assets/logo.bin", &[0, 159, 146, 150]);
    let first = repo.commit("first").expect("commit");
    let (git, dir) = git_for(&server);

    let commit = git
        .fetch("repo_aaaaaaaaaaaaaaaaaaaaaaaa", "octo", "hello.world", Want::Branch("main"), None)
        .await
        .expect("fetch");
    assert_eq!(commit, first);
    let files = git.files("repo_aaaaaaaaaaaaaaaaaaaaaaaa", &commit).await.expect("files");
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["README.md", "assets/logo.bin", "src/main.rs"]);
    assert_eq!(files[1].size, 4);
    assert_eq!(git.read("repo_aaaaaaaaaaaaaaaaaaaaaaaa", &files[1].blob).await.expect("read"), [0, 159, 146, 150]);

    repo.remove("src/main.rs").write("README.md", b"# Hello again\n");
    let second = repo.commit("second").expect("commit");
    let commit = git
        .fetch("repo_aaaaaaaaaaaaaaaaaaaaaaaa", "octo", "hello.world", Want::Branch("main"), None)
        .await
        .expect("fetch again");
    assert_eq!(commit, second);
    let files = git.files("repo_aaaaaaaaaaaaaaaaaaaaaaaa", &commit).await.expect("files");
    assert_eq!(files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["README.md", "assets/logo.bin"]);

    git.remove("repo_aaaaaaaaaaaaaaaaaaaaaaaa").await.expect("removed");
    assert!(!git.clone_dir("repo_aaaaaaaaaaaaaaaaaaaaaaaa").exists());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn private_repositories_need_an_allowed_token_which_never_lands_on_disk_or_in_errors() {
    let server = GitServer::start().expect("git server");
    let repo = server.create_repo("octo", "secret").expect("repo");
    repo.write("a.txt", b"a").commit("first").expect("commit");
    server.set_private("octo", "secret", true);
    server.allow_token("octo", "secret", "ghp_allowedtoken123");
    let (git, dir) = git_for(&server);
    let id = "repo_bbbbbbbbbbbbbbbbbbbbbbbb";

    let anonymous = git.fetch(id, "octo", "secret", Want::Branch("main"), None).await.expect_err("needs a token");
    assert!(matches!(anonymous, GitError::Auth(_)), "{anonymous:?}");
    let wrong = git
        .fetch(id, "octo", "secret", Want::Branch("main"), Some("ghp_wrongtoken456"))
        .await
        .expect_err("wrong token");
    assert!(matches!(wrong, GitError::Auth(_)), "{wrong:?}");
    assert!(!wrong.to_string().contains("ghp_wrongtoken456"), "{wrong}");

    let commit =
        git.fetch(id, "octo", "secret", Want::Branch("main"), Some("ghp_allowedtoken123")).await.expect("fetch");
    assert_eq!(commit, repo.head());
    let config = std::fs::read_to_string(git.clone_dir(id).join("config")).expect("config");
    assert!(!config.contains("ghp_allowedtoken123") && !config.contains("extraHeader"), "{config}");
    assert!(server.requests().iter().all(|r| !r.path.contains("ghp_")), "never in a URL");

    server.set_failing(true);
    let down = git
        .fetch(id, "octo", "secret", Want::Branch("main"), Some("ghp_allowedtoken123"))
        .await
        .expect_err("server failing");
    assert!(matches!(down, GitError::Failed(_)), "{down:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_default_branch_is_whatever_github_says() {
    let server = GitServer::start().expect("git server");
    let repo = server.create_repo("octo", "trunk").expect("repo");
    repo.write("on-main.txt", b"m").commit("main").expect("commit");
    repo.set_default_branch("develop").expect("branch");
    repo.write("on-develop.txt", b"d").commit("develop").expect("commit");
    let (git, dir) = git_for(&server);
    let commit = git
        .fetch("repo_cccccccccccccccccccccccc", "octo", "trunk", Want::Branch("develop"), None)
        .await
        .expect("fetch");
    let files = git.files("repo_cccccccccccccccccccccccc", &commit).await.expect("files");
    assert_eq!(files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["on-develop.txt", "on-main.txt"]);
    let missing = git
        .fetch("repo_cccccccccccccccccccccccc", "octo", "trunk", Want::Branch("no-such-branch"), None)
        .await
        .expect_err("no branch");
    assert!(matches!(missing, GitError::NoSuchBranch(_)), "told apart from other failures: {missing:?}");
    let _ = std::fs::remove_dir_all(dir);
}
