//! The node's admin endpoint (`node | 1 << 60`): answers `Describe` (the cluster file, so a client given
//! only `HOST:PORT` learns the cluster) and `Status` (what this node sees), and runs the failure detector:
//! it pings every peer's admin endpoint and declares a peer dead in the node's data map once it has
//! been silent for the cluster's `dead_after_ms` (its chunks are then rebuilt elsewhere); a peer that
//! answers again is live again.
//!
//! The detector is per node, not a consensus: two nodes may disagree for a moment about who is dead.
//! That is safe because the data map only steers work: rebuild moves are conditional metadata updates
//! (`MoveChunk` applies only if the chunk is still where the rebuilder found it) and writers rewrite a
//! stripe placed on a node that does not answer.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tessera_data::rebuild::SharedDataMap;
use tessera_data::wire::RebuildProgress;
use tessera_env::{Clock, MonoTime, Net, NetError, NodeId, recv_or_sleep};
use tessera_meta::host::SharedHostView;
use tessera_raft::RaftRole;

use crate::clock::RealClock;

/// The bit that turns a node id into its admin endpoint's id.
pub const ADMIN_ENDPOINT_BIT: u64 = 1 << 60;
/// How often the detector pings each peer.
pub const PING_INTERVAL_MS: u64 = 500;
/// Software version reported in status.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub const fn admin_endpoint(node: NodeId) -> NodeId {
    NodeId(node.0 | ADMIN_ENDPOINT_BIT)
}

/// What a client or peer asks a node's admin endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminRequest {
    Ping { seq: u64 },
    Describe { seq: u64 },
    Status { seq: u64 },
}

impl AdminRequest {
    pub fn seq(&self) -> u64 {
        match self {
            AdminRequest::Ping { seq } | AdminRequest::Describe { seq } | AdminRequest::Status { seq } => *seq,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminReply {
    Pong { seq: u64 },
    Describe { seq: u64, cluster_toml: String },
    Status { seq: u64, status: Box<NodeStatus> },
}

impl AdminReply {
    pub fn seq(&self) -> u64 {
        match self {
            AdminReply::Pong { seq } | AdminReply::Describe { seq, .. } | AdminReply::Status { seq, .. } => *seq,
        }
    }
}

/// One admin message on the wire: a request or a reply (peers send both to each other's endpoint).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminMessage {
    Request(AdminRequest),
    Reply(AdminReply),
}

impl AdminMessage {
    pub fn encode(&self) -> Vec<u8> {
        tessera_proto::encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<AdminMessage, tessera_proto::CodecError> {
        tessera_proto::decode(bytes)
    }
}

/// A peer as this node's detector sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub id: u64,
    pub rack: u32,
    pub address: String,
    /// Declared dead in this node's data map.
    pub dead: bool,
    /// Since its last answer (or since this node started, if none).
    pub silent_ms: u64,
}

/// What one node reports about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node: u64,
    pub rack: u32,
    pub address: String,
    pub version: String,
    pub uptime_ms: u64,
    pub peers: Vec<PeerStatus>,
    /// Metadata shards with a replica here, and those it leads.
    pub shards_hosted: u64,
    pub shards_led: u64,
    pub shard_map_epoch: u64,
    pub data_map_epoch: u64,
    pub rebuild: RebuildProgress,
}

/// What the admin loop reads to answer `Status`.
#[derive(Clone, Debug)]
pub struct AdminShared {
    pub node: NodeId,
    pub rack: u32,
    pub address: String,
    pub cluster_toml: Arc<String>,
    /// Members other than this node: id -> (rack, address).
    pub peers: BTreeMap<NodeId, (u32, String)>,
    pub dead_after_ms: u64,
    pub host_view: SharedHostView,
    pub data_map: SharedDataMap,
    pub progress: Arc<Mutex<RebuildProgress>>,
    /// Last answer heard from each peer (shared with the metrics sampler).
    pub last_heard: Arc<Mutex<BTreeMap<NodeId, MonoTime>>>,
}

impl AdminShared {
    /// This node's status now.
    pub fn status(&self, now: MonoTime) -> NodeStatus {
        let (hosted, led, epoch) = {
            let view = self.host_view.lock().expect("host view lock");
            let led = view.groups.values().filter(|g| g.status.role == RaftRole::Leader).count();
            (view.groups.len() as u64, led as u64, view.epoch)
        };
        let (dead, data_epoch) = {
            let map = self.data_map.lock().expect("data map lock");
            (map.dead.clone(), map.epoch)
        };
        let heard = self.last_heard.lock().expect("last heard lock").clone();
        let peers = self
            .peers
            .iter()
            .map(|(id, (rack, address))| PeerStatus {
                id: id.0,
                rack: *rack,
                address: address.clone(),
                dead: dead.contains(id),
                silent_ms: now.saturating_since(heard.get(id).copied().unwrap_or(MonoTime::ZERO)).as_millis() as u64,
            })
            .collect();
        NodeStatus {
            node: self.node.0,
            rack: self.rack,
            address: self.address.clone(),
            version: VERSION.to_string(),
            uptime_ms: now.as_nanos() / 1_000_000,
            peers,
            shards_hosted: hosted,
            shards_led: led,
            shard_map_epoch: epoch,
            data_map_epoch: data_epoch,
            rebuild: *self.progress.lock().expect("progress lock"),
        }
    }

    /// Marks peers silent past `dead_after_ms` dead and peers heard again live; returns what changed as
    /// (newly dead, alive again).
    pub fn detect(&self, now: MonoTime) -> (Vec<NodeId>, Vec<NodeId>) {
        let heard = self.last_heard.lock().expect("last heard lock").clone();
        let limit = Duration::from_millis(self.dead_after_ms);
        let mut map = self.data_map.lock().expect("data map lock");
        let mut died = Vec::new();
        let mut back = Vec::new();
        for id in self.peers.keys() {
            let last = heard.get(id).copied().unwrap_or(MonoTime::ZERO);
            let silent = now.saturating_since(last);
            let is_dead = map.dead.contains(id);
            if silent >= limit && !is_dead {
                died.push(*id);
            } else if silent < limit && is_dead && heard.contains_key(id) {
                back.push(*id);
            }
        }
        if !died.is_empty() {
            map.declare_dead(&died);
        }
        if !back.is_empty() {
            for id in &back {
                map.dead.remove(id);
            }
            map.epoch += 1;
        }
        (died, back)
    }
}

/// Serves the admin endpoint and runs the failure detector until the endpoint closes.
pub async fn run_admin<N: Net>(net: N, clock: RealClock, shared: AdminShared) {
    let mut seq: u64 = 0;
    let mut next_ping = clock.now();
    loop {
        let wait = next_ping.saturating_since(clock.now());
        match recv_or_sleep(&net, &clock, wait).await {
            Some(Ok((from, bytes))) => {
                let Ok(message) = AdminMessage::decode(&bytes) else {
                    tracing::debug!(%from, "undecodable admin message dropped");
                    continue;
                };
                let now = clock.now();
                match message {
                    AdminMessage::Request(request) => {
                        let reply = match request {
                            AdminRequest::Ping { seq } => AdminReply::Pong { seq },
                            AdminRequest::Describe { seq } => {
                                AdminReply::Describe { seq, cluster_toml: shared.cluster_toml.to_string() }
                            }
                            AdminRequest::Status { seq } => {
                                AdminReply::Status { seq, status: Box::new(shared.status(now)) }
                            }
                        };
                        // Loss is normal: the asker retries.
                        let _ = net.send(from, AdminMessage::Reply(reply).encode()).await;
                    }
                    AdminMessage::Reply(AdminReply::Pong { .. }) => {
                        let peer = NodeId(from.0 & !ADMIN_ENDPOINT_BIT);
                        if shared.peers.contains_key(&peer) {
                            shared.last_heard.lock().expect("last heard lock").insert(peer, now);
                        }
                    }
                    AdminMessage::Reply(_) => {}
                }
            }
            Some(Err(NetError::Closed)) => return,
            Some(Err(_)) => {}
            None => {}
        }
        let now = clock.now();
        if now >= next_ping {
            seq += 1;
            for peer in shared.peers.keys() {
                let ping = AdminMessage::Request(AdminRequest::Ping { seq }).encode();
                let _ = net.send(admin_endpoint(*peer), ping).await;
            }
            let (died, back) = shared.detect(now);
            for id in died {
                tracing::warn!(peer = %id, dead_after_ms = shared.dead_after_ms, "peer declared dead: its chunks will be rebuilt elsewhere");
            }
            for id in back {
                tracing::info!(peer = %id, "peer answers again: live");
            }
            next_ping = now + Duration::from_millis(PING_INTERVAL_MS);
        }
    }
}

/// Ask `node`'s admin endpoint one question over `net` (a client's admin-capable endpoint), resending
/// every `resend_ms` until `timeout_ms`. `None` if no answer came.
pub async fn ask<N: Net, C: Clock>(
    net: &N,
    clock: &C,
    node: NodeId,
    request: AdminRequest,
    resend_ms: u64,
    timeout_ms: u64,
) -> Option<AdminReply> {
    let seq = request.seq();
    let deadline = clock.now() + Duration::from_millis(timeout_ms);
    let bytes = AdminMessage::Request(request).encode();
    loop {
        let now = clock.now();
        if now >= deadline {
            return None;
        }
        if net.send(admin_endpoint(node), bytes.clone()).await.is_err() {
            clock.sleep(Duration::from_millis(resend_ms)).await;
            continue;
        }
        let resend_at = (now + Duration::from_millis(resend_ms)).min(deadline);
        loop {
            let wait = resend_at.saturating_since(clock.now());
            match recv_or_sleep(net, clock, wait).await {
                Some(Ok((_, reply))) => {
                    if let Ok(AdminMessage::Reply(reply)) = AdminMessage::decode(&reply)
                        && reply.seq() == seq
                    {
                        return Some(reply);
                    }
                }
                Some(Err(NetError::Closed)) => return None,
                Some(Err(_)) => {}
                None => break,
            }
        }
    }
}
