//! Runs the test kit's S3 server (s3s-fs, real SigV4 checks) until killed, for scripts that need
//! object storage outside a Rust test, such as the container images' smoke test
//! (deploy/images/smoke.py): `cargo run -p testkit --bin s3-server -- ROOT [--port PORT]
//! [--access-key KEY] [--secret-key SECRET] [--region REGION]`.
//!
//! Objects are files under ROOT (created if missing). Prints `S3_ENDPOINT=<url>`,
//! `S3_ACCESS_KEY_ID=…`, `S3_SECRET_ACCESS_KEY=…` and `S3_REGION=…`, one a line, once it listens.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use testkit::s3::{S3Options, S3Server};

const USAGE: &str = "usage: s3-server ROOT [--port PORT] [--access-key KEY] [--secret-key SECRET] [--region REGION]";

fn main() -> anyhow::Result<()> {
    let mut root = None;
    let mut port = 0u16;
    let mut access_key = "testkit-access-key".to_owned();
    let mut secret_key = "testkit-secret-key-for-local-use-only".to_owned();
    let mut region = "us-east-1".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--port" => port = value()?.parse().context("--port: not a port number")?,
            "--access-key" => access_key = value()?,
            "--secret-key" => secret_key = value()?,
            "--region" => region = value()?,
            path if root.is_none() && !path.starts_with("--") => root = Some(PathBuf::from(path)),
            other => anyhow::bail!("unexpected argument {other:?}\n{USAGE}"),
        }
    }
    let root = root.context(USAGE)?;
    let server = S3Server::start_with(S3Options {
        root,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        access_key: access_key.clone(),
        secret_key: secret_key.clone(),
        region: region.clone(),
    })?;

    let mut out = std::io::stdout().lock();
    writeln!(out, "S3_ENDPOINT={}", server.endpoint())?;
    writeln!(out, "S3_ACCESS_KEY_ID={access_key}")?;
    writeln!(out, "S3_SECRET_ACCESS_KEY={secret_key}")?;
    writeln!(out, "S3_REGION={region}")?;
    out.flush()?;
    loop {
        std::thread::park();
    }
}
