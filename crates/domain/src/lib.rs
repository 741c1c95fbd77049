//! Types every service shares: the JSON error body, Dokko's pagination, timestamp formats,
//! prefixed random ids, the rules for names, and what dokko-api and dokko-ingest exchange
//! ([`ingest`]).
//!
//! This crate knows nothing about HTTP frameworks or databases (CI checks with `cargo tree` that
//! neither actix nor diesel is among its dependencies), so any crate can use it.

pub mod error;
pub mod filter;
pub mod ids;
pub mod ingest;
pub mod names;
pub mod pagination;
pub mod text;
pub mod timestamp;

pub use error::ErrorBody;
pub use pagination::{Page, PageQuery, Paginated, ParamError};
