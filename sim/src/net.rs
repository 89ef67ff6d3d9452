//! The simulated network: one shared fabric ([`SimNetwork`]) and one endpoint per node ([`SimNet`]).
//!
//! On `send` the fabric decides from its own seeded generator whether the message is lost, duplicated
//! and how long each copy travels (a uniform delay per copy, which is also what reorders messages).
//! Each copy is then carried by a task on a dedicated madsim node ("net"), so in-flight messages
//! survive the crash of their sender. On arrival the copy is dropped if the link is cut at that moment,
//! if the receiver is down or has restarted since the send, or if the receiver's mailbox is full;
//! otherwise it is queued. Every send, delivery and drop is traced.
//!
//! Latencies are virtual; madsim rounds every sleep up to 1 ms, so non-zero delays are at least 1 ms.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};
use std::time::Duration;

use tessera_env::{DetRng, MAX_MESSAGE_BYTES, Net, NetError, NodeId, Rng};

use crate::trace::{Trace, fnv64};

const SOURCE: &str = "net";

/// Behaviour of one direction of one link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    pub latency_us_min: u64,
    pub latency_us_max: u64,
    pub loss_per_million: u64,
    pub duplicate_per_million: u64,
}

/// Behaviour of the whole fabric: the default for every link, and the per-node mailbox bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetConfig {
    pub latency_us_min: u64,
    pub latency_us_max: u64,
    pub loss_per_million: u64,
    pub duplicate_per_million: u64,
    /// Messages delivered but not yet received that a node's mailbox holds; arrivals beyond are lost.
    pub queue_limit_messages: usize,
}

impl Default for NetConfig {
    /// A quiet datacentre network: 1-3 ms, no loss, no duplication, 1024 queued messages per node.
    fn default() -> NetConfig {
        NetConfig {
            latency_us_min: 1_000,
            latency_us_max: 3_000,
            loss_per_million: 0,
            duplicate_per_million: 0,
            queue_limit_messages: 1024,
        }
    }
}

impl NetConfig {
    fn default_link(&self) -> LinkConfig {
        LinkConfig {
            latency_us_min: self.latency_us_min,
            latency_us_max: self.latency_us_max.max(self.latency_us_min),
            loss_per_million: self.loss_per_million,
            duplicate_per_million: self.duplicate_per_million,
        }
    }
}

/// Counters of the fabric.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    pub sent: u64,
    pub delivered: u64,
    pub duplicated: u64,
    pub dropped_loss: u64,
    pub dropped_cut: u64,
    pub dropped_down: u64,
    pub dropped_overflow: u64,
}

struct Endpoint {
    rack: u32,
    /// The node this endpoint belongs to (itself for a node's main endpoint): cuts, partitions and
    /// power apply to hosts, so every endpoint of a node shares its fate.
    host: NodeId,
    up: bool,
    /// Bumped by `node_down`: copies sent to an earlier incarnation are dropped on arrival.
    incarnation: u64,
    mailbox: VecDeque<(NodeId, Vec<u8>)>,
    wakers: Vec<Waker>,
}

impl Fabric {
    /// The host of endpoint `id` (an unknown id is its own host).
    fn host(&self, id: NodeId) -> NodeId {
        self.nodes.get(&id).map_or(id, |e| e.host)
    }
}

impl Endpoint {
    fn wake_all(&mut self) {
        for w in self.wakers.drain(..) {
            w.wake();
        }
    }
}

struct Fabric {
    rng: DetRng,
    config: NetConfig,
    nodes: BTreeMap<NodeId, Endpoint>,
    links: BTreeMap<(NodeId, NodeId), LinkConfig>,
    cuts: BTreeSet<(NodeId, NodeId)>,
    next_message_id: u64,
    /// The madsim node that carries messages in flight.
    carrier: Option<madsim::runtime::NodeHandle>,
    stats: NetStats,
}

/// The shared network fabric. Cloning shares the same fabric.
#[derive(Clone)]
pub struct SimNetwork {
    fabric: Arc<Mutex<Fabric>>,
    trace: Trace,
}

impl fmt::Debug for SimNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fab = self.lock();
        f.debug_struct("SimNetwork")
            .field("config", &fab.config)
            .field("nodes", &fab.nodes.keys().collect::<Vec<_>>())
            .field("cuts", &fab.cuts)
            .finish_non_exhaustive()
    }
}

impl SimNetwork {
    pub fn new(rng: DetRng, trace: Trace, config: NetConfig) -> SimNetwork {
        let fabric = Fabric {
            rng,
            config,
            nodes: BTreeMap::new(),
            links: BTreeMap::new(),
            cuts: BTreeSet::new(),
            next_message_id: 0,
            carrier: None,
            stats: NetStats::default(),
        };
        SimNetwork { fabric: Arc::new(Mutex::new(fabric)), trace }
    }

    fn lock(&self) -> MutexGuard<'_, Fabric> {
        self.fabric.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, event: fmt::Arguments<'_>) {
        self.trace.record(SOURCE, event);
    }

    /// Register `node` in `rack` (up, empty mailbox) and return its endpoint. Registering again returns
    /// another endpoint for the same mailbox and keeps the node's state.
    pub fn endpoint(&self, node: NodeId, rack: u32) -> SimNet {
        self.endpoint_on(node, node, rack)
    }

    /// Register another endpoint `node` of node `host` (a second service of the same machine, e.g. its
    /// data endpoint): it goes down and up with `host`, and cuts between hosts cut it too.
    pub fn endpoint_on(&self, node: NodeId, host: NodeId, rack: u32) -> SimNet {
        let mut fab = self.lock();
        fab.nodes.entry(node).or_insert_with(|| Endpoint {
            rack,
            host,
            up: true,
            incarnation: 0,
            mailbox: VecDeque::new(),
            wakers: Vec::new(),
        });
        drop(fab);
        self.record(format_args!("register {node} rack {rack}"));
        SimNet { network: self.clone(), node }
    }

    /// Registered nodes, in id order.
    pub fn nodes(&self) -> Vec<NodeId> {
        self.lock().nodes.keys().copied().collect()
    }

    pub fn rack_of(&self, node: NodeId) -> Option<u32> {
        self.lock().nodes.get(&node).map(|e| e.rack)
    }

    pub fn stats(&self) -> NetStats {
        self.lock().stats
    }

    /// Messages waiting in `node`'s mailbox.
    pub fn queued_messages(&self, node: NodeId) -> usize {
        self.lock().nodes.get(&node).map_or(0, |e| e.mailbox.len())
    }

    /// Override the behaviour of the link `from` → `to` (one direction).
    pub fn set_link(&self, from: NodeId, to: NodeId, link: LinkConfig) {
        self.record(format_args!("set link {from}->{to} {link:?}"));
        self.lock().links.insert((from, to), link);
    }

    /// Remove every per-link override.
    pub fn clear_links(&self) {
        self.record(format_args!("clear link overrides"));
        self.lock().links.clear();
    }

    /// Remove the per-link overrides of every link to and from `node` (they follow the fabric's default again).
    pub fn clear_links_of(&self, node: NodeId) {
        self.record(format_args!("clear link overrides of {node}"));
        self.lock().links.retain(|(from, to), _| *from != node && *to != node);
    }

    /// Cut the link `from` → `to` in that direction only: messages sent into it, or arriving through
    /// it while it is cut, are lost.
    pub fn cut(&self, from: NodeId, to: NodeId) {
        self.record(format_args!("cut {from}->{to}"));
        self.lock().cuts.insert((from, to));
    }

    pub fn cut_both(&self, a: NodeId, b: NodeId) {
        self.cut(a, b);
        self.cut(b, a);
    }

    /// Cut every link, both ways, between the registered nodes of `rack` and all other registered nodes.
    pub fn isolate_rack(&self, rack: u32) {
        self.record(format_args!("isolate rack {rack}"));
        let mut fab = self.lock();
        let (inside, outside): (Vec<_>, Vec<_>) =
            fab.nodes.iter().filter(|(n, e)| **n == e.host).map(|(&n, e)| (n, e.rack)).partition(|&(_, r)| r == rack);
        for &(a, _) in &inside {
            for &(b, _) in &outside {
                fab.cuts.insert((a, b));
                fab.cuts.insert((b, a));
            }
        }
    }

    /// Cut both ways between every two nodes in different groups. Nodes in no group keep their links.
    pub fn partition(&self, groups: &[Vec<NodeId>]) {
        self.record(format_args!("partition {groups:?}"));
        let mut fab = self.lock();
        for (i, group) in groups.iter().enumerate() {
            for other in &groups[i + 1..] {
                for &a in group {
                    for &b in other {
                        fab.cuts.insert((a, b));
                        fab.cuts.insert((b, a));
                    }
                }
            }
        }
    }

    /// Remove every cut (link overrides stay; see [`SimNetwork::clear_links`]).
    pub fn heal(&self) {
        self.record(format_args!("heal"));
        self.lock().cuts.clear();
    }

    pub fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        let fab = self.lock();
        fab.cuts.contains(&(fab.host(from), fab.host(to)))
    }

    /// The node stopped: its mailbox is emptied, messages to it are lost, its `recv` waits until it is up.
    pub fn node_down(&self, node: NodeId) {
        let mut fab = self.lock();
        let mut dropped = 0;
        for ep in fab.nodes.values_mut().filter(|ep| ep.host == node) {
            ep.up = false;
            ep.incarnation += 1;
            dropped += ep.mailbox.len() as u64;
            ep.mailbox.clear();
        }
        fab.stats.dropped_down += dropped;
        drop(fab);
        self.record(format_args!("{node} down, {dropped} queued messages dropped"));
    }

    pub fn node_up(&self, node: NodeId) {
        let mut fab = self.lock();
        for ep in fab.nodes.values_mut().filter(|ep| ep.host == node) {
            ep.up = true;
            ep.wake_all();
        }
        drop(fab);
        self.record(format_args!("{node} up"));
    }

    pub fn is_up(&self, node: NodeId) -> bool {
        self.lock().nodes.get(&node).is_some_and(|e| e.up)
    }

    fn send_from(&self, from: NodeId, to: NodeId, payload: Vec<u8>) -> Result<(), NetError> {
        if payload.len() > MAX_MESSAGE_BYTES {
            return Err(NetError::MessageTooLarge { size_bytes: payload.len() });
        }
        let mut fab = self.lock();
        if !fab.nodes.get(&from).is_some_and(|e| e.up) {
            return Err(NetError::Closed);
        }
        let Some(incarnation) = fab.nodes.get(&to).map(|e| e.incarnation) else {
            return Err(NetError::UnknownNode(to));
        };
        let id = fab.next_message_id;
        fab.next_message_id += 1;
        fab.stats.sent += 1;
        let fp = fnv64(&payload);
        let len = payload.len();
        let hosts = (fab.host(from), fab.host(to));
        if fab.cuts.contains(&hosts) {
            fab.stats.dropped_cut += 1;
            drop(fab);
            self.record(format_args!("send #{id} {from}->{to} len={len} fp={fp:016x}: dropped, link cut"));
            return Ok(());
        }
        let link = fab.links.get(&hosts).cloned().unwrap_or_else(|| fab.config.default_link());
        if fab.rng.chance(link.loss_per_million.min(1_000_000), 1_000_000) {
            fab.stats.dropped_loss += 1;
            drop(fab);
            self.record(format_args!("send #{id} {from}->{to} len={len} fp={fp:016x}: lost"));
            return Ok(());
        }
        let copies = if fab.rng.chance(link.duplicate_per_million.min(1_000_000), 1_000_000) { 2 } else { 1 };
        fab.stats.duplicated += copies - 1;
        let max_us = link.latency_us_max.max(link.latency_us_min);
        let delays_us: Vec<u64> = (0..copies).map(|_| fab.rng.range_inclusive(link.latency_us_min, max_us)).collect();
        let carrier = fab
            .carrier
            .get_or_insert_with(|| madsim::runtime::Handle::current().create_node().name("net").build())
            .clone();
        drop(fab);
        self.record(format_args!("send #{id} {from}->{to} len={len} fp={fp:016x}: in flight, delays {delays_us:?}us"));
        let mut payload = Some(payload);
        for (copy, &delay_us) in delays_us.iter().enumerate() {
            let bytes = if copy + 1 == delays_us.len() {
                payload.take().unwrap_or_default()
            } else {
                payload.clone().unwrap_or_default()
            };
            let net = self.clone();
            carrier.spawn(async move {
                if delay_us > 0 {
                    madsim::time::sleep(Duration::from_micros(delay_us)).await;
                }
                net.arrive(id, from, to, incarnation, bytes);
            });
        }
        Ok(())
    }

    fn arrive(&self, id: u64, from: NodeId, to: NodeId, incarnation: u64, payload: Vec<u8>) {
        let mut guard = self.lock();
        let fab = &mut *guard;
        let cut = fab.cuts.contains(&(fab.host(from), fab.host(to)));
        let limit = fab.config.queue_limit_messages;
        let Some(ep) = fab.nodes.get_mut(&to) else { return };
        let verdict = if cut {
            fab.stats.dropped_cut += 1;
            "dropped, link cut in flight"
        } else if !ep.up || ep.incarnation != incarnation {
            fab.stats.dropped_down += 1;
            "dropped, receiver down or restarted"
        } else if ep.mailbox.len() >= limit {
            fab.stats.dropped_overflow += 1;
            "dropped, mailbox full"
        } else {
            ep.mailbox.push_back((from, payload));
            ep.wake_all();
            fab.stats.delivered += 1;
            "delivered"
        };
        drop(guard);
        self.record(format_args!("arrive #{id} {from}->{to}: {verdict}"));
    }

    fn poll_recv(&self, node: NodeId, waker: &Waker) -> Poll<Result<(NodeId, Vec<u8>), NetError>> {
        let mut fab = self.lock();
        let Some(ep) = fab.nodes.get_mut(&node) else { return Poll::Ready(Err(NetError::Closed)) };
        if ep.up
            && let Some((from, payload)) = ep.mailbox.pop_front()
        {
            drop(fab);
            self.record(format_args!("recv {from}->{node} len={} fp={:016x}", payload.len(), fnv64(&payload)));
            return Poll::Ready(Ok((from, payload)));
        }
        if !ep.wakers.iter().any(|w| w.will_wake(waker)) {
            ep.wakers.push(waker.clone());
        }
        Poll::Pending
    }
}

/// One node's endpoint on the fabric.
#[derive(Clone)]
pub struct SimNet {
    network: SimNetwork,
    node: NodeId,
}

impl fmt::Debug for SimNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimNet").field("node", &self.node).finish()
    }
}

impl SimNet {
    /// The fabric this endpoint is attached to.
    pub fn network(&self) -> &SimNetwork {
        &self.network
    }
}

impl Net for SimNet {
    fn local_id(&self) -> NodeId {
        self.node
    }

    fn send(&self, to: NodeId, payload: Vec<u8>) -> impl Future<Output = Result<(), NetError>> + Send {
        let result = self.network.send_from(self.node, to, payload);
        async move { result }
    }

    fn recv(&self) -> impl Future<Output = Result<(NodeId, Vec<u8>), NetError>> + Send {
        let this = self.clone();
        std::future::poll_fn(move |cx| this.network.poll_recv(this.node, cx.waker()))
    }
}
