//! Tenants (organisations): finding one from the `X-Tenant` header of the two login calls, and
//! the operator's provisioning (see [`crate::admin`]).

use actix_web::HttpRequest;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use service_kit::db;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::ApiError;
use crate::schema::dokko::tenants;

pub const TENANT_HEADER: &str = "x-tenant";

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = tenants, check_for_backend(diesel::pg::Pg))]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    pub subscription_active: bool,
    pub created_at: OffsetDateTime,
}

/// The `X-Tenant` header: an organisation name or a tenant UUID. Missing or empty is 422 with a
/// message naming the header.
pub fn header(req: &HttpRequest) -> Result<String, ApiError> {
    let value = req
        .headers()
        .get(TENANT_HEADER)
        .map(|v| v.to_str().map(str::trim).map(str::to_owned))
        .transpose()
        .map_err(|_| ApiError::Unprocessable("the X-Tenant header must be text".into()))?
        .unwrap_or_default();
    if value.is_empty() {
        return Err(ApiError::Unprocessable(
            "the X-Tenant header is required: your organisation name or tenant UUID".into(),
        ));
    }
    Ok(value)
}

/// The tenant named (case-insensitively) or identified by `name_or_id`.
pub async fn find(conn: &mut db::Conn, name_or_id: &str) -> Result<Option<Tenant>, ApiError> {
    let query = tenants::table.select(Tenant::as_select()).into_boxed();
    let query = match Uuid::parse_str(name_or_id) {
        Ok(id) => query.filter(tenants::id.eq(id)),
        Err(_) => query.filter(tenants::name.eq(name_or_id.to_lowercase())),
    };
    Ok(query.first(conn).await.optional()?)
}

/// [`find`], or 404.
pub async fn require(conn: &mut db::Conn, name_or_id: &str) -> Result<Tenant, ApiError> {
    find(conn, name_or_id).await?.ok_or_else(|| ApiError::not_found("organisation"))
}

/// A tenant name: 2 to 63 lower-case letters, digits and dashes, starting with a letter or digit
/// (it is what people type in `X-Tenant`).
pub fn valid_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim().to_lowercase();
    let ok = (2..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if ok {
        Ok(name)
    } else {
        Err(ApiError::BadRequest(format!(
            "organisation name {raw:?} must be 2 to 63 lower-case letters, digits and dashes, not starting with a dash"
        )))
    }
}

/// Turns the subscription on or off.
pub async fn set_subscription(conn: &mut db::Conn, tenant_id: Uuid, active: bool) -> Result<(), ApiError> {
    let updated = diesel::update(tenants::table.filter(tenants::id.eq(tenant_id)))
        .set(tenants::subscription_active.eq(active))
        .execute(conn)
        .await?;
    if updated == 0 {
        return Err(ApiError::not_found("organisation"));
    }
    Ok(())
}
