//! The extractor a handler takes to require an authenticated caller:
//!
//! ```ignore
//! async fn list_tags(caller: Authenticated<GithubTokens>) -> Result<.., ApiError> { .. }
//! ```
//!
//! The service registers its [`Authenticator`] once as app data (`web::Data<A>`); the extractor
//! reads the credential where the authenticator says (a bearer token or a named header), refuses
//! a missing one, and hands it to the authenticator. A handler that takes the extractor cannot
//! forget to authenticate.

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};

/// Where a credential travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// A header of its own, such as `X-Github-Token`.
    Header(&'static str),
}

/// A credential as presented, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Present(String),
    Missing,
    /// Present but not usable as text or not in the expected scheme.
    Malformed,
}

impl CredentialSource {
    /// Reads the credential from the request.
    pub fn read(self, req: &HttpRequest) -> Credential {
        let name = match self {
            CredentialSource::Bearer => "authorization",
            CredentialSource::Header(name) => name,
        };
        let Some(value) = req.headers().get(name) else {
            return Credential::Missing;
        };
        let Ok(text) = value.to_str() else {
            return Credential::Malformed;
        };
        let text = text.trim();
        let token = match self {
            CredentialSource::Bearer => {
                let mut parts = text.splitn(2, ' ');
                let scheme = parts.next().unwrap_or_default();
                if !scheme.eq_ignore_ascii_case("bearer") {
                    return if text.is_empty() { Credential::Missing } else { Credential::Malformed };
                }
                parts.next().unwrap_or_default().trim()
            }
            CredentialSource::Header(_) => text,
        };
        if token.is_empty() { Credential::Missing } else { Credential::Present(token.to_owned()) }
    }
}

/// Resolves a credential to a caller. Implemented once per service.
pub trait Authenticator: 'static {
    /// Who the caller is.
    type Identity: 'static;
    /// The service's error type (its `ResponseError` decides the status).
    type Error: Into<actix_web::Error> + 'static;

    /// Where the credential is read from.
    const SOURCE: CredentialSource;

    /// The error for a request that carries no usable credential.
    fn missing(source: CredentialSource, credential: &Credential) -> Self::Error;

    /// Resolves a presented credential.
    fn authenticate(&self, credential: String) -> impl Future<Output = Result<Self::Identity, Self::Error>>;
}

/// An authenticated caller; dereferences to the identity.
pub struct Authenticated<A: Authenticator>(pub A::Identity);

impl<A: Authenticator> Authenticated<A> {
    pub fn into_inner(self) -> A::Identity {
        self.0
    }
}

impl<A: Authenticator> Deref for Authenticated<A> {
    type Target = A::Identity;

    fn deref(&self) -> &A::Identity {
        &self.0
    }
}

impl<A: Authenticator> FromRequest for Authenticated<A> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let credential = A::SOURCE.read(req);
        let authenticator = req.app_data::<web::Data<A>>().cloned();
        Box::pin(async move {
            let Some(authenticator) = authenticator else {
                return Err(actix_web::error::ErrorInternalServerError("authenticator is not registered"));
            };
            match credential {
                Credential::Present(token) => {
                    authenticator.authenticate(token).await.map(Authenticated).map_err(Into::into)
                }
                other => Err(A::missing(A::SOURCE, &other).into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn bearer_and_header_credentials_are_read() {
        let req = TestRequest::default().insert_header(("Authorization", "Bearer abc")).to_http_request();
        assert_eq!(CredentialSource::Bearer.read(&req), Credential::Present("abc".into()));
        let req = TestRequest::default().insert_header(("Authorization", "bearer  abc ")).to_http_request();
        assert_eq!(CredentialSource::Bearer.read(&req), Credential::Present("abc".into()));
        let req = TestRequest::default().insert_header(("Authorization", "Basic abc")).to_http_request();
        assert_eq!(CredentialSource::Bearer.read(&req), Credential::Malformed);
        let req = TestRequest::default().insert_header(("Authorization", "Bearer ")).to_http_request();
        assert_eq!(CredentialSource::Bearer.read(&req), Credential::Missing);
        let req = TestRequest::default().to_http_request();
        assert_eq!(CredentialSource::Bearer.read(&req), Credential::Missing);

        let header = CredentialSource::Header("x-github-token");
        let req = TestRequest::default().insert_header(("X-Github-Token", "ghp_x")).to_http_request();
        assert_eq!(header.read(&req), Credential::Present("ghp_x".into()));
        let req = TestRequest::default().insert_header(("X-Github-Token", "  ")).to_http_request();
        assert_eq!(header.read(&req), Credential::Missing);
    }
}
