//! The repository API of apps: `POST /api/repositories`, `DELETE /api/repositories/{id}`,
//! `PATCH /api/repositories/{id}/token`.
//!
//! A repository is one row per GitHub repository (keyed by GitHub's id, so a renamed repository
//! stays one), shared by every app that watches it; each app's link carries its own GitHub token
//! (encrypted) and delivery state.

use actix_web::{HttpResponse, web};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use github::{GithubClient, GithubError, GithubRepo};
use serde::{Deserialize, Serialize};
use service_kit::db;
use service_kit::http::Json;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::AppState;
use crate::apps::CallerApp;
use crate::crypto::Cipher;
use crate::error::ApiError;
use crate::schema::docora::{app_repositories, repositories};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/repositories").route(web::post().to(register)))
        .service(web::resource("/api/repositories/{repository_id}").route(web::delete().to(unwatch)))
        .service(web::resource("/api/repositories/{repository_id}/token").route(web::patch().to(update_token)));
}

/// `owner` and `name` of `https://github.com/owner/name` (an optional `.git` or trailing `/`).
pub fn parse_github_url(raw: &str) -> Result<(String, String), ApiError> {
    let invalid =
        || ApiError::Invalid(format!("Invalid GitHub URL format: expected https://github.com/owner/repo, got {raw:?}"));
    let rest = raw.trim().strip_prefix("https://github.com/").ok_or_else(invalid)?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let rest = rest.strip_suffix(".git").unwrap_or(rest);
    let (owner, name) = rest.split_once('/').ok_or_else(invalid)?;
    let owner_ok = (1..=39).contains(&owner.len())
        && owner.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !owner.starts_with('-');
    let name_ok = (1..=100).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name != "."
        && name != "..";
    if owner_ok && name_ok { Ok((owner.to_owned(), name.to_owned())) } else { Err(invalid()) }
}

/// A GitHub token as apps send it: `ghp_…` or `github_pat_…`.
pub fn valid_token(raw: &str) -> Result<String, ApiError> {
    let token = raw.trim();
    let ok = (token.starts_with("ghp_") || token.starts_with("github_pat_"))
        && token.len() <= 255
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(token.to_owned())
    } else {
        Err(ApiError::Invalid("github_token must start with ghp_ or github_pat_".into()))
    }
}

/// The associated data of a link's encrypted GitHub token.
pub fn token_context(app_id: &str, repository_id: &str) -> String {
    format!("app_repositories.github_token:{app_id}:{repository_id}")
}

/// The GitHub tokens apps gave for a repository, most recently updated first (what scans and
/// deliveries fetch with). A token that does not decrypt is logged and left out.
pub async fn tokens(pool: &db::Pool, cipher: &Cipher, repository_id: &str) -> Result<Vec<String>, ApiError> {
    let mut conn = db::conn(pool).await?;
    let sealed: Vec<(String, Option<Vec<u8>>)> = app_repositories::table
        .filter(app_repositories::repository_id.eq(repository_id))
        .filter(app_repositories::github_token_enc.is_not_null())
        .order(app_repositories::updated_at.desc())
        .select((app_repositories::app_id, app_repositories::github_token_enc))
        .load(&mut conn)
        .await?;
    Ok(sealed
        .into_iter()
        .filter_map(|(app_id, sealed)| {
            let sealed = sealed?;
            match cipher.open_text(&sealed, &token_context(&app_id, repository_id)) {
                Ok(token) => Some(token),
                Err(e) => {
                    tracing::error!(app_id, repository_id, error = %e, "a stored GitHub token does not decrypt");
                    None
                }
            }
        })
        .collect())
}

/// The repository as `token` sees it on GitHub; not found or not visible is 404.
async fn visible(
    github: &GithubClient,
    owner: &str,
    name: &str,
    token: Option<&str>,
) -> Result<GithubRepo, GithubError> {
    github.repository(owner, name, token).await
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRepository {
    /// `https://github.com/owner/repo`
    github_url: String,
    /// Required for private repositories: `ghp_…` or `github_pat_…`.
    github_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Registered {
    repository_id: String,
    github_url: String,
    owner: String,
    name: String,
    is_private: bool,
    #[serde(with = "domain::timestamp::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
}

/// Registers a GitHub repository for this app and schedules a full scan. Registering one the app
/// already watches unwatches it and registers it again (a fresh full scan).
#[utoipa::path(post, path = "/api/repositories", tag = "repositories", request_body = RegisterRepository,
    responses((status = 201, body = Registered), (status = 401, body = domain::ErrorBody),
              (status = 404, description = "not found on GitHub, or the token lacks access", body = domain::ErrorBody),
              (status = 422, description = "invalid GitHub URL or token format", body = domain::ErrorBody),
              (status = 503, description = "GitHub unreachable or rate-limited", body = domain::ErrorBody)),
    security(("bearer" = [])))]
async fn register(
    caller: CallerApp,
    state: web::Data<AppState>,
    body: Json<RegisterRepository>,
) -> Result<HttpResponse, ApiError> {
    let (owner, name) = parse_github_url(&body.github_url)?;
    let token = body.github_token.as_deref().filter(|t| !t.trim().is_empty()).map(valid_token).transpose()?;
    let repo = match visible(&state.github, &owner, &name, token.as_deref()).await {
        Ok(repo) => repo,
        Err(GithubError::NotFound | GithubError::Unauthorized) => {
            return Err(ApiError::NotFound("Repository not found on GitHub (or token lacks access)".into()));
        }
        Err(e) => return Err(ApiError::Unavailable(format!("GitHub cannot be asked right now: {e}"))),
    };
    // GitHub's own spelling of the owner and name.
    let (owner, name) = repo.full_name.split_once('/').map_or((owner, name), |(o, n)| (o.to_owned(), n.to_owned()));
    let github_repo_id =
        i64::try_from(repo.id).map_err(|_| ApiError::Internal(anyhow::anyhow!("GitHub id out of range")))?;
    let default_branch = repo.default_branch.clone().unwrap_or_else(|| "main".to_owned());
    let app_id = caller.app_id.clone();
    let cipher = state.cipher.clone();
    let mut conn = db::conn(&state.pool).await?;
    let (repository_id, created_at) = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let repository_id: String = diesel::insert_into(repositories::table)
                .values((
                    repositories::id.eq(domain::ids::docora_repository_id()),
                    repositories::github_repo_id.eq(github_repo_id),
                    repositories::owner.eq(&owner),
                    repositories::name.eq(&name),
                    repositories::is_private.eq(repo.private),
                    repositories::default_branch.eq(&default_branch),
                    repositories::branch_checked_at.eq(diesel::dsl::now),
                ))
                .on_conflict(repositories::github_repo_id)
                .do_update()
                .set((
                    repositories::owner.eq(&owner),
                    repositories::name.eq(&name),
                    repositories::is_private.eq(repo.private),
                    repositories::default_branch.eq(&default_branch),
                    repositories::branch_checked_at.eq(diesel::dsl::now),
                    // A registration closes the circuit and asks for a scan now.
                    repositories::consecutive_failures.eq(0),
                    repositories::circuit_open_until.eq(None::<OffsetDateTime>),
                    repositories::last_error.eq(None::<String>),
                    repositories::next_scan_at.eq(diesel::dsl::now),
                ))
                .returning(repositories::id)
                .get_result(conn)
                .await?;
            // Re-registration: the old link (and with it this app's delivery history) goes first.
            diesel::delete(
                app_repositories::table
                    .filter(app_repositories::app_id.eq(&app_id))
                    .filter(app_repositories::repository_id.eq(&repository_id)),
            )
            .execute(conn)
            .await?;
            let sealed = token.as_deref().map(|t| cipher.seal(t.as_bytes(), &token_context(&app_id, &repository_id)));
            let created_at: OffsetDateTime = diesel::insert_into(app_repositories::table)
                .values((
                    app_repositories::app_id.eq(&app_id),
                    app_repositories::repository_id.eq(&repository_id),
                    app_repositories::github_token_enc.eq(sealed),
                ))
                .returning(app_repositories::created_at)
                .get_result(conn)
                .await?;
            Ok((repository_id, created_at))
        })
        .await?;
    Ok(HttpResponse::Created().json(Registered {
        repository_id,
        github_url: format!("https://github.com/{owner}/{name}"),
        owner,
        name,
        is_private: repo.private,
        created_at,
    }))
}

fn not_watched() -> ApiError {
    ApiError::NotFound("Repository not found or not registered for this app".into())
}

/// Stops watching a repository and removes this app's delivery history; the repository's clone
/// and snapshot go when no app watches it any more.
#[utoipa::path(delete, path = "/api/repositories/{repository_id}", tag = "repositories",
    params(("repository_id" = String, Path, description = "repo_ + 24 hex")),
    responses((status = 204), (status = 401, body = domain::ErrorBody), (status = 404, body = domain::ErrorBody)),
    security(("bearer" = [])))]
async fn unwatch(
    caller: CallerApp,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if !domain::ids::is_docora_repository_id(&id) {
        return Err(not_watched());
    }
    let app_id = caller.app_id.clone();
    let mut conn = db::conn(&state.pool).await?;
    let orphaned = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let removed = diesel::delete(
                app_repositories::table
                    .filter(app_repositories::app_id.eq(&app_id))
                    .filter(app_repositories::repository_id.eq(id.as_str())),
            )
            .execute(conn)
            .await?;
            if removed == 0 {
                return Err(not_watched());
            }
            // Nobody else watching: the repository goes too.
            let watchers: i64 = app_repositories::table
                .filter(app_repositories::repository_id.eq(id.as_str()))
                .count()
                .get_result(conn)
                .await?;
            if watchers == 0 {
                diesel::delete(repositories::table.filter(repositories::id.eq(id.as_str()))).execute(conn).await?;
            }
            Ok(watchers == 0)
        })
        .await?;
    if orphaned {
        remove_clone(&state, &id).await;
    }
    Ok(HttpResponse::NoContent().finish())
}

/// Removes the clone of a repository nobody watches any more (a failure is only logged: the
/// clone is a cache, and a new registration fetches into a fresh one).
pub async fn remove_clone(state: &AppState, repository_id: &str) {
    if let Err(e) = state.git.remove(repository_id).await {
        tracing::warn!(repository_id, error = %e, "could not remove the clone of an unwatched repository");
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateToken {
    /// `ghp_…` or `github_pat_…`
    github_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Message {
    message: &'static str,
}

/// Replaces the app's GitHub token for a repository after checking it can see the repository;
/// clears the error state and the circuit breaker and schedules a scan.
#[utoipa::path(patch, path = "/api/repositories/{repository_id}/token", tag = "repositories",
    params(("repository_id" = String, Path, description = "repo_ + 24 hex")), request_body = UpdateToken,
    responses((status = 200, body = Message), (status = 401, body = domain::ErrorBody),
              (status = 404, body = domain::ErrorBody),
              (status = 422, description = "the token cannot access this repository, or has the wrong format", body = domain::ErrorBody),
              (status = 503, body = domain::ErrorBody)),
    security(("bearer" = [])))]
async fn update_token(
    caller: CallerApp,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: Json<UpdateToken>,
) -> Result<web::Json<Message>, ApiError> {
    if !domain::ids::is_docora_repository_id(&id) {
        return Err(not_watched());
    }
    let token = valid_token(&body.github_token)?;
    let app_id = caller.app_id.clone();
    let mut conn = db::conn(&state.pool).await?;
    let (owner, name): (String, String) = app_repositories::table
        .inner_join(repositories::table)
        .filter(app_repositories::app_id.eq(&app_id))
        .filter(app_repositories::repository_id.eq(id.as_str()))
        .select((repositories::owner, repositories::name))
        .first(&mut conn)
        .await
        .optional()?
        .ok_or_else(not_watched)?;
    drop(conn);
    match visible(&state.github, &owner, &name, Some(&token)).await {
        Ok(_) => {}
        Err(GithubError::NotFound | GithubError::Unauthorized) => {
            return Err(ApiError::Invalid("Token cannot access this repository".into()));
        }
        Err(e) => return Err(ApiError::Unavailable(format!("GitHub cannot be asked right now: {e}"))),
    }
    let sealed = state.cipher.seal(token.as_bytes(), &token_context(&app_id, &id));
    let mut conn = db::conn(&state.pool).await?;
    conn.transaction::<_, ApiError, _>(async |conn| {
        let updated = diesel::update(
            app_repositories::table
                .filter(app_repositories::app_id.eq(&app_id))
                .filter(app_repositories::repository_id.eq(id.as_str())),
        )
        .set((
            app_repositories::github_token_enc.eq(Some(sealed)),
            app_repositories::last_error.eq(None::<String>),
            app_repositories::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
        if updated == 0 {
            return Err(not_watched());
        }
        diesel::update(repositories::table.filter(repositories::id.eq(id.as_str())))
            .set((
                repositories::consecutive_failures.eq(0),
                repositories::circuit_open_until.eq(None::<OffsetDateTime>),
                repositories::last_error.eq(None::<String>),
                repositories::next_scan_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await?;
        Ok(())
    })
    .await?;
    Ok(web::Json(Message { message: "Token updated successfully" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_urls_are_parsed_strictly() {
        for (url, owner, name) in [
            ("https://github.com/owner/repo", "owner", "repo"),
            ("https://github.com/owner/repo.git", "owner", "repo"),
            ("https://github.com/owner/repo/", "owner", "repo"),
            ("https://github.com/my-org/my.dotted.repo", "my-org", "my.dotted.repo"),
        ] {
            assert_eq!(parse_github_url(url).ok(), Some((owner.to_owned(), name.to_owned())), "{url}");
        }
        for bad in [
            "http://github.com/owner/repo",
            "https://gitlab.com/owner/repo",
            "https://github.com/owner",
            "https://github.com/owner/repo/tree/main",
            "https://github.com/owner/..",
            "https://github.com//repo",
            "github.com/owner/repo",
            "https://github.com/own er/repo",
        ] {
            assert!(parse_github_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_need_a_github_prefix() {
        assert!(valid_token("ghp_abc123").is_ok());
        assert!(valid_token("github_pat_11AB_cd").is_ok());
        assert!(valid_token("gho_abc").is_err());
        assert!(valid_token("ghp_abc def").is_err());
    }
}
