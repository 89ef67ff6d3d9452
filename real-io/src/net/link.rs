//! One connection: the hello exchange (as dialler, [`dial`]; as acceptor, [`accept_hello`]), then
//! [`run_link`], which reads frames into local endpoints and writes a [`SendQueue`] out, until either
//! side fails, the connection goes idle, or the transport shuts down.

use std::future::pending;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tessera_env::{MAX_MESSAGE_BYTES, NodeId};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::watch;
use tokio::time::timeout;

use super::frame::{self, FrameError, FrameKind, HEADER_BYTES, HELLO_PAYLOAD_MAX, Header, Hello};
use super::queue::SendQueue;
use super::socket::SocketIo;
use super::stats::add;
use super::{Shared, TransportError, base_of};

/// Socket buffer sizes on each side of a connection: small frames are coalesced into one write; a frame
/// at least this large bypasses the buffer (no extra copy).
const IO_BUFFER_BYTES: usize = 64 * 1024;

/// Why a connection ended.
#[derive(Debug)]
pub(crate) enum LinkEnd {
    Shutdown,
    AddressChanged,
    PeerClosed,
    /// No complete frame within the idle timeout.
    Idle,
    ReadFailed(io::Error),
    WriteFailed(io::Error),
    /// A write made no progress within the write timeout: the peer stopped reading.
    WriteTimeout,
    /// The peer sent a damaged or misaddressed frame.
    Rejected(String),
}

enum ReadError {
    Eof,
    Io(io::Error),
    Bad(FrameError),
}

fn ms(value: u64) -> Duration {
    Duration::from_millis(value)
}

/// Read one frame with a payload of at most `payload_max` bytes, checksum verified.
async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R, payload_max: usize) -> Result<(Header, Vec<u8>), ReadError> {
    let mut raw = [0u8; HEADER_BYTES];
    reader.read_exact(&mut raw).await.map_err(|error| match error.kind() {
        io::ErrorKind::UnexpectedEof => ReadError::Eof,
        _ => ReadError::Io(error),
    })?;
    let header = frame::decode_header(&raw, payload_max).map_err(ReadError::Bad)?;
    let mut payload = vec![0u8; header.payload_len];
    reader.read_exact(&mut payload).await.map_err(ReadError::Io)?;
    frame::verify_payload(&raw, &header, &payload).map_err(ReadError::Bad)?;
    Ok((header, payload))
}

/// A whole handshake frame in one buffer (one write).
fn handshake_frame(kind: FrameKind, from: NodeId, to: NodeId, hello: &Hello) -> Vec<u8> {
    let payload = hello.encode();
    let mut bytes = frame::encode_header(kind, from, to, &payload).to_vec();
    bytes.extend_from_slice(&payload);
    bytes
}

/// Dial `address`, send our hello and read the hello-ack, all within the connect timeout; then check
/// the peer's cluster id (adopting it if we have none) and, when `expect` is given, its node id.
pub(crate) async fn dial<I: SocketIo>(
    shared: &Shared<I>,
    address: &str,
    expect: Option<NodeId>,
) -> Result<(I::Stream, Hello), TransportError> {
    let timeout_ms = shared.config.connect_timeout_ms;
    let connect_error =
        |error: io::Error| TransportError::Connect { address: address.to_string(), reason: error.to_string() };
    let protocol_error = |reason: String| TransportError::Protocol { address: address.to_string(), reason };
    let attempt = async {
        let mut stream = shared.io.connect(address).await.map_err(connect_error)?;
        let hello = handshake_frame(FrameKind::Hello, shared.local, expect.unwrap_or(NodeId(0)), &shared.our_hello());
        stream.write_all(&hello).await.map_err(connect_error)?;
        stream.flush().await.map_err(connect_error)?;
        add(&shared.counters.frames_sent, 1);
        add(&shared.counters.bytes_sent, hello.len() as u64);
        let (header, payload) = match read_frame(&mut stream, HELLO_PAYLOAD_MAX).await {
            Ok(frame) => frame,
            Err(ReadError::Eof) => {
                return Err(TransportError::Connect {
                    address: address.to_string(),
                    reason: "the peer closed the connection during the hello".to_string(),
                });
            }
            Err(ReadError::Io(error)) => return Err(connect_error(error)),
            Err(ReadError::Bad(error)) => {
                add(&shared.counters.frames_rejected, 1);
                return Err(protocol_error(error.to_string()));
            }
        };
        add(&shared.counters.frames_received, 1);
        add(&shared.counters.bytes_received, (HEADER_BYTES + payload.len()) as u64);
        if header.kind != FrameKind::HelloAck {
            return Err(protocol_error(format!("expected a hello-ack, got a {:?} frame", header.kind)));
        }
        let ack = Hello::decode(&payload).map_err(|error| protocol_error(error.to_string()))?;
        if header.from != ack.base || base_of(ack.base) != ack.base {
            return Err(protocol_error(format!("hello-ack names node {} in a frame from {}", ack.base, header.from)));
        }
        Ok((stream, ack))
    };
    let (stream, ack) = match timeout(ms(timeout_ms), attempt).await {
        Ok(Ok(done)) => done,
        Ok(Err(error)) => {
            if matches!(error, TransportError::Protocol { .. }) {
                add(&shared.counters.hello_rejected_total, 1);
            }
            return Err(error);
        }
        Err(_) => return Err(TransportError::Timeout { address: address.to_string(), timeout_ms }),
    };
    if let Err(ours) = shared.admit_cluster(ack.cluster_id) {
        add(&shared.counters.hello_rejected_total, 1);
        tracing::warn!(
            node = %shared.local, %address, peer = %ack.base,
            ours = %format_args!("{ours:#x}"), theirs = %format_args!("{:#x}", ack.cluster_id),
            "peer belongs to another cluster; connection refused"
        );
        return Err(TransportError::ClusterMismatch { address: address.to_string(), ours, theirs: ack.cluster_id });
    }
    if let Some(expected) = expect
        && expected != ack.base
    {
        add(&shared.counters.hello_rejected_total, 1);
        return Err(TransportError::PeerMismatch { address: address.to_string(), expected, actual: ack.base });
    }
    Ok((stream, ack))
}

/// The acceptor's side of the hello: read the dialler's hello, answer with ours, then refuse a peer of
/// another cluster. Returns the dialler's hello, or `None` if the connection must be closed (counted
/// and logged here).
pub(crate) async fn accept_hello<I: SocketIo>(
    shared: &Shared<I>,
    stream: &mut I::Stream,
    remote: SocketAddr,
) -> Option<Hello> {
    let exchange = async {
        let (header, payload) = match read_frame(stream, HELLO_PAYLOAD_MAX).await {
            Ok(frame) => frame,
            Err(ReadError::Eof | ReadError::Io(_)) => return None,
            Err(ReadError::Bad(error)) => {
                add(&shared.counters.frames_rejected, 1);
                tracing::debug!(%remote, %error, "bad first frame on an inbound connection");
                return None;
            }
        };
        add(&shared.counters.frames_received, 1);
        add(&shared.counters.bytes_received, (HEADER_BYTES + payload.len()) as u64);
        let hello = match (header.kind, Hello::decode(&payload)) {
            (FrameKind::Hello, Ok(hello)) if hello.base == shared.local => {
                add(&shared.counters.hello_rejected_total, 1);
                tracing::warn!(%remote, node = %shared.local, "a peer claims this process's own node id; closed");
                return None;
            }
            (FrameKind::Hello, Ok(hello)) if hello.base == header.from && base_of(hello.base) == hello.base => hello,
            _ => {
                add(&shared.counters.hello_rejected_total, 1);
                tracing::warn!(%remote, kind = ?header.kind, "malformed hello on an inbound connection; closed");
                return None;
            }
        };
        let verdict = shared.admit_cluster(hello.cluster_id);
        let ack = handshake_frame(FrameKind::HelloAck, shared.local, hello.base, &shared.our_hello());
        stream.write_all(&ack).await.ok()?;
        stream.flush().await.ok()?;
        add(&shared.counters.frames_sent, 1);
        add(&shared.counters.bytes_sent, ack.len() as u64);
        if let Err(ours) = verdict {
            add(&shared.counters.hello_rejected_total, 1);
            tracing::warn!(
                node = %shared.local, %remote, peer = %hello.base,
                ours = %format_args!("{ours:#x}"), theirs = %format_args!("{:#x}", hello.cluster_id),
                "peer of another cluster refused"
            );
            return None;
        }
        Some(hello)
    };
    timeout(ms(shared.config.connect_timeout_ms), exchange).await.ok().flatten()
}

/// Carry frames both ways on an established connection with `peer` (a base id) until it ends. Frames
/// received go to local endpoints; `queue` is written out. `address`, for outbound connections, ends
/// the connection when the peer's address changes.
pub(crate) async fn run_link<I: SocketIo>(
    shared: &Shared<I>,
    stream: I::Stream,
    peer: NodeId,
    queue: &SendQueue,
    address: Option<&mut watch::Receiver<String>>,
) -> LinkEnd {
    let (reader, writer) = tokio::io::split(stream);
    let reader = BufReader::with_capacity(IO_BUFFER_BYTES, reader);
    let writer = BufWriter::with_capacity(IO_BUFFER_BYTES, writer);
    tokio::select! {
        end = read_loop(shared, reader, peer) => end,
        end = write_loop(shared, writer, peer, queue) => end,
        () = shared.shut_down() => LinkEnd::Shutdown,
        () = address_changed(address) => LinkEnd::AddressChanged,
    }
}

async fn address_changed(address: Option<&mut watch::Receiver<String>>) {
    if let Some(rx) = address
        && rx.changed().await.is_ok()
    {
        return;
    }
    pending().await
}

async fn read_loop<I: SocketIo, R: AsyncRead + Unpin>(shared: &Shared<I>, mut reader: R, peer: NodeId) -> LinkEnd {
    let idle = ms(shared.config.idle_timeout_ms);
    loop {
        let (header, payload) = match timeout(idle, read_frame(&mut reader, MAX_MESSAGE_BYTES)).await {
            Ok(Ok(frame)) => frame,
            Ok(Err(ReadError::Eof)) => return LinkEnd::PeerClosed,
            Ok(Err(ReadError::Io(error))) => return LinkEnd::ReadFailed(error),
            Ok(Err(ReadError::Bad(error))) => {
                add(&shared.counters.frames_rejected, 1);
                return LinkEnd::Rejected(error.to_string());
            }
            Err(_) => return LinkEnd::Idle,
        };
        add(&shared.counters.frames_received, 1);
        add(&shared.counters.bytes_received, (HEADER_BYTES + payload.len()) as u64);
        match header.kind {
            FrameKind::Keepalive => {}
            FrameKind::Message if base_of(header.from) == peer && base_of(header.to) == shared.local => {
                shared.endpoints.deliver(header.from, header.to, payload);
            }
            kind => {
                add(&shared.counters.frames_rejected, 1);
                return LinkEnd::Rejected(format!(
                    "{kind:?} frame from {} to {} on the connection with node {peer}",
                    header.from, header.to
                ));
            }
        }
    }
}

async fn write_loop<I: SocketIo, W: AsyncWrite + Unpin>(
    shared: &Shared<I>,
    mut writer: BufWriter<W>,
    peer: NodeId,
    queue: &SendQueue,
) -> LinkEnd {
    let write_timeout = ms(shared.config.write_timeout_ms);
    let keepalive = ms(shared.config.keepalive_interval_ms);
    loop {
        let Some(message) = queue.try_pop() else {
            // Nothing waiting: push out what is buffered, then wait for work or send a keepalive.
            match timeout(write_timeout, writer.flush()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return LinkEnd::WriteFailed(error),
                Err(_) => return LinkEnd::WriteTimeout,
            }
            if timeout(keepalive, queue.wait_nonempty()).await.is_err()
                && let Err(end) = write_frame(shared, &mut writer, FrameKind::Keepalive, shared.local, peer, &[]).await
            {
                return end;
            }
            continue;
        };
        if let Err(end) =
            write_frame(shared, &mut writer, FrameKind::Message, message.from, message.to, &message.payload).await
        {
            add(&shared.counters.messages_dropped_total, 1);
            return end;
        }
    }
}

/// Write one frame into the buffered writer (a payload larger than the buffer goes straight to the
/// socket), bounded by the write timeout.
async fn write_frame<I: SocketIo, W: AsyncWrite + Unpin>(
    shared: &Shared<I>,
    writer: &mut BufWriter<W>,
    kind: FrameKind,
    from: NodeId,
    to: NodeId,
    payload: &[u8],
) -> Result<(), LinkEnd> {
    let header = frame::encode_header(kind, from, to, payload);
    let write = async {
        writer.write_all(&header).await?;
        writer.write_all(payload).await
    };
    match timeout(ms(shared.config.write_timeout_ms), write).await {
        Ok(Ok(())) => {
            add(&shared.counters.frames_sent, 1);
            add(&shared.counters.bytes_sent, (HEADER_BYTES + payload.len()) as u64);
            Ok(())
        }
        Ok(Err(error)) => Err(LinkEnd::WriteFailed(error)),
        Err(_) => Err(LinkEnd::WriteTimeout),
    }
}
