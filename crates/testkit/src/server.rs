//! Runs a service in-process on a loopback port, through the same `start` function its `main`
//! calls, on a thread with its own actix system (so any test runtime can talk to it); and the
//! same for the test kit's own stand-ins ([`spawn_stand_in`]).

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::thread::JoinHandle;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer, web};
use service_kit::http::{Running, Shutdown};

/// Serves `configure`'s routes on `listener` from a thread of its own with its own actix system:
/// one worker, no signal handling, no drain on stop, and a handler dropped as soon as its client
/// gives up (so a hanging answer or a running CGI process goes with it).
pub(crate) fn spawn_stand_in<C>(listener: TcpListener, configure: C) -> anyhow::Result<(ServerHandle, JoinHandle<()>)>
where
    C: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
{
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || App::new().configure(configure.clone()))
                // As the services do: answers go out as written, not after the client's delayed ACK.
                .on_connect(|conn, _| {
                    if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
                        let _ = tcp.set_nodelay(true);
                    }
                })
                .workers(1)
                .h1_allow_half_closed(false)
                .disable_signals()
                .shutdown_timeout(0)
                .listen(listener);
            match server {
                Ok(server) => {
                    let server = server.run();
                    let _ = tx.send(Ok(server.handle()));
                    let _ = server.await;
                }
                Err(e) => {
                    let _ = tx.send(Err(anyhow::Error::from(e)));
                }
            }
        });
    });
    let handle = rx.recv().map_err(|_| anyhow::anyhow!("the server thread ended before starting"))??;
    Ok((handle, thread))
}

pub struct TestServer {
    pub addr: SocketAddr,
    shutdown: Shutdown,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server: `start` gets a listener on `127.0.0.1:<free port>` and returns the
    /// running service.
    pub fn start<F, Fut>(start: F) -> anyhow::Result<TestServer>
    where
        F: FnOnce(TcpListener) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<Running>> + 'static,
    {
        Self::start_on(TcpListener::bind("127.0.0.1:0")?, start)
    }

    /// Starts a server on a listener the caller bound (to know the address before the server
    /// starts, e.g. for two services that call each other).
    pub fn start_on<F, Fut>(listener: TcpListener, start: F) -> anyhow::Result<TestServer>
    where
        F: FnOnce(TcpListener) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<Running>> + 'static,
    {
        let addr = listener.local_addr()?;
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                match start(listener).await {
                    Ok(running) => {
                        let _ = tx.send(Ok(running.shutdown()));
                        if let Err(e) = running.run().await {
                            eprintln!("testkit: server ended with an error: {e}");
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        });
        let shutdown = rx.recv().map_err(|_| anyhow::anyhow!("the server thread ended before starting"))??;
        Ok(TestServer { addr, shutdown, thread: Some(thread) })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the service at once, as a crash would (requests and background work cut off
    /// wherever they are), and waits for its thread.
    pub fn stop(&mut self) {
        // The stop starts at the call; the returned future only reports completion.
        drop(self.shutdown.now());
        self.join();
    }

    /// Stops the service as SIGTERM does in production: background work is told to stop and
    /// requests drain, then the service waits for its background work to finish (up to its
    /// `SHUTDOWN_TIMEOUT_SECS`) and closes its pool. Returns once all of that is done.
    pub fn stop_gracefully(&mut self) {
        drop(self.shutdown.graceful());
        self.join();
    }

    fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}
