//! Where dokko-api keeps files' bytes: the S3 client is the shared `object-storage` crate (also
//! dokko-ingest's); this module names buckets and objects.
//!
//! Each tenant gets one bucket, `{S3_BUCKET_PREFIX}{tenant uuid without dashes}`: always a
//! valid bucket name (lower-case hex, 32 characters plus the prefix) and never reused.
//!
//! Object keys: `repositories/{repository_id}/objects/{uuid v7}`. A key names one upload of one
//! file and is never overwritten: replacing a file's content writes a new object,
//! switches the row to it in a transaction, then deletes the old one. Moving or renaming a file
//! only changes its path in the database. Every object in flight is recorded in
//! `dokko.object_journal` first (see [`crate::files::journal`]), so an object is always either
//! pointed at by a file row or listed for deletion.

use service_kit::{Env, SettingsError};
use uuid::Uuid;

pub use object_storage::{PART_SIZE, S3Settings, SmallPuts, Storage, StorageError};

/// `S3_BUCKET_PREFIX`, default `dokko-`: tenant buckets are named prefix + tenant UUID hex.
pub fn bucket_prefix_from_env(env: &Env) -> Result<String, SettingsError> {
    let bucket_prefix = env.string_or("S3_BUCKET_PREFIX", "dokko-");
    let prefix_ok = bucket_prefix.len() <= 30
        && bucket_prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && bucket_prefix.bytes().next().is_none_or(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !prefix_ok {
        return Err(SettingsError::new(
            "S3_BUCKET_PREFIX",
            "must be at most 30 lower-case letters, digits, '-' or '.', starting with a letter or digit",
        ));
    }
    Ok(bucket_prefix)
}

/// The bucket of a tenant.
pub fn bucket_name(prefix: &str, tenant_id: Uuid) -> String {
    format!("{prefix}{}", tenant_id.simple())
}

/// A new object key for one upload of a file of `repository_id`.
pub fn object_key(repository_id: Uuid) -> String {
    format!("repositories/{repository_id}/objects/{}", Uuid::now_v7())
}
