//! Repositories: `GET /api/v1/repo/{id}`, `GET /api/v1/repos`, `POST /api/v1/repo`,
//! `PUT /api/v1/repo`, `DELETE /api/v1/repo/{id}`. Every query is scoped to the caller.

use actix_web::{HttpResponse, web};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Deserializer, Serialize};
use service_kit::db::{self, Pool};
use service_kit::http::Json;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiError;
use crate::identity::Caller;
use crate::schema::giistr::repos;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/v1/repo").route(web::post().to(create_repo)).route(web::put().to(update_repo)))
        .service(web::resource("/api/v1/repo/{id}").route(web::get().to(get_repo)).route(web::delete().to(delete_repo)))
        .service(web::resource("/api/v1/repos").route(web::get().to(list_repos)));
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = repos, check_for_backend(diesel::pg::Pg))]
pub struct Repo {
    pub id: Uuid,
    pub user_id: Uuid,
    pub github_repo_id: String,
    pub repository_name: Option<String>,
    pub user_login: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A repository the caller registered.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepoView {
    id: Uuid,
    /// Unix seconds.
    created_at: i64,
    /// Unix seconds.
    updated_at: i64,
    user_id: Uuid,
    /// GitHub's id of the repository, as a string.
    github_repo_id: String,
    /// `owner/name`, when the client gave it.
    #[serde(skip_serializing_if = "Option::is_none")]
    repository_name: Option<String>,
    /// The GitHub login of the client's user, when the client gave it.
    #[serde(skip_serializing_if = "Option::is_none")]
    user_login: Option<String>,
}

impl From<Repo> for RepoView {
    fn from(r: Repo) -> Self {
        Self {
            id: r.id,
            created_at: r.created_at.unix_timestamp(),
            updated_at: r.updated_at.unix_timestamp(),
            user_id: r.user_id,
            github_repo_id: r.github_repo_id,
            repository_name: r.repository_name,
            user_login: r.user_login,
        }
    }
}

/// `github_repo_id` as a JSON string or a whole number (browsers send the number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubRepoId(String);

impl<'de> Deserialize<'de> for GithubRepoId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = GithubRepoId;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a non-negative whole number")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<GithubRepoId, E> {
                Ok(GithubRepoId(v.to_owned()))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<GithubRepoId, E> {
                Ok(GithubRepoId(v.to_string()))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<GithubRepoId, E> {
                u64::try_from(v)
                    .map(|v| GithubRepoId(v.to_string()))
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
        }
        // Any other shape, and a missing field, get serde's own message naming what came.
        d.deserialize_any(Visitor)
    }
}

impl GithubRepoId {
    fn validated(&self) -> Result<String, ApiError> {
        let id = self.0.trim();
        if id.is_empty() {
            return Err(ApiError::BadRequest("github_repo_id must not be empty".into()));
        }
        if id.chars().count() > 100 || id.chars().any(char::is_control) {
            return Err(ApiError::BadRequest("github_repo_id must be at most 100 printable characters".into()));
        }
        Ok(id.to_owned())
    }
}

fn optional_text(field: &str, value: Option<&str>) -> Result<Option<String>, ApiError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) if v.chars().count() > 255 || v.chars().any(char::is_control) => {
            Err(ApiError::BadRequest(format!("{field} must be at most 255 printable characters")))
        }
        Some(v) => Ok(Some(v.to_owned())),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateRepo {
    /// GitHub's id of the repository (string or number).
    #[schema(value_type = String, min_length = 1, max_length = 100)]
    github_repo_id: GithubRepoId,
    /// Optional `owner/name`, stored and returned.
    #[schema(max_length = 255)]
    repository_name: Option<String>,
    /// Optional GitHub login, stored and returned.
    #[schema(max_length = 255)]
    user_login: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateRepo {
    id: Uuid,
    #[schema(value_type = Option<String>, min_length = 1, max_length = 100)]
    github_repo_id: Option<GithubRepoId>,
    #[schema(max_length = 255)]
    repository_name: Option<String>,
    #[schema(max_length = 255)]
    user_login: Option<String>,
}

/// The caller's repository `id`, if it is theirs.
pub async fn find(conn: &mut db::Conn, user_id: Uuid, id: Uuid) -> Result<Option<Repo>, ApiError> {
    Ok(repos::table
        .filter(repos::id.eq(id))
        .filter(repos::user_id.eq(user_id))
        .select(Repo::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// One of the caller's repositories.
#[utoipa::path(get, path = "/api/v1/repo/{id}", tag = "repos",
    params(("id" = Uuid, Path, description = "repository id")),
    responses((status = 200, body = RepoView), (status = 400, body = domain::ErrorBody),
              (status = 401, body = domain::ErrorBody), (status = 404, body = domain::ErrorBody)),
    security(("github_token" = [])))]
async fn get_repo(caller: Caller, pool: web::Data<Pool>, id: web::Path<Uuid>) -> Result<web::Json<RepoView>, ApiError> {
    let mut conn = db::conn(&pool).await?;
    let repo = find(&mut conn, caller.user_id, *id).await?.ok_or(ApiError::NotFound("repository not found"))?;
    Ok(web::Json(repo.into()))
}

/// The caller's repositories, oldest first.
#[utoipa::path(get, path = "/api/v1/repos", tag = "repos",
    responses((status = 200, body = [RepoView]), (status = 401, body = domain::ErrorBody)),
    security(("github_token" = [])))]
async fn list_repos(caller: Caller, pool: web::Data<Pool>) -> Result<web::Json<Vec<RepoView>>, ApiError> {
    let mut conn = db::conn(&pool).await?;
    let rows = repos::table
        .filter(repos::user_id.eq(caller.user_id))
        .order((repos::created_at, repos::id))
        .select(Repo::as_select())
        .load(&mut conn)
        .await?;
    Ok(web::Json(rows.into_iter().map(Into::into).collect()))
}

/// Registers a GitHub repository for the caller.
#[utoipa::path(post, path = "/api/v1/repo", tag = "repos", request_body = CreateRepo,
    responses((status = 201, body = RepoView), (status = 400, body = domain::ErrorBody),
              (status = 401, body = domain::ErrorBody),
              (status = 409, description = "the caller registered this GitHub repository already", body = domain::ErrorBody)),
    security(("github_token" = [])))]
async fn create_repo(caller: Caller, pool: web::Data<Pool>, body: Json<CreateRepo>) -> Result<HttpResponse, ApiError> {
    let github_repo_id = body.github_repo_id.validated()?;
    let repository_name = optional_text("repository_name", body.repository_name.as_deref())?;
    let user_login = optional_text("user_login", body.user_login.as_deref())?;
    let now = OffsetDateTime::now_utc();
    let mut conn = db::conn(&pool).await?;
    let repo = diesel::insert_into(repos::table)
        .values((
            repos::id.eq(Uuid::now_v7()),
            repos::user_id.eq(caller.user_id),
            repos::github_repo_id.eq(github_repo_id),
            repos::repository_name.eq(repository_name),
            repos::user_login.eq(user_login),
            repos::created_at.eq(now),
            repos::updated_at.eq(now),
        ))
        .returning(Repo::as_returning())
        .get_result(&mut conn)
        .await?;
    Ok(HttpResponse::Created().json(RepoView::from(repo)))
}

#[derive(AsChangeset)]
#[diesel(table_name = repos)]
struct RepoChanges {
    github_repo_id: Option<String>,
    repository_name: Option<String>,
    user_login: Option<String>,
    updated_at: OffsetDateTime,
}

/// Changes one of the caller's repositories (only the fields given).
#[utoipa::path(put, path = "/api/v1/repo", tag = "repos", request_body = UpdateRepo,
    responses((status = 200, body = RepoView), (status = 400, body = domain::ErrorBody),
              (status = 401, body = domain::ErrorBody), (status = 404, body = domain::ErrorBody),
              (status = 409, description = "the caller registered that GitHub repository already", body = domain::ErrorBody)),
    security(("github_token" = [])))]
async fn update_repo(
    caller: Caller,
    pool: web::Data<Pool>,
    body: Json<UpdateRepo>,
) -> Result<web::Json<RepoView>, ApiError> {
    let changes = RepoChanges {
        github_repo_id: body.github_repo_id.as_ref().map(GithubRepoId::validated).transpose()?,
        repository_name: optional_text("repository_name", body.repository_name.as_deref())?,
        user_login: optional_text("user_login", body.user_login.as_deref())?,
        updated_at: OffsetDateTime::now_utc(),
    };
    let mut conn = db::conn(&pool).await?;
    let repo = if changes.github_repo_id.is_none() && changes.repository_name.is_none() && changes.user_login.is_none()
    {
        find(&mut conn, caller.user_id, body.id).await?
    } else {
        diesel::update(repos::table.filter(repos::id.eq(body.id)).filter(repos::user_id.eq(caller.user_id)))
            .set(&changes)
            .returning(Repo::as_returning())
            .get_result(&mut conn)
            .await
            .optional()?
    };
    repo.map(|r| web::Json(r.into())).ok_or(ApiError::NotFound("repository not found"))
}

/// Deletes one of the caller's repositories and its associations; returns the deleted one.
#[utoipa::path(delete, path = "/api/v1/repo/{id}", tag = "repos",
    params(("id" = Uuid, Path, description = "repository id")),
    responses((status = 200, body = RepoView), (status = 400, body = domain::ErrorBody),
              (status = 401, body = domain::ErrorBody), (status = 404, body = domain::ErrorBody)),
    security(("github_token" = [])))]
async fn delete_repo(
    caller: Caller,
    pool: web::Data<Pool>,
    id: web::Path<Uuid>,
) -> Result<web::Json<RepoView>, ApiError> {
    let mut conn = db::conn(&pool).await?;
    let repo = diesel::delete(repos::table.filter(repos::id.eq(*id)).filter(repos::user_id.eq(caller.user_id)))
        .returning(Repo::as_returning())
        .get_result(&mut conn)
        .await
        .optional()?;
    repo.map(|r| web::Json(r.into())).ok_or(ApiError::NotFound("repository not found"))
}

#[cfg(test)]
mod tests {
    use super::GithubRepoId;

    #[test]
    fn github_repo_id_accepts_string_or_number() {
        let parse = |json: &str| serde_json::from_str::<GithubRepoId>(json).map(|id| id.0);
        assert_eq!(parse("\"123\"").ok().as_deref(), Some("123"));
        assert_eq!(parse("123").ok().as_deref(), Some("123"));
        assert!(parse("-1").is_err());
        assert!(parse("1.5").is_err());
        assert!(parse("true").is_err());
    }
}
