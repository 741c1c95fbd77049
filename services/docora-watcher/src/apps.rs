//! Apps: the clients that watch repositories. Onboarding is the admin's (the admin API and
//! dashboard call [`onboard`]); an app authenticates with its bearer token `docora_` + 64 hex,
//! stored only as a SHA-256 digest so a lookup is one index probe.

use std::net::IpAddr;

use auth::extract::{Authenticated, Authenticator, Credential, CredentialSource};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Deserialize;
use service_kit::db::{self, Pool};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::crypto::Cipher;
use crate::error::ApiError;
use crate::schema::docora::apps;

/// The extractor of the repository API.
pub type CallerApp = Authenticated<AppTokens>;

/// The app behind a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppIdentity {
    pub app_id: String,
}

/// Resolves bearer tokens to apps.
pub struct AppTokens {
    pool: Pool,
}

impl AppTokens {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

impl Authenticator for AppTokens {
    type Identity = AppIdentity;
    type Error = ApiError;
    const SOURCE: CredentialSource = CredentialSource::Bearer;

    fn missing(_source: CredentialSource, _credential: &Credential) -> ApiError {
        ApiError::Unauthorized("missing or invalid bearer token: send Authorization: Bearer docora_…")
    }

    async fn authenticate(&self, token: String) -> Result<AppIdentity, ApiError> {
        let refused = ApiError::Unauthorized("missing or invalid bearer token");
        if !token.starts_with(TOKEN_PREFIX) {
            return Err(refused);
        }
        let digest = auth::token::digest(&token).to_vec();
        let mut conn = db::conn(&self.pool).await?;
        let app_id: Option<String> =
            apps::table.filter(apps::token_digest.eq(&digest)).select(apps::id).first(&mut conn).await.optional()?;
        app_id.map(|app_id| AppIdentity { app_id }).ok_or(refused)
    }
}

pub const TOKEN_PREFIX: &str = "docora_";

/// What an admin gives to onboard an app.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct NewApp {
    /// 3 to 100 characters.
    #[schema(min_length = 3, max_length = 100)]
    pub app_name: String,
    /// Where the app's webhook endpoints live; HTTPS, not a private address (unless allowed).
    #[schema(max_length = 2000)]
    pub base_url: String,
    #[schema(max_length = 254)]
    pub email: String,
    #[schema(max_length = 2000)]
    pub website: Option<String>,
    /// At most 500 characters.
    #[schema(max_length = 500)]
    pub description: Option<String>,
    /// At least 16 characters; the app verifies webhook signatures with it.
    #[schema(min_length = 16)]
    pub client_auth_key: String,
}

/// Which webhook targets the operator allows.
#[derive(Debug, Clone, Copy, Default)]
pub struct UrlPolicy {
    /// `ALLOW_HTTP_WEBHOOKS`: plain `http://` base URLs (local use).
    pub allow_http: bool,
    /// `ALLOW_PRIVATE_WEBHOOKS`: loopback, private and link-local addresses.
    pub allow_private: bool,
}

/// Whether `ip` is loopback, private, link-local, unspecified or otherwise not on the internet.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1]) // carrier-grade NAT
                || v4.octets()[0] == 0
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00 // unique local
                || (v6.segments()[0] & 0xffc0) == 0xfe80 // link-local
                || v6.to_ipv4_mapped().is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

/// A webhook base URL as stored (no trailing `/`), checked against `policy` as far as it can be
/// without resolving names: scheme, shape, and hosts that are private whatever DNS says
/// ([`check_target`] adds the resolution, at onboarding and at every delivery).
pub fn valid_base_url(raw: &str, policy: UrlPolicy) -> Result<String, ApiError> {
    let url = raw.trim().trim_end_matches('/');
    let invalid = |why: &str| Err(ApiError::Invalid(format!("base_url {raw:?}: {why}")));
    let rest = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => rest,
        (None, Some(rest)) if policy.allow_http => rest,
        (None, Some(_)) => return invalid("must be https:// (plain http is not allowed by this server)"),
        _ => return invalid("must be an https:// URL"),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return invalid("not a valid URL");
    }
    if url.len() > 2000 {
        return invalid("longer than 2000 characters");
    }
    if !policy.allow_private
        && let Some((host, _)) = target_host(url)
        && let Some(why) = private_host(&host)
    {
        return invalid(&why);
    }
    Ok(url.to_owned())
}

/// The host (lower case, without a trailing dot or IPv6 brackets) and port of a base URL.
pub fn target_host(base_url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = base_url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let default_port = if scheme.eq_ignore_ascii_case("http") { 80 } else { 443 };
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default_port,
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some((host, port))
}

/// Why `host` is private without asking DNS: `localhost` and its subdomains (with or without the
/// final dot), and IP literals in any form a resolver accepts (`127.1`, `2130706433`,
/// `0x7f000001`, `0177.0.0.1`, `::ffff:127.0.0.1`) that name a private address.
pub fn private_host(host: &str) -> Option<String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") {
        return Some("private, loopback and link-local addresses are not allowed".to_owned());
    }
    let ip = literal_ip(&host)?;
    is_private(ip).then(|| {
        format!("{host} is a private address ({ip}): loopback, private and link-local addresses are not allowed")
    })
}

/// `host` as an IP address, if it is one: IPv6, dotted IPv4, or the shorter and numeric forms
/// of IPv4 that `inet_aton` (and so the resolver) takes: `a`, `a.b`, `a.b.c`, each part decimal,
/// octal (`0…`) or hexadecimal (`0x…`).
pub fn literal_ip(host: &str) -> Option<IpAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(ip);
    }
    let parts: Vec<u64> = host.split('.').map(number).collect::<Option<_>>()?;
    let (last, leading) = parts.split_last()?;
    if leading.len() > 3 || leading.iter().any(|p| *p > 255) {
        return None;
    }
    let last_bits = 8 * (4 - leading.len() as u32);
    if *last >= 1u64 << last_bits {
        return None;
    }
    let high = leading.iter().enumerate().fold(0u64, |acc, (i, p)| acc | p << (24 - 8 * i as u32));
    Some(IpAddr::V4(std::net::Ipv4Addr::from(u32::try_from(high | last).ok()?)))
}

fn number(part: &str) -> Option<u64> {
    if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
        return if hex.is_empty() {
            Some(0)
        } else {
            u64::from_str_radix(hex, 16).ok().filter(|n| *n <= u32::MAX.into())
        };
    }
    if part.len() > 1 && part.starts_with('0') {
        return u64::from_str_radix(&part[1..], 8).ok().filter(|n| *n <= u32::MAX.into());
    }
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok().filter(|n| *n <= u32::MAX.into())
}

/// Why a webhook target is refused, by [`check_target`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetRefused {
    /// The host is, or resolves to, a private address.
    Private(String),
    /// The host does not resolve (now); onboarding lets it be, a delivery cannot go there.
    Unresolved(String),
}

impl std::fmt::Display for TargetRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetRefused::Private(why) | TargetRefused::Unresolved(why) => f.write_str(why),
        }
    }
}

/// The one rule of webhook targets, applied at onboarding and at every delivery (DNS can change
/// in between): unless the operator allows private targets, the host must be neither private by
/// its form ([`private_host`]) nor resolve to any private address.
pub async fn check_target(base_url: &str, policy: UrlPolicy) -> Result<(), TargetRefused> {
    if policy.allow_private {
        return Ok(());
    }
    let Some((host, port)) = target_host(base_url) else {
        return Err(TargetRefused::Unresolved(format!("{base_url} has no host")));
    };
    if let Some(why) = private_host(&host) {
        return Err(TargetRefused::Private(why));
    }
    if literal_ip(&host).is_some() {
        return Ok(());
    }
    let lookup =
        tokio::time::timeout(std::time::Duration::from_secs(5), tokio::net::lookup_host((host.as_str(), port)));
    let addresses = match lookup.await {
        Ok(Ok(addresses)) => addresses,
        Ok(Err(e)) => return Err(TargetRefused::Unresolved(format!("cannot resolve {host}: {e}"))),
        Err(_) => return Err(TargetRefused::Unresolved(format!("cannot resolve {host}: no answer within 5 s"))),
    };
    for address in addresses {
        if is_private(address.ip()) {
            return Err(TargetRefused::Private(format!(
                "{host} resolves to a private address ({}); refused",
                address.ip()
            )));
        }
    }
    Ok(())
}

/// A freshly onboarded app; the token is shown once.
#[derive(Debug, Clone)]
pub struct Onboarded {
    pub app_id: String,
    pub token: String,
    pub created_at: OffsetDateTime,
}

fn check(new: &NewApp, policy: UrlPolicy) -> Result<NewApp, ApiError> {
    let app_name = domain::names::clean("app_name", &new.app_name, 3..=100).map_err(ApiError::Invalid)?;
    let base_url = valid_base_url(&new.base_url, policy)?;
    let email = new.email.trim().to_owned();
    let email_ok = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(email.split_once('@'), Some((l, d)) if !l.is_empty() && d.contains('.') && !d.contains('@'));
    if !email_ok {
        return Err(ApiError::Invalid(format!("email {:?} is not a valid address", new.email)));
    }
    let website = match new.website.as_deref().map(str::trim).filter(|w| !w.is_empty()) {
        Some(w) if (w.starts_with("https://") || w.starts_with("http://")) && w.len() <= 2000 => Some(w.to_owned()),
        Some(w) => return Err(ApiError::Invalid(format!("website {w:?} must be an http(s) URL"))),
        None => None,
    };
    let description = new.description.as_deref().map(str::trim).filter(|d| !d.is_empty()).map(str::to_owned);
    if description.as_ref().is_some_and(|d| d.chars().count() > 500) {
        return Err(ApiError::Invalid("description must be at most 500 characters".into()));
    }
    if new.client_auth_key.chars().count() < 16 {
        return Err(ApiError::Invalid("client_auth_key must be at least 16 characters".into()));
    }
    Ok(NewApp { app_name, base_url, email, website, description, client_auth_key: new.client_auth_key.clone() })
}

/// Creates an app: its id, its token (returned once) and its encrypted signing key.
pub async fn onboard(
    conn: &mut db::Conn,
    cipher: &Cipher,
    new: &NewApp,
    policy: UrlPolicy,
) -> Result<Onboarded, ApiError> {
    let new = check(new, policy)?;
    // Names that resolve to a private address are refused now, by the rule deliveries apply; a
    // name that does not resolve yet is kept (each delivery resolves it again).
    if let Err(TargetRefused::Private(why)) = check_target(&new.base_url, policy).await {
        return Err(ApiError::Invalid(format!("base_url {:?}: {why}", new.base_url)));
    }
    let app_id = domain::ids::prefixed_hex("app_", 32);
    let token = auth::token::generate(TOKEN_PREFIX);
    let created_at: OffsetDateTime = diesel::insert_into(apps::table)
        .values((
            apps::id.eq(&app_id),
            apps::app_name.eq(&new.app_name),
            apps::base_url.eq(&new.base_url),
            apps::email.eq(&new.email),
            apps::website.eq(&new.website),
            apps::description.eq(&new.description),
            apps::client_auth_key_enc.eq(cipher.seal(new.client_auth_key.as_bytes(), &key_context(&app_id))),
            apps::token_digest.eq(auth::token::digest(&token).to_vec()),
        ))
        .returning(apps::created_at)
        .get_result(conn)
        .await?;
    Ok(Onboarded { app_id, token, created_at })
}

/// A new token for an app; the old one stops at once.
pub async fn regenerate_token(conn: &mut db::Conn, app_id: &str) -> Result<String, ApiError> {
    let token = auth::token::generate(TOKEN_PREFIX);
    let updated = diesel::update(apps::table.filter(apps::id.eq(app_id)))
        .set((apps::token_digest.eq(auth::token::digest(&token).to_vec()), apps::updated_at.eq(diesel::dsl::now)))
        .execute(conn)
        .await?;
    if updated == 0 {
        return Err(ApiError::NotFound(format!("app {app_id} not found")));
    }
    Ok(token)
}

/// The associated data of an app's encrypted signing key.
pub fn key_context(app_id: &str) -> String {
    format!("apps.client_auth_key:{app_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_resolving_to_private_addresses_are_refused() {
        let strict = UrlPolicy::default();
        // `localhost` is in every /etc/hosts; a public literal needs no resolution.
        assert!(matches!(check_target("https://localhost:9000", strict).await, Err(TargetRefused::Private(_))));
        assert!(matches!(check_target("https://2130706433", strict).await, Err(TargetRefused::Private(_))));
        assert_eq!(check_target("https://8.8.8.8/hooks", strict).await, Ok(()));
        let local = UrlPolicy { allow_http: true, allow_private: true };
        assert_eq!(check_target("http://127.0.0.1:9000", local).await, Ok(()));
    }

    #[test]
    fn webhook_targets_follow_the_operator_policy() {
        let strict = UrlPolicy::default();
        assert_eq!(
            valid_base_url("https://hooks.example.com/docora/", strict).ok().as_deref(),
            Some("https://hooks.example.com/docora")
        );
        for bad in [
            "http://hooks.example.com",
            "ftp://x",
            "https://",
            "https://localhost:8080",
            "https://127.0.0.1/x",
            "https://10.1.2.3",
            "https://192.168.0.1",
            "https://169.254.169.254/latest",
            "https://[::1]:443",
            "https://[fe80::1]",
            "https://user@hooks.example.com",
            "https://127.1",
            "https://2130706433",
            "https://0x7f000001:8443/x",
            "https://0177.0.0.1",
            "https://10.1",
            "https://localhost.",
            "https://LocalHost.:9000",
            "https://a.localhost./x",
            "https://[::ffff:127.0.0.1]",
            "https://[::ffff:7f00:1]/x",
        ] {
            assert!(valid_base_url(bad, strict).is_err(), "{bad}");
        }
        for public in ["https://8.8.8.8", "https://134744072", "https://1.2.3", "https://hooks.example.com:8443"] {
            assert!(valid_base_url(public, strict).is_ok(), "{public}");
        }
        assert_eq!(literal_ip("0x7f.1"), Some("127.0.0.1".parse().expect("ip")));
        assert_eq!(literal_ip("256.1.1.1"), None);
        assert_eq!(literal_ip("1.2.3.4.5"), None);
        assert_eq!(literal_ip("hooks.example.com"), None);
        assert_eq!(target_host("https://[::1]:8443/x"), Some(("::1".to_owned(), 8443)));
        assert_eq!(target_host("http://Hooks.Example.com./x"), Some(("hooks.example.com".to_owned(), 80)));
        let local = UrlPolicy { allow_http: true, allow_private: true };
        assert!(valid_base_url("http://127.0.0.1:9000/hooks", local).is_ok());
    }
}
