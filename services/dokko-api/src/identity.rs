//! Who is calling: the two kinds of bearer token and what each may do.
//!
//! - **User tokens** (`POST /auth/login`): HS256 JWT, audience `fastapi-users:auth`, subject the
//!   user's UUID. Every request re-reads the user, so a deactivated user or a changed role takes
//!   effect at once.
//! - **Service-account tokens** (`POST /auth/service/login`): HS256 JWT, audience
//!   `fastapi-m2m:auth`, subject the service account's UUID, 8-hour expiry. The token carries the
//!   secret version it was issued under: rotating the secret bumps the version, so every token
//!   issued before the rotation stops working (the hard cutover). Revoking an account stops its
//!   logins but, as the contract says, leaves its issued tokens valid until they expire.
//!
//! Both carry the tenant; every query a request makes is scoped to it. Checking a token costs
//! one indexed query (the principal joined with its tenant, for the subscription flag). A route
//! that needs a single query of its own (a file's download) takes [`VerifiedToken`] and sends
//! that query pipelined with the principal's on one connection: one round trip instead of two,
//! the same check on every request, and nothing of the route's query answered unless it passes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use auth::extract::{Authenticated, Authenticator, Credential, CredentialSource};
use auth::jwt::{JwtError, JwtKeys};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use service_kit::db::{self, Pool};
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::error::ApiError;
use crate::schema::dokko::{service_accounts, tenants, users};

pub const USER_AUDIENCE: &str = "fastapi-users:auth";
pub const SERVICE_AUDIENCE: &str = "fastapi-m2m:auth";

/// What a token says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub tenant_id: Uuid,
    /// Service accounts only: the secret version the token was issued under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ver: Option<i32>,
}

/// A user's role in their organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    OrgAdmin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::OrgAdmin => "org_admin",
            Role::Member => "member",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "org_admin" => Some(Role::OrgAdmin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub tenant_id: Uuid,
    pub principal: Principal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    User { id: Uuid, role: Role },
    ServiceAccount { id: Uuid },
}

/// The extractor every tenant-scoped handler takes: a user or a service account.
pub type Caller = Authenticated<Tokens>;

/// Issues and checks both kinds of token.
pub struct Tokens {
    keys: JwtKeys,
    pool: Pool,
    user_ttl: Duration,
    service_ttl: Duration,
}

impl Tokens {
    pub fn new(secret: &[u8], pool: Pool, user_ttl: Duration, service_ttl: Duration) -> Self {
        Self { keys: JwtKeys::hs256_audiences(secret, &[USER_AUDIENCE, SERVICE_AUDIENCE]), pool, user_ttl, service_ttl }
    }

    fn issue(
        &self,
        aud: &str,
        ttl: Duration,
        tenant_id: Uuid,
        sub: Uuid,
        ver: Option<i32>,
    ) -> Result<String, ApiError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = Claims { sub: sub.to_string(), aud: aud.to_owned(), exp: now + ttl, iat: now, tenant_id, ver };
        self.keys.issue(&claims).map_err(|e| ApiError::Internal(e.into()))
    }

    pub fn issue_user(&self, tenant_id: Uuid, user_id: Uuid) -> Result<String, ApiError> {
        self.issue(USER_AUDIENCE, self.user_ttl, tenant_id, user_id, None)
    }

    pub fn issue_service(&self, tenant_id: Uuid, account_id: Uuid, secret_version: i32) -> Result<String, ApiError> {
        self.issue(SERVICE_AUDIENCE, self.service_ttl, tenant_id, account_id, Some(secret_version))
    }

    async fn resolve(&self, claims: Claims) -> Result<Identity, ApiError> {
        let conn = db::conn(&self.pool).await?;
        resolve_on(&conn, claims).await
    }

    /// The claims of a token whose signature, audience and expiry hold.
    fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        self.keys.verify(token).map_err(|e| {
            tracing::debug!(reason = %e, "token refused");
            match e {
                JwtError::Expired => ApiError::Unauthorized("token expired"),
                _ => ApiError::Unauthorized("invalid or expired token"),
            }
        })
    }
}

/// The principal a token names, read on `conn` (a shared reference, so it can be pipelined with
/// other queries on the same connection).
async fn resolve_on(mut conn: &AsyncPgConnection, claims: Claims) -> Result<Identity, ApiError> {
    let refused = ApiError::Unauthorized("invalid or expired token");
    let Ok(sub) = Uuid::parse_str(&claims.sub) else { return Err(refused) };
    match claims.aud.as_str() {
        USER_AUDIENCE => {
            let row: Option<(String, bool, bool)> = users::table
                .inner_join(tenants::table)
                .filter(users::id.eq(sub))
                .filter(users::tenant_id.eq(claims.tenant_id))
                .select((users::role, users::is_active, tenants::subscription_active))
                .first(&mut conn)
                .await
                .optional()?;
            let Some((role, true, subscribed)) = row else { return Err(refused) };
            if !subscribed {
                return Err(ApiError::PaymentRequired);
            }
            let role = Role::parse(&role).ok_or(refused)?;
            Ok(Identity { tenant_id: claims.tenant_id, principal: Principal::User { id: sub, role } })
        }
        SERVICE_AUDIENCE => {
            let row: Option<(i32, bool)> = service_accounts::table
                .inner_join(tenants::table)
                .filter(service_accounts::id.eq(sub))
                .filter(service_accounts::tenant_id.eq(claims.tenant_id))
                .select((service_accounts::secret_version, tenants::subscription_active))
                .first(&mut conn)
                .await
                .optional()?;
            let Some((version, subscribed)) = row else { return Err(refused) };
            if claims.ver != Some(version) {
                return Err(ApiError::Unauthorized("token was issued before the secret was rotated"));
            }
            if !subscribed {
                return Err(ApiError::PaymentRequired);
            }
            Ok(Identity { tenant_id: claims.tenant_id, principal: Principal::ServiceAccount { id: sub } })
        }
        _ => Err(refused),
    }
}

impl Authenticator for Tokens {
    type Identity = Identity;
    type Error = ApiError;
    const SOURCE: CredentialSource = CredentialSource::Bearer;

    fn missing(_source: CredentialSource, credential: &Credential) -> ApiError {
        match credential {
            Credential::Malformed => ApiError::Unauthorized("the Authorization header must be `Bearer <token>`"),
            _ => ApiError::Unauthorized("missing bearer token: send Authorization: Bearer <access_token>"),
        }
    }

    async fn authenticate(&self, token: String) -> Result<Identity, ApiError> {
        let claims = self.verify(&token)?;
        self.resolve(claims).await
    }
}

/// A bearer token whose signature, audience and expiry hold, its principal not read yet: the
/// extractor of a route that checks the principal with [`VerifiedToken::authorize_along`],
/// pipelined with its own query. Everything else takes [`Caller`].
pub struct VerifiedToken {
    claims: Claims,
}

impl VerifiedToken {
    /// The tenant the (signed) token names: what the route's query is scoped to.
    pub fn tenant_id(&self) -> Uuid {
        self.claims.tenant_id
    }

    /// Checks the principal exactly as [`Caller`] does, on `conn`, while `query` (made on the
    /// same connection) runs pipelined with it. The query's outcome is returned only when the
    /// caller passes; otherwise the caller's refusal, whatever the query found.
    pub async fn authorize_along<T>(
        self,
        conn: &AsyncPgConnection,
        query: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<(Identity, T), ApiError> {
        let (identity, found) = futures_util::future::join(resolve_on(conn, self.claims), query).await;
        let identity = identity?;
        Ok((identity, found?))
    }
}

impl FromRequest for VerifiedToken {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let verified = match (Tokens::SOURCE.read(req), req.app_data::<actix_web::web::Data<Tokens>>()) {
            (_, None) => Err(actix_web::error::ErrorInternalServerError("authenticator is not registered")),
            (Credential::Present(token), Some(tokens)) => {
                tokens.verify(&token).map(|claims| VerifiedToken { claims }).map_err(Into::into)
            }
            (other, Some(_)) => Err(Tokens::missing(Tokens::SOURCE, &other).into()),
        };
        std::future::ready(verified)
    }
}

/// The extractor of organisation-admin routes: a user token of an `org_admin`. A
/// service-account token or a member's token gets 403.
pub struct OrgAdmin {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
}

impl FromRequest for OrgAdmin {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let caller = Caller::from_request(req, payload);
        Box::pin(async move {
            let identity = caller.await?.into_inner();
            match identity.principal {
                Principal::User { id, role: Role::OrgAdmin } => {
                    Ok(OrgAdmin { tenant_id: identity.tenant_id, user_id: id })
                }
                Principal::User { .. } => Err(ApiError::Forbidden("this requires an organisation admin").into()),
                Principal::ServiceAccount { .. } => Err(ApiError::Forbidden(
                    "this requires an organisation admin's user token, not a service-account token",
                )
                .into()),
            }
        })
    }
}

/// argon2id hashing and verification on the blocking pool, at most `permits` at once so a burst
/// of logins queues instead of starving every other blocking task.
#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
}

impl Hasher {
    pub fn new(concurrency: usize) -> Self {
        Self { permits: Arc::new(Semaphore::new(concurrency.max(1))) }
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
        let _permit = self.permits.acquire().await.map_err(|e| ApiError::Internal(e.into()))?;
        tokio::task::spawn_blocking(work).await.map_err(|e| ApiError::Internal(e.into()))
    }

    /// The argon2id PHC string of `secret`.
    pub async fn hash(&self, secret: String) -> Result<String, ApiError> {
        self.run(move || auth::password::hash(&secret)).await?.map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))
    }

    /// Whether `secret` matches `phc`; with `None`, verifies against a dummy hash so an unknown
    /// account costs the same time as a known one, and answers false.
    pub async fn verify(&self, secret: String, phc: Option<String>) -> Result<bool, ApiError> {
        self.run(move || match phc {
            Some(phc) => auth::password::verify(&secret, &phc),
            None => {
                let _ = auth::password::verify(&secret, auth::password::dummy_hash());
                false
            }
        })
        .await
    }
}
