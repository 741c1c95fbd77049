//! Organisation pages: service accounts and people (organisation admins only: anyone else gets
//! the console's 403 page, as the API answers 403), and permissions (anyone signed in, as in
//! the API).
//!
//! - `GET /console/service-accounts`, `POST /console/service-accounts` (create: the client id
//!   and one-time secret are shown on the answer page only, with copy buttons and the curl line
//!   of the onboarding's step C), `POST …/{id}/rotate` (a new secret, shown once), `POST
//!   …/{id}/revoke`;
//! - `GET /console/people`, `POST /console/people` (invite: the invitation link is shown);
//! - `GET /console/permissions`, `POST /console/permissions`, `POST …/{id}/edit`, `POST
//!   …/{id}/delete`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};
use service_kit::http::Json;
use uuid::Uuid;

use super::{
    Area, Button, Notice, PageError, PageForm, Session, body_of, call, confirm_button, copyable, csrf_field, layout,
    page, see_other,
};
use crate::{AppState, permissions, service_accounts, users};

fn page_query(page_num: Option<i64>) -> Result<domain::pagination::PageQuery, PageError> {
    body_of(json!({"page_num": page_num.unwrap_or(1).to_string(), "per_page": "20"}))
}

// ---- service accounts ----

fn accounts_body(session: &Session, list: &Value, error: Option<&str>, notice: Option<&str>) -> Markup {
    let items = list["items"].as_array().cloned().unwrap_or_default();
    html! {
        (super::notice(notice))
        h1 { "Service accounts" }
        p.hint { "A service account is how a program signs in: it exchanges its client id and secret for an 8-hour token (step C of the onboarding)." }
        @if items.is_empty() {
            p.empty #no-accounts { "No service account yet. Create one below for each program that calls the API." }
        } @else {
            table #accounts {
                thead { tr { th { "Name" } th { "Client id" } th { "State" } th { "Created" } th { "Last login" } th { "Actions" } } }
                tbody {
                    @for a in &items {
                        @let id = a["id"].as_str().unwrap_or_default();
                        @let active = a["is_active"].as_bool().unwrap_or(false);
                        tr #(format!("account-{id}")) {
                            td { (a["name"].as_str().unwrap_or_default()) }
                            td data-label="Client id" { code { (a["client_id"].as_str().unwrap_or_default()) } }
                            td.state data-label="State" { @if active { "active" } @else { "revoked" } }
                            td data-label="Created" { (super::when(&a["created_at"])) }
                            td data-label="Last login" { (super::when(&a["last_login_at"])) }
                            td.actions {
                                @if active {
                                    (confirm_button(session, &format!("/console/service-accounts/{id}/rotate"), "Rotate the secret",
                                        "A new secret is shown once; the old one and every token issued with it stop working at once.", "rotate"))
                                    (confirm_button(session, &format!("/console/service-accounts/{id}/revoke"), "Revoke",
                                        "The account can no longer sign in; tokens it already holds work until they expire.", "revoke"))
                                }
                            }
                        }
                    }
                }
            }
            (super::pager("/console/service-accounts", list))
        }
        section #create-account {
            h2 { "Create a service account" }
            (super::error_box(error))
            form.card method="post" action="/console/service-accounts" {
                (csrf_field(session))
                label { "Name (3 to 255 characters) " input name="name" required minlength="3" maxlength="255" placeholder="production-integration"; }
                button type="submit" { "Create" }
            }
        }
    }
}

pub async fn service_accounts_page(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    notice: web::Query<Notice>,
) -> Result<HttpResponse, PageError> {
    let admin = session.admin()?;
    let list =
        call(&req, service_accounts::list_accounts(admin, state, web::Query(page_query(notice.page_num)?)).await)
            .await?
            .body;
    let message = match notice.notice.as_deref() {
        Some("revoked") => Some("The service account is revoked."),
        _ => None,
    };
    let body = accounts_body(&session, &list, None, message);
    Ok(page(
        StatusCode::OK,
        layout(
            "Service accounts",
            Some((&session, Area::ServiceAccounts)),
            &[("Service accounts", "/console/service-accounts")],
            body,
        ),
    ))
}

/// The one time a secret is shown.
fn credentials_page(session: &Session, public_url: &str, title: &str, credentials: &Value) -> HttpResponse {
    let client_id = credentials["client_id"].as_str().unwrap_or_default();
    let secret = credentials["client_secret"].as_str().unwrap_or_default();
    let curl = format!(
        "curl -X POST {}/api/v1/auth/service/login -H 'Content-Type: application/x-www-form-urlencoded' -H 'X-Tenant: {}' -d 'client_id={client_id}' -d 'client_secret={secret}'",
        public_url.trim_end_matches('/'),
        session.organisation,
    );
    let body = html! {
        h1 { (title) }
        p.warning #once role="alert" { "Copy the secret now: it is shown this once and cannot be retrieved later (rotate it if it is lost)." }
        dl.facts {
            dt { "Name" } dd #account-name { (credentials["name"].as_str().unwrap_or_default()) }
            dt { "Client id" } dd { (copyable("client-id", client_id)) }
            dt { "Client secret" } dd { (copyable("client-secret", secret)) }
            dt { "Organisation (X-Tenant)" } dd { code { (session.organisation) } }
        }
        h2 { "Step C: exchange them for a token" }
        (copyable("step-c", &curl))
        p { a href="/console/service-accounts" { "Back to the service accounts" } }
    };
    let trail = [("Service accounts", "/console/service-accounts"), (title, "")];
    page(StatusCode::OK, layout(title, Some((session, Area::ServiceAccounts)), &trail, body))
}

#[derive(Debug, Deserialize)]
pub struct NameForm {
    #[serde(default)]
    name: String,
}

pub async fn create_service_account(
    req: HttpRequest,
    state: web::Data<AppState>,
    posted: PageForm<NameForm>,
) -> Result<HttpResponse, PageError> {
    let PageForm { session, form } = posted;
    let admin = session.admin()?;
    let body = body_of(json!({"name": form.name}))?;
    match call(&req, service_accounts::create_account(admin, state.clone(), Json(body)).await).await {
        Ok(answer) => Ok(credentials_page(&session, &state.public_url, "Service account created", &answer.body)),
        Err(PageError::Refused(status, message)) if status.is_client_error() => {
            let list = call(
                &req,
                service_accounts::list_accounts(session.admin()?, state, web::Query(page_query(None)?)).await,
            )
            .await?
            .body;
            let body = accounts_body(&session, &list, Some(&message), None);
            Ok(page(
                status,
                layout(
                    "Service accounts",
                    Some((&session, Area::ServiceAccounts)),
                    &[("Service accounts", "/console/service-accounts")],
                    body,
                ),
            ))
        }
        Err(e) => Err(e),
    }
}

pub async fn rotate_service_account(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    posted: PageForm<Button>,
) -> Result<HttpResponse, PageError> {
    let session = posted.session;
    let answer = call(&req, service_accounts::rotate_secret(session.admin()?, state.clone(), id).await).await?;
    Ok(credentials_page(&session, &state.public_url, "New secret", &answer.body))
}

pub async fn revoke_service_account(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    posted: PageForm<Button>,
) -> Result<HttpResponse, PageError> {
    call(&req, service_accounts::revoke_account(posted.session.admin()?, state, id).await).await?;
    Ok(see_other("/console/service-accounts?notice=revoked").finish())
}

// ---- people ----

fn people_body(session: &Session, list: &Value, invited: Option<&Value>, error: Option<&str>) -> Markup {
    let items = list["items"].as_array().cloned().unwrap_or_default();
    html! {
        h1 { "People" }
        @if let Some(invitation) = invited {
            section.notice #invited role="status" {
                p { "Invitation created for " strong { (invitation["email"].as_str().unwrap_or_default()) }
                    " (" (invitation["role"].as_str().unwrap_or_default()) "). Send them this link; it works once, until "
                    (super::when(&invitation["expires_at"])) ":" }
                (copyable("invitation-url", invitation["invitation_url"].as_str().unwrap_or_default()))
            }
        }
        table #people {
            thead { tr { th { "Email" } th { "Role" } th { "State" } th { "Invited" } th { "Activated" } } }
            tbody {
                @for u in &items {
                    tr {
                        td { (u["email"].as_str().unwrap_or_default()) }
                        td.role data-label="Role" { (u["role"].as_str().unwrap_or_default()) }
                        td data-label="State" { @if u["is_active"].as_bool().unwrap_or(false) { "active" } @else { "invited" } }
                        td data-label="Invited" { (super::when(&u["created_at"])) }
                        td data-label="Activated" { (super::when(&u["activated_at"])) }
                    }
                }
            }
        }
        (super::pager("/console/people", list))
        section #invite {
            h2 { "Invite a person" }
            (super::error_box(error))
            form.card method="post" action="/console/people" {
                (csrf_field(session))
                label { "Email " input type="email" name="email" required; }
                label { "Role "
                    select name="role" {
                        option value="member" { "member" }
                        option value="org_admin" { "org_admin (manages people and service accounts)" }
                    }
                }
                button type="submit" { "Invite" }
            }
        }
    }
}

async fn people_list(
    req: &HttpRequest,
    session: &Session,
    state: web::Data<AppState>,
    page_num: Option<i64>,
) -> Result<Value, PageError> {
    Ok(call(req, users::list_users(session.admin()?, state, web::Query(page_query(page_num)?)).await).await?.body)
}

pub async fn people_page(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    notice: web::Query<Notice>,
) -> Result<HttpResponse, PageError> {
    let list = people_list(&req, &session, state, notice.page_num).await?;
    let body = people_body(&session, &list, None, None);
    Ok(page(StatusCode::OK, layout("People", Some((&session, Area::People)), &[("People", "/console/people")], body)))
}

#[derive(Debug, Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    email: String,
    role: Option<String>,
}

pub async fn invite(
    req: HttpRequest,
    state: web::Data<AppState>,
    posted: PageForm<InviteForm>,
) -> Result<HttpResponse, PageError> {
    let PageForm { session, form } = posted;
    let admin = session.admin()?;
    let body = body_of(json!({"email": form.email, "role": form.role}))?;
    let outcome = call(&req, users::create_invitation(admin, state.clone(), Json(body)).await).await;
    let (status, invited, error) = match outcome {
        Ok(answer) => (StatusCode::OK, Some(answer.body), None),
        Err(PageError::Refused(status, message)) if status.is_client_error() => (status, None, Some(message)),
        Err(e) => return Err(e),
    };
    let list = people_list(&req, &session, state, None).await?;
    let body = people_body(&session, &list, invited.as_ref(), error.as_deref());
    Ok(page(status, layout("People", Some((&session, Area::People)), &[("People", "/console/people")], body)))
}

// ---- permissions ----

fn permissions_body(session: &Session, list: &Value, error: Option<&str>, notice: Option<&str>) -> Markup {
    let items = list["items"].as_array().cloned().unwrap_or_default();
    html! {
        (super::notice(notice))
        h1 { "Permissions" }
        p.hint { "A permission is a label on repositories (a team, an access level). Retrieval asks for permissions and finds only the repositories that carry them." }
        (super::error_box(error))
        @if items.is_empty() {
            p.empty #no-permissions { "No permission yet. Create one per team or access level, then give it to repositories." }
        } @else {
            table #permissions {
                thead { tr { th { "Name" } th { "Id" } th { "Created" } th { "Actions" } } }
                tbody {
                    @for p in &items {
                        @let id = p["id"].as_str().unwrap_or_default();
                        tr {
                            td.name { (p["name"].as_str().unwrap_or_default()) }
                            td data-label="Id" { code { (id) } }
                            td data-label="Created" { (super::when(&p["created_at"])) }
                            td.actions {
                                details.op {
                                    summary { "Rename" }
                                    form method="post" action=(format!("/console/permissions/{id}/edit")) {
                                        (csrf_field(session))
                                        input name="name" required maxlength="255" value=(p["name"].as_str().unwrap_or_default());
                                        button type="submit" { "Save" }
                                    }
                                }
                                (confirm_button(session, &format!("/console/permissions/{id}/delete"), "Delete",
                                    "Repositories lose this permission.", "delete-permission"))
                            }
                        }
                    }
                }
            }
            (super::pager("/console/permissions", list))
        }
        section #create-permission {
            h2 { "Create a permission" }
            form.card method="post" action="/console/permissions" {
                (csrf_field(session))
                label { "Name " input name="name" required maxlength="255" placeholder="engineering"; }
                button type="submit" { "Create" }
            }
        }
    }
}

async fn permissions_response(
    req: &HttpRequest,
    session: &Session,
    state: web::Data<AppState>,
    status: StatusCode,
    page_num: Option<i64>,
    error: Option<&str>,
    notice: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let list =
        call(req, permissions::list_permissions(session.caller(), state, web::Query(page_query(page_num)?)).await)
            .await?
            .body;
    let body = permissions_body(session, &list, error, notice);
    Ok(page(
        status,
        layout("Permissions", Some((session, Area::Permissions)), &[("Permissions", "/console/permissions")], body),
    ))
}

pub async fn permissions_page(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    notice: web::Query<Notice>,
) -> Result<HttpResponse, PageError> {
    let message = match notice.notice.as_deref() {
        Some("created") => Some("The permission is created."),
        Some("saved") => Some("The permission is renamed."),
        Some("deleted") => Some("The permission is deleted."),
        _ => None,
    };
    permissions_response(&req, &session, state, StatusCode::OK, notice.page_num, None, message).await
}

/// After a permission form: back to the list, or the list with the API's message.
async fn after(
    req: &HttpRequest,
    session: &Session,
    state: web::Data<AppState>,
    outcome: Result<super::Answer, PageError>,
    done: &str,
) -> Result<HttpResponse, PageError> {
    match outcome {
        Ok(_) => Ok(see_other(&format!("/console/permissions?notice={done}")).finish()),
        Err(PageError::Refused(status, message)) if status.is_client_error() => {
            permissions_response(req, session, state, status, None, Some(&message), None).await
        }
        Err(e) => Err(e),
    }
}

pub async fn create_permission(
    req: HttpRequest,
    state: web::Data<AppState>,
    posted: PageForm<NameForm>,
) -> Result<HttpResponse, PageError> {
    let PageForm { session, form } = posted;
    let body = body_of(json!({"name": form.name}))?;
    let outcome = call(&req, permissions::create_permission(session.caller(), state.clone(), Json(body)).await).await;
    after(&req, &session, state, outcome, "created").await
}

pub async fn update_permission(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    posted: PageForm<NameForm>,
) -> Result<HttpResponse, PageError> {
    let PageForm { session, form } = posted;
    let body = body_of(json!({"name": form.name}))?;
    let outcome =
        call(&req, permissions::update_permission(session.caller(), state.clone(), id, Json(body)).await).await;
    after(&req, &session, state, outcome, "saved").await
}

pub async fn delete_permission(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    posted: PageForm<Button>,
) -> Result<HttpResponse, PageError> {
    let session = posted.session;
    let outcome = call(&req, permissions::delete_permission(session.caller(), state.clone(), id).await).await;
    after(&req, &session, state, outcome, "deleted").await
}
