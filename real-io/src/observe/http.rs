//! The metrics endpoint: `GET /metrics` (the OpenMetrics text of a [`Metrics`]) and `GET /healthz` (`ok`),
//! served by axum on the current tokio runtime.
//!
//! **Bounds.** At most [`MAX_METRICS_CONNECTIONS`] connections are served at once (more wait in the
//! kernel's accept backlog), and each is closed [`METRICS_CONNECTION_LIFETIME_MS`] after it was accepted,
//! idle or not, so slow or stuck clients cannot pin memory or starve scrapes for long. Prometheus
//! reconnects transparently. Requests themselves are tiny; hyper bounds header sizes.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Sleep;

use super::ObserveError;
use super::metrics::Metrics;

/// Content type of `GET /metrics`: the OpenMetrics text format that prometheus-client writes.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Connections the metrics endpoint serves at once.
pub const MAX_METRICS_CONNECTIONS: usize = 32;

/// A metrics connection is closed this long after it was accepted.
pub const METRICS_CONNECTION_LIFETIME_MS: u64 = 60_000;

/// Pause after an accept error that is not about one connection (e.g. out of file descriptors).
const ACCEPT_RETRY_DELAY_MS: u64 = 1_000;

/// A running metrics endpoint. Dropping it (or [`MetricsServer::stop`]) stops it: it accepts no new
/// connections and closes the listening socket; requests in flight are answered first.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// The address actually bound (the port chosen by the OS if `listen` asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stop serving; returns at once (the listener closes as soon as the server task runs).
    pub fn stop(self) {
        drop(self);
    }

    /// Stop serving and wait until the listening socket is closed and every open connection has ended
    /// (at most [`METRICS_CONNECTION_LIFETIME_MS`] after it was accepted).
    pub async fn shutdown(mut self) {
        self.signal_stop();
        if let Some(task) = self.task.take() {
            // The task only ends by finishing or by the runtime shutting down; either way it is over.
            let _ = task.await;
        }
    }

    fn signal_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            // The server task may have ended already (runtime shutting down): nothing left to stop.
            let _ = stop.send(());
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.signal_stop();
    }
}

/// Bind `listen` (e.g. `0.0.0.0:9100`, `127.0.0.1:0`) and serve `GET /metrics` and `GET /healthz` on the
/// current tokio runtime until the returned handle is dropped or stopped. Any other path answers 404.
/// A port already in use is [`ObserveError::AddressInUse`]; any other bind failure is
/// [`ObserveError::Bind`]; both name `listen`.
pub async fn serve_metrics(listen: &str, metrics: Metrics) -> Result<MetricsServer, ObserveError> {
    let listener = TcpListener::bind(listen).await.map_err(|source| bind_error(listen, source))?;
    let local_addr = listener.local_addr().map_err(|source| bind_error(listen, source))?;
    let app = Router::new().route("/metrics", get(render_metrics)).route("/healthz", get(healthz)).with_state(metrics);
    let listener = BoundedListener {
        inner: listener,
        permits: Arc::new(Semaphore::new(MAX_METRICS_CONNECTIONS)),
        lifetime: Duration::from_millis(METRICS_CONNECTION_LIFETIME_MS),
    };
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        // A dropped sender stops the server too.
        let _ = stop_rx.await;
    });
    let task = tokio::spawn(async move {
        if let Err(error) = server.await {
            tracing::warn!(%error, "metrics endpoint stopped with an error");
        }
    });
    tracing::info!(%local_addr, "metrics endpoint listening");
    Ok(MetricsServer { local_addr, stop: Some(stop_tx), task: Some(task) })
}

fn bind_error(listen: &str, source: io::Error) -> ObserveError {
    let listen = listen.to_string();
    if source.kind() == io::ErrorKind::AddrInUse {
        ObserveError::AddressInUse { listen }
    } else {
        ObserveError::Bind { listen, source }
    }
}

async fn render_metrics(State(metrics): State<Metrics>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], metrics.render())
}

async fn healthz() -> &'static str {
    "ok"
}

/// A TCP listener that hands out at most `permits` connections at once, each closed after `lifetime`.
struct BoundedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    lifetime: Duration,
}

impl axum::serve::Listener for BoundedListener {
    type Io = BoundedConn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (BoundedConn, SocketAddr) {
        loop {
            let permit =
                Arc::clone(&self.permits).acquire_owned().await.expect("the connection semaphore is never closed");
            match self.inner.accept().await {
                Ok((stream, peer)) => {
                    let deadline = Box::pin(tokio::time::sleep(self.lifetime));
                    return (BoundedConn { stream, deadline, _permit: permit }, peer);
                }
                // Trouble with this one connection (the peer gave up): take the next.
                Err(e) if is_connection_error(&e) => {}
                Err(error) => {
                    tracing::warn!(%error, "metrics endpoint: accept failed; retrying in {ACCEPT_RETRY_DELAY_MS} ms");
                    tokio::time::sleep(Duration::from_millis(ACCEPT_RETRY_DELAY_MS)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// One accepted connection: holds its permit while open, and fails every read and write once its
/// deadline has passed, which makes hyper close it.
struct BoundedConn {
    stream: TcpStream,
    deadline: Pin<Box<Sleep>>,
    _permit: OwnedSemaphorePermit,
}

impl BoundedConn {
    /// Err once the deadline has passed. Polling the deadline also arranges a wake-up when it passes, so a
    /// connection idle in a read is closed on time.
    fn check_deadline(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            Err(io::Error::new(io::ErrorKind::TimedOut, "metrics connection reached its lifetime"))
        } else {
            Ok(())
        }
    }
}

impl AsyncRead for BoundedConn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check_deadline(cx)?;
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for BoundedConn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_deadline(cx)?;
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_deadline(cx)?;
        Pin::new(&mut this.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
