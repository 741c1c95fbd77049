//! The built binary: the operator's onboarding command and configuration errors.

use std::process::Command;

use serde_json::json;

use crate::{TestApp, test_env};

#[tokio::test]
async fn an_app_onboarded_from_the_command_line_can_use_the_api() {
    let app = TestApp::spawn().await;
    let run = |args: &[&str], without: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_docora-watcher"));
        command.args(args).env_clear().env("RUST_LOG", "warn");
        for (name, value) in test_env(&app.db.url, app.github.url()).vars() {
            if Some(name.as_str()) != without {
                command.env(name, value);
            }
        }
        command.output().expect("the binary runs")
    };
    let out = run(
        &[
            "admin",
            "onboard-app",
            "--name",
            "Reader",
            "--base-url",
            "https://hooks.example.com",
            "--email",
            "dev@example.com",
            "--client-auth-key",
            "0123456789abcdef0123",
        ],
        None,
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let token = stdout
        .lines()
        .find_map(|l| l.strip_prefix("token"))
        .and_then(|l| l.split_whitespace().next())
        .expect("a token line");
    assert!(token.starts_with("docora_") && token.len() == 7 + 64, "{token}");
    let (owner_id, _) = app.github.add_user("octo");
    app.github.add_repo(owner_id, "repo", false);
    let res = app
        .as_token(token)
        .post_json("/api/repositories", &json!({"github_url": "https://github.com/octo/repo"}))
        .await;
    assert_eq!(res.status, 201, "{}", res.text);

    let refused = run(
        &[
            "admin",
            "onboard-app",
            "--name",
            "Bad",
            "--base-url",
            "http://127.0.0.1:9",
            "--email",
            "dev@example.com",
            "--client-auth-key",
            "0123456789abcdef0123",
        ],
        None,
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("base_url"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let no_key = run(&[], Some("ENCRYPTION_KEY"));
    assert!(!no_key.status.success());
    assert!(String::from_utf8_lossy(&no_key.stderr).contains("ENCRYPTION_KEY"));
}
