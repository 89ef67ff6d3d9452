//! The socket layer under the transport, as a small trait so the same transport runs over the OS
//! ([`TokioIo`]) and over turmoil's simulated network in tests.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};

/// Listening, accepting and dialling TCP-like byte streams.
///
/// Implementations set `TCP_NODELAY` (or its equivalent) on every stream they return: the transport
/// batches its own writes and must not wait for Nagle's timer on the last frame of a batch.
pub trait SocketIo: Clone + Send + Sync + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    type Listener: Send + Sync + 'static;

    /// Listen on `address` ("HOST:PORT"); returns the listener and the address actually bound (port 0
    /// picks a free port).
    fn bind(&self, address: &str) -> impl Future<Output = io::Result<(Self::Listener, SocketAddr)>> + Send;

    /// The next inbound stream and the remote address.
    fn accept(&self, listener: &Self::Listener) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;

    /// Dial `address` ("HOST:PORT", resolved by the implementation). The caller bounds the time.
    fn connect(&self, address: &str) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

/// [`SocketIo`] over the operating system's TCP through tokio.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioIo;

impl SocketIo for TokioIo {
    type Stream = tokio::net::TcpStream;
    type Listener = tokio::net::TcpListener;

    async fn bind(&self, address: &str) -> io::Result<(Self::Listener, SocketAddr)> {
        let listener = tokio::net::TcpListener::bind(address).await?;
        let bound = listener.local_addr()?;
        Ok((listener, bound))
    }

    async fn accept(&self, listener: &Self::Listener) -> io::Result<(Self::Stream, SocketAddr)> {
        let (stream, remote) = listener.accept().await?;
        stream.set_nodelay(true)?;
        Ok((stream, remote))
    }

    async fn connect(&self, address: &str) -> io::Result<Self::Stream> {
        let stream = tokio::net::TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}
