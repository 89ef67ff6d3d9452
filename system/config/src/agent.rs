//! The node agent: every node heartbeats to the config leader and caches the config it answers with.
//!
//! Sans-IO. Call [`NodeAgent::tick`] often (every few milliseconds of the node's clock is fine: it
//! heartbeats only every `heartbeat_interval_ms`), [`NodeAgent::handle`] for config messages, and
//! [`NodeAgent::observe_epoch`] whenever a peer mentions an epoch (a "stale epoch" answer): a newer one
//! makes the agent fetch the config at once. Send what [`NodeAgent::take_outbox`] returns.

use std::time::Duration;

use tessera_env::{MonoTime, NodeId};

use crate::model::ClusterConfig;
use crate::wire::ConfigMessage;

#[derive(Debug)]
pub struct NodeAgent {
    members: Vec<NodeId>,
    leader: Option<NodeId>,
    /// Round-robin position among members when no leader is known.
    probe: usize,
    config: Option<ClusterConfig>,
    interval: Duration,
    next_heartbeat_at: MonoTime,
    last_ack_at: MonoTime,
    outbox: Vec<(NodeId, ConfigMessage)>,
}

impl NodeAgent {
    /// `members`: the config service's members (non-empty).
    pub fn new(members: Vec<NodeId>, heartbeat_interval_ms: u64, start_probe: usize) -> NodeAgent {
        assert!(!members.is_empty(), "a node agent needs the config members");
        assert!(heartbeat_interval_ms > 0);
        NodeAgent {
            probe: start_probe % members.len(),
            members,
            leader: None,
            config: None,
            interval: Duration::from_millis(heartbeat_interval_ms),
            next_heartbeat_at: MonoTime::ZERO,
            last_ack_at: MonoTime::ZERO,
            outbox: Vec::new(),
        }
    }

    /// The cached config, if any arrived yet.
    pub fn config(&self) -> Option<&ClusterConfig> {
        self.config.as_ref()
    }

    pub fn epoch(&self) -> u64 {
        self.config.as_ref().map_or(0, |c| c.epoch)
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    pub fn tick(&mut self, now: MonoTime) {
        if now < self.next_heartbeat_at {
            return;
        }
        // No answer for three intervals: the leader we knew is gone; probe the members in turn.
        if self.leader.is_some() && now.saturating_since(self.last_ack_at) >= 3 * self.interval {
            self.leader = None;
        }
        let to = self.leader.unwrap_or_else(|| {
            self.probe = (self.probe + 1) % self.members.len();
            self.members[self.probe]
        });
        self.outbox.push((to, ConfigMessage::Heartbeat { epoch: self.epoch() }));
        self.next_heartbeat_at = now + self.interval;
    }

    pub fn handle(&mut self, _from: NodeId, msg: &ConfigMessage, now: MonoTime) {
        match msg {
            ConfigMessage::HeartbeatAck { leader, epoch, config } => {
                self.leader = Some(*leader);
                self.last_ack_at = now;
                if let Some(c) = config {
                    self.install(c);
                } else if *epoch > self.epoch() {
                    self.outbox.push((*leader, ConfigMessage::GetConfig { known_epoch: self.epoch() }));
                }
            }
            ConfigMessage::NotLeader { id: None, leader } => {
                self.leader = *leader;
                // Retry at once towards the hinted leader.
                if leader.is_some() {
                    self.next_heartbeat_at = now;
                }
            }
            ConfigMessage::Config { config } => self.install(config),
            _ => {}
        }
    }

    /// A peer mentioned `epoch` (for example in a "stale epoch" answer). If it is newer than the cached
    /// config, fetch the config now.
    pub fn observe_epoch(&mut self, epoch: u64) {
        if epoch > self.epoch() {
            let to = self.leader.unwrap_or(self.members[self.probe]);
            self.outbox.push((to, ConfigMessage::GetConfig { known_epoch: self.epoch() }));
        }
    }

    pub fn take_outbox(&mut self) -> Vec<(NodeId, ConfigMessage)> {
        std::mem::take(&mut self.outbox)
    }

    fn install(&mut self, config: &ClusterConfig) {
        if config.epoch > self.epoch() || self.config.is_none() {
            self.config = Some(config.clone());
        }
    }
}
