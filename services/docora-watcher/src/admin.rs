//! The operator's command, run through the service binary with the service's own settings
//! (the admin dashboard and its JSON API offer the same):
//!
//! ```text
//! docora-watcher admin onboard-app --name NAME --base-url URL --email EMAIL --client-auth-key KEY
//!                                  [--website URL] [--description TEXT]
//! docora-watcher admin regenerate-token --app APP_ID
//! docora-watcher admin hash-password        (reads the password from stdin; prints ADMIN_PASSWORD_HASH)
//! ```

// A command-line tool talks to the person at the terminal.
#![allow(clippy::print_stdout)]

use service_kit::db;

use crate::Settings;
use crate::apps::{self, NewApp};

pub const USAGE: &str = "\
usage:
  docora-watcher                 serve (configuration from the environment)
  docora-watcher admin onboard-app --name NAME --base-url URL --email EMAIL --client-auth-key KEY [--website URL] [--description TEXT]
  docora-watcher admin regenerate-token --app APP_ID
  docora-watcher admin hash-password   (the password on stdin; prints the ADMIN_PASSWORD_HASH value)";

/// The argon2id hash of the password on stdin (no settings needed).
pub fn hash_password() -> anyhow::Result<()> {
    let mut password = String::new();
    std::io::stdin().read_line(&mut password)?;
    let password = password.trim_end_matches(['\n', '\r']);
    anyhow::ensure!(password.chars().count() >= 12, "use an admin password of at least 12 characters");
    println!("{}", auth::password::hash(password).map_err(|e| anyhow::anyhow!("{e}"))?);
    Ok(())
}

/// Runs `docora-watcher admin <args>`.
pub async fn run(args: &[String], settings: &Settings) -> anyhow::Result<()> {
    let Some((command, flags)) = args.split_first() else { anyhow::bail!("{USAGE}") };
    let flags = service_kit::cli::Flags::parse(flags, USAGE)?;
    crate::migrate(settings.database.url.expose()).await?;
    let pool = db::pool(&settings.database)?;
    let mut conn = db::conn(&pool).await?;
    let outcome = match command.as_str() {
        "onboard-app" => {
            let new = NewApp {
                app_name: flags.required("name")?.to_owned(),
                base_url: flags.required("base-url")?.to_owned(),
                email: flags.required("email")?.to_owned(),
                website: flags.optional("website").map(str::to_owned),
                description: flags.optional("description").map(str::to_owned),
                client_auth_key: flags.required("client-auth-key")?.to_owned(),
            };
            let app = apps::onboard(&mut conn, &settings.cipher(), &new, settings.url_policy)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("app_id      {}", app.app_id);
            println!("token       {}  (shown once; the app sends it as Authorization: Bearer …)", app.token);
            println!("created_at  {}", domain::timestamp::format_rfc3339(app.created_at));
            Ok(())
        }
        "regenerate-token" => {
            let token =
                apps::regenerate_token(&mut conn, flags.required("app")?).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("token       {token}  (shown once; the old one no longer works)");
            Ok(())
        }
        other => Err(anyhow::anyhow!("unknown admin command {other:?}\n{USAGE}")),
    };
    drop(conn);
    pool.close();
    outcome
}
