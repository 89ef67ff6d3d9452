//! A config member: one replica of the config service's Raft group, its applied [`ClusterConfig`] and,
//! while it leads, the failure detector.
//!
//! Sans-IO (STYLE.md rule 1). Call order:
//! 1. inputs: [`ConfigMember::tick`] every tick interval, [`ConfigMember::handle`] for each message;
//! 2. `while let Some(ready) = member.ready()`: make `ready.persist` durable (the Raft log store), then
//!    [`ConfigMember::on_persisted`]`(ready)`;
//! 3. send everything in [`ConfigMember::take_outbox`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tessera_env::{DetRng, MonoTime, NodeId};
use tessera_raft::{EntryKind, PersistedState, RaftConfig, RaftError, RaftNode, RaftReady, RaftRole, RaftStatus};

use crate::command::{ConfigCommand, apply_request};
use crate::model::{ClusterConfig, ClusterParams, NodeState};
use crate::wire::{ConfigMessage, RequestId};

/// Raft group id of the config service in a node's Raft log store.
pub const CONFIG_GROUP: u64 = 0;
/// Requests waiting for their entry to apply on this member; more are refused as "not leader" so the
/// client retries elsewhere or later.
pub const WAITING_MAX: usize = 4096;
/// Applied entries between two snapshots (compactions) of the config.
pub const COMPACT_EVERY_ENTRIES: u64 = 256;

/// Failure-detection timing (DESIGN.md section 4: "declares a node dead after a timeout").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DetectorConfig {
    /// How often every node heartbeats to the config leader.
    pub heartbeat_interval_ms: u64,
    /// Silence after which an up node is marked suspect.
    pub suspect_after_ms: u64,
    /// Silence after which a node is declared down and its replicas move.
    pub down_after_ms: u64,
}

impl Default for DetectorConfig {
    fn default() -> DetectorConfig {
        DetectorConfig { heartbeat_interval_ms: 500, suspect_after_ms: 2_000, down_after_ms: 5_000 }
    }
}

impl DetectorConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.heartbeat_interval_ms == 0 {
            return Err("heartbeat_interval_ms must be at least 1".into());
        }
        if self.suspect_after_ms < 2 * self.heartbeat_interval_ms {
            return Err("suspect_after_ms must be at least two heartbeat intervals".into());
        }
        if self.down_after_ms <= self.suspect_after_ms {
            return Err("down_after_ms must be greater than suspect_after_ms".into());
        }
        Ok(())
    }
}

/// Why a config member could not start.
#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error("invalid failure-detector timing: {0}")]
    InvalidTiming(String),
    #[error("raft: {0}")]
    Raft(#[from] RaftError),
}

/// What one log entry of the config group carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Proposal {
    /// `None` for the failure detector's own changes.
    request: Option<RequestId>,
    command: ConfigCommand,
}

/// The leader's failure detector.
#[derive(Debug, Default)]
struct Detector {
    /// Last heartbeat per node (or when this leader first saw it in the config).
    last_heard: BTreeMap<NodeId, MonoTime>,
    /// State changes proposed and not yet applied: (target, when proposed).
    proposed: BTreeMap<NodeId, (NodeState, MonoTime)>,
}

pub struct ConfigMember {
    id: NodeId,
    raft: RaftNode,
    config: ClusterConfig,
    detector: Detector,
    timing: DetectorConfig,
    waiting: BTreeMap<RequestId, NodeId>,
    outbox: Vec<(NodeId, ConfigMessage)>,
    applied_index: u64,
    compacted_index: u64,
    now: MonoTime,
}

impl std::fmt::Debug for ConfigMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigMember").field("id", &self.id).field("epoch", &self.config.epoch).finish_non_exhaustive()
    }
}

impl ConfigMember {
    /// A member of the config group `members` (the same list on every member and every restart).
    /// `persisted` is what the Raft log store holds for [`CONFIG_GROUP`] (`None` on first boot).
    pub fn new(
        id: NodeId,
        members: &[NodeId],
        params: ClusterParams,
        raft_config: RaftConfig,
        timing: DetectorConfig,
        persisted: Option<PersistedState>,
        rng: DetRng,
    ) -> Result<ConfigMember, MemberError> {
        timing.validate().map_err(MemberError::InvalidTiming)?;
        let mut config = ClusterConfig::new(params);
        let mut applied_index = 0;
        if let Some(snapshot) = persisted.as_ref().and_then(|p| p.snapshot.as_ref()) {
            config = tessera_proto::decode(&snapshot.data).expect("config snapshot written by this code decodes");
            applied_index = snapshot.index;
        }
        let raft = RaftNode::new(id, members, raft_config, persisted, rng)?;
        Ok(ConfigMember {
            id,
            raft,
            config,
            detector: Detector::default(),
            timing,
            waiting: BTreeMap::new(),
            outbox: Vec::new(),
            applied_index,
            compacted_index: applied_index,
            now: MonoTime::ZERO,
        })
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    pub fn status(&self) -> RaftStatus {
        self.raft.status()
    }

    pub fn is_leader(&self) -> bool {
        self.raft.status().role == RaftRole::Leader
    }

    /// Advance Raft's clock by one tick and, while leading, run the failure detector.
    pub fn tick(&mut self, now: MonoTime) {
        self.now = now;
        self.raft.tick();
        self.run_detector();
    }

    pub fn handle(&mut self, from: NodeId, msg: ConfigMessage, now: MonoTime) {
        self.now = now;
        match msg {
            ConfigMessage::Raft(m) => {
                // A message from a stale or unknown peer is dropped: Raft tolerates loss.
                let _ = self.raft.step(from, m);
            }
            ConfigMessage::Request { id, command } => self.on_request(from, id, command),
            ConfigMessage::Heartbeat { epoch } => self.on_heartbeat(from, epoch),
            ConfigMessage::GetConfig { known_epoch } => {
                if self.config.epoch > known_epoch {
                    self.outbox.push((from, ConfigMessage::Config { config: Box::new(self.config.clone()) }));
                }
            }
            // Answers meant for clients and agents; a member ignores them.
            ConfigMessage::Response { .. }
            | ConfigMessage::NotLeader { .. }
            | ConfigMessage::HeartbeatAck { .. }
            | ConfigMessage::Config { .. } => {}
        }
    }

    pub fn ready(&mut self) -> Option<RaftReady> {
        self.raft.ready()
    }

    /// `ready.persist` is durable: queue its messages, apply what committed, answer waiting clients.
    pub fn on_persisted(&mut self, ready: RaftReady) {
        for (to, m) in ready.messages {
            self.outbox.push((to, ConfigMessage::Raft(m)));
        }
        if let Some(snapshot) = &ready.snapshot_to_apply {
            self.config = tessera_proto::decode(&snapshot.data).expect("config snapshot from a peer decodes");
            self.applied_index = snapshot.index;
            self.compacted_index = snapshot.index;
        }
        for entry in &ready.committed {
            self.applied_index = entry.index;
            if entry.kind != EntryKind::Normal || entry.data.is_empty() {
                continue;
            }
            let proposal: Proposal = tessera_proto::decode(&entry.data).expect("committed proposal decodes");
            let result = apply_request(&mut self.config, proposal.request, &proposal.command);
            if let Some(id) = proposal.request
                && let Some(requester) = self.waiting.remove(&id)
            {
                self.outbox.push((requester, ConfigMessage::Response { id, result }));
            }
        }
        let snapshot_requested = ready.snapshot_requested;
        self.raft.advance(ready.token);
        if snapshot_requested || self.applied_index >= self.compacted_index + COMPACT_EVERY_ENTRIES {
            let snapshot = tessera_proto::encode(&self.config);
            if self.raft.compact(self.applied_index, snapshot).is_ok() {
                self.compacted_index = self.applied_index;
            }
        }
    }

    pub fn take_outbox(&mut self) -> Vec<(NodeId, ConfigMessage)> {
        std::mem::take(&mut self.outbox)
    }

    fn leader_hint(&self) -> Option<NodeId> {
        self.raft.status().leader
    }

    fn on_request(&mut self, from: NodeId, id: RequestId, command: ConfigCommand) {
        // A retry of an already applied request is answered from the session, without a new entry.
        if self.is_leader()
            && let Some(result) = self.config.recorded_result(id)
        {
            self.outbox.push((from, ConfigMessage::Response { id, result }));
            return;
        }
        if self.waiting.len() >= WAITING_MAX && !self.waiting.contains_key(&id) {
            self.outbox.push((from, ConfigMessage::NotLeader { id: Some(id), leader: None }));
            return;
        }
        let data = tessera_proto::encode(&Proposal { request: Some(id), command });
        match self.raft.propose(data) {
            Ok(()) => {
                self.waiting.insert(id, from);
            }
            Err(_) => {
                let leader = self.leader_hint().filter(|l| *l != self.id);
                self.outbox.push((from, ConfigMessage::NotLeader { id: Some(id), leader }));
            }
        }
    }

    fn on_heartbeat(&mut self, from: NodeId, epoch: u64) {
        if !self.is_leader() {
            let leader = self.leader_hint().filter(|l| *l != self.id);
            self.outbox.push((from, ConfigMessage::NotLeader { id: None, leader }));
            return;
        }
        if self.config.nodes.contains_key(&from) {
            self.detector.last_heard.insert(from, self.now);
            let state = self.config.nodes[&from].state;
            if matches!(state, NodeState::Suspect | NodeState::Down) {
                self.propose_state(from, NodeState::Up);
            }
        }
        let config = (epoch < self.config.epoch).then(|| Box::new(self.config.clone()));
        self.outbox.push((from, ConfigMessage::HeartbeatAck { leader: self.id, epoch: self.config.epoch, config }));
    }

    fn run_detector(&mut self) {
        if !self.is_leader() {
            // Requests proposed while leading may never commit now; their clients retry elsewhere
            // (and deduplication answers them if the entry did commit).
            self.detector = Detector::default();
            self.waiting.clear();
            return;
        }
        let suspect_after = Duration::from_millis(self.timing.suspect_after_ms);
        let down_after = Duration::from_millis(self.timing.down_after_ms);
        let mut changes = Vec::new();
        for (id, node) in &self.config.nodes {
            // Silence is counted from when this leader first saw the node in the config (its election,
            // or the node's join), never from before.
            let heard = *self.detector.last_heard.entry(*id).or_insert(self.now);
            let silent = self.now.saturating_since(heard);
            let target = match node.state {
                NodeState::Up | NodeState::Suspect if silent >= down_after => NodeState::Down,
                NodeState::Up if silent >= suspect_after => NodeState::Suspect,
                _ => continue,
            };
            changes.push((*id, target));
        }
        for (id, target) in changes {
            self.propose_state(id, target);
        }
        let config = &self.config;
        self.detector.proposed.retain(|id, (target, _)| config.nodes.get(id).is_some_and(|n| n.state != *target));
        self.detector.last_heard.retain(|id, _| config.nodes.contains_key(id));
    }

    /// Propose a detector verdict unless the same one is already on its way (re-proposed after a
    /// suspect timeout, in case the entry was lost in a leader change).
    fn propose_state(&mut self, node: NodeId, target: NodeState) {
        let retry_after = Duration::from_millis(self.timing.suspect_after_ms);
        if let Some((t, at)) = self.detector.proposed.get(&node)
            && *t == target
            && self.now.saturating_since(*at) < retry_after
        {
            return;
        }
        let command = match target {
            NodeState::Up => ConfigCommand::MarkUp { node },
            NodeState::Suspect => ConfigCommand::MarkSuspect { node },
            NodeState::Down => ConfigCommand::MarkDown { node },
            NodeState::Decommissioning => return,
        };
        let data = tessera_proto::encode(&Proposal { request: None, command });
        if self.raft.propose(data).is_ok() {
            self.detector.proposed.insert(node, (target, self.now));
        }
    }
}
