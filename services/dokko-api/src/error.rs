//! The one error type of dokko-api: each variant's status, and the JSON error body.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use service_kit::db::DbError;
use service_kit::http::error_response;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is well-formed but a value is not acceptable.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no token, a token that does not verify, or wrong credentials.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 402: the tenant's subscription is inactive.
    #[error("the organisation's subscription is inactive")]
    PaymentRequired,
    /// 403: authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(&'static str),
    /// 404: missing, or belonging to another tenant (indistinguishable on purpose).
    #[error("{0}")]
    NotFound(String),
    /// 409: the request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// 429: too many failed sign-ins for this account; retry after the duration.
    #[error("too many failed sign-in attempts; try again in {} seconds", .0.as_secs())]
    TooManyAttempts(std::time::Duration),
    /// 422: a parameter or field does not parse.
    #[error("{0}")]
    Unprocessable(String),
    /// 503: a dependency (object storage, the hashing pool) cannot serve right now.
    #[error("{0}")]
    Unavailable(String),
    /// 500 with a generic body; the cause goes to the log.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
    #[error(transparent)]
    Database(#[from] DbError),
}

impl ApiError {
    pub fn not_found(what: &str) -> Self {
        ApiError::NotFound(format!("{what} not found"))
    }
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

/// What a violated unique constraint means to the caller.
fn conflict_message(constraint: &str) -> &'static str {
    match constraint {
        "permissions_tenant_id_name_key" => "a permission with this name already exists",
        "tenants_name_key" => "an organisation with this name already exists",
        "users_tenant_id_email_key" => "a user with this email already exists",
        _ => "the resource already exists",
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::PaymentRequired => StatusCode::PAYMENT_REQUIRED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyAttempts(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Database(e) => e.status(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
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
        let response = error_response(status, message);
        match self {
            ApiError::TooManyAttempts(wait) => service_kit::http::with_retry_after(response, *wait),
            _ => response,
        }
    }
}
