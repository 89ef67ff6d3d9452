//! The TCP transport: [`tessera_env::Net`] over TCP for every logical endpoint of one OS process.
//!
//! One [`Transport`] per process (a storage node, or a client such as the CLI) carries the messages of
//! all its endpoints. A [`NodeId`]'s bits 60..63 name an endpoint kind; the rest ([`base_of`]) names the
//! process. `send(to, payload)` is routed:
//! 1. `base_of(to)` is this process: straight into the local endpoint's inbound queue, no TCP;
//! 2. an address is known for `base_of(to)` ([`Transport::set_peer_address`], [`Transport::probe`]): the
//!    pooled outbound connection to that process (one per peer, dialled lazily by the peer's task, which
//!    drains a bounded queue and reconnects with jittered exponential backoff after a failure);
//! 3. a connection *from* that process is open (a client that dialled us and has no address): reply
//!    over it;
//! 4. otherwise [`NetError::UnknownNode`].
//!
//! `send` never waits on the network: it queues, or refuses with [`NetError::QueueFull`]. Every
//! connection starts with a hello exchange (process ids, cluster ids, software versions), then carries
//! checksummed frames both ways; keepalives on idle connections and an idle timeout on reads detect a
//! dead peer or a black-holed path in seconds. Any damaged frame closes its connection. The frame
//! format, handshake, queues, timeouts and what is dropped when: `docs/design/transport.md`.
//!
//! The sockets come from a [`SocketIo`]: [`TokioIo`] in production, turmoil's simulated network in
//! `tests/net_turmoil.rs`.

mod config;
mod endpoint;
mod frame;
mod link;
mod peer;
mod queue;
mod socket;
mod stats;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};

use tessera_env::{DetRng, MAX_MESSAGE_BYTES, NetError, NodeId};
use tokio::runtime::Handle;
use tokio::sync::watch;

pub use config::{TransportConfig, TransportError};
pub use endpoint::TcpNet;
pub use socket::{SocketIo, TokioIo};
pub use stats::TransportStats;

use config::{bind_error, check_address};
use endpoint::Endpoints;
use frame::Hello;
use queue::{Outgoing, PushError, SendQueue};
use stats::{Counters, add};

/// The endpoint-kind bits of a [`NodeId`] (bits 60..63). `data_endpoint(n) = n | 1 << 62`, the rebuilder
/// `n | 1 << 61`, other endpoints `n | 1 << 60`.
pub const ENDPOINT_BITS: u64 = 0xF << 60;

/// The process ("base") id of an endpoint id: `id` with the endpoint bits cleared.
pub fn base_of(id: NodeId) -> NodeId {
    NodeId(id.0 & !ENDPOINT_BITS)
}

/// The TCP transport of one process. Cheap to clone (an `Arc`). Its tasks run on the tokio runtime it was
/// started on until [`Transport::shutdown`], until every clone of it and of its endpoints is dropped
/// (which shuts it down), or until that runtime stops.
pub struct Transport<I: SocketIo = TokioIo> {
    owner: Arc<Owner<I>>,
    shared: Arc<Shared<I>>,
}

impl<I: SocketIo> Clone for Transport<I> {
    fn clone(&self) -> Self {
        Transport { owner: self.owner.clone(), shared: self.shared.clone() }
    }
}

/// Held by every [`Transport`] and [`TcpNet`] handle, never by the transport's own tasks: when the last
/// handle goes, nobody can use the transport any more, so it shuts down and its tasks end.
pub(crate) struct Owner<I: SocketIo>(Arc<Shared<I>>);

impl<I: SocketIo> Drop for Owner<I> {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

impl<I: SocketIo> fmt::Debug for Transport<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("local", &self.shared.local)
            .field("listen", &self.shared.local_addr)
            .finish_non_exhaustive()
    }
}

impl Transport<TokioIo> {
    /// Bind `listen` ("127.0.0.1:7101"; `None` for a client that only dials) and start the accept loop
    /// on the current tokio runtime. A port in use is [`TransportError::Bind`] naming the address.
    pub async fn start(
        local: NodeId,
        listen: Option<&str>,
        config: TransportConfig,
    ) -> Result<Transport<TokioIo>, TransportError> {
        Transport::start_with(TokioIo, local, listen, config).await
    }
}

impl<I: SocketIo> Transport<I> {
    /// [`Transport::start`] over any [`SocketIo`].
    pub async fn start_with(
        io: I,
        local: NodeId,
        listen: Option<&str>,
        config: TransportConfig,
    ) -> Result<Transport<I>, TransportError> {
        config.validate()?;
        if base_of(local) != local {
            return Err(TransportError::NotProcessId(local));
        }
        let runtime = Handle::try_current().map_err(|_| TransportError::NoRuntime)?;
        let (listener, local_addr) = match listen {
            None => (None, None),
            Some(address) => match io.bind(address).await {
                Ok((listener, bound)) => (Some(listener), Some(bound)),
                Err(error) => return Err(bind_error(address, &error)),
            },
        };
        let counters = Arc::new(Counters::default());
        let seed = config.jitter_seed.unwrap_or_else(crate::os_seed) ^ local.0;
        let shared = Arc::new(Shared {
            io,
            local,
            runtime,
            cluster_id: Mutex::new(config.cluster_id),
            endpoints: Arc::new(Endpoints::new(
                config.endpoint_queue_messages_max,
                config.endpoint_queue_bytes_max,
                counters.clone(),
            )),
            peers: Mutex::new(BTreeMap::new()),
            inbound: Mutex::new(BTreeMap::new()),
            inbound_connections: AtomicU64::new(0),
            counters,
            shutdown: watch::Sender::new(false),
            local_addr,
            jitter: Mutex::new(DetRng::from_seed(seed)),
            config,
        });
        if let Some(listener) = listener {
            tracing::info!(node = %local, listen = ?local_addr, "transport listening");
            peer::spawn_accept_loop(shared.clone(), listener);
        }
        Ok(Transport { owner: Arc::new(Owner(shared.clone())), shared })
    }

    /// The address the listener is bound to (the real port when started on port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.shared.local_addr
    }

    /// Where process `node` (a base id) listens ("HOST:PORT", resolved at each dial). Replaces an earlier
    /// address; an open connection to the old address is closed. The local id is accepted and ignored.
    pub fn set_peer_address(&self, node: NodeId, address: &str) -> Result<(), TransportError> {
        self.shared.set_peer_address(node, address)
    }

    /// A [`Net`](tessera_env::Net) endpoint for local id `id`: `base_of(id)` must be the local id, and
    /// each id is open at most once at a time (dropping every clone of the endpoint closes it).
    pub fn endpoint(&self, id: NodeId) -> Result<TcpNet<I>, TransportError> {
        if base_of(id) != self.shared.local {
            return Err(TransportError::NotLocal(id));
        }
        let inbox = self.shared.endpoints.open(id)?;
        Ok(TcpNet { _owner: self.owner.clone(), shared: self.shared.clone(), inbox: Arc::new(inbox) })
    }

    /// Dial `address`, exchange hellos, and return the peer's base id and cluster id (0: the peer does
    /// not know it). The address is then remembered for that id, so a client given only HOST:PORT can
    /// send to it. Bounded by the connect timeout. A cluster id is adopted here if this transport has
    /// none yet.
    pub async fn probe(&self, address: &str) -> Result<(NodeId, u128), TransportError> {
        check_address(address)?;
        if self.shared.is_shut_down() {
            return Err(TransportError::Closed);
        }
        let (_stream, ack) = link::dial(&self.shared, address, None).await?;
        if ack.base != self.shared.local {
            self.shared.set_peer_address(ack.base, address)?;
        }
        Ok((ack.base, ack.cluster_id))
    }

    /// A snapshot of the counters and gauges.
    pub fn stats(&self) -> TransportStats {
        self.shared.counters.snapshot()
    }

    /// Close the listener and every connection and drop every queue (counted as dropped). Endpoints'
    /// `recv` returns what is already queued, then `Err(NetError::Closed)`; `send` is `Closed`.
    /// Idempotent. The listener's port is released once the accept task has observed the shutdown
    /// (promptly, but not before this returns).
    pub fn shutdown(&self) {
        self.shared.shutdown();
    }
}

/// State shared by a transport's handles, endpoints and tasks.
pub(crate) struct Shared<I: SocketIo> {
    io: I,
    local: NodeId,
    config: TransportConfig,
    runtime: Handle,
    /// The cluster this process belongs to; `None` until learnt (clients only).
    cluster_id: Mutex<Option<u128>>,
    endpoints: Arc<Endpoints>,
    /// Outbound peers by base id: each has an address and a task that owns its connection.
    peers: Mutex<BTreeMap<NodeId, Arc<peer::Peer>>>,
    /// Reply queues of the latest inbound connection from each base id.
    inbound: Mutex<BTreeMap<NodeId, Arc<SendQueue>>>,
    inbound_connections: AtomicU64,
    counters: Arc<Counters>,
    shutdown: watch::Sender<bool>,
    local_addr: Option<SocketAddr>,
    jitter: Mutex<DetRng>,
}

impl<I: SocketIo> Shared<I> {
    /// Route one message (see the module documentation). Never waits.
    fn route(&self, from: NodeId, to: NodeId, payload: Vec<u8>) -> Result<(), NetError> {
        if payload.len() > MAX_MESSAGE_BYTES {
            return Err(NetError::MessageTooLarge { size_bytes: payload.len() });
        }
        if self.is_shut_down() {
            return Err(NetError::Closed);
        }
        let base = base_of(to);
        if base == self.local {
            self.endpoints.deliver(from, to, payload);
            return Ok(());
        }
        let message = Outgoing { from, to, payload };
        let peer_queue = lock(&self.peers).get(&base).map(|peer| peer.queue.clone());
        if let Some(queue) = peer_queue {
            return match queue.push(message) {
                Ok(()) => Ok(()),
                Err(PushError::Full) => Err(NetError::QueueFull(to)),
                Err(PushError::Closed) => Err(NetError::Closed),
            };
        }
        let inbound_queue = lock(&self.inbound).get(&base).cloned();
        if let Some(queue) = inbound_queue {
            return match queue.push(message) {
                Ok(()) => Ok(()),
                Err(PushError::Full) => Err(NetError::QueueFull(to)),
                // The connection ended between the lookup and the push: lost like a message in flight.
                Err(PushError::Closed) => {
                    add(&self.counters.messages_dropped_total, 1);
                    Ok(())
                }
            };
        }
        Err(NetError::UnknownNode(to))
    }

    fn set_peer_address(self: &Arc<Self>, node: NodeId, address: &str) -> Result<(), TransportError> {
        check_address(address)?;
        if base_of(node) != node {
            return Err(TransportError::NotProcessId(node));
        }
        if node == self.local {
            // Messages to this process never leave it; a peer list that includes us is fine.
            return Ok(());
        }
        let mut peers = lock(&self.peers);
        if self.is_shut_down() {
            return Err(TransportError::Closed);
        }
        if let Some(peer) = peers.get(&node) {
            peer.set_address(address);
            return Ok(());
        }
        let peer = Arc::new(peer::Peer::new(node, address, &self.config, self.counters.clone()));
        peers.insert(node, peer.clone());
        drop(peers);
        peer::spawn_peer_task(self.clone(), peer);
        Ok(())
    }

    /// The hello this process sends (dialler) or answers with (acceptor).
    fn our_hello(&self) -> Hello {
        Hello {
            cluster_id: lock(&self.cluster_id).unwrap_or(0),
            base: self.local,
            software_version: concat!("tessera ", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }

    /// Check a peer's cluster id against ours, adopting it if we have none. `Err(ours)` on a mismatch.
    fn admit_cluster(&self, theirs: u128) -> Result<(), u128> {
        let mut ours = lock(&self.cluster_id);
        match *ours {
            _ if theirs == 0 => Ok(()),
            None => {
                *ours = Some(theirs);
                tracing::info!(node = %self.local, cluster = %format_args!("{theirs:#x}"), "adopted the cluster id of the first peer");
                Ok(())
            }
            Some(id) if id == theirs => Ok(()),
            Some(id) => Err(id),
        }
    }

    fn is_shut_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Completes once the transport is shut down. Cancel-safe.
    async fn shut_down(&self) {
        let mut rx = self.shutdown.subscribe();
        // The sender lives in `self`, so `wait_for` cannot fail while we borrow it.
        let _ = rx.wait_for(|down| *down).await;
    }

    fn shutdown(&self) {
        if self.shutdown.send_replace(true) {
            return;
        }
        tracing::info!(node = %self.local, "transport shutting down");
        self.endpoints.close();
        let peers = std::mem::take(&mut *lock(&self.peers));
        for peer in peers.values() {
            peer.queue.close();
        }
        let inbound = std::mem::take(&mut *lock(&self.inbound));
        for queue in inbound.values() {
            queue.close();
        }
    }

    /// A backoff sleep: `backoff_ms` jittered to 50..100 % so that peers do not redial in lockstep.
    fn jittered_ms(&self, backoff_ms: u64) -> u64 {
        use tessera_env::Rng as _;
        let half = backoff_ms / 2;
        half + lock(&self.jitter).range_inclusive(0, backoff_ms - half)
    }
}
/// Lock a mutex, ignoring poisoning: every critical section here leaves its data consistent at each
/// step, and a panic elsewhere must not take the transport down with it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_of_clears_only_the_endpoint_bits() {
        assert_eq!(base_of(NodeId(7 | 1 << 62)), NodeId(7));
        assert_eq!(base_of(NodeId(7 | 1 << 61)), NodeId(7));
        assert_eq!(base_of(NodeId(7 | 1 << 60)), NodeId(7));
        assert_eq!(base_of(NodeId((1 << 60) - 1)), NodeId((1 << 60) - 1));
        assert_eq!(base_of(NodeId(u64::MAX)), NodeId((1 << 60) - 1));
    }
}
