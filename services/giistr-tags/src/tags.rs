//! Tags: `GET /api/v1/tag/{id}`, `GET /api/v1/tags`, `POST /api/v1/tag`, `PUT /api/v1/tag`,
//! `DELETE /api/v1/tag/{id}`. Every query is scoped to the caller: another user's tag is 404.

use actix_web::{HttpResponse, web};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use service_kit::db::{self, Pool};
use service_kit::http::Json;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiError;
use crate::identity::Caller;
use crate::schema::giistr::tags;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/v1/tag").route(web::post().to(create_tag)).route(web::put().to(update_tag)))
        .service(web::resource("/api/v1/tag/{id}").route(web::get().to(get_tag)).route(web::delete().to(delete_tag)))
        .service(web::resource("/api/v1/tags").route(web::get().to(list_tags)));
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = tags, check_for_backend(diesel::pg::Pg))]
pub struct Tag {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A tag.
#[derive(Debug, Serialize, ToSchema)]
pub struct TagView {
    id: Uuid,
    /// Unix seconds.
    created_at: i64,
    /// Unix seconds.
    updated_at: i64,
    /// The giistr user the tag belongs to.
    user_id: Uuid,
    name: String,
}

impl From<Tag> for TagView {
    fn from(t: Tag) -> Self {
        Self {
            id: t.id,
            created_at: t.created_at.unix_timestamp(),
            updated_at: t.updated_at.unix_timestamp(),
            user_id: t.user_id,
            name: t.name,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateTag {
    /// 1 to 255 characters; surrounding spaces are trimmed.
    #[schema(min_length = 1, max_length = 255)]
    name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateTag {
    id: Uuid,
    /// The new name; the tag is returned unchanged when absent.
    #[schema(min_length = 1, max_length = 255)]
    name: Option<String>,
}

/// A tag name as stored: trimmed, 1 to 255 characters, no control characters.
fn valid_name(raw: &str) -> Result<String, ApiError> {
    domain::names::clean("name", raw, 1..=255).map_err(ApiError::BadRequest)
}

/// The caller's tag `id`, if it is theirs.
pub async fn find(conn: &mut db::Conn, user_id: Uuid, id: Uuid) -> Result<Option<Tag>, ApiError> {
    Ok(tags::table
        .filter(tags::id.eq(id))
        .filter(tags::user_id.eq(user_id))
        .select(Tag::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// One of the caller's tags.
#[utoipa::path(get, path = "/api/v1/tag/{id}", tag = "tags",
    params(("id" = Uuid, Path, description = "tag id")),
    responses((status = 200, body = TagView), (status = 400, body = domain::ErrorBody),
              (status = 401, body = domain::ErrorBody), (status = 404, body = domain::ErrorBody)),
    security(("github_token" = [])))]
async fn get_tag(caller: Caller, pool: web::Data<Pool>, id: web::Path<Uuid>) -> Result<web::Json<TagView>, ApiError> {
    let mut conn = db::conn(&pool).await?;
    let tag = find(&mut conn, caller.user_id, *id).await?.ok_or(ApiError::NotFound("tag not found"))?;
    Ok(web::Json(tag.into()))
}

/// The caller's tags, oldest first.
#[utoipa::path(get, path = "/api/v1/tags", tag = "tags",
    responses((status = 200, body = [TagView]), (status = 401, body = domain::ErrorBody)),
    security(("github_token" = [])))]
async fn list_tags(caller: Caller, pool: web::Data<Pool>) -> Result<web::Json<Vec<TagView>>, ApiError> {
    let mut conn = db::conn(&pool).await?;
    let rows = tags::table
        .filter(tags::user_id.eq(caller.user_id))
        .order((tags::created_at, tags::id))
        .select(Tag::as_select())
        .load(&mut conn)
        .await?;
    Ok(web::Json(rows.into_iter().map(Into::into).collect()))
}

/// Creates a tag for the caller.
#[utoipa::path(post, path = "/api/v1/tag", tag = "tags", request_body = CreateTag,
    responses((status = 201, body = TagView), (status = 400, body = domain::ErrorBody),
              (status = 401, body = domain::ErrorBody), (status = 409, description = "the caller has a tag of that name", body = domain::ErrorBody)),
    security(("github_token" = [])))]
async fn create_tag(caller: Caller, pool: web::Data<Pool>, body: Json<CreateTag>) -> Result<HttpResponse, ApiError> {
    let name = valid_name(&body.name)?;
    let now = OffsetDateTime::now_utc();
    let mut conn = db::conn(&pool).await?;
    let tag = diesel::insert_into(tags::table)
        .values((
            tags::id.eq(Uuid::now_v7()),
            tags::user_id.eq(caller.user_id),
            tags::name.eq(name),
            tags::created_at.eq(now),
            tags::updated_at.eq(now),
        ))
        .returning(Tag::as_returning())
        .get_result(&mut conn)
        .await?;
    Ok(HttpResponse::Created().json(TagView::from(tag)))
}

/// Renames one of the caller's tags.
#[utoipa::path(put, path = "/api/v1/tag", tag = "tags", request_body = UpdateTag,
    responses((status = 200, body = TagView), (status = 400, body = domain::ErrorBody),
              (status = 401, body = domain::ErrorBody), (status = 404, body = domain::ErrorBody),
              (status = 409, description = "the caller has another tag of that name", body = domain::ErrorBody)),
    security(("github_token" = [])))]
async fn update_tag(
    caller: Caller,
    pool: web::Data<Pool>,
    body: Json<UpdateTag>,
) -> Result<web::Json<TagView>, ApiError> {
    let mut conn = db::conn(&pool).await?;
    let tag = match &body.name {
        None => find(&mut conn, caller.user_id, body.id).await?,
        Some(raw) => {
            let name = valid_name(raw)?;
            diesel::update(tags::table.filter(tags::id.eq(body.id)).filter(tags::user_id.eq(caller.user_id)))
                .set((tags::name.eq(name), tags::updated_at.eq(OffsetDateTime::now_utc())))
                .returning(Tag::as_returning())
                .get_result(&mut conn)
                .await
                .optional()?
        }
    };
    tag.map(|t| web::Json(t.into())).ok_or(ApiError::NotFound("tag not found"))
}

/// Deletes one of the caller's tags and its associations; returns the deleted tag.
#[utoipa::path(delete, path = "/api/v1/tag/{id}", tag = "tags",
    params(("id" = Uuid, Path, description = "tag id")),
    responses((status = 200, body = TagView), (status = 400, body = domain::ErrorBody),
              (status = 401, body = domain::ErrorBody), (status = 404, body = domain::ErrorBody)),
    security(("github_token" = [])))]
async fn delete_tag(
    caller: Caller,
    pool: web::Data<Pool>,
    id: web::Path<Uuid>,
) -> Result<web::Json<TagView>, ApiError> {
    let mut conn = db::conn(&pool).await?;
    let tag = diesel::delete(tags::table.filter(tags::id.eq(*id)).filter(tags::user_id.eq(caller.user_id)))
        .returning(Tag::as_returning())
        .get_result(&mut conn)
        .await
        .optional()?;
    tag.map(|t| web::Json(t.into())).ok_or(ApiError::NotFound("tag not found"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(super::valid_name("  rust ").ok().as_deref(), Some("rust"));
        assert!(super::valid_name("   ").is_err());
        assert!(super::valid_name(&"x".repeat(256)).is_err());
        assert!(super::valid_name(&"é".repeat(255)).is_ok());
        assert!(super::valid_name("a\u{0}b").is_err());
    }
}
