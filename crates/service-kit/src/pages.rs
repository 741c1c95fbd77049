//! Server-rendered pages: the state-changing forms of a console, each carrying its session's
//! CSRF token. A handler that takes a [`CsrfForm`] cannot skip the check: the extractor finds
//! the session, reads the form and compares the token before the handler runs.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, ResponseError, web};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The signed-in session a console's forms are posted in, and the page errors it answers with.
pub trait FormSession: Sized + 'static {
    type Error: ResponseError + 'static;

    /// The request's session, or the error a page answers without one (to the sign-in page).
    fn of(req: &HttpRequest) -> impl Future<Output = Result<Self, Self::Error>>;
    /// Whether `sent` is this session's CSRF token (compared in constant time).
    fn csrf_matches(&self, sent: &str) -> bool;
    /// A body that is not the form expected.
    fn bad_form(message: String) -> Self::Error;
    /// A missing or wrong CSRF token.
    fn forged() -> Self::Error;
}

/// A form posted in session `S`, its `csrf_token` field checked against the session's.
pub struct CsrfForm<S, T> {
    pub session: S,
    pub form: T,
}

/// The fields of a form that is only a button.
#[derive(Debug, Deserialize)]
pub struct Button {}

#[derive(Deserialize)]
struct WithCsrf<T> {
    #[serde(default)]
    csrf_token: String,
    #[serde(flatten)]
    form: T,
}

impl<S: FormSession, T: DeserializeOwned + 'static> FromRequest for CsrfForm<S, T> {
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, S::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let body = web::Form::<WithCsrf<T>>::from_request(&req, payload);
        Box::pin(async move {
            let session = S::of(&req).await?;
            let web::Form(WithCsrf { csrf_token, form }) = body.await.map_err(|e| S::bad_form(e.to_string()))?;
            if !session.csrf_matches(&csrf_token) {
                return Err(S::forged());
            }
            Ok(CsrfForm { session, form })
        })
    }
}
