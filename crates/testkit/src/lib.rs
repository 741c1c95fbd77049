//! Real stand-ins for tests. Nothing here mocks code inside the process: each stand-in is a real
//! server, so the production client code is the code under test.
//!
//! - [`postgres`]: the private PostgreSQL cluster of [`standins::postgres`] (or the server in
//!   `DATABASE_URL`), and a fresh database per test cloned from a migrated template and dropped
//!   afterwards.
//! - [`github`]: a fake GitHub REST API on a loopback port: users, tokens, repositories, stars,
//!   GitHub's JSON shapes, status codes and rate-limit headers.
//! - [`s3`]: [`standins::s3`], an S3 server on a loopback port (s3s over s3s-fs, SigV4
//!   enforced), with storage inspection and fault injection.
//! - [`schema_check`]: a service's `schema.rs` compared with its migrated database.
//! - [`server`]: runs a service in-process on a loopback port, the way `main` does.
//! - [`http`]: a small JSON client for tests.
//! - [`webhook_sink`]: a recording webhook receiver (a Docora app's endpoints) that checks
//!   signatures and can be told to fail, hang or answer slowly.
//! - [`bad_input`]: NUL and control characters for the per-field bad-input tests, and what a
//!   client must see when it sends them.
//! - [`browser`] (feature `browser`): headless Chromium through chromedriver, for page tests.
//! - [`embeddings`]: an OpenAI-compatible embeddings endpoint with deterministic bag-of-words
//!   vectors, for dokko-ingest's vector search.
//! - [`git_server`]: real git repositories served over smart HTTP like GitHub, with token checks
//!   for private ones, and work trees tests commit in.

pub mod bad_input;
#[cfg(feature = "browser")]
pub mod browser;
pub mod embeddings;
pub mod git_server;
pub mod github;
pub mod http;
pub mod postgres;
pub use standins::s3;
pub mod schema_check;
pub mod server;
pub mod webhook_sink;

pub use embeddings::EmbeddingsServer;
pub use git_server::{GitRepo, GitServer};
pub use github::FakeGithub;
pub use http::{Client, Part, Response};
pub use postgres::TestDb;
pub use s3::S3Server;
pub use server::TestServer;
pub use webhook_sink::{Received, SinkMode, WebhookSink};
