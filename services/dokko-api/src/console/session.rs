//! Signing in and out, the invitation page, and the access-token page.
//!
//! - `GET /invitations/accept?token=…` (the invitation link) and `POST /invitations/accept`:
//!   choose a password; success goes to the sign-in page with the organisation and email filled.
//!   The invitation token is the form's secret, so it needs no other CSRF token.
//! - `GET /console/sign-in`, `POST /console/sign-in`: organisation, email, password; the API's
//!   login ([`users::sign_in`]: same checks, same lockout). The form's CSRF token is bound to a
//!   short-lived cookie of the sign-in path, since there is no session yet.
//! - `POST /console/sign-out`: removes the session cookie.
//! - `GET /console/token`: the session's access token, to copy for the API.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use maud::html;
use serde::Deserialize;

use super::{Area, Button, PageError, PageForm, Session, copyable, layout, page, see_other};
use crate::AppState;
use crate::error::ApiError;
use crate::identity::Tokens;
use crate::users;

const SIGN_IN_CSRF_COOKIE: &str = "dokko_console_sign_in";

// ---- invitations ----

#[derive(Debug, Deserialize)]
pub struct InvitationLink {
    token: Option<String>,
}

fn invitation_form(status: StatusCode, token: &str, error: Option<&str>) -> HttpResponse {
    // Only token characters: markup in the link is dropped, never echoed.
    let token: String = token.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect();
    let body = html! {
        h1 { "Welcome to Dokko" }
        p { "Choose a password (at least 8 characters) to activate your account. Then sign in to the console." }
        (super::error_box(error))
        form.card #accept method="post" action="/invitations/accept" {
            input type="hidden" name="token" value=(token);
            label { "Password " input type="password" name="password" minlength="8" maxlength="256" required autocomplete="new-password"; }
            button type="submit" { "Activate" }
        }
    };
    page(status, layout("Accept your invitation", None, &[], body))
}

pub async fn invitation_page(query: web::Query<InvitationLink>) -> HttpResponse {
    invitation_form(StatusCode::OK, query.token.as_deref().unwrap_or_default(), None)
}

#[derive(Debug, Deserialize)]
pub struct AcceptForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
}

pub async fn accept_invitation(state: web::Data<AppState>, form: web::Form<AcceptForm>) -> HttpResponse {
    let form = form.into_inner();
    match users::accept(&state, form.token.trim(), form.password).await {
        Ok(accepted) => {
            let query = serde_urlencoded::to_string([
                ("organisation", accepted.organisation.as_str()),
                ("email", accepted.email.as_str()),
                ("notice", "activated"),
            ])
            .unwrap_or_default();
            see_other(&format!("/console/sign-in?{query}")).finish()
        }
        Err(e) => invitation_form(e.status_code(), &form.token, Some(&super::message_of(&e))),
    }
}

// ---- signing in and out ----

#[derive(Debug, Default, Deserialize)]
pub struct SignInQuery {
    #[serde(default)]
    organisation: String,
    #[serde(default)]
    email: String,
    notice: Option<String>,
}

fn sign_in_form(req: &HttpRequest, status: StatusCode, values: &SignInQuery, error: Option<&str>) -> HttpResponse {
    let token = auth::token::random_hex(32);
    let cookie = format!(
        "{SIGN_IN_CSRF_COOKIE}={token}; Path=/console/sign-in; HttpOnly; SameSite=Strict; Max-Age=3600{}",
        super::secure(req)
    );
    let notice = match values.notice.as_deref() {
        Some("activated") => Some("Your account is active. Sign in with your new password."),
        Some("signed_out") => Some("You are signed out."),
        _ => None,
    };
    let body = html! {
        h1 { "Sign in to Dokko" }
        (super::notice(notice))
        (super::error_box(error))
        form.card #sign-in method="post" action="/console/sign-in" {
            input type="hidden" name="csrf_token" value=(token);
            label { "Organisation " input name="organisation" required autocomplete="organization" value=(values.organisation); }
            label { "Email " input type="email" name="email" required autocomplete="username" value=(values.email); }
            label { "Password " input type="password" name="password" required autocomplete="current-password"; }
            button type="submit" { "Sign in" }
        }
        p.hint { "New here? Open the invitation link your organisation's admin sent you to choose a password first." }
    };
    let mut builder = super::guarded(HttpResponse::build(status));
    builder.append_header((header::SET_COOKIE, cookie));
    builder.content_type("text/html; charset=utf-8").body(layout("Sign in", None, &[], body).into_string())
}

pub async fn sign_in_page(req: HttpRequest, query: web::Query<SignInQuery>) -> Result<HttpResponse, PageError> {
    if super::session_of(&req).await?.is_some() {
        return Ok(see_other("/console").finish());
    }
    Ok(sign_in_form(&req, StatusCode::OK, &query, None))
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    organisation: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf_token: String,
}

pub async fn sign_in(
    req: HttpRequest,
    state: web::Data<AppState>,
    tokens: web::Data<Tokens>,
    form: web::Form<SignInForm>,
) -> Result<HttpResponse, PageError> {
    let expected = super::cookie(&req, SIGN_IN_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || !auth::constant_time_eq(form.csrf_token.as_bytes(), expected.as_bytes()) {
        return Err(PageError::Csrf);
    }
    let form = form.into_inner();
    let values = SignInQuery { organisation: form.organisation.clone(), email: form.email.clone(), notice: None };
    let missing = [("organisation", &form.organisation), ("email", &form.email), ("password", &form.password)]
        .into_iter()
        .find(|(_, v)| v.trim().is_empty());
    if let Some((name, _)) = missing {
        let message = format!("the form field {name} is required");
        return Ok(sign_in_form(&req, StatusCode::UNPROCESSABLE_ENTITY, &values, Some(&message)));
    }
    let signed_in = match users::sign_in(&state, &tokens, form.organisation.trim(), &form.email, form.password).await {
        Ok(signed_in) => signed_in,
        Err(e @ ApiError::TooManyAttempts(wait)) => {
            let response = sign_in_form(&req, e.status_code(), &values, Some(&super::message_of(&e)));
            return Ok(service_kit::http::with_retry_after(response, wait));
        }
        Err(e) if e.status_code().is_client_error() => {
            return Ok(sign_in_form(&req, e.status_code(), &values, Some(&super::message_of(&e))));
        }
        Err(e) => return Err(e.into()),
    };
    let session = format!(
        "{}={}; Path=/console; HttpOnly; SameSite=Strict{}",
        super::COOKIE,
        signed_in.access_token,
        super::secure(&req)
    );
    Ok(see_other("/console")
        .append_header((header::SET_COOKIE, session))
        .append_header((
            header::SET_COOKIE,
            format!("{SIGN_IN_CSRF_COOKIE}=; Path=/console/sign-in; HttpOnly; SameSite=Strict; Max-Age=0"),
        ))
        .finish())
}

pub async fn sign_out(req: HttpRequest, _form: PageForm<Button>) -> HttpResponse {
    see_other("/console/sign-in?notice=signed_out")
        .append_header((
            header::SET_COOKIE,
            format!("{}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{}", super::COOKIE, super::secure(&req)),
        ))
        .finish()
}

// ---- the access token ----

pub async fn token_page(session: Session, state: web::Data<AppState>) -> HttpResponse {
    let base = state.public_url.trim_end_matches('/');
    let curl = format!("curl -H 'Authorization: Bearer {}' {base}/api/v1/repositories", session.token);
    let body = html! {
        h1 { "Your access token" }
        p {
            "This is the user token of your session: send it to the API as "
            code { "Authorization: Bearer <token>" } ". It works until it expires (or your account is deactivated); "
            "sign in again for a fresh one. Treat it like your password."
        }
        (copyable("access-token", &session.token))
        h2 { "Try it" }
        (copyable("token-curl", &curl))
        p.hint {
            "Programs should not use a person's token: an organisation admin creates a service account for them "
            "(client id and secret, exchanged at " code { "POST /api/v1/auth/service/login" } ")."
        }
    };
    page(
        StatusCode::OK,
        layout("Access token", Some((&session, Area::Token)), &[("Access token", "/console/token")], body),
    )
}
