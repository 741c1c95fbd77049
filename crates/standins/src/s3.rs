//! An S3 server on a loopback port: the `s3s` wire protocol (SigV4 header and presigned
//! query-string signatures checked against one access/secret key pair, path-style addressing)
//! over `s3s-fs` storage in a directory, on a thread with its own tokio runtime so any test
//! runtime, or none, can use it.
//!
//! Tests can look at what was stored through the same `s3s-fs` code that serves requests
//! ([`S3Server::object`], [`S3Server::keys`], [`S3Server::bucket_exists`]) and make the server
//! answer S3 errors on purpose ([`S3Server::fail`]) to exercise "storage failed midway" paths.
//!
//! Two deliberate differences from plain `s3s-fs`: creating a bucket that already exists answers
//! `409 BucketAlreadyOwnedByYou` (as MinIO and AWS outside us-east-1 do), not
//! `BucketAlreadyExists`, since every bucket here belongs to the one key pair; and ListBuckets
//! names an owner, as S3 servers do.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::StreamExt as _;
use http::Method;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use s3s::access::{S3Access, S3AccessContext};
use s3s::dto::{CreateBucketInput, GetObjectInput, HeadBucketInput, ListObjectsV2Input};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{HttpError, HttpResponse, S3, S3Error, S3ErrorCode, S3Request, S3Result};
use s3s_fs::FileSystem;
use tokio::sync::oneshot;

/// Where and how [`S3Server::start_with`] serves.
#[derive(Debug, Clone)]
pub struct S3Options {
    /// Data directory, created if missing and kept afterwards.
    pub root: PathBuf,
    pub addr: SocketAddr,
    pub access_key: String,
    pub secret_key: String,
    /// The region clients sign for; reported by [`S3Server::region`].
    pub region: String,
}

/// Which requests [`S3Server::fail`] makes the server refuse with `500 InternalError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Serve normally.
    Off,
    /// Every request fails.
    All,
    /// `PUT`, `POST` (multipart create/complete) and `DELETE` fail; reads are served.
    Writes,
    /// The next `n` requests are served, every later one fails.
    AfterRequests(u64),
}

pub struct S3Server {
    addr: SocketAddr,
    root: PathBuf,
    region: String,
    access_key: String,
    secret_key: String,
    /// The same storage code the server uses, over the same directory, for inspection.
    storage: Arc<FileSystem>,
    gate: Arc<Gate>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// Set for [`S3Server::start`]: the directory is removed once the server has stopped.
    temp_root: bool,
}

impl S3Server {
    /// Loopback, random free port, data in a fresh temporary directory removed on drop,
    /// random access and secret keys, region `us-east-1`.
    pub fn start() -> anyhow::Result<S3Server> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let root = std::env::temp_dir().join(format!("testkit-s3-{id}"));
        let options = S3Options {
            root: root.clone(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            access_key: format!("AK{}", id[..18].to_uppercase()),
            secret_key: uuid::Uuid::new_v4().simple().to_string(),
            region: "us-east-1".to_owned(),
        };
        match S3Server::start_with(options) {
            Ok(mut server) => {
                server.temp_root = true;
                Ok(server)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&root);
                Err(e)
            }
        }
    }

    /// Serves `options.root` (created if missing, kept afterwards) on `options.addr` with the
    /// given credentials: the local stack's object storage.
    pub fn start_with(options: S3Options) -> anyhow::Result<S3Server> {
        let S3Options { root, addr, access_key, secret_key, region } = options;
        std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        let storage =
            Arc::new(FileSystem::new(&root).map_err(|e| anyhow::anyhow!("s3s-fs on {}: {e:?}", root.display()))?);
        let served = FileSystem::new(&root).map_err(|e| anyhow::anyhow!("s3s-fs on {}: {e:?}", root.display()))?;
        let root = root.canonicalize()?;

        let mut builder = S3ServiceBuilder::new(served);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(access_key.clone(), secret_key.clone()));
        builder.set_access(OneOwner { storage: storage.clone() });
        let gate = Arc::new(Gate { mode: Mutex::new(FailMode::Off), requests: AtomicU64::new(0) });
        let service = Gated { inner: builder.build(), gate: gate.clone() };

        let listener = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("testkit-s3")
            .enable_all()
            .build()?;
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new().name("testkit-s3".to_owned()).spawn(move || {
            runtime.block_on(serve(listener, service, stopped));
            runtime.shutdown_timeout(Duration::from_secs(5));
        })?;

        Ok(S3Server {
            addr,
            root,
            region,
            access_key,
            secret_key,
            storage,
            gate,
            stop: Some(stop),
            thread: Some(thread),
            temp_root: false,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// The data directory (canonical path).
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn bucket_exists(&self, bucket: &str) -> bool {
        let input = HeadBucketInput { bucket: bucket.to_owned(), ..Default::default() };
        self.inspect(self.storage.head_bucket(request(input))).is_ok_and(|r| r.is_ok())
    }

    /// The object's bytes, or `None` if the bucket or the object does not exist.
    pub fn object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let input = GetObjectInput { bucket: bucket.to_owned(), key: key.to_owned(), ..Default::default() };
        let storage = &self.storage;
        self.inspect(async move {
            let response = storage.get_object(request(input)).await.ok()?;
            let mut body = response.output.body?;
            let mut bytes = Vec::new();
            while let Some(chunk) = body.next().await {
                bytes.extend_from_slice(&chunk.ok()?);
            }
            Some(bytes)
        })
        .ok()
        .flatten()
    }

    /// Every key in the bucket (nested ones as `a/b/c.txt`), sorted; empty if there is no
    /// such bucket.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let storage = &self.storage;
        let mut keys = self
            .inspect(async move {
                let mut keys = Vec::new();
                let mut token = None;
                loop {
                    let input = ListObjectsV2Input {
                        bucket: bucket.to_owned(),
                        continuation_token: token.take(),
                        ..Default::default()
                    };
                    let Ok(response) = storage.list_objects_v2(request(input)).await else { break };
                    let output = response.output;
                    keys.extend(output.contents.into_iter().flatten().filter_map(|o| o.key));
                    match output.next_continuation_token {
                        Some(next) if output.is_truncated == Some(true) => token = Some(next),
                        _ => break,
                    }
                }
                keys
            })
            .unwrap_or_default();
        keys.sort();
        keys
    }

    /// Makes the server refuse requests from now on (see [`FailMode`]). Refused requests get
    /// `500 InternalError` with an S3 XML error body; their request bodies are read and dropped.
    pub fn fail(&self, mode: FailMode) {
        *self.gate.mode.lock().unwrap_or_else(PoisonError::into_inner) = mode;
    }

    /// HTTP requests received so far, refused ones included.
    pub fn requests(&self) -> u64 {
        self.gate.requests.load(Ordering::SeqCst)
    }

    /// Stops serving and waits for the server thread; the data stays (until drop, for
    /// [`S3Server::start`]).
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Runs an inspection on a short-lived runtime of its own, so it works from sync code,
    /// from inside any async runtime, and after [`S3Server::stop`].
    fn inspect<'a, T: Send + 'a>(&'a self, work: impl Future<Output = T> + Send + 'a) -> anyhow::Result<T> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| -> anyhow::Result<T> {
                    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                    Ok(runtime.block_on(work))
                })
                .join()
                .map_err(|_| anyhow::anyhow!("an S3 inspection panicked"))?
        })
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
        if self.temp_root {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

impl std::fmt::Debug for S3Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Server").field("endpoint", &self.endpoint()).field("root", &self.root).finish_non_exhaustive()
    }
}

/// An in-process request straight to the storage, as the server would pass it after auth.
fn request<T>(input: T) -> S3Request<T> {
    S3Request {
        input,
        method: Method::GET,
        uri: http::Uri::from_static("/"),
        headers: http::HeaderMap::new(),
        extensions: http::Extensions::new(),
        credentials: None,
        region: None,
        service: None,
        trailing_headers: None,
    }
}

async fn serve(listener: TcpListener, service: Gated, mut stopped: oneshot::Receiver<()>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("testkit: the S3 server cannot listen: {e}");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => {
                    // Responses go out as written (no Nagle delay against the client's delayed ACK).
                    let _ = socket.set_nodelay(true);
                    let service = service.clone();
                    tokio::spawn(async move {
                        let connection = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(socket), service);
                        let _ = connection.await;
                    });
                }
                // Out of file descriptors and the like: wait instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
}

struct Gate {
    mode: Mutex<FailMode>,
    requests: AtomicU64,
}

impl Gate {
    /// Counts the request and says whether to serve it.
    fn admit(&self, method: &Method) -> bool {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let mut mode = self.mode.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *mode {
            FailMode::Off => true,
            FailMode::All => false,
            FailMode::Writes => !matches!(*method, Method::PUT | Method::POST | Method::DELETE),
            FailMode::AfterRequests(left) => {
                let serve = *left > 0;
                *left = left.saturating_sub(1);
                serve
            }
        }
    }
}

/// The s3s service behind the fault-injection gate.
#[derive(Clone)]
struct Gated {
    inner: S3Service,
    gate: Arc<Gate>,
}

type ResponseFuture = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send>>;

impl hyper::service::Service<http::Request<Incoming>> for Gated {
    type Response = HttpResponse;
    type Error = HttpError;
    type Future = ResponseFuture;

    fn call(&self, request: http::Request<Incoming>) -> Self::Future {
        if self.gate.admit(request.method()) {
            if request.method() == Method::GET && request.uri().path() == "/" {
                let listing = hyper::service::Service::call(&self.inner, request);
                return Box::pin(async move { listing.await.map(with_owner) });
            }
            return hyper::service::Service::call(&self.inner, request);
        }
        Box::pin(async move {
            // Read the upload to its end so the client sees the error response rather than a
            // connection closed under it.
            let mut body = request.into_body();
            while let Some(frame) = body.frame().await {
                if frame.is_err() {
                    break;
                }
            }
            let error = S3Error::with_message(S3ErrorCode::InternalError, "injected failure (testkit S3Server::fail)");
            error.to_http_response().map_err(|e| HttpError::new(Box::new(e)))
        })
    }
}

/// Adds the `<Owner>` that `s3s-fs` leaves out of ListBuckets and that S3 servers send (rust-s3's
/// `Bucket::exists` cannot parse the listing without it).
fn with_owner(mut response: HttpResponse) -> HttpResponse {
    if !response.status().is_success() {
        return response;
    }
    let Some(bytes) = response.body().bytes() else { return response };
    let Ok(xml) = std::str::from_utf8(&bytes) else { return response };
    let Some(end) = xml.rfind("</ListAllMyBucketsResult>") else { return response };
    if xml.contains("<Owner>") {
        return response;
    }
    let owner = "<Owner><ID>testkit</ID><DisplayName>testkit</DisplayName></Owner>";
    let patched = format!("{}{owner}{}", &xml[..end], &xml[end..]);
    *response.body_mut() = s3s::Body::from(patched);
    response
}

/// Access control for a server with one owner: the default rule (signed requests only) plus
/// "creating a bucket you already own" reported as `BucketAlreadyOwnedByYou`.
struct OneOwner {
    storage: Arc<FileSystem>,
}

#[async_trait::async_trait]
impl S3Access for OneOwner {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        match cx.credentials() {
            Some(_) => Ok(()),
            None => Err(S3Error::with_message(S3ErrorCode::AccessDenied, "Signature is required")),
        }
    }

    async fn create_bucket(&self, req: &mut S3Request<CreateBucketInput>) -> S3Result<()> {
        let input = HeadBucketInput { bucket: req.input.bucket.clone(), ..Default::default() };
        match self.storage.head_bucket(request(input)).await {
            Ok(_) => Err(S3Error::new(S3ErrorCode::BucketAlreadyOwnedByYou)),
            Err(_) => Ok(()),
        }
    }
}
