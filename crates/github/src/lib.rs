//! The GitHub REST calls the services make, through octocrab, with failures sorted into what a
//! caller acts on: the token is refused (401), the resource is invisible (404), or GitHub is
//! unreachable or rate-limited (503, try later).
//!
//! One [`GithubClient`] is built per service and shared: a call with a user's token reuses the
//! client's connection pool instead of building a new HTTP client.

use std::time::Duration;

use octocrab::Octocrab;
use serde::Deserialize;

/// Why a GitHub call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GithubError {
    /// GitHub refused the token (bad, expired or revoked).
    #[error("GitHub rejected the token")]
    Unauthorized,
    /// The resource does not exist or the token cannot see it.
    #[error("not found on GitHub")]
    NotFound,
    /// GitHub's rate limit is exhausted for this token.
    #[error("GitHub rate limit exceeded; try again later")]
    RateLimited,
    /// GitHub could not be reached or answered with a server error.
    #[error("GitHub is unreachable: {0}")]
    Unavailable(String),
    /// GitHub answered something we did not expect.
    #[error("unexpected answer from GitHub: {0}")]
    Unexpected(String),
}

impl GithubError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, GithubError::RateLimited | GithubError::Unavailable(_))
    }
}

/// The authenticated user behind a token (`GET /user`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GithubUser {
    pub id: u64,
    pub login: String,
}

/// A repository (`GET /repos/{owner}/{repo}`), the fields we use.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GithubRepo {
    pub id: u64,
    pub name: String,
    pub full_name: String,
    pub private: bool,
    pub default_branch: Option<String>,
    pub html_url: Option<String>,
    pub clone_url: Option<String>,
}

/// A shared GitHub API client.
#[derive(Clone)]
pub struct GithubClient {
    base: Octocrab,
}

impl std::fmt::Debug for GithubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubClient").finish_non_exhaustive()
    }
}

impl GithubClient {
    /// A client for the API at `base_url` (`https://api.github.com`, a GitHub Enterprise
    /// `https://host/api/v3`, or a fake in tests) with connect and read timeouts.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, GithubError> {
        let base = Octocrab::builder()
            .base_uri(base_url)
            .map_err(|e| GithubError::Unexpected(format!("invalid GitHub API URL {base_url:?}: {e}")))?
            .set_connect_timeout(Some(timeout))
            .set_read_timeout(Some(timeout))
            .set_write_timeout(Some(timeout))
            .build()
            .map_err(|e| GithubError::Unexpected(format!("cannot build the GitHub client: {e}")))?;
        Ok(Self { base })
    }

    fn with_token(&self, token: &str) -> Result<Octocrab, GithubError> {
        self.base.user_access_token(token.to_owned()).map_err(|e| classify(&e))
    }

    /// The user a token belongs to.
    pub async fn current_user(&self, token: &str) -> Result<GithubUser, GithubError> {
        self.with_token(token)?.get("/user", None::<&()>).await.map_err(|e| classify(&e))
    }

    /// A repository as seen with `token` (or anonymously when `None`).
    pub async fn repository(&self, owner: &str, name: &str, token: Option<&str>) -> Result<GithubRepo, GithubError> {
        let client = match token {
            Some(token) => self.with_token(token)?,
            None => self.base.clone(),
        };
        let route = format!("/repos/{}/{}", path_segment(owner), path_segment(name));
        client.get(route, None::<&()>).await.map_err(|e| classify(&e))
    }
}

/// Escapes what could change the meaning of a path segment (owners and names are validated by
/// callers; this is a second line).
fn path_segment(segment: &str) -> String {
    segment.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).collect()
}

fn classify(error: &octocrab::Error) -> GithubError {
    match error {
        octocrab::Error::GitHub { source, .. } => {
            let status = source.status_code.as_u16();
            let remaining_zero = source
                .headers
                .as_ref()
                .and_then(|h| h.get("x-ratelimit-remaining"))
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim() == "0");
            match status {
                401 => GithubError::Unauthorized,
                429 => GithubError::RateLimited,
                403 if remaining_zero || source.message.to_ascii_lowercase().contains("rate limit") => {
                    GithubError::RateLimited
                }
                403 | 404 => GithubError::NotFound,
                500..=599 => GithubError::Unavailable(format!("GitHub answered {status}")),
                _ => GithubError::Unexpected(format!("GitHub answered {status}: {}", source.message)),
            }
        }
        octocrab::Error::Serde { .. } | octocrab::Error::Json { .. } => {
            GithubError::Unexpected("GitHub's answer could not be read".to_owned())
        }
        other => {
            tracing::debug!(error = %other, "GitHub call failed");
            GithubError::Unavailable(other.to_string().lines().next().unwrap_or("connection failed").to_owned())
        }
    }
}
