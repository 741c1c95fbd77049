//! dokko-ingest: configuration from the environment (see the README), then serve until SIGTERM;
//! or, as `dokko-ingest extract-child`, the isolated text extractor the service runs per file.

use std::net::TcpListener;
use std::process::ExitCode;

use anyhow::Context;

fn main() -> anyhow::Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        // The child process: no runtime, no logging, no settings; bytes in, text out.
        Some(dokko_ingest::EXTRACT_CHILD) => Ok(extract::child_main()),
        None => {
            serve()?;
            Ok(ExitCode::SUCCESS)
        }
        Some(other) => anyhow::bail!("unknown command {other:?}; dokko-ingest takes no arguments"),
    }
}

#[actix_web::main]
async fn serve() -> anyhow::Result<()> {
    service_kit::telemetry::init_from_env();
    let settings = dokko_ingest::Settings::from_env(&service_kit::Env::process()).context("invalid configuration")?;
    let listener = TcpListener::bind(settings.http.listen_addr)
        .with_context(|| format!("cannot listen on {}", settings.http.listen_addr))?;
    dokko_ingest::start(settings, listener).await?.run().await?;
    Ok(())
}
