//! The tasks of a transport: one per outbound peer (dial lazily, carry its queue, reconnect with
//! backoff), the accept loop, and one per inbound connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tessera_env::NodeId;
use tokio::sync::watch;

use super::link::{self, LinkEnd};
use super::queue::SendQueue;
use super::socket::SocketIo;
use super::stats::{Counters, add, sub};
use super::{Shared, TransportConfig, lock};

/// How long the accept loop pauses after a failed accept (for example out of file descriptors).
const ACCEPT_RETRY_MS: u64 = 100;

/// An outbound peer: where it listens and what waits to be sent to it. Its task owns the connection.
#[derive(Debug)]
pub(crate) struct Peer {
    pub id: NodeId,
    address: watch::Sender<String>,
    pub queue: Arc<SendQueue>,
}

impl Peer {
    pub(crate) fn new(id: NodeId, address: &str, config: &TransportConfig, counters: Arc<Counters>) -> Peer {
        Peer {
            id,
            address: watch::Sender::new(address.to_string()),
            queue: Arc::new(SendQueue::new(config.peer_queue_messages_max, config.peer_queue_bytes_max, counters)),
        }
    }

    /// Replace the address; the task closes a connection to the old one.
    pub(crate) fn set_address(&self, address: &str) {
        self.address.send_if_modified(|current| {
            let changed = current != address;
            if changed {
                *current = address.to_string();
            }
            changed
        });
    }
}

/// A gauge raised for as long as the guard lives (also when its task is cancelled).
struct GaugeGuard<'a>(&'a AtomicU64);

impl<'a> GaugeGuard<'a> {
    fn raise(gauge: &'a AtomicU64) -> GaugeGuard<'a> {
        add(gauge, 1);
        GaugeGuard(gauge)
    }
}

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        sub(self.0, 1);
    }
}

pub(crate) fn spawn_peer_task<I: SocketIo>(shared: Arc<Shared<I>>, peer: Arc<Peer>) {
    let runtime = shared.runtime.clone();
    drop(runtime.spawn(async move {
        tokio::select! {
            () = run_peer(&shared, &peer) => {}
            () = shared.shut_down() => {}
        }
    }));
}

/// Wait for a message, dial, carry the connection until it ends, back off, repeat. Backoff doubles per
/// failed dial up to the maximum and starts again from the minimum after a successful hello.
async fn run_peer<I: SocketIo>(shared: &Shared<I>, peer: &Peer) {
    let config = &shared.config;
    let mut address_rx = peer.address.subscribe();
    let mut backoff_ms = config.backoff_ms_min;
    let mut failures_in_a_row: u64 = 0;
    loop {
        peer.queue.wait_nonempty().await;
        let address = address_rx.borrow_and_update().clone();
        match link::dial(shared, &address, Some(peer.id)).await {
            Ok((stream, ack)) => {
                add(&shared.counters.connects_total, 1);
                if failures_in_a_row > 0 {
                    tracing::info!(node = %shared.local, peer = %peer.id, %address, failures_in_a_row, "reconnected");
                } else {
                    tracing::debug!(node = %shared.local, peer = %peer.id, %address, version = %ack.software_version, "connected");
                }
                failures_in_a_row = 0;
                backoff_ms = config.backoff_ms_min;
                let end = {
                    let _open = GaugeGuard::raise(&shared.counters.connections_open);
                    link::run_link(shared, stream, peer.id, &peer.queue, Some(&mut address_rx)).await
                };
                log_end(shared, peer.id, &address, &end, "outbound");
                if matches!(end, LinkEnd::WriteTimeout) {
                    let dropped = peer.queue.clear();
                    tracing::warn!(node = %shared.local, peer = %peer.id, %address, dropped, "peer stopped reading; its queue was dropped");
                }
            }
            Err(error) => {
                add(&shared.counters.connect_failures_total, 1);
                if failures_in_a_row == 0 {
                    tracing::warn!(node = %shared.local, peer = %peer.id, %error, "cannot reach peer; retrying with backoff");
                } else {
                    tracing::debug!(node = %shared.local, peer = %peer.id, %error, failures_in_a_row, "still cannot reach peer");
                }
                failures_in_a_row += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(shared.jittered_ms(backoff_ms))).await;
        if failures_in_a_row > 0 {
            backoff_ms = backoff_ms.saturating_mul(2).min(config.backoff_ms_max);
        }
    }
}

fn log_end<I: SocketIo>(shared: &Shared<I>, peer: NodeId, address: &str, end: &LinkEnd, direction: &str) {
    match end {
        LinkEnd::Shutdown | LinkEnd::PeerClosed | LinkEnd::AddressChanged => {
            tracing::debug!(node = %shared.local, %peer, %address, direction, ?end, "connection closed");
        }
        LinkEnd::Rejected(reason) => {
            tracing::warn!(node = %shared.local, %peer, %address, direction, %reason, "bad frame; connection closed");
        }
        LinkEnd::ReadFailed(error) | LinkEnd::WriteFailed(error) => {
            tracing::info!(node = %shared.local, %peer, %address, direction, %error, "connection lost");
        }
        LinkEnd::Idle | LinkEnd::WriteTimeout => {
            tracing::info!(node = %shared.local, %peer, %address, direction, ?end, "connection timed out");
        }
    }
}

pub(crate) fn spawn_accept_loop<I: SocketIo>(shared: Arc<Shared<I>>, listener: I::Listener) {
    let runtime = shared.runtime.clone();
    drop(runtime.spawn(async move {
        tokio::select! {
            () = accept_loop(&shared, &listener) => {}
            () = shared.shut_down() => {}
        }
        // The listener is dropped here, releasing the port.
    }));
}

async fn accept_loop<I: SocketIo>(shared: &Arc<Shared<I>>, listener: &I::Listener) {
    loop {
        match shared.io.accept(listener).await {
            Ok((stream, remote)) => {
                let open = shared.inbound_connections.load(std::sync::atomic::Ordering::Relaxed);
                if open >= shared.config.inbound_connections_max {
                    tracing::warn!(node = %shared.local, %remote, open, "too many inbound connections; refused");
                    continue;
                }
                let shared_for_task = shared.clone();
                drop(shared.runtime.spawn(async move {
                    let shared = shared_for_task;
                    tokio::select! {
                        () = serve_inbound(&shared, stream, remote) => {}
                        () = shared.shut_down() => {}
                    }
                }));
            }
            Err(error) => {
                tracing::warn!(node = %shared.local, %error, "accept failed; pausing before the next accept");
                tokio::time::sleep(Duration::from_millis(ACCEPT_RETRY_MS)).await;
            }
        }
    }
}

/// Hello, then carry the connection; while it lives, replies to the dialler's process can go over it.
async fn serve_inbound<I: SocketIo>(shared: &Shared<I>, mut stream: I::Stream, remote: SocketAddr) {
    let _slot = GaugeGuard::raise(&shared.inbound_connections);
    let Some(hello) = link::accept_hello(shared, &mut stream, remote).await else {
        return;
    };
    let peer = hello.base;
    let config = &shared.config;
    let queue =
        Arc::new(SendQueue::new(config.peer_queue_messages_max, config.peer_queue_bytes_max, shared.counters.clone()));
    if let Some(older) = lock(&shared.inbound).insert(peer, queue.clone()) {
        // The older connection from that process keeps running until it ends; replies use the newest.
        drop(older);
    }
    tracing::debug!(node = %shared.local, %peer, %remote, version = %hello.software_version, "inbound connection");
    let end = {
        let _open = GaugeGuard::raise(&shared.counters.connections_open);
        link::run_link(shared, stream, peer, &queue, None).await
    };
    log_end(shared, peer, &remote.to_string(), &end, "inbound");
    let mut inbound = lock(&shared.inbound);
    if inbound.get(&peer).is_some_and(|current| Arc::ptr_eq(current, &queue)) {
        inbound.remove(&peer);
    }
    drop(inbound);
    queue.close();
}
