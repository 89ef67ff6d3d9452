//! Local endpoints: the bounded inbound queue of each logical endpoint of this process, and [`TcpNet`],
//! the [`Net`] door handed to cluster logic.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tessera_env::{Net, NetError, NodeId};
use tokio::sync::mpsc;

use super::socket::{SocketIo, TokioIo};
use super::stats::{Counters, add, sub};
use super::{Owner, Shared, TransportError, lock};

type Delivery = (NodeId, Vec<u8>);

/// Every open endpoint of the process, by full endpoint id.
#[derive(Debug)]
pub(crate) struct Endpoints {
    state: Mutex<State>,
    messages_max: usize,
    bytes_max: u64,
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct State {
    slots: BTreeMap<NodeId, Slot>,
    closed: bool,
    /// Tells a re-opened endpoint apart from the one it replaced (see [`Inbox`]'s `Drop`).
    next_serial: u64,
}

/// The sending side of one endpoint's inbound queue. The transport holds the only sender, so dropping the
/// slot (shutdown, or the endpoint's last [`TcpNet`] dropped) ends the receiver once it is drained.
#[derive(Debug)]
struct Slot {
    tx: mpsc::Sender<Delivery>,
    queued_bytes: Arc<AtomicU64>,
    serial: u64,
}

impl Endpoints {
    pub(crate) fn new(messages_max: usize, bytes_max: u64, counters: Arc<Counters>) -> Endpoints {
        assert!(messages_max > 0 && bytes_max > 0, "endpoint queue bounds must be positive");
        Endpoints { state: Mutex::new(State::default()), messages_max, bytes_max, counters }
    }

    /// Open endpoint `id`. The caller has checked that `id` belongs to this process.
    pub(crate) fn open(self: &Arc<Self>, id: NodeId) -> Result<Inbox, TransportError> {
        let mut state = lock(&self.state);
        if state.closed {
            return Err(TransportError::Closed);
        }
        if state.slots.contains_key(&id) {
            return Err(TransportError::EndpointTaken(id));
        }
        let (tx, rx) = mpsc::channel(self.messages_max);
        let queued_bytes = Arc::new(AtomicU64::new(0));
        let serial = state.next_serial;
        state.next_serial += 1;
        state.slots.insert(id, Slot { tx, queued_bytes: queued_bytes.clone(), serial });
        Ok(Inbox { id, rx: tokio::sync::Mutex::new(rx), queued_bytes, serial, endpoints: self.clone() })
    }

    /// Put a message into endpoint `to`'s queue. A missing endpoint or a full queue drops the message
    /// (counted): the network is allowed to lose messages, and a slow consumer must not stall a link.
    pub(crate) fn deliver(&self, from: NodeId, to: NodeId, payload: Vec<u8>) {
        let state = lock(&self.state);
        let Some(slot) = state.slots.get(&to) else {
            add(&self.counters.messages_dropped_total, 1);
            tracing::debug!(%from, %to, "message for an endpoint that is not open here dropped");
            return;
        };
        let size_bytes = payload.len() as u64;
        // Reserve the bytes before the message becomes visible to the receiver, which releases them.
        let before = slot.queued_bytes.fetch_add(size_bytes, Ordering::Relaxed);
        if before + size_bytes > self.bytes_max || slot.tx.try_send((from, payload)).is_err() {
            sub(&slot.queued_bytes, size_bytes);
            add(&self.counters.messages_dropped_total, 1);
            tracing::debug!(%from, %to, "endpoint queue full, message dropped");
        }
    }

    /// Refuse new endpoints and end every receiver once it has drained its queue.
    pub(crate) fn close(&self) {
        let mut state = lock(&self.state);
        state.closed = true;
        state.slots.clear();
    }
}

/// The receiving side of one endpoint. Dropping it closes the endpoint, so the id can be opened again.
#[derive(Debug)]
pub(crate) struct Inbox {
    id: NodeId,
    /// A tokio mutex so that `recv` can wait on the channel while holding it and stay cancel-safe.
    rx: tokio::sync::Mutex<mpsc::Receiver<Delivery>>,
    queued_bytes: Arc<AtomicU64>,
    serial: u64,
    endpoints: Arc<Endpoints>,
}

impl Inbox {
    /// Cancel-safe: a message leaves the queue only in the poll that returns it.
    async fn recv(&self) -> Result<Delivery, NetError> {
        let mut rx = self.rx.lock().await;
        let (from, payload) = rx.recv().await.ok_or(NetError::Closed)?;
        sub(&self.queued_bytes, payload.len() as u64);
        Ok((from, payload))
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let mut state = lock(&self.endpoints.state);
        if state.slots.get(&self.id).is_some_and(|slot| slot.serial == self.serial) {
            state.slots.remove(&self.id);
        }
    }
}

/// One local endpoint of a [`Transport`](super::Transport): the [`Net`] door for id [`Net::local_id`].
/// Clones share the endpoint; it closes when the last clone is dropped or the transport shuts down. An
/// endpoint keeps its transport running.
pub struct TcpNet<I: SocketIo = TokioIo> {
    pub(crate) _owner: Arc<Owner<I>>,
    pub(crate) shared: Arc<Shared<I>>,
    pub(crate) inbox: Arc<Inbox>,
}

impl<I: SocketIo> Clone for TcpNet<I> {
    fn clone(&self) -> Self {
        TcpNet { _owner: self._owner.clone(), shared: self.shared.clone(), inbox: self.inbox.clone() }
    }
}

impl<I: SocketIo> fmt::Debug for TcpNet<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpNet").field("id", &self.inbox.id).finish_non_exhaustive()
    }
}

impl<I: SocketIo> Net for TcpNet<I> {
    fn local_id(&self) -> NodeId {
        self.inbox.id
    }

    /// Queues the message (or delivers it locally) and returns; never waits on the network.
    async fn send(&self, to: NodeId, payload: Vec<u8>) -> Result<(), NetError> {
        self.shared.route(self.inbox.id, to, payload)
    }

    async fn recv(&self) -> Result<(NodeId, Vec<u8>), NetError> {
        self.inbox.recv().await
    }
}
