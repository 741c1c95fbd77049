//! Runs the fake GitHub API on a loopback port until killed, for benchmarks and trying the
//! stack without a real GitHub: `cargo run -p testkit --bin fake-github -- [users]
//! [--client-auth-key KEY]`.
//!
//! Beside the API it serves git (the test kit's smart-HTTP server) with one public repository,
//! `user0/demo`, and a webhook receiver that prints each delivery it gets, so docora-watcher can
//! be tried end to end. Prints `GITHUB_API_URL=<url>`, `GIT_BASE_URL=<url>`,
//! `WEBHOOK_URL=<url>`, `REPOSITORY=https://github.com/user0/demo`, then one `TOKEN=<token>`
//! line per user. With `--client-auth-key`, each delivery's signature is checked with that key.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use testkit::{FakeGithub, GitServer, WebhookSink};

fn main() -> anyhow::Result<()> {
    let mut users = 1usize;
    let mut key = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--client-auth-key" => key = Some(args.next().context("--client-auth-key needs a value")?),
            n => users = n.parse().with_context(|| format!("not a number of users: {n:?}"))?,
        }
    }

    let github = FakeGithub::start();
    let git = GitServer::start()?;
    let sink = WebhookSink::start()?;
    let mut tokens = Vec::new();
    let mut first_user = None;
    for i in 0..users.max(1) {
        let (id, token) = github.add_user(&format!("user{i}"));
        first_user.get_or_insert(id);
        tokens.push(token);
    }
    if let Some(owner) = first_user {
        github.add_repo(owner, "demo", false);
        let repo = git.create_repo("user0", "demo")?;
        repo.write("README.md", b"# demo\n\nA repository served by the test kit's git server.\n")
            .write("docs/guide.md", b"Edit a file in the work tree below, commit, and push to see an update.\n")
            .write("assets/logo.bin", &[0u8, 159, 146, 150, 1, 2, 3, 255]);
        repo.commit("first commit")?;
        repo.git(&["push", "-q", "origin", "main"])?;
        eprintln!("work tree of user0/demo (commit and `git push origin main` there): {}", repo.work_dir().display());
    }

    let mut out = std::io::stdout().lock();
    writeln!(out, "GITHUB_API_URL={}", github.url())?;
    writeln!(out, "GIT_BASE_URL={}", git.url())?;
    writeln!(out, "WEBHOOK_URL={}", sink.url())?;
    writeln!(out, "REPOSITORY=https://github.com/user0/demo")?;
    for token in &tokens {
        writeln!(out, "TOKEN={token}")?;
    }
    out.flush()?;

    // Prints every delivery once, as it arrives.
    let mut printed = 0;
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let received = sink.received();
        for hook in &received[printed.min(received.len())..] {
            let body = serde_json::from_slice::<serde_json::Value>(&hook.body).unwrap_or_default();
            let path = body["file"]["path"].as_str().unwrap_or("-");
            let signature = match &key {
                Some(key) if hook.signature_valid(key) => " (signature valid)",
                Some(_) => " (SIGNATURE INVALID)",
                None => "",
            };
            writeln!(out, "webhook {} {path} {} bytes{signature}", hook.event(), hook.body.len())?;
        }
        printed = received.len();
    }
}
