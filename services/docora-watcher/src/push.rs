//! `POST /api/github/push`: GitHub's push webhook. Verified with `X-Hub-Signature-256` (HMAC-SHA256
//! of the raw body under `GITHUB_WEBHOOK_SECRET`); a push to a watched repository's default
//! branch makes it due for a scan at once, so a change reaches apps in seconds instead of after
//! the next scheduled rescan. Every push names the repository's default branch: one renamed on
//! GitHub is followed from then on (and scanned at once).

use actix_web::{HttpRequest, HttpResponse, web};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use hmac::{Hmac, Mac};
use serde::Serialize;
use service_kit::db;
use sha2::Sha256;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::ApiError;
use crate::git::is_branch_name;
use crate::schema::docora::repositories;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/github/push").route(web::post().to(push)));
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PushOutcome {
    /// Whether a scan was scheduled (false for other branches and unwatched repositories).
    scheduled: bool,
}

fn verified(secret: &str, signature: &str, body: &[u8]) -> bool {
    let Some(hex_sig) = signature.strip_prefix("sha256=") else { return false };
    let Ok(expected) = hex::decode(hex_sig) else { return false };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return false };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// Schedules an immediate scan of the pushed repository.
#[utoipa::path(post, path = "/api/github/push", tag = "github",
    request_body(content = Object, description = "GitHub's push (or ping) event"),
    responses((status = 202, body = PushOutcome), (status = 200, description = "ping"),
              (status = 401, description = "missing or wrong X-Hub-Signature-256", body = domain::ErrorBody),
              (status = 422, body = domain::ErrorBody),
              (status = 503, description = "GITHUB_WEBHOOK_SECRET is not set", body = domain::ErrorBody)))]
async fn push(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let Some(secret) = state.github_webhook_secret.as_deref() else {
        return Err(ApiError::Unavailable("push webhooks are off: set GITHUB_WEBHOOK_SECRET".into()));
    };
    let signature = req.headers().get("x-hub-signature-256").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !verified(secret, signature, &body) {
        return Err(ApiError::Unauthorized("missing or wrong X-Hub-Signature-256"));
    }
    let event = req.headers().get("x-github-event").and_then(|v| v.to_str().ok()).unwrap_or("push");
    if event == "ping" {
        return Ok(HttpResponse::Ok().json(serde_json::json!({"message": "pong"})));
    }
    let payload: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::Invalid(format!("the push body is not JSON: {e}")))?;
    let (Some(github_repo_id), Some(git_ref)) = (payload["repository"]["id"].as_i64(), payload["ref"].as_str()) else {
        return Err(ApiError::Invalid("a push event names repository.id and ref".into()));
    };
    let Some(branch) = git_ref.strip_prefix("refs/heads/") else {
        return Ok(HttpResponse::Accepted().json(PushOutcome { scheduled: false }));
    };
    let mut conn = db::conn(&state.pool).await?;
    let renamed = match payload["repository"]["default_branch"].as_str().filter(|b| is_branch_name(b)) {
        Some(default_branch) => {
            diesel::update(
                repositories::table
                    .filter(repositories::github_repo_id.eq(github_repo_id))
                    .filter(repositories::default_branch.ne(default_branch)),
            )
            .set((repositories::default_branch.eq(default_branch), repositories::next_scan_at.eq(diesel::dsl::now)))
            .execute(&mut conn)
            .await?
        }
        None => 0,
    };
    let scheduled = diesel::update(
        repositories::table
            .filter(repositories::github_repo_id.eq(github_repo_id))
            .filter(repositories::default_branch.eq(branch)),
    )
    .set(repositories::next_scan_at.eq(diesel::dsl::now))
    .execute(&mut conn)
    .await?;
    Ok(HttpResponse::Accepted().json(PushOutcome { scheduled: scheduled + renamed > 0 }))
}
