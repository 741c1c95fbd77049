//! A recording webhook receiver on a loopback port: the stand-in for a Docora app's endpoints.
//!
//! It accepts a request with any method on any path under [`WebhookSink::url`] (a Docora app's
//! `base_url`; Docora posts to `{base_url}/create`, `/update`, `/delete`, `/sync_failed`), records
//! it, and answers according to its [`SinkMode`]: accept, fail with a status, fail the next few
//! requests, hang until the client gives up, or answer slowly. Tests read what arrived (with
//! [`Received::signature_valid`] to check the HMAC signature) and wait for deliveries with
//! [`WebhookSink::wait_for`]. The sink also tracks which requests are in flight at once
//! ([`WebhookSink::max_in_flight`], [`WebhookSink::overlapping_deliveries`]), for tests of
//! concurrent senders.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tokio::sync::watch;

/// The largest body the sink accepts (larger ones get a 413 and are not recorded).
pub const MAX_BODY: usize = 256 * 1024 * 1024;

/// How far a signature's timestamp may be from the request's arrival, as Docora receivers check.
pub const MAX_SKEW: Duration = Duration::from_secs(5 * 60);

/// How the sink answers the requests that arrive from now on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SinkMode {
    /// 200 to everything.
    #[default]
    Accept,
    /// Every request gets this status.
    Fail(u16),
    /// The next `n` requests get `status`, then the sink goes back to [`SinkMode::Accept`].
    FailNext(usize, u16),
    /// Never answers: the request stays open until the client gives up (or the sink stops).
    /// Other requests are still served meanwhile. Recorded in `attempts()` with status 0.
    Hang,
    /// Waits this long, then answers 200.
    Slow(Duration),
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// The request path, e.g. `/create` (or `/hooks/create` under a `base_url` with a path).
    pub path: String,
    /// Header names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When it arrived.
    pub at: SystemTime,
    /// The status the sink answered (or is about to answer, for a slow one); 0 when it hangs.
    pub status: u16,
}

impl Received {
    /// The first value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        match serde_json::from_slice(&self.body) {
            Ok(v) => v,
            Err(e) => panic!(
                "webhook body to {} is not JSON ({e}): {}",
                self.path,
                String::from_utf8_lossy(&self.body[..self.body.len().min(2000)])
            ),
        }
    }

    /// The last path segment: `create`, `update`, `delete` or `sync_failed` for Docora's calls.
    pub fn event(&self) -> &str {
        self.path.trim_end_matches('/').rsplit('/').next().unwrap_or_default()
    }

    /// `X-Docora-Delivery`, the delivery id stable across retries.
    pub fn delivery(&self) -> Option<&str> {
        self.header("x-docora-delivery")
    }

    /// Checks `X-Docora-Signature` the way a Docora app does: `sha256=` + lowercase hex
    /// HMAC-SHA256 keyed with `key` over `{X-Docora-Timestamp}.{body}`, compared in constant
    /// time, and the timestamp no more than 5 minutes from when the request arrived.
    pub fn signature_valid(&self, key: &str) -> bool {
        let (Some(signature), Some(timestamp)) = (self.header("x-docora-signature"), self.header("x-docora-timestamp"))
        else {
            return false;
        };
        let Ok(ts) = timestamp.trim().parse::<i64>() else {
            return false;
        };
        let arrived = self.at.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let arrived = i64::try_from(arrived).unwrap_or(i64::MAX);
        let max_skew = i64::try_from(MAX_SKEW.as_secs()).unwrap_or(i64::MAX);
        if (arrived - ts).abs() > max_skew {
            return false;
        }
        let Some(hex_sig) = signature.strip_prefix("sha256=") else {
            return false;
        };
        // Lowercase hex only, as the wire format says.
        if hex_sig.bytes().any(|b| b.is_ascii_uppercase()) {
            return false;
        }
        let Ok(given) = hex::decode(hex_sig) else {
            return false;
        };
        let expected = mac(key, timestamp, &self.body);
        expected.len() == given.len() && bool::from(expected.ct_eq(&given))
    }

    fn summary(&self) -> String {
        let body = String::from_utf8_lossy(&self.body[..self.body.len().min(300)]).into_owned();
        format!(
            "{} {} -> {} (delivery {:?}, {} bytes): {body}",
            self.method,
            self.path,
            self.status,
            self.delivery(),
            self.body.len()
        )
    }
}

fn mac(key: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    m.update(timestamp.as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().to_vec()
}

/// The `X-Docora-Signature` value for `body` signed at `timestamp` (unix seconds, as sent in
/// `X-Docora-Timestamp`) with `key`: `sha256=<lowercase hex>`.
pub fn signature(key: &str, timestamp: &str, body: &[u8]) -> String {
    format!("sha256={}", hex::encode(mac(key, timestamp, body)))
}

#[derive(Debug)]
struct Entry {
    id: u64,
    answered: bool,
    rec: Received,
}

#[derive(Debug, Default)]
struct State {
    mode: SinkMode,
    next_id: u64,
    log: Vec<Entry>,
    /// Requests arrived and not yet answered or abandoned, in all and per `X-Docora-Delivery`.
    in_flight: usize,
    in_flight_by_delivery: HashMap<String, usize>,
    max_in_flight: usize,
    /// Delivery ids that arrived while a request with the same id was in flight.
    overlapping: Vec<String>,
}

/// A request in flight, until its handler ends (answered, or dropped when the client gave up).
struct InFlight {
    shared: web::Data<Shared>,
    delivery: Option<String>,
}

impl InFlight {
    fn start(shared: &web::Data<Shared>, state: &mut State, delivery: Option<String>) -> InFlight {
        state.in_flight += 1;
        state.max_in_flight = state.max_in_flight.max(state.in_flight);
        if let Some(id) = &delivery {
            let count = state.in_flight_by_delivery.entry(id.clone()).or_default();
            *count += 1;
            if *count > 1 {
                state.overlapping.push(id.clone());
            }
        }
        InFlight { shared: shared.clone(), delivery }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut s = self.shared.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
        if let Some(id) = &self.delivery
            && let Some(count) = s.in_flight_by_delivery.get_mut(id)
        {
            *count -= 1;
            if *count == 0 {
                s.in_flight_by_delivery.remove(id);
            }
        }
    }
}

struct Shared {
    state: Mutex<State>,
    shutdown: watch::Receiver<bool>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running webhook receiver. Stopped when dropped (hanging requests are dropped too).
pub struct WebhookSink {
    url: String,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl WebhookSink {
    /// Starts the sink on `127.0.0.1:<free port>`, accepting everything.
    pub fn start() -> anyhow::Result<WebhookSink> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared { state: Mutex::new(State::default()), shutdown: shutdown_rx });
        let data = web::Data::from(shared.clone());
        // A client that gives up closes its side: its pending answer is dropped at once.
        let (handle, thread) = crate::server::spawn_stand_in(listener, move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(data.clone()).app_data(web::PayloadConfig::new(MAX_BODY)).default_service(web::to(receive));
        })?;
        Ok(WebhookSink { url, shared, shutdown, handle, thread: Some(thread) })
    }

    /// `http://127.0.0.1:<port>`: use it as an app's `base_url` (any path under it works too).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Requests answered with a 2xx, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.shared
            .lock()
            .log
            .iter()
            .filter(|e| e.answered && (200..300).contains(&e.rec.status))
            .map(|e| e.rec.clone())
            .collect()
    }

    /// Every request, whatever its answer (including hanging and not yet answered ones), in
    /// arrival order.
    pub fn attempts(&self) -> Vec<Received> {
        self.shared.lock().log.iter().map(|e| e.rec.clone()).collect()
    }

    /// How many requests were answered with a 2xx (without copying them, for polling).
    pub fn received_count(&self) -> usize {
        self.shared.lock().log.iter().filter(|e| e.answered && (200..300).contains(&e.rec.status)).count()
    }

    /// The most requests that were ever in flight at once (arrived, not yet answered or given up
    /// by their client).
    pub fn max_in_flight(&self) -> usize {
        self.shared.lock().max_in_flight
    }

    /// `X-Docora-Delivery` ids of requests that arrived while another request with the same id
    /// was still in flight, once per such arrival: empty when no delivery was ever sent twice at
    /// the same time.
    pub fn overlapping_deliveries(&self) -> Vec<String> {
        self.shared.lock().overlapping.clone()
    }

    /// How the sink answers from now on.
    pub fn set_mode(&self, mode: SinkMode) {
        self.shared.lock().mode = mode;
    }

    /// The current mode (a `FailNext` counts down, then becomes `Accept`).
    pub fn mode(&self) -> SinkMode {
        self.shared.lock().mode
    }

    /// Forgets every recorded request and the in-flight statistics (the mode stays).
    pub fn clear(&self) {
        let mut s = self.shared.lock();
        s.log.clear();
        s.max_in_flight = s.in_flight;
        s.overlapping.clear();
    }

    /// Waits until at least `n` requests were answered with a 2xx and returns them all; panics
    /// after `timeout` listing every attempt that arrived.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        self.wait(false, n, timeout).await
    }

    /// [`WebhookSink::wait_for`] for code that is not async.
    pub fn wait_for_blocking(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            if Instant::now() >= deadline {
                self.timed_out("received", n, got.len(), timeout);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until at least `n` requests arrived, whatever their answer (for retry tests).
    pub async fn wait_for_attempts(&self, n: usize, timeout: Duration) -> Vec<Received> {
        self.wait(true, n, timeout).await
    }

    async fn wait(&self, every_attempt: bool, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = if every_attempt { self.attempts() } else { self.received() };
            if got.len() >= n {
                return got;
            }
            if Instant::now() >= deadline {
                self.timed_out(if every_attempt { "attempts" } else { "received" }, n, got.len(), timeout);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn timed_out(&self, what: &str, n: usize, got: usize, timeout: Duration) -> ! {
        let attempts = self.attempts();
        let listing: Vec<String> = attempts.iter().map(|r| format!("  {}", r.summary())).collect();
        panic!(
            "webhook sink: expected {n} {what} within {timeout:?}, got {got}; {} attempt(s) arrived:\n{}",
            attempts.len(),
            listing.join("\n")
        );
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        drop(self.handle.stop(false));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

enum Answer {
    Now(u16),
    After(Duration),
    Never,
}

async fn receive(shared: web::Data<Shared>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let delivery = req.headers().get("x-docora-delivery").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (id, answer, _in_flight) = {
        let mut s = shared.lock();
        let in_flight = InFlight::start(&shared, &mut s, delivery);
        let answer = match s.mode {
            SinkMode::Accept => Answer::Now(200),
            SinkMode::Fail(status) => Answer::Now(status),
            SinkMode::FailNext(n, status) => {
                s.mode = if n <= 1 { SinkMode::Accept } else { SinkMode::FailNext(n - 1, status) };
                Answer::Now(if n == 0 { 200 } else { status })
            }
            SinkMode::Hang => Answer::Never,
            SinkMode::Slow(d) => Answer::After(d),
        };
        let status = match answer {
            Answer::Now(st) => st,
            Answer::After(_) => 200,
            Answer::Never => 0,
        };
        s.next_id += 1;
        let id = s.next_id;
        s.log.push(Entry {
            id,
            answered: matches!(answer, Answer::Now(_)),
            rec: Received {
                method: req.method().as_str().to_owned(),
                path: req.path().to_owned(),
                headers,
                body: body.to_vec(),
                at: SystemTime::now(),
                status,
            },
        });
        (id, answer, in_flight)
    };
    let mut shutdown = shared.shutdown.clone();
    let status = match answer {
        Answer::Now(status) => status,
        Answer::After(delay) => {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = shutdown.wait_for(|stop| *stop) => return HttpResponse::ServiceUnavailable().finish(),
            }
            // If the client gave up meanwhile, actix dropped this future and it stays unanswered.
            if let Some(e) = shared.lock().log.iter_mut().find(|e| e.id == id) {
                e.answered = true;
            }
            200
        }
        Answer::Never => {
            // Waits for the client to go away (actix then drops this future) or the sink to stop.
            let _ = shutdown.wait_for(|stop| *stop).await;
            return HttpResponse::ServiceUnavailable().finish();
        }
    };
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if code.is_success() {
        HttpResponse::build(code).json(serde_json::json!({ "ok": true }))
    } else {
        HttpResponse::build(code).json(serde_json::json!({ "error": "the webhook sink fails on purpose" }))
    }
}
