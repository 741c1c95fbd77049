//! Service accounts: `POST /api/v1/auth/service/login` (client credentials → M2M token) and the
//! organisation-admin routes under `/api/v1/admin/service-accounts`.
//!
//! `client_id` is `sa_` + 32 hex; the secret (64 hex) is shown once and kept as an argon2id
//! hash. Revoking (`DELETE`) stops logins but issued tokens live until expiry; rotating bumps the
//! secret version, which every earlier token carries, so they all stop at once.

use actix_web::{HttpRequest, HttpResponse, web};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use domain::pagination::{PageQuery, Paginated};
use serde::{Deserialize, Serialize};
use service_kit::db;
use service_kit::http::Json;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiError;
use crate::identity::{OrgAdmin, Tokens};
use crate::schema::dokko::service_accounts;
use crate::tenants;
use crate::users::{AccessToken, required};
use crate::{AppState, paginated};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/v1/auth/service/login").route(web::post().to(service_login)))
        .service(
            web::resource("/api/v1/admin/service-accounts")
                .route(web::post().to(create_account))
                .route(web::get().to(list_accounts)),
        )
        .service(
            web::resource("/api/v1/admin/service-accounts/{service_account_id}")
                .route(web::get().to(get_account))
                .route(web::delete().to(revoke_account)),
        )
        .service(
            web::resource("/api/v1/admin/service-accounts/{service_account_id}/rotate-secret")
                .route(web::post().to(rotate_secret)),
        );
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = service_accounts, check_for_backend(diesel::pg::Pg))]
struct Account {
    id: Uuid,
    name: String,
    client_id: String,
    is_active: bool,
    created_at: OffsetDateTime,
    last_login_at: Option<OffsetDateTime>,
}

/// A service account as listed (never with its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    id: Uuid,
    client_id: String,
    name: String,
    /// False once revoked.
    is_active: bool,
    #[serde(with = "domain::timestamp::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    #[serde(with = "domain::timestamp::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    last_login_at: Option<OffsetDateTime>,
}

impl From<Account> for AccountView {
    fn from(a: Account) -> Self {
        Self {
            id: a.id,
            client_id: a.client_id,
            name: a.name,
            is_active: a.is_active,
            created_at: a.created_at,
            last_login_at: a.last_login_at,
        }
    }
}

/// A service account with its cleartext secret, shown exactly once.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountCredentials {
    id: Uuid,
    client_id: String,
    client_secret: String,
    name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateAccount {
    /// A label, 3 to 255 characters.
    #[schema(min_length = 3, max_length = 255)]
    name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ServiceLoginForm {
    client_id: Option<String>,
    client_secret: Option<String>,
    /// Optional; `client_credentials` when present.
    grant_type: Option<String>,
}

fn valid_name(raw: &str) -> Result<String, ApiError> {
    domain::names::clean("name", raw, 3..=255).map_err(ApiError::BadRequest)
}

/// Exchanges client credentials for an M2M token (OAuth2 client_credentials).
#[utoipa::path(post, path = "/api/v1/auth/service/login", tag = "authentication",
    params(("X-Tenant" = String, Header, description = "organisation name or tenant UUID")),
    request_body(content = ServiceLoginForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "an HS256 JWT, audience fastapi-m2m:auth, 8-hour expiry", body = AccessToken),
              (status = 400, description = "grant_type other than client_credentials", body = domain::ErrorBody),
              (status = 401, description = "invalid client credentials", body = domain::ErrorBody),
              (status = 402, description = "subscription inactive", body = domain::ErrorBody),
              (status = 404, description = "organisation not found", body = domain::ErrorBody),
              (status = 422, description = "missing X-Tenant or form field", body = domain::ErrorBody),
              (status = 429, description = "too many failed attempts for this client; see Retry-After", body = domain::ErrorBody)))]
async fn service_login(
    req: HttpRequest,
    state: web::Data<AppState>,
    tokens: web::Data<Tokens>,
    form: web::Form<ServiceLoginForm>,
) -> Result<web::Json<AccessToken>, ApiError> {
    let tenant_ref = tenants::header(&req)?;
    let form = form.into_inner();
    if let Some(grant) = form.grant_type.as_deref().filter(|g| *g != "client_credentials") {
        return Err(ApiError::BadRequest(format!("grant_type must be client_credentials, got {grant:?}")));
    }
    let client_id = required(form.client_id, "client_id")?;
    let secret = required(form.client_secret, "client_secret")?;
    let mut conn = db::conn(&state.pool).await?;
    let tenant = tenants::require(&mut conn, &tenant_ref).await?;
    let throttle_key = format!("sa:{}:{}", tenant.id, client_id.trim());
    if let Some(wait) = state.throttle.locked(&throttle_key) {
        return Err(ApiError::TooManyAttempts(wait));
    }
    let account: Option<(Uuid, String, i32, bool)> = service_accounts::table
        .filter(service_accounts::tenant_id.eq(tenant.id))
        .filter(service_accounts::client_id.eq(client_id.trim()))
        .select((
            service_accounts::id,
            service_accounts::secret_hash,
            service_accounts::secret_version,
            service_accounts::is_active,
        ))
        .first(&mut conn)
        .await
        .optional()?;
    drop(conn);
    let (hash, candidate) = match account {
        Some((id, hash, version, active)) => (Some(hash), active.then_some((id, version))),
        None => (None, None),
    };
    let secret_ok = state.hasher.verify(secret, hash).await?;
    let Some((account_id, version)) = candidate.filter(|_| secret_ok) else {
        state.throttle.failed(&throttle_key);
        return Err(ApiError::Unauthorized("invalid client credentials"));
    };
    state.throttle.succeeded(&throttle_key);
    if !tenant.subscription_active {
        return Err(ApiError::PaymentRequired);
    }
    let mut conn = db::conn(&state.pool).await?;
    diesel::update(service_accounts::table.filter(service_accounts::id.eq(account_id)))
        .set(service_accounts::last_login_at.eq(OffsetDateTime::now_utc()))
        .execute(&mut conn)
        .await?;
    Ok(web::Json(AccessToken::bearer(tokens.issue_service(tenant.id, account_id, version)?)))
}

/// Mints a service account; the response carries the only copy of its secret.
#[utoipa::path(post, path = "/api/v1/admin/service-accounts", tag = "service accounts",
    request_body = CreateAccount,
    responses((status = 201, body = AccountCredentials), (status = 400, body = domain::ErrorBody),
              (status = 401, body = domain::ErrorBody), (status = 403, body = domain::ErrorBody),
              (status = 422, body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn create_account(
    admin: OrgAdmin,
    state: web::Data<AppState>,
    body: Json<CreateAccount>,
) -> Result<HttpResponse, ApiError> {
    let name = valid_name(&body.name)?;
    let client_id = format!("sa_{}", auth::token::random_hex(16));
    let secret = auth::token::random_hex(32);
    let hash = state.hasher.hash(secret.clone()).await?;
    let id = Uuid::now_v7();
    let mut conn = db::conn(&state.pool).await?;
    diesel::insert_into(service_accounts::table)
        .values((
            service_accounts::id.eq(id),
            service_accounts::tenant_id.eq(admin.tenant_id),
            service_accounts::name.eq(&name),
            service_accounts::client_id.eq(&client_id),
            service_accounts::secret_hash.eq(&hash),
        ))
        .execute(&mut conn)
        .await?;
    Ok(HttpResponse::Created().json(AccountCredentials { id, client_id, client_secret: secret, name }))
}

/// The organisation's service accounts, oldest first, revoked ones included.
#[utoipa::path(get, path = "/api/v1/admin/service-accounts", tag = "service accounts", params(PageQuery),
    responses((status = 200, body = Paginated<AccountView>), (status = 401, body = domain::ErrorBody),
              (status = 403, body = domain::ErrorBody), (status = 422, body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn list_accounts(
    admin: OrgAdmin,
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Paginated<AccountView>>, ApiError> {
    let page = query.page()?;
    let mut conn = db::conn(&state.pool).await?;
    let scoped = || service_accounts::table.filter(service_accounts::tenant_id.eq(admin.tenant_id));
    let rows = scoped()
        .order((service_accounts::created_at, service_accounts::id))
        .offset(page.offset())
        .limit(page.limit())
        .select(Account::as_select())
        .load(&mut conn)
        .await?;
    let page = paginated(rows, page, scoped().count().get_result(&mut conn)).await?;
    Ok(web::Json(page.map(AccountView::from)))
}

async fn find(conn: &mut db::Conn, tenant_id: Uuid, id: Uuid) -> Result<Account, ApiError> {
    service_accounts::table
        .filter(service_accounts::tenant_id.eq(tenant_id))
        .filter(service_accounts::id.eq(id))
        .select(Account::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| ApiError::not_found("service account"))
}

/// One service account.
#[utoipa::path(get, path = "/api/v1/admin/service-accounts/{service_account_id}", tag = "service accounts",
    params(("service_account_id" = Uuid, Path)),
    responses((status = 200, body = AccountView), (status = 401, body = domain::ErrorBody),
              (status = 403, body = domain::ErrorBody), (status = 404, body = domain::ErrorBody),
              (status = 422, description = "not a UUID", body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn get_account(
    admin: OrgAdmin,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<AccountView>, ApiError> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(web::Json(find(&mut conn, admin.tenant_id, *id).await?.into()))
}

/// Revokes a service account: no more logins; tokens already issued live until they expire.
/// Revoking a revoked account changes nothing.
#[utoipa::path(delete, path = "/api/v1/admin/service-accounts/{service_account_id}", tag = "service accounts",
    params(("service_account_id" = Uuid, Path)),
    responses((status = 204), (status = 401, body = domain::ErrorBody), (status = 403, body = domain::ErrorBody),
              (status = 404, body = domain::ErrorBody), (status = 422, body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn revoke_account(
    admin: OrgAdmin,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = db::conn(&state.pool).await?;
    let account = find(&mut conn, admin.tenant_id, *id).await?;
    if account.is_active {
        diesel::update(
            service_accounts::table
                .filter(service_accounts::tenant_id.eq(admin.tenant_id))
                .filter(service_accounts::id.eq(account.id)),
        )
        .set((service_accounts::is_active.eq(false), service_accounts::revoked_at.eq(OffsetDateTime::now_utc())))
        .execute(&mut conn)
        .await?;
    }
    Ok(HttpResponse::NoContent().finish())
}

/// Issues a new secret. The old secret and every token issued before stop working at once.
#[utoipa::path(post, path = "/api/v1/admin/service-accounts/{service_account_id}/rotate-secret", tag = "service accounts",
    params(("service_account_id" = Uuid, Path)),
    responses((status = 200, body = AccountCredentials), (status = 401, body = domain::ErrorBody),
              (status = 403, body = domain::ErrorBody), (status = 404, body = domain::ErrorBody),
              (status = 409, description = "the account is revoked", body = domain::ErrorBody),
              (status = 422, body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn rotate_secret(
    admin: OrgAdmin,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<AccountCredentials>, ApiError> {
    let mut conn = db::conn(&state.pool).await?;
    let account = find(&mut conn, admin.tenant_id, *id).await?;
    drop(conn);
    if !account.is_active {
        return Err(ApiError::Conflict("the service account is revoked; create a new one".into()));
    }
    let secret = auth::token::random_hex(32);
    let hash = state.hasher.hash(secret.clone()).await?;
    let mut conn = db::conn(&state.pool).await?;
    let updated = diesel::update(
        service_accounts::table
            .filter(service_accounts::tenant_id.eq(admin.tenant_id))
            .filter(service_accounts::id.eq(account.id))
            .filter(service_accounts::is_active.eq(true)),
    )
    .set((
        service_accounts::secret_hash.eq(&hash),
        service_accounts::secret_version.eq(service_accounts::secret_version + 1),
    ))
    .execute(&mut conn)
    .await?;
    if updated == 0 {
        return Err(ApiError::Conflict("the service account is revoked; create a new one".into()));
    }
    Ok(web::Json(AccountCredentials {
        id: account.id,
        client_id: account.client_id,
        client_secret: secret,
        name: account.name,
    }))
}
