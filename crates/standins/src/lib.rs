//! Local stand-ins for the external systems the services use, run by the test kit for the tests
//! and by the local stack (`cargo run -p stack`) for people: real servers on loopback, so the
//! production client code is the code that runs.
//!
//! - [`postgres`]: a private PostgreSQL cluster started from the machine's `initdb`/`pg_ctl`.
//! - [`s3`]: an S3 server (s3s over s3s-fs, SigV4 enforced), with storage inspection and fault
//!   injection for tests.

pub mod postgres;
pub mod s3;
