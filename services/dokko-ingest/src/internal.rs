//! Who may call dokko-ingest: dokko-api, with a service token (`auth::service_token`) signed
//! with the secret both hold. Every route but the probes takes [`Internal`].

use auth::service_token::ServiceTokens;
use auth::{Authenticator, Credential, CredentialSource};

use crate::error::ApiError;

/// The authenticator of service tokens, registered as app data.
pub struct Peers(pub ServiceTokens);

/// A verified peer service (its name).
pub type Internal = auth::Authenticated<Peers>;

impl Authenticator for Peers {
    type Identity = String;
    type Error = ApiError;
    const SOURCE: CredentialSource = CredentialSource::Bearer;

    fn missing(_source: CredentialSource, _credential: &Credential) -> ApiError {
        ApiError::Unauthorized("a service token is required")
    }

    async fn authenticate(&self, credential: String) -> Result<String, ApiError> {
        self.0.verify(&credential).map_err(|e| {
            tracing::info!(error = %e, "service token refused");
            ApiError::Unauthorized("invalid service token")
        })
    }
}
