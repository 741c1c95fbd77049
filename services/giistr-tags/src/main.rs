//! giistr-tags: configuration from the environment (see the README), then serve until SIGTERM.

use std::net::TcpListener;

use anyhow::Context;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    service_kit::telemetry::init_from_env();
    let settings = giistr_tags::Settings::from_env(&service_kit::Env::process()).context("invalid configuration")?;
    let listener = TcpListener::bind(settings.http.listen_addr)
        .with_context(|| format!("cannot listen on {}", settings.http.listen_addr))?;
    giistr_tags::start(settings, listener).await?.run().await?;
    Ok(())
}
