//! The one error type of giistr-tags: each variant's status, and the JSON error body.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use service_kit::db::DbError;
use service_kit::http::error_response;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no token, or a token GitHub refuses.
    #[error("{0}")]
    Unauthorized(String),
    /// 404: missing, or belonging to someone else (the two are indistinguishable on purpose).
    #[error("{0}")]
    NotFound(&'static str),
    /// 503: GitHub cannot be asked right now.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Database(#[from] DbError),
}

impl From<diesel::result::Error> for ApiError {
    fn from(error: diesel::result::Error) -> Self {
        ApiError::Database(error.into())
    }
}

/// What a violated unique constraint means to the caller.
fn conflict_message(constraint: &str) -> &'static str {
    match constraint {
        "tags_user_id_name_key" => "a tag with this name already exists",
        "repos_user_id_github_repo_id_key" => "this GitHub repository is already registered",
        "repo_tag_assocs_tag_id_repo_id_key" => "this tag is already associated with this repository",
        _ => "the resource already exists",
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Database(e) => e.status(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let message = match self {
            ApiError::Database(e) => e.public_message(conflict_message, "the tag or repository was not found"),
            other => other.to_string(),
        };
        error_response(status, message)
    }
}
