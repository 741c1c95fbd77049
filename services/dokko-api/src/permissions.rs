//! Permissions: `GET/POST /api/v1/permissions`, `GET/PATCH/DELETE /api/v1/permissions/{id}`.
//! Names are unique per tenant; deleting a permission removes its repository mappings.

use actix_web::{HttpResponse, web};
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
use crate::identity::Caller;
use crate::schema::dokko::permissions;
use crate::{AppState, paginated};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/permissions")
            .route(web::get().to(list_permissions))
            .route(web::post().to(create_permission)),
    )
    .service(
        web::resource("/api/v1/permissions/{id}")
            .route(web::get().to(get_permission))
            .route(web::patch().to(update_permission))
            .route(web::delete().to(delete_permission)),
    );
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize, ToSchema)]
#[diesel(table_name = permissions, check_for_backend(diesel::pg::Pg))]
pub struct Permission {
    id: Uuid,
    name: String,
    tenant_id: Uuid,
    #[serde(with = "domain::timestamp::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PermissionName {
    /// 1 to 255 characters; surrounding spaces are trimmed.
    #[schema(min_length = 1, max_length = 255)]
    name: String,
}

fn valid_name(raw: &str) -> Result<String, ApiError> {
    domain::names::clean("name", raw, 1..=255).map_err(ApiError::BadRequest)
}

/// The organisation's permissions, oldest first.
#[utoipa::path(get, path = "/api/v1/permissions", tag = "permissions", params(PageQuery),
    responses((status = 200, body = Paginated<Permission>), (status = 401, body = domain::ErrorBody),
              (status = 402, body = domain::ErrorBody), (status = 422, body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn list_permissions(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Paginated<Permission>>, ApiError> {
    let page = query.page()?;
    let mut conn = db::conn(&state.pool).await?;
    let scoped = || permissions::table.filter(permissions::tenant_id.eq(caller.tenant_id));
    let rows = scoped()
        .order((permissions::created_at, permissions::id))
        .offset(page.offset())
        .limit(page.limit())
        .select(Permission::as_select())
        .load(&mut conn)
        .await?;
    Ok(web::Json(paginated(rows, page, scoped().count().get_result(&mut conn)).await?))
}

/// Creates a permission.
#[utoipa::path(post, path = "/api/v1/permissions", tag = "permissions", request_body = PermissionName,
    responses((status = 201, body = Permission), (status = 400, body = domain::ErrorBody),
              (status = 401, body = domain::ErrorBody), (status = 409, description = "the name is taken", body = domain::ErrorBody),
              (status = 422, body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn create_permission(
    caller: Caller,
    state: web::Data<AppState>,
    body: Json<PermissionName>,
) -> Result<HttpResponse, ApiError> {
    let name = valid_name(&body.name)?;
    let mut conn = db::conn(&state.pool).await?;
    let permission = diesel::insert_into(permissions::table)
        .values((
            permissions::id.eq(Uuid::now_v7()),
            permissions::tenant_id.eq(caller.tenant_id),
            permissions::name.eq(&name),
        ))
        .returning(Permission::as_returning())
        .get_result(&mut conn)
        .await?;
    Ok(HttpResponse::Created().json(permission))
}

/// One permission.
#[utoipa::path(get, path = "/api/v1/permissions/{id}", tag = "permissions", params(("id" = Uuid, Path)),
    responses((status = 200, body = Permission), (status = 401, body = domain::ErrorBody),
              (status = 404, body = domain::ErrorBody), (status = 422, description = "not a UUID", body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn get_permission(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<Permission>, ApiError> {
    let mut conn = db::conn(&state.pool).await?;
    let permission = permissions::table
        .filter(permissions::tenant_id.eq(caller.tenant_id))
        .filter(permissions::id.eq(*id))
        .select(Permission::as_select())
        .first(&mut conn)
        .await
        .optional()?
        .ok_or_else(|| ApiError::not_found("permission"))?;
    Ok(web::Json(permission))
}

/// Renames a permission; its repository mappings stay.
#[utoipa::path(patch, path = "/api/v1/permissions/{id}", tag = "permissions", params(("id" = Uuid, Path)),
    request_body = PermissionName,
    responses((status = 200, body = Permission), (status = 400, body = domain::ErrorBody),
              (status = 401, body = domain::ErrorBody), (status = 404, body = domain::ErrorBody),
              (status = 409, description = "the name is taken", body = domain::ErrorBody),
              (status = 422, body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn update_permission(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: Json<PermissionName>,
) -> Result<web::Json<Permission>, ApiError> {
    let name = valid_name(&body.name)?;
    let mut conn = db::conn(&state.pool).await?;
    let permission = diesel::update(
        permissions::table.filter(permissions::tenant_id.eq(caller.tenant_id)).filter(permissions::id.eq(*id)),
    )
    .set(permissions::name.eq(&name))
    .returning(Permission::as_returning())
    .get_result(&mut conn)
    .await
    .optional()?
    .ok_or_else(|| ApiError::not_found("permission"))?;
    Ok(web::Json(permission))
}

/// Deletes a permission; repositories that had it lose it.
#[utoipa::path(delete, path = "/api/v1/permissions/{id}", tag = "permissions", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 401, body = domain::ErrorBody), (status = 404, body = domain::ErrorBody),
              (status = 422, body = domain::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn delete_permission(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = db::conn(&state.pool).await?;
    let deleted = diesel::delete(
        permissions::table.filter(permissions::tenant_id.eq(caller.tenant_id)).filter(permissions::id.eq(*id)),
    )
    .execute(&mut conn)
    .await?;
    if deleted == 0 {
        return Err(ApiError::not_found("permission"));
    }
    Ok(HttpResponse::NoContent().finish())
}
