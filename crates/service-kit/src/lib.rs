//! The plumbing every service repeats, written once.
//!
//! - [`settings`]: typed settings from environment variables, errors that name the variable,
//!   secrets that never print.
//! - [`telemetry`]: tracing to stdout, JSON when `LOG_FORMAT=json`.
//! - [`db`]: the diesel-async pool, schema creation and embedded migrations under an advisory
//!   lock, database errors sorted into what an API answers.
//! - [`http`]: the actix server every service runs: request ids and logs, metrics, probes,
//!   `/openapi.json`, CORS, and extractor errors as the JSON error body.
//! - [`pages`]: console forms whose CSRF token is checked by their extractor.
//! - [`background`]: background workers that shutdown tells to stop and waits for.
//! - [`metrics`]: request counts and latencies in Prometheus text format.
//! - [`cli`]: the `--name value` flags of the operator commands.

pub mod background;
pub mod cli;
pub mod db;
pub mod http;
pub mod metrics;
pub mod pages;
pub mod settings;
pub mod telemetry;

pub use settings::{Env, Secret, SettingsError};
