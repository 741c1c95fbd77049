//! Logs: tracing to stdout, filtered by `RUST_LOG` (default `info`), as JSON lines when
//! `LOG_FORMAT=json` and as readable text otherwise.
//!
//! - A JSON line names each key once: the event's text is `message`, so no event of ours has a
//!   field of that name (a dependency that cannot answer is logged by
//!   [`dependency_unavailable`], its cause under `cause`).
//! - A request the HTTP server cannot parse (a malformed header, method, URI or version, a head
//!   too large, a client too slow to send it) is the client's fault: actix logs it at ERROR,
//!   [`ClientFaults`] writes it at WARN as `malformed request from a client`. Errors of the
//!   server's own (a response stream that broke, say) stay at ERROR.

use std::io::IsTerminal;

use tracing::callsite::{Callsite, Identifier};
use tracing::field::{Field, FieldSet, Visit};
use tracing::metadata::Kind;
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global subscriber from `LOG_FORMAT` and `RUST_LOG`. Calling it again is harmless.
pub fn init_from_env() {
    let json = std::env::var("LOG_FORMAT").map(|v| v.eq_ignore_ascii_case("json")).unwrap_or(false);
    init(json);
}

/// Installs the global subscriber. Calling it again is harmless.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _already_set = subscriber(json, filter, std::io::stdout).try_init();
}

/// The subscriber [`init`] installs, writing to `writer` (tests give it a buffer).
pub fn subscriber<W>(json: bool, filter: EnvFilter, writer: W) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    type Filtered = tracing_subscriber::layer::Layered<EnvFilter, tracing_subscriber::Registry>;
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
    let layer: Box<dyn Layer<Filtered> + Send + Sync> = if json {
        Box::new(ClientFaults(fmt.json().flatten_event(true).with_current_span(true).with_span_list(false)))
    } else {
        Box::new(ClientFaults(fmt.with_target(false).with_ansi(std::io::stdout().is_terminal())))
    };
    tracing_subscriber::registry().with(filter).with(layer)
}

/// Logs that a dependency (GitHub, object storage, another service, …) cannot answer right now,
/// at WARN, with what was said about it as `cause`.
pub fn dependency_unavailable(cause: &str) {
    tracing::warn!(cause, "dependency unavailable");
}

/// Where actix's HTTP/1 server logs the errors that end a connection.
const ACTIX_DISPATCHER: &str = "actix_http::h1::dispatcher";
/// The ones among them a client causes (actix's own words): a request that does not parse, one
/// that does not arrive in time.
const CLIENT_FAULTS: [&str; 2] =
    ["stream error: request parse error", "stream error: request did not complete within the specified timeout"];

/// A layer that writes what actix logs at ERROR about a client's malformed request at WARN (see
/// the module's documentation), and everything else as `L` does.
pub struct ClientFaults<L>(L);

struct ClientFaultCallsite;
static CLIENT_FAULT_CALLSITE: ClientFaultCallsite = ClientFaultCallsite;
static CLIENT_FAULT: Metadata<'static> = Metadata::new(
    "malformed request from a client",
    "service_kit::http",
    Level::WARN,
    Some(file!()),
    Some(line!()),
    Some(module_path!()),
    FieldSet::new(&["message", "error"], Identifier(&CLIENT_FAULT_CALLSITE)),
    Kind::EVENT,
);

impl Callsite for ClientFaultCallsite {
    fn set_interest(&self, _: Interest) {}

    fn metadata(&self) -> &Metadata<'_> {
        &CLIENT_FAULT
    }
}

/// An event's `message`.
#[derive(Default)]
struct MessageOf(Option<String>);

impl Visit for MessageOf {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = Some(format!("{value:?}"));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = Some(value.to_owned());
        }
    }
}

/// The error of a client's malformed request, when `event` is actix's log of one.
fn client_fault(event: &Event<'_>) -> Option<String> {
    let meta = event.metadata();
    if *meta.level() != Level::ERROR || meta.target() != ACTIX_DISPATCHER {
        return None;
    }
    let mut message = MessageOf::default();
    event.record(&mut message);
    let message = message.0?;
    CLIENT_FAULTS
        .iter()
        .any(|fault| message.starts_with(fault))
        .then(|| message.trim_start_matches("stream error: ").to_owned())
}

impl<S, L> Layer<S> for ClientFaults<L>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    L: Layer<S>,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.0.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.0.on_layer(subscriber);
    }

    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        self.0.register_callsite(metadata)
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        self.0.enabled(metadata, ctx)
    }

    fn on_new_span(&self, attrs: &tracing::span::Attributes<'_>, id: &tracing::span::Id, ctx: Context<'_, S>) {
        self.0.on_new_span(attrs, id, ctx);
    }

    fn on_record(&self, span: &tracing::span::Id, values: &tracing::span::Record<'_>, ctx: Context<'_, S>) {
        self.0.on_record(span, values, ctx);
    }

    fn on_follows_from(&self, span: &tracing::span::Id, follows: &tracing::span::Id, ctx: Context<'_, S>) {
        self.0.on_follows_from(span, follows, ctx);
    }

    fn event_enabled(&self, event: &Event<'_>, ctx: Context<'_, S>) -> bool {
        self.0.event_enabled(event, ctx)
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(error) = client_fault(event) else {
            return self.0.on_event(event, ctx);
        };
        let fields = CLIENT_FAULT.fields();
        let (Some(message), Some(error_field)) = (fields.field("message"), fields.field("error")) else {
            return self.0.on_event(event, ctx);
        };
        let text = format_args!("malformed request from a client");
        let values: [(&Field, Option<&dyn tracing::Value>); 2] =
            [(&message, Some(&text as &dyn tracing::Value)), (&error_field, Some(&error as &dyn tracing::Value))];
        let values = fields.value_set(&values);
        self.0.on_event(&Event::new(&CLIENT_FAULT, &values), ctx);
    }

    fn on_enter(&self, id: &tracing::span::Id, ctx: Context<'_, S>) {
        self.0.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &tracing::span::Id, ctx: Context<'_, S>) {
        self.0.on_exit(id, ctx);
    }

    fn on_close(&self, id: tracing::span::Id, ctx: Context<'_, S>) {
        self.0.on_close(id, ctx);
    }

    fn on_id_change(&self, old: &tracing::span::Id, new: &tracing::span::Id, ctx: Context<'_, S>) {
        self.0.on_id_change(old, new, ctx);
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex, OnceLock};
    use std::time::{Duration, Instant};

    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
    use tracing_subscriber::EnvFilter;

    /// Log lines written to memory.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Lines {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
        }
    }

    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The keys of a JSON object, in order, duplicates included (serde_json's `Value` keeps
    /// only the last of a key written twice).
    fn keys(line: &str) -> Vec<String> {
        struct Keys;
        impl<'de> Visitor<'de> for Keys {
            type Value = Vec<String>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
                let mut keys = Vec::new();
                while let Some((key, IgnoredAny)) = map.next_entry::<String, IgnoredAny>()? {
                    keys.push(key);
                }
                Ok(keys)
            }
        }
        let mut de = serde_json::Deserializer::from_str(line);
        de.deserialize_map(Keys).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    fn assert_each_key_once(line: &str) {
        let keys = keys(line);
        let mut seen = std::collections::HashSet::new();
        let twice: Vec<&String> = keys.iter().filter(|k| !seen.insert(k.as_str())).collect();
        assert!(twice.is_empty(), "{twice:?} more than once in {line}");
    }

    #[test]
    fn a_dependency_that_cannot_answer_is_logged_with_each_key_once() {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = super::subscriber(true, EnvFilter::new("info"), move || writer.clone());
        tracing::subscriber::with_default(subscriber, || {
            super::dependency_unavailable("GitHub answered 502");
        });
        let text = lines.text();
        let line = text.lines().next().unwrap_or_else(|| panic!("nothing logged"));
        assert_each_key_once(line);
        let json: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        assert_eq!(json["level"], "WARN");
        assert_eq!(json["message"], "dependency unavailable");
        assert_eq!(json["cause"], "GitHub answered 502");
    }

    /// What the whole process logs (the server's threads log here too), from the first test
    /// that asks.
    fn process_lines() -> Lines {
        static LINES: OnceLock<Lines> = OnceLock::new();
        LINES
            .get_or_init(|| {
                let lines = Lines::default();
                let writer = lines.clone();
                let subscriber = super::subscriber(true, EnvFilter::new("info"), move || writer.clone());
                tracing::subscriber::set_global_default(subscriber).unwrap_or_else(|e| panic!("{e}"));
                lines
            })
            .clone()
    }

    #[test]
    fn a_malformed_request_from_a_client_is_a_warning_not_an_error() {
        let lines = process_lines();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let system = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = actix_web::HttpServer::new(|| {
                    actix_web::App::new().route("/", actix_web::web::get().to(|| async { "ok" }))
                })
                .workers(1)
                .disable_signals()
                .listen(listener)
                .unwrap_or_else(|e| panic!("{e}"))
                .run();
                let _ = handle_tx.send(server.handle());
                server.await
            })
        });
        let handle = handle_rx.recv().unwrap_or_else(|e| panic!("the server did not start: {e}"));

        for head in ["GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", "GET / HTTP/1.1\r\nX-A: \u{1}\r\n\r\n"] {
            let mut stream = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("{e}"));
            stream.write_all(head.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        }
        // actix logs once the connection has ended: wait for both lines.
        let deadline = Instant::now() + Duration::from_secs(30);
        let faults = loop {
            let text = lines.text();
            let faults: Vec<String> =
                text.lines().filter(|l| l.contains("malformed request from a client")).map(str::to_owned).collect();
            if faults.len() >= 2 || Instant::now() > deadline {
                break faults;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        actix_web::rt::System::new().block_on(handle.stop(false));
        let _ = system.join();
        assert_eq!(faults.len(), 2, "{}", lines.text());
        for line in &faults {
            assert_each_key_once(line);
            let json: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
            assert_eq!(json["level"], "WARN", "{line}");
            assert_eq!(json["error"], "request parse error: invalid Header provided", "{line}");
        }
        let text = lines.text();
        let errors: Vec<&str> = text.lines().filter(|l| l.contains(r#""level":"ERROR""#)).collect();
        assert!(errors.is_empty(), "{errors:?}");
    }
}
