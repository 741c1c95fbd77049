//! People: `POST /api/v1/auth/login`, invitations (`POST /api/v1/auth/invitations/accept`,
//! `POST /api/v1/admin/invitations`; the page an invitation link opens is the console's, see
//! [`crate::console::session`]) and
//! `GET /api/v1/admin/users`.
//!
//! A user is created inactive with an invitation; accepting it (a one-time token that expires)
//! sets the password and activates the account. Only the SHA-256 of an invitation token is
//! stored.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use domain::pagination::{PageQuery, Paginated};
use serde::{Deserialize, Serialize};
use service_kit::db;
use service_kit::http::Json;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;
use crate::identity::{OrgAdmin, Role, Tokens};
use crate::schema::dokko::tenants as tenant_rows;
use crate::schema::dokko::{invitations, users};
use crate::tenants;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/v1/auth/login").route(web::post().to(login)))
        .service(web::resource("/api/v1/auth/invitations/accept").route(web::post().to(accept_invitation)))
        .service(web::resource("/api/v1/admin/invitations").route(web::post().to(create_invitation)))
        .service(web::resource("/api/v1/admin/users").route(web::get().to(list_users)));
}

/// Passwords: 8 to 256 characters (argon2 hashes any length, but a megabyte password is an
/// attack, not a password).
pub const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=256;

/// `{access_token, token_type: "Bearer"}`, the answer of both login calls.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessToken {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
}

impl AccessToken {
    pub fn bearer(access_token: String) -> Self {
        Self { access_token, token_type: "Bearer" }
    }
}

/// The login form (`application/x-www-form-urlencoded`). `username` is accepted for `email`,
/// as OAuth2 password-flow clients send it.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginForm {
    email: Option<String>,
    #[schema(ignore)]
    username: Option<String>,
    password: Option<String>,
}

/// An email address as stored: trimmed, lower-cased, one `@` with text on both sides.
pub fn valid_email(raw: &str) -> Result<String, ApiError> {
    let email = raw.trim().to_lowercase();
    let ok = (3..=254).contains(&email.len())
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(email.split_once('@'), Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
    if ok { Ok(email) } else { Err(ApiError::BadRequest(format!("{raw:?} is not a valid email address"))) }
}

/// A form field that must be present and not empty (422 naming it otherwise).
pub(crate) fn required(value: Option<String>, name: &str) -> Result<String, ApiError> {
    value.filter(|v| !v.is_empty()).ok_or_else(|| ApiError::Unprocessable(format!("the form field {name} is required")))
}

/// Signs a person in and returns a user token.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "authentication",
    params(("X-Tenant" = String, Header, description = "organisation name or tenant UUID")),
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = AccessToken),
              (status = 401, description = "wrong email or password", body = domain::ErrorBody),
              (status = 402, description = "subscription inactive", body = domain::ErrorBody),
              (status = 404, description = "organisation not found", body = domain::ErrorBody),
              (status = 422, description = "missing X-Tenant or form field", body = domain::ErrorBody),
              (status = 429, description = "too many failed attempts for this account; see Retry-After", body = domain::ErrorBody)))]
async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    tokens: web::Data<Tokens>,
    form: web::Form<LoginForm>,
) -> Result<web::Json<AccessToken>, ApiError> {
    let tenant_ref = tenants::header(&req)?;
    let form = form.into_inner();
    let email = required(form.email.or(form.username), "email")?;
    let password = required(form.password, "password")?;
    let signed_in = sign_in(&state, &tokens, &tenant_ref, &email, password).await?;
    Ok(web::Json(AccessToken::bearer(signed_in.access_token)))
}

/// A person signed in: their user token, and who they are.
#[derive(Debug)]
pub struct SignedIn {
    pub access_token: String,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
}

/// Checks a person's organisation (name or UUID), email and password, with the per-account
/// lockout, and issues a user token: the API's login and the console's sign-in both call it.
pub async fn sign_in(
    state: &AppState,
    tokens: &Tokens,
    tenant_ref: &str,
    email: &str,
    password: String,
) -> Result<SignedIn, ApiError> {
    let email = email.trim().to_lowercase();
    let mut conn = db::conn(&state.pool).await?;
    let tenant = tenants::require(&mut conn, tenant_ref).await?;
    let throttle_key = format!("user:{}:{email}", tenant.id);
    if let Some(wait) = state.throttle.locked(&throttle_key) {
        return Err(ApiError::TooManyAttempts(wait));
    }
    let user: Option<(Uuid, Option<String>, bool)> = users::table
        .filter(users::tenant_id.eq(tenant.id))
        .filter(users::email.eq(&email))
        .select((users::id, users::password_hash, users::is_active))
        .first(&mut conn)
        .await
        .optional()?;
    drop(conn);
    let (user_id, hash, active) = match user {
        Some((id, hash, active)) => (Some(id), hash, active),
        None => (None, None, false),
    };
    let password_ok = state.hasher.verify(password, hash).await?;
    let Some(user_id) = user_id.filter(|_| password_ok && active) else {
        state.throttle.failed(&throttle_key);
        return Err(ApiError::Unauthorized("incorrect email or password"));
    };
    state.throttle.succeeded(&throttle_key);
    if !tenant.subscription_active {
        return Err(ApiError::PaymentRequired);
    }
    Ok(SignedIn { access_token: tokens.issue_user(tenant.id, user_id)?, tenant_id: tenant.id, user_id })
}

/// A freshly issued invitation; `token` is shown once.
#[derive(Debug, Clone)]
pub struct Invitation {
    pub user_id: Uuid,
    pub email: String,
    pub role: Role,
    pub token: String,
    pub expires_at: OffsetDateTime,
}

impl Invitation {
    /// The link that opens the page where the invitee sets a password.
    pub fn url(&self, public_url: &str) -> String {
        format!("{}/invitations/accept?token={}", public_url.trim_end_matches('/'), self.token)
    }
}

/// Invites `email` into the tenant with `role`: creates the (inactive) user if needed and a new
/// one-time token, replacing any earlier unaccepted invitation. An active user is a conflict.
pub async fn invite(
    conn: &mut db::Conn,
    tenant_id: Uuid,
    email: &str,
    role: Role,
    ttl: Duration,
) -> Result<Invitation, ApiError> {
    let email = valid_email(email)?;
    let token = auth::token::generate("inv_");
    let digest = auth::token::digest(&token).to_vec();
    let expires_at = OffsetDateTime::now_utc() + ttl;
    let user_id = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let existing: Option<(Uuid, bool)> = users::table
                .filter(users::tenant_id.eq(tenant_id))
                .filter(users::email.eq(&email))
                .select((users::id, users::is_active))
                .for_update()
                .first(conn)
                .await
                .optional()?;
            let user_id = match existing {
                Some((_, true)) => return Err(ApiError::Conflict(format!("{email} already has an active account"))),
                Some((id, false)) => {
                    diesel::update(users::table.filter(users::id.eq(id)))
                        .set(users::role.eq(role.as_str()))
                        .execute(conn)
                        .await?;
                    diesel::delete(invitations::table.filter(invitations::user_id.eq(id))).execute(conn).await?;
                    id
                }
                None => {
                    let id = Uuid::now_v7();
                    diesel::insert_into(users::table)
                        .values((
                            users::id.eq(id),
                            users::tenant_id.eq(tenant_id),
                            users::email.eq(&email),
                            users::role.eq(role.as_str()),
                        ))
                        .execute(conn)
                        .await?;
                    id
                }
            };
            diesel::insert_into(invitations::table)
                .values((
                    invitations::id.eq(Uuid::now_v7()),
                    invitations::tenant_id.eq(tenant_id),
                    invitations::user_id.eq(user_id),
                    invitations::token_digest.eq(&digest),
                    invitations::expires_at.eq(expires_at),
                ))
                .execute(conn)
                .await?;
            Ok(user_id)
        })
        .await?;
    Ok(Invitation { user_id, email, role, token, expires_at })
}

/// The body of `POST /api/v1/auth/invitations/accept`, as JSON or as a form.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AcceptInvitation {
    /// The token from the invitation link.
    token: Option<String>,
    /// The new password, 8 to 256 characters.
    password: Option<String>,
}

/// The account an accepted invitation activated.
#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptedInvitation {
    pub email: String,
    /// The organisation name: the `X-Tenant` value for logging in.
    pub organisation: String,
    pub tenant_id: Uuid,
}

/// Accepts an invitation: sets the password and activates the account. The token works once.
#[utoipa::path(post, path = "/api/v1/auth/invitations/accept", tag = "authentication",
    request_body(content = AcceptInvitation, description = "JSON or application/x-www-form-urlencoded"),
    responses((status = 200, body = AcceptedInvitation),
              (status = 400, description = "invalid, used or expired token, or an unacceptable password", body = domain::ErrorBody),
              (status = 422, description = "missing field or malformed body", body = domain::ErrorBody)))]
async fn accept_invitation(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<web::Json<AcceptedInvitation>, ApiError> {
    let form_encoded = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let input: AcceptInvitation = if form_encoded {
        serde_urlencoded::from_bytes(&body).map_err(|e| ApiError::Unprocessable(format!("invalid form body: {e}")))?
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::Unprocessable(format!("invalid JSON body: {e}")))?
    };
    let token = required(input.token, "token")?;
    let password = required(input.password, "password")?;
    Ok(web::Json(accept(&state, &token, password).await?))
}

/// Accepts an invitation (one time): sets the password and activates the account. The API's
/// accept route and the console's invitation page both call it.
pub async fn accept(state: &AppState, token: &str, password: String) -> Result<AcceptedInvitation, ApiError> {
    // The accept body is parsed by hand (JSON or form), not by service-kit's Json: the NUL rule here.
    for (field, value) in [("token", token), ("password", password.as_str())] {
        domain::text::check(field, value).map_err(ApiError::Unprocessable)?;
    }
    if !PASSWORD_CHARS.contains(&password.chars().count()) {
        return Err(ApiError::BadRequest(format!(
            "the password must be {} to {} characters",
            PASSWORD_CHARS.start(),
            PASSWORD_CHARS.end()
        )));
    }
    let invalid = || ApiError::BadRequest("the invitation is invalid, already used or expired".into());
    let digest = auth::token::digest(token.trim()).to_vec();
    let mut conn = db::conn(&state.pool).await?;
    let found: Option<(Uuid, Uuid)> = invitations::table
        .filter(invitations::token_digest.eq(&digest))
        .filter(invitations::accepted_at.is_null())
        .filter(invitations::expires_at.gt(OffsetDateTime::now_utc()))
        .select((invitations::id, invitations::user_id))
        .first(&mut conn)
        .await
        .optional()?;
    drop(conn);
    let (invitation_id, user_id) = found.ok_or_else(invalid)?;
    let hash = state.hasher.hash(password).await?;
    let mut conn = db::conn(&state.pool).await?;
    let (email, organisation, tenant_id) = conn
        .transaction::<_, ApiError, _>(async |conn| {
            // Claiming the invitation is the single-use check: of two concurrent accepts, one wins.
            let claimed = diesel::update(
                invitations::table
                    .filter(invitations::id.eq(invitation_id))
                    .filter(invitations::accepted_at.is_null())
                    .filter(invitations::expires_at.gt(OffsetDateTime::now_utc())),
            )
            .set(invitations::accepted_at.eq(OffsetDateTime::now_utc()))
            .execute(conn)
            .await?;
            if claimed == 0 {
                return Err(invalid());
            }
            let (email, tenant_id): (String, Uuid) = diesel::update(users::table.filter(users::id.eq(user_id)))
                .set((
                    users::password_hash.eq(&hash),
                    users::is_active.eq(true),
                    users::activated_at.eq(OffsetDateTime::now_utc()),
                ))
                .returning((users::email, users::tenant_id))
                .get_result(conn)
                .await?;
            let organisation: String =
                tenant_rows::table.filter(tenant_rows::id.eq(tenant_id)).select(tenant_rows::name).first(conn).await?;
            Ok((email, organisation, tenant_id))
        })
        .await?;
    Ok(AcceptedInvitation { email, organisation, tenant_id })
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateInvitation {
    email: String,
    /// `member` (default) or `org_admin`.
    role: Option<String>,
}

/// An invitation: send `invitation_url` to the person; it works once, until `expires_at`.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationView {
    user_id: Uuid,
    email: String,
    role: &'static str,
    invitation_url: String,
    invitation_token: String,
    #[serde(with = "domain::timestamp::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    expires_at: OffsetDateTime,
}

/// Invites a person into the caller's organisation (organisation admins only).
#[utoipa::path(post, path = "/api/v1/admin/invitations", tag = "administration",
    request_body = CreateInvitation,
    responses((status = 201, body = InvitationView), (status = 400, body = domain::ErrorBody),
              (status = 401, body = domain::ErrorBody), (status = 403, body = domain::ErrorBody),
              (status = 409, description = "the person already has an active account", body = domain::ErrorBody),
              (status = 422, body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn create_invitation(
    admin: OrgAdmin,
    state: web::Data<AppState>,
    body: Json<CreateInvitation>,
) -> Result<HttpResponse, ApiError> {
    let role = match body.role.as_deref() {
        None => Role::Member,
        Some(text) => Role::parse(text)
            .ok_or_else(|| ApiError::BadRequest(format!("role must be \"member\" or \"org_admin\", got {text:?}")))?,
    };
    let mut conn = db::conn(&state.pool).await?;
    let invitation = invite(&mut conn, admin.tenant_id, &body.email, role, state.invitation_ttl).await?;
    Ok(HttpResponse::Created().json(InvitationView {
        user_id: invitation.user_id,
        invitation_url: invitation.url(&state.public_url),
        email: invitation.email,
        role: invitation.role.as_str(),
        invitation_token: invitation.token,
        expires_at: invitation.expires_at,
    }))
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
struct User {
    id: Uuid,
    email: String,
    role: String,
    is_active: bool,
    created_at: OffsetDateTime,
    activated_at: Option<OffsetDateTime>,
}

/// A person of the organisation.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    id: Uuid,
    email: String,
    role: String,
    /// False until the invitation is accepted.
    is_active: bool,
    #[serde(with = "domain::timestamp::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    #[serde(with = "domain::timestamp::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    activated_at: Option<OffsetDateTime>,
}

/// The organisation's people, oldest first (organisation admins only).
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "administration", params(PageQuery),
    responses((status = 200, body = Paginated<UserView>), (status = 401, body = domain::ErrorBody),
              (status = 403, body = domain::ErrorBody), (status = 422, body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn list_users(
    admin: OrgAdmin,
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Paginated<UserView>>, ApiError> {
    let page = query.page()?;
    let mut conn = db::conn(&state.pool).await?;
    let total: i64 = users::table.filter(users::tenant_id.eq(admin.tenant_id)).count().get_result(&mut conn).await?;
    let rows = users::table
        .filter(users::tenant_id.eq(admin.tenant_id))
        .order((users::created_at, users::id))
        .offset(page.offset())
        .limit(page.limit())
        .select(User::as_select())
        .load(&mut conn)
        .await?;
    let items = rows
        .into_iter()
        .map(|u| UserView {
            id: u.id,
            email: u.email,
            role: u.role,
            is_active: u.is_active,
            created_at: u.created_at,
            activated_at: u.activated_at,
        })
        .collect();
    Ok(web::Json(Paginated::new(items, page, total)))
}
