//! The one error type of dokko-ingest: each variant's status, and the JSON error body.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use service_kit::db::DbError;
use service_kit::http::error_response;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is well-formed but a value is not acceptable.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no service token, or one that does not verify.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 404: nothing of the kind for this source and tenant.
    #[error("{0}")]
    NotFound(String),
    /// 409: a job of the source is already running.
    #[error("{0}")]
    Conflict(String),
    /// 422: a parameter or field does not parse.
    #[error("{0}")]
    Unprocessable(String),
    /// 500 with a generic body; the cause goes to the log.
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

impl From<domain::pagination::ParamError> for ApiError {
    fn from(error: domain::pagination::ParamError) -> Self {
        ApiError::Unprocessable(error.message)
    }
}

fn conflict_message(constraint: &str) -> &'static str {
    match constraint {
        "jobs_one_running_per_source" => "an ingestion job is already running",
        _ => "the resource already exists",
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
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
            other => other.to_string(),
        };
        error_response(self.status_code(), message)
    }
}
