//! Real stand-ins for tests and for the local stack. Nothing here mocks code inside the process:
//! each stand-in is a real server, so the production client code is the code under test.
//!
//! - [`postgres`]: a private PostgreSQL cluster started from the machine's `initdb`/`pg_ctl`
//!   (or the server in `DATABASE_URL`), and a fresh database per test cloned from a migrated
//!   template and dropped afterwards.
//! - [`github`]: a fake GitHub REST API on a loopback port: users, tokens, repositories, stars,
//!   GitHub's JSON shapes, status codes and rate-limit headers.
//! - [`server`]: runs a service in-process on a loopback port, the way `main` does.
//! - [`http`]: a small JSON client for tests.

pub mod github;
pub mod http;
pub mod postgres;
pub mod server;

pub use github::FakeGithub;
pub use http::{Client, Response};
pub use postgres::TestDb;
pub use server::TestServer;
