//! The GitHub client against the test kit's fake GitHub (a real HTTP server on loopback).

use std::time::Duration;

use github::{GithubClient, GithubError};
use testkit::FakeGithub;
use testkit::github::Mode;

fn client(github: &FakeGithub) -> GithubClient {
    GithubClient::new(github.url(), Duration::from_secs(5)).expect("client")
}

#[tokio::test]
async fn current_user_resolves_a_token_and_refuses_a_bad_one() {
    let github = FakeGithub::start();
    let (id, token) = github.add_user("octocat");
    let user = client(&github).current_user(&token).await.expect("resolves");
    assert_eq!((user.id, user.login.as_str()), (id, "octocat"));
    assert_eq!(client(&github).current_user("ghp_wrong").await, Err(GithubError::Unauthorized));
    github.revoke(&token);
    assert_eq!(client(&github).current_user(&token).await, Err(GithubError::Unauthorized));
}

#[tokio::test]
async fn repositories_are_visible_only_to_those_who_may_see_them() {
    let github = FakeGithub::start();
    let (owner, owner_token) = github.add_user("owner");
    let (other, other_token) = github.add_user("other");
    let public = github.add_repo(owner, "public.repo", false);
    let private = github.add_repo(owner, "secret", true);
    github.set_default_branch(private, "trunk");
    let c = client(&github);

    let repo = c.repository("owner", "public.repo", None).await.expect("public, anonymous");
    assert_eq!((repo.id, repo.private, repo.full_name.as_str()), (public, false, "owner/public.repo"));
    assert_eq!(repo.default_branch.as_deref(), Some("main"));

    let repo = c.repository("owner", "secret", Some(&owner_token)).await.expect("owner sees it");
    assert!(repo.private);
    assert_eq!(repo.default_branch.as_deref(), Some("trunk"));
    assert_eq!(c.repository("owner", "secret", None).await, Err(GithubError::NotFound));
    assert_eq!(c.repository("owner", "secret", Some(&other_token)).await, Err(GithubError::NotFound));
    github.grant(private, other);
    assert!(c.repository("owner", "secret", Some(&other_token)).await.is_ok(), "collaborators see it");
    assert_eq!(c.repository("owner", "missing", Some(&owner_token)).await, Err(GithubError::NotFound));
}

#[tokio::test]
async fn rate_limits_failures_and_unreachable_servers_are_transient() {
    let github = FakeGithub::start();
    let (_, token) = github.add_user("octocat");
    let c = client(&github);
    github.set_mode(Mode::RateLimited);
    let err = c.current_user(&token).await.expect_err("rate limited");
    assert_eq!(err, GithubError::RateLimited);
    assert!(err.is_transient());
    github.set_mode(Mode::Failing);
    let err = c.current_user(&token).await.expect_err("failing");
    assert!(matches!(err, GithubError::Unavailable(_)), "{err:?}");

    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let dead = GithubClient::new(&format!("http://127.0.0.1:{port}"), Duration::from_secs(2)).expect("client");
    let err = dead.current_user(&token).await.expect_err("nobody listens");
    assert!(err.is_transient(), "{err:?}");
}
