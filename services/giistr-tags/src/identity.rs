//! Who is calling: the `X-Github-Token` header, resolved with GitHub's `GET /user`.
//!
//! - First sight of a GitHub user creates the giistr user; a new token for a GitHub user we know
//!   replaces the old one (and gets a new `token_id`). Only the token's SHA-256 digest is stored.
//! - A resolution is cached in memory by the token's digest for `TOKEN_CACHE_TTL_SECS`, so a
//!   request does not call GitHub (or the database) each time; after that GitHub is asked again,
//!   so a revoked token stops working within the TTL.
//! - A token GitHub refuses is remembered as refused for a short while (at most a minute), so a
//!   client retrying with a bad token in a loop does not spend GitHub's rate limit for everyone.
//! - When GitHub is unreachable or rate-limited, a token we already stored is trusted (the seed:
//!   "if the token already exists, we just assume you are the right user"); an unknown token
//!   gets 503.

use std::time::Duration;

use auth::cache::TtlCache;
use auth::{Authenticated, Authenticator, Credential, CredentialSource};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use github::{GithubClient, GithubError, GithubUser};
use service_kit::db::{self, Pool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::ApiError;
use crate::schema::giistr::users;

/// The caller of a request: a giistr user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallerId {
    pub user_id: Uuid,
}

/// The extractor handlers take: `caller: Caller`.
pub type Caller = Authenticated<GithubTokens>;

pub struct GithubTokens {
    pool: Pool,
    github: GithubClient,
    cache: TtlCache<[u8; 32], Resolution>,
}

/// What a token resolved to.
#[derive(Debug, Clone, Copy)]
enum Resolution {
    User(Uuid),
    Refused,
}

const REFUSAL_TTL: Duration = Duration::from_secs(60);

impl GithubTokens {
    pub fn new(pool: Pool, github: GithubClient, ttl: Duration) -> Self {
        Self { pool, github, cache: TtlCache::new(ttl, 100_000) }
    }
}

impl Authenticator for GithubTokens {
    type Identity = CallerId;
    type Error = ApiError;
    const SOURCE: CredentialSource = CredentialSource::Header("x-github-token");

    fn missing(_source: CredentialSource, credential: &Credential) -> ApiError {
        match credential {
            Credential::Malformed => ApiError::Unauthorized("the X-Github-Token header is not valid text".into()),
            _ => ApiError::Unauthorized("missing X-Github-Token header: send your GitHub token in it".into()),
        }
    }

    async fn authenticate(&self, token: String) -> Result<CallerId, ApiError> {
        let digest = auth::token::digest(&token);
        match self.cache.get(&digest) {
            Some(Resolution::User(user_id)) => return Ok(CallerId { user_id }),
            Some(Resolution::Refused) => return Err(refused()),
            None => {}
        }
        match self.github.current_user(&token).await {
            Ok(github_user) => {
                let mut conn = db::conn(&self.pool).await?;
                let user_id = record_token(&mut conn, &github_user, &digest).await?;
                self.cache.insert(digest, Resolution::User(user_id));
                Ok(CallerId { user_id })
            }
            Err(GithubError::Unauthorized) => {
                self.cache.insert_for(digest, Resolution::Refused, REFUSAL_TTL);
                Err(refused())
            }
            Err(e) if e.is_transient() => {
                let mut conn = db::conn(&self.pool).await?;
                match user_by_digest(&mut conn, &digest).await? {
                    Some(user_id) => {
                        tracing::warn!(error = %e, "GitHub unavailable; trusting a known token");
                        self.cache.insert_for(digest, Resolution::User(user_id), Duration::from_secs(30));
                        Ok(CallerId { user_id })
                    }
                    None => Err(ApiError::Unavailable(format!("cannot verify the GitHub token: {e}"))),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "unexpected answer from GitHub's GET /user");
                Err(ApiError::Unavailable(format!("cannot verify the GitHub token: {e}")))
            }
        }
    }
}

fn refused() -> ApiError {
    ApiError::Unauthorized("GitHub rejected the token in X-Github-Token".into())
}

async fn user_by_digest(conn: &mut db::Conn, digest: &[u8; 32]) -> Result<Option<Uuid>, ApiError> {
    Ok(users::table.filter(users::token_digest.eq(&digest[..])).select(users::id).first(conn).await.optional()?)
}

#[derive(AsChangeset)]
#[diesel(table_name = users)]
struct TokenChange<'a> {
    token_digest: &'a [u8],
    token_id: Option<Uuid>,
    github_login: &'a str,
    updated_at: OffsetDateTime,
}

/// Creates the user on first sight, or records the new token of a known GitHub user.
async fn record_token(conn: &mut db::Conn, github_user: &GithubUser, digest: &[u8; 32]) -> Result<Uuid, ApiError> {
    let github_user_id = i64::try_from(github_user.id)
        .map_err(|_| ApiError::Unavailable("GitHub returned an invalid user id".into()))?;
    let now = OffsetDateTime::now_utc();
    let inserted = diesel::insert_into(users::table)
        .values((
            users::id.eq(Uuid::now_v7()),
            users::github_user_id.eq(github_user_id),
            users::github_login.eq(&github_user.login),
            users::token_id.eq(Uuid::new_v4()),
            users::token_digest.eq(&digest[..]),
            users::created_at.eq(now),
            users::updated_at.eq(now),
        ))
        .on_conflict(users::github_user_id)
        .do_nothing()
        .returning(users::id)
        .get_result::<Uuid>(conn)
        .await
        .optional()?;
    if let Some(id) = inserted {
        return Ok(id);
    }
    // Known GitHub user: replace the token if it changed (a new token_id with it).
    let (id, stored_digest, login): (Uuid, Vec<u8>, String) = users::table
        .filter(users::github_user_id.eq(github_user_id))
        .select((users::id, users::token_digest, users::github_login))
        .first(conn)
        .await?;
    if stored_digest != digest[..] || login != github_user.login {
        let token_changed = stored_digest != digest[..];
        diesel::update(users::table.find(id))
            .set(&TokenChange {
                token_digest: &digest[..],
                // A new token gets a new opaque id; a renamed GitHub login keeps it.
                token_id: token_changed.then(Uuid::new_v4),
                github_login: &github_user.login,
                updated_at: now,
            })
            .execute(conn)
            .await?;
    }
    Ok(id)
}
