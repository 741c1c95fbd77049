//! `GET /api/v1/user/{id}` and `GET /api/v1/users`: giistr users (the seed's debugging routes).

use actix_web::web;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Serialize;
use service_kit::db::{self, Pool};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiError;
use crate::identity::Caller;
use crate::schema::giistr::users;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/v1/user/{id}").route(web::get().to(get_user)))
        .service(web::resource("/api/v1/users").route(web::get().to(list_users)));
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
struct User {
    id: Uuid,
    github_user_id: i64,
    token_id: Uuid,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

/// A giistr user.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// The giistr user id.
    id: Uuid,
    /// Unix seconds.
    created_at: i64,
    /// Unix seconds.
    updated_at: i64,
    /// An opaque id of the stored GitHub token (never the token).
    token_id: Uuid,
    /// The user's GitHub id.
    github_user_id: String,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            created_at: u.created_at.unix_timestamp(),
            updated_at: u.updated_at.unix_timestamp(),
            token_id: u.token_id,
            github_user_id: u.github_user_id.to_string(),
        }
    }
}

/// One user.
#[utoipa::path(get, path = "/api/v1/user/{id}", tag = "users",
    params(("id" = Uuid, Path, description = "giistr user id")),
    responses((status = 200, body = UserView), (status = 400, body = domain::ErrorBody),
              (status = 401, body = domain::ErrorBody), (status = 404, body = domain::ErrorBody)),
    security(("github_token" = [])))]
async fn get_user(
    _caller: Caller,
    pool: web::Data<Pool>,
    id: web::Path<Uuid>,
) -> Result<web::Json<UserView>, ApiError> {
    let mut conn = db::conn(&pool).await?;
    let user = users::table.find(*id).select(User::as_select()).first(&mut conn).await.optional()?;
    user.map(|u| web::Json(u.into())).ok_or(ApiError::NotFound("user not found"))
}

/// Every user, oldest first.
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    responses((status = 200, body = [UserView]), (status = 401, body = domain::ErrorBody)),
    security(("github_token" = [])))]
async fn list_users(_caller: Caller, pool: web::Data<Pool>) -> Result<web::Json<Vec<UserView>>, ApiError> {
    let mut conn = db::conn(&pool).await?;
    let rows = users::table.order((users::created_at, users::id)).select(User::as_select()).load(&mut conn).await?;
    Ok(web::Json(rows.into_iter().map(Into::into).collect()))
}
