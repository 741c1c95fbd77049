//! docora-watcher: configuration from the environment (see the README), then serve until
//! SIGTERM; or, with `admin …`, one of the operator's commands (see `docora_watcher::admin`).

use std::net::TcpListener;

use anyhow::Context;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    service_kit::telemetry::init_from_env();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if matches!(args.first().map(String::as_str), Some("help" | "--help" | "-h")) {
        eprintln!("{}", docora_watcher::admin::USAGE);
        return Ok(());
    }
    if args.iter().map(String::as_str).eq(["admin", "hash-password"]) {
        return docora_watcher::admin::hash_password();
    }
    let settings = docora_watcher::Settings::from_env(&service_kit::Env::process()).context("invalid configuration")?;
    match args.split_first() {
        None => {
            let listener = TcpListener::bind(settings.http.listen_addr)
                .with_context(|| format!("cannot listen on {}", settings.http.listen_addr))?;
            docora_watcher::start(settings, listener).await?.run().await?;
            Ok(())
        }
        Some((command, rest)) if command == "admin" => docora_watcher::admin::run(rest, &settings).await,
        Some((other, _)) => anyhow::bail!("unknown command {other:?}\n{}", docora_watcher::admin::USAGE),
    }
}
