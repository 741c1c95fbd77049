//! Logs: tracing to stdout, filtered by `RUST_LOG` (default `info`), as JSON lines when
//! `LOG_FORMAT=json` and as readable text otherwise.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber from `LOG_FORMAT` and `RUST_LOG`. Calling it again is harmless.
pub fn init_from_env() {
    let json = std::env::var("LOG_FORMAT").map(|v| v.eq_ignore_ascii_case("json")).unwrap_or(false);
    init(json);
}

/// Installs the global subscriber. Calling it again is harmless.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stdout);
    let _already_set = if json {
        builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init()
    } else {
        builder.with_target(false).with_ansi(std::io::stdout().is_terminal()).try_init()
    };
}
