//! Settings from environment variables.
//!
//! Services read their settings through an [`Env`], which is the process environment in
//! production and a plain map in tests and in the local launcher. Every error names the variable
//! and says what was wrong with it, so a pod that fails to boot says why in one line.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

/// A variable that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct SettingsError {
    pub var: String,
    pub problem: String,
}

impl SettingsError {
    pub fn new(var: &str, problem: impl Into<String>) -> Self {
        Self { var: var.to_owned(), problem: problem.into() }
    }
}

/// A value that must never be printed: `Debug` and `Display` show `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The value itself, for the one place that needs it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where settings are read from.
#[derive(Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be secrets: show only the names.
        f.debug_struct("Env").field("vars", &self.vars.keys().collect::<Vec<_>>()).finish()
    }
}

impl Env {
    /// The process environment (variables that are not valid UTF-8 are skipped).
    pub fn process() -> Self {
        Self {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    /// Exactly these variables.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self { vars: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }

    /// Sets (or replaces) one variable.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    /// Sets a variable only when it is unset or blank.
    pub fn with_default(self, name: &str, value: impl Into<String>) -> Self {
        if self.get(name).is_some() { self } else { self.with(name, value) }
    }

    /// Every variable, for handing the same settings to a child process.
    pub fn vars(&self) -> impl Iterator<Item = (&String, &String)> {
        self.vars.iter()
    }

    /// The variable's value, `None` when unset or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// A variable that must be set.
    pub fn required(&self, name: &str) -> Result<String, SettingsError> {
        self.get(name).map(str::to_owned).ok_or_else(|| SettingsError::new(name, "is not set"))
    }

    /// A secret that must be set.
    pub fn required_secret(&self, name: &str) -> Result<Secret<String>, SettingsError> {
        self.required(name).map(Secret::new)
    }

    /// A string with a default.
    pub fn string_or(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or(default).to_owned()
    }

    /// A value parsed with `FromStr`, or `default` when unset.
    pub fn parse_or<T>(&self, name: &str, default: T) -> Result<T, SettingsError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw.parse().map_err(|e| SettingsError::new(name, format!("cannot parse {raw:?}: {e}"))),
        }
    }

    /// A whole number within `range`, or `default` when unset.
    pub fn number_or<T>(&self, name: &str, default: T, range: std::ops::RangeInclusive<T>) -> Result<T, SettingsError>
    where
        T: FromStr + PartialOrd + fmt::Display + Copy,
        T::Err: fmt::Display,
    {
        let value = self.parse_or(name, default)?;
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(SettingsError::new(name, format!("must be between {} and {}, got {value}", range.start(), range.end())))
        }
    }

    /// A duration given in whole seconds, or `default_secs` when unset.
    pub fn seconds_or(&self, name: &str, default_secs: u64) -> Result<Duration, SettingsError> {
        self.parse_or::<u64>(name, default_secs).map(Duration::from_secs)
    }

    /// A boolean (`true`/`false`, `1`/`0`, `yes`/`no`), or `default` when unset.
    pub fn flag_or(&self, name: &str, default: bool) -> Result<bool, SettingsError> {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(other) => Err(SettingsError::new(name, format!("expected true or false, got {other:?}"))),
        }
    }

    /// A comma-separated list; empty when unset.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// An `http://` or `https://` URL without a trailing slash, or `default` when unset.
    pub fn http_url_or(&self, name: &str, default: &str) -> Result<String, SettingsError> {
        let url = self.get(name).unwrap_or(default);
        let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
        match rest {
            Some(host) if !host.is_empty() && !host.starts_with('/') => Ok(url.trim_end_matches('/').to_owned()),
            _ => Err(SettingsError::new(name, format!("expected an http:// or https:// URL, got {url:?}"))),
        }
    }
}

/// The HTTP server's settings, the same for every service.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// `LISTEN_ADDR`, default `0.0.0.0:<the service's port>`.
    pub listen_addr: SocketAddr,
    /// `HTTP_WORKERS`, default: one per CPU.
    pub workers: usize,
    /// `SHUTDOWN_TIMEOUT_SECS`, default 30: how long in-flight requests may take to drain.
    pub shutdown_timeout: Duration,
    /// `CORS_ALLOWED_ORIGINS`, comma-separated; `*` allows any origin. Default: none.
    pub cors_allowed_origins: Vec<String>,
    /// `JSON_BODY_LIMIT_BYTES`, default 65536.
    pub json_body_limit: usize,
}

impl HttpSettings {
    pub fn from_env(env: &Env, default_port: u16) -> Result<Self, SettingsError> {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Ok(Self {
            listen_addr: env.parse_or("LISTEN_ADDR", SocketAddr::from(([0, 0, 0, 0], default_port)))?,
            workers: env.number_or("HTTP_WORKERS", cpus, 1..=256)?,
            shutdown_timeout: env.seconds_or("SHUTDOWN_TIMEOUT_SECS", 30)?,
            cors_allowed_origins: env.list("CORS_ALLOWED_ORIGINS"),
            json_body_limit: env.number_or("JSON_BODY_LIMIT_BYTES", 64 * 1024, 1024..=64 * 1024 * 1024)?,
        })
    }
}

/// The database settings, the same for every service.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// `DATABASE_URL`, required: `postgres://user:password@host:5432/database`.
    pub url: Secret<String>,
    /// `DATABASE_POOL_SIZE`, default 16.
    pub pool_size: usize,
    /// `DATABASE_TIMEOUT_SECS`, default 5: waiting for a pooled connection or a new one.
    pub timeout: Duration,
}

impl DatabaseSettings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let url = env.required_secret("DATABASE_URL")?;
        if !(url.expose().starts_with("postgres://") || url.expose().starts_with("postgresql://")) {
            return Err(SettingsError::new("DATABASE_URL", "expected a postgres:// URL"));
        }
        Ok(Self {
            url,
            pool_size: env.number_or("DATABASE_POOL_SIZE", 16, 1..=1000)?,
            timeout: env.seconds_or("DATABASE_TIMEOUT_SECS", 5)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_variable() {
        let env = Env::from_pairs([("HTTP_WORKERS", "lots"), ("DATABASE_URL", "mysql://x")]);
        let err = HttpSettings::from_env(&env, 8084).expect_err("lots is no number");
        assert_eq!(err.var, "HTTP_WORKERS");
        assert_eq!(DatabaseSettings::from_env(&env).expect_err("wrong scheme").var, "DATABASE_URL");
        let err = DatabaseSettings::from_env(&Env::default()).expect_err("missing");
        assert_eq!(err.to_string(), "DATABASE_URL: is not set");
        let err = Env::from_pairs([("HTTP_WORKERS", "0")]).number_or("HTTP_WORKERS", 2usize, 1..=256).expect_err("0");
        assert!(err.problem.contains("between 1 and 256"), "{err}");
    }

    #[test]
    fn defaults_apply_and_secrets_do_not_print() {
        let env = Env::from_pairs([
            ("DATABASE_URL", "postgres://u:hunter2@h/db"),
            ("CORS_ALLOWED_ORIGINS", "https://a, https://b,"),
        ]);
        let http = HttpSettings::from_env(&env, 8084).expect("defaults");
        assert_eq!(http.listen_addr.port(), 8084);
        assert_eq!(http.cors_allowed_origins, vec!["https://a", "https://b"]);
        let db = DatabaseSettings::from_env(&env).expect("valid");
        assert!(!format!("{db:?}").contains("hunter2"));
        assert!(!format!("{env:?}").contains("hunter2"));
        assert_eq!(env.http_url_or("X", "https://api.github.com/").as_deref(), Ok("https://api.github.com"));
        assert!(env.clone().with("X", "ftp://x").http_url_or("X", "https://a").is_err());
    }
}
