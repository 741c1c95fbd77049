//! Tag–repository associations: `POST /api/v1/tag/{tag_id}/repo/{repo_id}`,
//! `DELETE /api/v1/repo-tag-assoc/{id}`, `GET /api/v1/tags/repo/{id}` (a repository's tags) and
//! `GET /api/v1/repos/tag/{id}` (a tag's repositories). The database guarantees an association
//! joins a tag and a repository of the same user, once.

use actix_web::{HttpResponse, web};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde::Serialize;
use service_kit::db::{self, Pool};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiError;
use crate::identity::Caller;
use crate::repos::{self, Repo, RepoView};
use crate::schema::giistr::{repo_tag_assocs, repos as repos_table, tags as tags_table};
use crate::tags::{self, Tag, TagView};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/v1/tag/{tag_id}/repo/{repo_id}").route(web::post().to(associate)))
        .service(web::resource("/api/v1/repo-tag-assoc/{id}").route(web::delete().to(dissociate)))
        .service(web::resource("/api/v1/tags/repo/{id}").route(web::get().to(tags_of_repo)))
        .service(web::resource("/api/v1/repos/tag/{id}").route(web::get().to(repos_of_tag)));
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = repo_tag_assocs, check_for_backend(diesel::pg::Pg))]
struct Assoc {
    id: Uuid,
    repo_id: Uuid,
    tag_id: Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssocView {
    id: Uuid,
    repo_id: Uuid,
    tag_id: Uuid,
}

/// An association with its repository and tag.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssocWithParts {
    assoc: AssocView,
    repo: RepoView,
    tag: TagView,
}

fn with_parts(assoc: Assoc, repo: Repo, tag: Tag) -> AssocWithParts {
    AssocWithParts {
        assoc: AssocView { id: assoc.id, repo_id: assoc.repo_id, tag_id: assoc.tag_id },
        repo: repo.into(),
        tag: tag.into(),
    }
}

/// Puts one of the caller's tags on one of the caller's repositories.
#[utoipa::path(post, path = "/api/v1/tag/{tag_id}/repo/{repo_id}", tag = "associations",
    params(("tag_id" = Uuid, Path), ("repo_id" = Uuid, Path)),
    responses((status = 201, body = AssocWithParts), (status = 400, body = domain::ErrorBody),
              (status = 401, body = domain::ErrorBody), (status = 404, body = domain::ErrorBody),
              (status = 409, description = "the tag is on the repository already", body = domain::ErrorBody)),
    security(("github_token" = [])))]
async fn associate(
    caller: Caller,
    pool: web::Data<Pool>,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (tag_id, repo_id) = path.into_inner();
    let user_id = caller.user_id;
    let mut conn = db::conn(&pool).await?;
    let tag = tags::find(&mut conn, user_id, tag_id).await?.ok_or(ApiError::NotFound("tag not found"))?;
    let repo = repos::find(&mut conn, user_id, repo_id).await?.ok_or(ApiError::NotFound("repository not found"))?;
    let assoc = diesel::insert_into(repo_tag_assocs::table)
        .values((
            repo_tag_assocs::id.eq(Uuid::now_v7()),
            repo_tag_assocs::user_id.eq(user_id),
            repo_tag_assocs::tag_id.eq(tag.id),
            repo_tag_assocs::repo_id.eq(repo.id),
            repo_tag_assocs::created_at.eq(OffsetDateTime::now_utc()),
        ))
        .returning(Assoc::as_returning())
        .get_result(&mut conn)
        .await?;
    Ok(HttpResponse::Created().json(with_parts(assoc, repo, tag)))
}

/// Removes an association; returns it with its repository and tag.
#[utoipa::path(delete, path = "/api/v1/repo-tag-assoc/{id}", tag = "associations",
    params(("id" = Uuid, Path, description = "association id")),
    responses((status = 200, body = AssocWithParts), (status = 400, body = domain::ErrorBody),
              (status = 401, body = domain::ErrorBody), (status = 404, body = domain::ErrorBody)),
    security(("github_token" = [])))]
async fn dissociate(
    caller: Caller,
    pool: web::Data<Pool>,
    id: web::Path<Uuid>,
) -> Result<web::Json<AssocWithParts>, ApiError> {
    let (id, user_id) = (*id, caller.user_id);
    let mut conn = db::conn(&pool).await?;
    let removed = conn
        .transaction::<_, ApiError, _>(async move |conn| {
            let found = repo_tag_assocs::table
                .inner_join(tags_table::table.on(tags_table::id.eq(repo_tag_assocs::tag_id)))
                .inner_join(repos_table::table.on(repos_table::id.eq(repo_tag_assocs::repo_id)))
                .filter(repo_tag_assocs::id.eq(id))
                .filter(repo_tag_assocs::user_id.eq(user_id))
                .select((Assoc::as_select(), Repo::as_select(), Tag::as_select()))
                .for_update()
                .first::<(Assoc, Repo, Tag)>(conn)
                .await
                .optional()?;
            if found.is_some() {
                diesel::delete(repo_tag_assocs::table.find(id)).execute(conn).await?;
            }
            Ok(found)
        })
        .await?;
    let (assoc, repo, tag) = removed.ok_or(ApiError::NotFound("association not found"))?;
    Ok(web::Json(with_parts(assoc, repo, tag)))
}

/// The tags on one of the caller's repositories, in the order they were put on.
#[utoipa::path(get, path = "/api/v1/tags/repo/{id}", tag = "associations",
    params(("id" = Uuid, Path, description = "repository id")),
    responses((status = 200, body = [TagView]), (status = 400, body = domain::ErrorBody),
              (status = 401, body = domain::ErrorBody), (status = 404, body = domain::ErrorBody)),
    security(("github_token" = [])))]
async fn tags_of_repo(
    caller: Caller,
    pool: web::Data<Pool>,
    id: web::Path<Uuid>,
) -> Result<web::Json<Vec<TagView>>, ApiError> {
    let mut conn = db::conn(&pool).await?;
    let repo = repos::find(&mut conn, caller.user_id, *id).await?.ok_or(ApiError::NotFound("repository not found"))?;
    let rows = repo_tag_assocs::table
        .inner_join(tags_table::table.on(tags_table::id.eq(repo_tag_assocs::tag_id)))
        .filter(repo_tag_assocs::repo_id.eq(repo.id))
        .filter(repo_tag_assocs::user_id.eq(caller.user_id))
        .order((repo_tag_assocs::created_at, repo_tag_assocs::id))
        .select(Tag::as_select())
        .load(&mut conn)
        .await?;
    Ok(web::Json(rows.into_iter().map(Into::into).collect()))
}

/// The repositories carrying one of the caller's tags, in the order it was put on them.
#[utoipa::path(get, path = "/api/v1/repos/tag/{id}", tag = "associations",
    params(("id" = Uuid, Path, description = "tag id")),
    responses((status = 200, body = [RepoView]), (status = 400, body = domain::ErrorBody),
              (status = 401, body = domain::ErrorBody), (status = 404, body = domain::ErrorBody)),
    security(("github_token" = [])))]
async fn repos_of_tag(
    caller: Caller,
    pool: web::Data<Pool>,
    id: web::Path<Uuid>,
) -> Result<web::Json<Vec<RepoView>>, ApiError> {
    let mut conn = db::conn(&pool).await?;
    let tag = tags::find(&mut conn, caller.user_id, *id).await?.ok_or(ApiError::NotFound("tag not found"))?;
    let rows = repo_tag_assocs::table
        .inner_join(repos_table::table.on(repos_table::id.eq(repo_tag_assocs::repo_id)))
        .filter(repo_tag_assocs::tag_id.eq(tag.id))
        .filter(repo_tag_assocs::user_id.eq(caller.user_id))
        .order((repo_tag_assocs::created_at, repo_tag_assocs::id))
        .select(Repo::as_select())
        .load(&mut conn)
        .await?;
    Ok(web::Json(rows.into_iter().map(Into::into).collect()))
}
