//! Runs the fake GitHub API on a loopback port until killed, for benchmarks and trying the
//! stack without a real GitHub: `cargo run -p testkit --bin fake-github -- [users]`.
//!
//! Prints `GITHUB_API_URL=<url>` and then one `TOKEN=<token>` line per user created.

use std::io::Write;

fn main() {
    let users: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(1);
    let github = testkit::FakeGithub::start();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "GITHUB_API_URL={}", github.url());
    for i in 0..users {
        let (_, token) = github.add_user(&format!("user{i}"));
        let _ = writeln!(out, "TOKEN={token}");
    }
    let _ = out.flush();
    drop(out);
    loop {
        std::thread::park();
    }
}
