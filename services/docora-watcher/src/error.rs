//! The one error type of docora-watcher: each variant's status, and the JSON error body.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use service_kit::db::DbError;
use service_kit::http::error_response;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: no bearer token, or one no app has.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 404: missing, or not this app's.
    #[error("{0}")]
    NotFound(String),
    /// 422: invalid input.
    #[error("{0}")]
    Invalid(String),
    /// 429: too many failed logins; retry after the duration.
    #[error("too many failed login attempts; try again in {} seconds", .0.as_secs())]
    TooManyAttempts(std::time::Duration),
    /// 503: GitHub (or another dependency) cannot answer right now.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
    #[error(transparent)]
    Database(#[from] DbError),
}

impl From<diesel::result::Error> for ApiError {
    fn from(error: diesel::result::Error) -> Self {
        ApiError::Database(error.into())
    }
}

fn conflict_message(constraint: &str) -> &'static str {
    match constraint {
        "repositories_github_repo_id_key" => "this repository is being registered by another request; retry",
        _ => "the resource already exists",
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyAttempts(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Database(e) => e.status(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let message = match self {
            ApiError::Database(e) => e.public_message(conflict_message, "a referenced resource was not found"),
            ApiError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "internal error");
                "internal server error".to_owned()
            }
            ApiError::Unavailable(message) => {
                service_kit::telemetry::dependency_unavailable(message);
                message.clone()
            }
            other => other.to_string(),
        };
        let response = error_response(self.status_code(), message);
        match self {
            ApiError::TooManyAttempts(wait) => service_kit::http::with_retry_after(response, *wait),
            _ => response,
        }
    }
}
