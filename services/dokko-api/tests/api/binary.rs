//! The built binary: the operator's commands and configuration errors.

use std::process::{Command, Output};

use crate::{PASSWORD, TestApp, test_env};
use serde_json::json;

fn run(app: &TestApp, args: &[&str], without: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dokko-api"));
    command.args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).env("RUST_LOG", "warn");
    for (name, value) in test_env(&app.db.url, &app.s3).vars() {
        if Some(name.as_str()) != without {
            command.env(name, value);
        }
    }
    command.output().expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn the_admin_commands_onboard_an_organisation_end_to_end() {
    let app = TestApp::spawn().await;
    let out = run(&app, &["admin", "create-tenant", "--name", "acme", "--admin-email", "admin@acme.example"], None);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    let link = text
        .lines()
        .find_map(|l| l.strip_prefix("invitation link"))
        .map(str::trim)
        .unwrap_or_else(|| panic!("an invitation link in {text}"));
    let token = link.split("token=").nth(1).expect("token in the link");
    assert!(link.starts_with("https://dokko.test/invitations/accept?token=inv_"), "{link}");
    assert!(text.contains("bucket dokko-"), "{text}");

    let res = app
        .anonymous()
        .post_json("/api/v1/auth/invitations/accept", &json!({"token": token, "password": PASSWORD}))
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let admin = app.as_token(&app.login("acme", "admin@acme.example", PASSWORD).await);
    let sources = admin.get("/api/v1/document-sources").await;
    assert_eq!(sources.body["total_records"], 1);
    let bucket = sources.body["items"][0]["identifier"].as_str().expect("bucket").to_owned();
    assert!(app.s3.bucket_exists(&bucket));

    let out =
        run(&app, &["admin", "invite", "--tenant", "acme", "--email", "dev@acme.example", "--role", "member"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("dev@acme.example as member"));

    let out = run(&app, &["admin", "set-subscription", "--tenant", "acme", "--active", "false"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(admin.get("/api/v1/permissions").await.status, 402);

    let again = run(&app, &["admin", "create-tenant", "--name", "acme", "--admin-email", "x@acme.example"], None);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("already exists"), "{}", stderr(&again));
}

#[tokio::test]
async fn bad_commands_and_configuration_are_explained() {
    let app = TestApp::spawn().await;
    let missing_flag = run(&app, &["admin", "create-tenant", "--name", "acme"], None);
    assert!(!missing_flag.status.success());
    assert!(stderr(&missing_flag).contains("--admin-email is required"), "{}", stderr(&missing_flag));

    let unknown = run(&app, &["admin", "explode"], None);
    assert!(!unknown.status.success());
    assert!(stderr(&unknown).contains("unknown admin command"), "{}", stderr(&unknown));

    let no_secret =
        run(&app, &["admin", "set-subscription", "--tenant", "acme", "--active", "true"], Some("JWT_SECRET"));
    assert!(!no_secret.status.success());
    assert!(stderr(&no_secret).contains("JWT_SECRET"), "{}", stderr(&no_secret));

    let no_storage = run(&app, &[], Some("S3_ACCESS_KEY_ID"));
    assert!(!no_storage.status.success());
    assert!(stderr(&no_storage).contains("S3_ACCESS_KEY_ID"), "{}", stderr(&no_storage));
}
