//! Types every service shares: the JSON error body, Dokko's pagination, timestamp formats,
//! prefixed random ids and the rules for names.
//!
//! This crate knows nothing about HTTP frameworks or databases (CI checks with `cargo tree` that
//! neither actix nor diesel is among its dependencies), so any crate can use it.

pub mod error;
pub mod ids;
pub mod names;
pub mod pagination;
pub mod timestamp;

pub use error::ErrorBody;
pub use pagination::{Page, PageQuery, Paginated, ParamError};
