//! [`MultiRaft`]: every Raft group (metadata shard) one node hosts, driven as one sans-IO state machine,
//! with messages batched per node pair and persistence batched per node round.

use std::collections::BTreeMap;
use std::fmt;

use tessera_env::{DetRng, NodeId, buggify};

use crate::config::{ConfigError, RaftConfig};
use crate::node::{ConfChangeRequest, RaftError, RaftNode, RaftRole, RaftStatus, ReadyToken};
use crate::persist::{PersistBatch, PersistedState};
use crate::types::{LogEntry, MessageType, RaftMessage, SnapshotData};

mod moves;
mod outbox;

pub use moves::ReconcileStep;
pub use outbox::{DEFAULT_MAX_BATCH_BYTES, Outbox, RaftBatch, message_size_bytes};

/// Tunables of a node's multi-raft host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultiConfig {
    /// The configuration of every group's replica.
    pub raft: RaftConfig,
    /// A destination's envelope is split when its estimated size would exceed this.
    pub max_batch_bytes: usize,
    /// [`MultiRaft::balance_leaders`] keeps at most this many leadership transfers in flight.
    pub max_transfers_in_flight: usize,
    /// A learner is promoted, and a voter receives leadership, only when its log is within this many
    /// entries of the leader's last index.
    pub catch_up_lag_entries: u64,
}

impl Default for MultiConfig {
    fn default() -> MultiConfig {
        MultiConfig {
            raft: RaftConfig::default(),
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            max_transfers_in_flight: 16,
            catch_up_lag_entries: 8,
        }
    }
}

/// Errors of [`MultiRaft`]. Misuse of the call order is a programmer error and panics instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultiRaftError {
    #[error("invalid raft configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("max_batch_bytes ({0}) must be between 1 and half the message limit")]
    BatchLimit(usize),
    /// The node hosts no such group (a message for it can be dropped, or the group created if the
    /// shard map makes this node one of its replicas).
    #[error("group {0} is not hosted here")]
    UnknownGroup(u64),
    #[error("group {0} is already hosted here")]
    GroupExists(u64),
    #[error("group {group}: {error}")]
    Raft { group: u64, error: RaftError },
    /// A joining replica was offered the log from index 1; it must start from a snapshot.
    #[error("group {0}: a joining replica starts from a snapshot, not from the log's first entry")]
    NeedsSnapshot(u64),
}

/// An append carrying the log from its very first entry (previous index 0). Such a log holds only the
/// membership changes made since the group's bootstrap, not the bootstrap voters themselves (they are
/// configuration, not entries): a replica created empty (`voters = []`) that replayed it would believe
/// the group has only the members added since, and could elect itself with a minority. So a leader
/// never sends it to a node outside the bootstrap voters (it asks for a compaction instead, and raft-rs
/// then sends a snapshot, which carries the whole configuration), and a replica created empty refuses
/// it.
fn from_log_start(message: &RaftMessage) -> bool {
    message.msg_type == MessageType::Append && message.index == 0 && !message.entries.is_empty()
}

/// Proof that a [`MultiReady`] was handed out; give it back to [`MultiRaft::advance`].
#[derive(Debug, PartialEq, Eq)]
pub struct MultiReadyToken(u64);

/// What to apply to one group's state machine.
#[derive(Debug)]
pub struct GroupApply {
    pub group: u64,
    /// Replace the group's state machine with this snapshot first.
    pub snapshot_to_apply: Option<SnapshotData>,
    /// Then apply these, in index order.
    pub committed: Vec<LogEntry>,
}

/// The work of every group that had some, handed out together. Handle it in this order:
/// 1. make `persist` durable (ONE `RaftLogStore::save_many`; skip if empty);
/// 2. send `outgoing` (only now: the messages may promise what `persist` holds), or add it to an
///    [`Outbox`] and send once per round;
/// 3. apply every [`GroupApply`] (snapshot first, then committed entries, in order);
/// 4. call [`MultiRaft::advance`] with `token`;
/// 5. for every group in `snapshot_requested`, call [`MultiRaft::compact`] at its applied index.
#[derive(Debug)]
pub struct MultiReady {
    pub token: MultiReadyToken,
    /// (group, batch), groups ascending, empty batches left out.
    pub persist: Vec<(u64, PersistBatch)>,
    /// One envelope per destination node (more only if one would exceed `max_batch_bytes`), by
    /// destination; inside, groups ascending and each group's messages in generation order.
    pub outgoing: Vec<(NodeId, RaftBatch)>,
    /// Groups with something to apply, ascending.
    pub applies: Vec<GroupApply>,
    /// Groups whose leader needs a fresh snapshot for a new member (see [`crate::RaftReady`]); also
    /// asked when a leader whose log still starts at index 1 would otherwise send it to a joiner.
    pub snapshot_requested: Vec<u64>,
}

/// Every Raft group one node hosts: many [`RaftNode`]s (one per group, `group: u64` = shard id) stepped
/// together, their messages to one node in one [`RaftBatch`] and their persistence in one save.
///
/// # Call order
/// Inputs: [`tick`](Self::tick) (once per tick interval: ticks every group), [`step`](Self::step)
/// (an envelope from a peer node), [`propose`](Self::propose) and the other per-group inputs,
/// [`add_group`](Self::add_group) / [`remove_group`](Self::remove_group),
/// [`balance_leaders`](Self::balance_leaders), [`reconcile`](Self::reconcile). After inputs, loop:
/// [`ready`](Self::ready) -> persist -> send -> apply -> [`advance`](Self::advance) -> compactions,
/// until `ready` returns `None` (see [`MultiReady`]). No input while a ready is outstanding (panics).
///
/// # Cost of idle groups
/// `tick` ticks every group: for raft-rs that is a counter increment and a comparison, plus a heartbeat
/// per follower every `heartbeat_ticks` on leaders. Those heartbeats are what an idle group costs; they
/// travel inside the per-pair envelope, so the envelope count per tick does not grow with the number of
/// groups. `ready` asks every group (a few comparisons for a group with nothing to do). Hibernating
/// idle groups (tikv's "hibernate regions": no ticks and no heartbeats until woken) would remove the
/// per-group heartbeat but needs its own wake-up protocol against check-quorum; not done.
pub struct MultiRaft {
    id: NodeId,
    config: MultiConfig,
    groups: BTreeMap<u64, RaftNode>,
    /// Each group's bootstrap voters as passed to `add_group` (`[]` for a joiner).
    bootstrap: BTreeMap<u64, Vec<NodeId>>,
    /// The outstanding ready's token and its groups' tokens.
    pending: Option<(u64, Vec<(u64, ReadyToken)>)>,
    next_token: u64,
}

impl fmt::Debug for MultiRaft {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiRaft")
            .field("id", &self.id)
            .field("groups", &self.groups.len())
            .field("leading", &self.leaders().len())
            .finish_non_exhaustive()
    }
}

const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<MultiRaft>();
    assert_send::<MultiReady>();
};

impl MultiRaft {
    pub fn new(id: NodeId, config: MultiConfig) -> Result<MultiRaft, MultiRaftError> {
        config.raft.validate()?;
        if config.max_batch_bytes == 0 || config.max_batch_bytes > tessera_proto::MAX_MESSAGE_BYTES / 2 {
            return Err(MultiRaftError::BatchLimit(config.max_batch_bytes));
        }
        assert!(id.0 != 0, "node id 0 is reserved by raft");
        Ok(MultiRaft { id, config, groups: BTreeMap::new(), bootstrap: BTreeMap::new(), pending: None, next_token: 1 })
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn config(&self) -> &MultiConfig {
        &self.config
    }

    /// Hosts a replica of `group`. `voters` and `persisted` as for [`RaftNode::new`]: the bootstrap
    /// members when the group is created, `[]` for a replica joining an existing group (it learns the
    /// configuration from the leader's snapshot), and what `RaftLogStore::load_all` returned after a
    /// restart. `rng` draws this replica's election timeouts (fork it per group from the node's).
    /// Pass the same `voters` on every restart: a joiner stays a joiner (`[]`), and only the bootstrap
    /// voters are ever sent the log from its first entry (see [`MultiRaftError::NeedsSnapshot`]).
    pub fn add_group(
        &mut self,
        group: u64,
        voters: &[NodeId],
        persisted: Option<PersistedState>,
        rng: DetRng,
    ) -> Result<(), MultiRaftError> {
        self.assert_no_pending("add_group");
        if self.groups.contains_key(&group) {
            return Err(MultiRaftError::GroupExists(group));
        }
        let node = RaftNode::new(self.id, voters, self.config.raft.clone(), persisted, rng)
            .map_err(|error| MultiRaftError::Raft { group, error })?;
        self.groups.insert(group, node);
        self.bootstrap.insert(group, voters.to_vec());
        Ok(())
    }

    /// Stops hosting `group` (its persisted records are the caller's to keep or drop). True if it was
    /// hosted.
    pub fn remove_group(&mut self, group: u64) -> bool {
        self.assert_no_pending("remove_group");
        self.bootstrap.remove(&group);
        self.groups.remove(&group).is_some()
    }

    /// One tick interval passed: ticks every group.
    pub fn tick(&mut self) {
        self.assert_no_pending("tick");
        for node in self.groups.values_mut() {
            node.tick();
        }
    }

    /// Feeds an envelope from node `from`. Returns what was refused, message by message (harmless to
    /// drop; an [`MultiRaftError::UnknownGroup`] tells the caller a peer thinks this node hosts a group
    /// it does not).
    pub fn step(&mut self, from: NodeId, batch: RaftBatch) -> Vec<MultiRaftError> {
        self.assert_no_pending("step");
        let mut refused = Vec::new();
        for (group, message) in batch.messages {
            match self.groups.get_mut(&group) {
                None => refused.push(MultiRaftError::UnknownGroup(group)),
                Some(_) if from_log_start(&message) && self.bootstrap[&group].is_empty() => {
                    refused.push(MultiRaftError::NeedsSnapshot(group));
                }
                Some(node) => {
                    if let Err(error) = node.step(from, message) {
                        refused.push(MultiRaftError::Raft { group, error });
                    }
                }
            }
        }
        refused
    }

    /// Proposes `data` in `group` (this node must lead it).
    pub fn propose(&mut self, group: u64, data: Vec<u8>) -> Result<(), MultiRaftError> {
        self.with_group(group, |node| node.propose(data))
    }

    pub fn propose_conf_change(&mut self, group: u64, change: ConfChangeRequest) -> Result<(), MultiRaftError> {
        self.with_group(group, |node| node.propose_conf_change(change))
    }

    pub fn campaign(&mut self, group: u64) -> Result<(), MultiRaftError> {
        self.with_group(group, RaftNode::campaign)
    }

    pub fn transfer_leader(&mut self, group: u64, to: NodeId) -> Result<(), MultiRaftError> {
        self.with_group(group, |node| {
            node.transfer_leader(to);
            Ok(())
        })
    }

    /// [`RaftNode::compact`] of one group.
    pub fn compact(&mut self, group: u64, applied_index: u64, app_snapshot: Vec<u8>) -> Result<(), MultiRaftError> {
        self.with_group(group, |node| node.compact(applied_index, app_snapshot))
    }

    /// The work of every group that has some, or `None`. See [`MultiReady`].
    pub fn ready(&mut self) -> Option<MultiReady> {
        self.assert_no_pending("ready");
        let mut tokens = Vec::new();
        let mut persist = Vec::new();
        let mut outbox = Outbox::new(self.config.max_batch_bytes);
        let mut applies = Vec::new();
        let mut snapshot_requested = Vec::new();
        for (&group, node) in &mut self.groups {
            let Some(rd) = node.ready() else { continue };
            tokens.push((group, rd.token));
            if !rd.persist.is_empty() {
                persist.push((group, rd.persist));
            }
            let mut wants_snapshot = rd.snapshot_requested;
            for (to, message) in rd.messages {
                if from_log_start(&message) && !self.bootstrap[&group].contains(&to) {
                    // A joiner must start from a snapshot (see `from_log_start`): compact, and raft-rs
                    // sends one on its next probe.
                    wants_snapshot = true;
                    continue;
                }
                if buggify!("raft.drop_outgoing") {
                    // Fault hook: lost on the way, as the network may lose it; Raft re-sends.
                    continue;
                }
                outbox.push(to, group, message);
            }
            if rd.snapshot_to_apply.is_some() || !rd.committed.is_empty() {
                applies.push(GroupApply { group, snapshot_to_apply: rd.snapshot_to_apply, committed: rd.committed });
            }
            if wants_snapshot {
                snapshot_requested.push(group);
            }
        }
        if tokens.is_empty() {
            return None;
        }
        let token = self.next_token;
        self.next_token += 1;
        self.pending = Some((token, tokens));
        Some(MultiReady {
            token: MultiReadyToken(token),
            persist,
            outgoing: outbox.take(),
            applies,
            snapshot_requested,
        })
    }

    /// The ready with `token` was fully handled: persisted, sent, applied.
    pub fn advance(&mut self, token: MultiReadyToken) {
        let (expect, tokens) = self.pending.take().expect("advance without an outstanding ready");
        assert_eq!(expect, token.0, "advance with the token of another ready");
        for (group, group_token) in tokens {
            self.groups.get_mut(&group).expect("a group with an outstanding ready is hosted").advance(group_token);
        }
    }

    pub fn status(&self, group: u64) -> Option<RaftStatus> {
        self.groups.get(&group).map(RaftNode::status)
    }

    /// One group's replica, for reading (progress, election timeout).
    pub fn group(&self, group: u64) -> Option<&RaftNode> {
        self.groups.get(&group)
    }

    /// Hosted groups, ascending.
    pub fn groups(&self) -> Vec<u64> {
        self.groups.keys().copied().collect()
    }

    /// Groups this node currently leads, ascending.
    pub fn leaders(&self) -> Vec<u64> {
        self.groups.iter().filter(|(_, n)| n.status().role == RaftRole::Leader).map(|(&g, _)| g).collect()
    }

    /// For groups this node leads whose preferred leader (from the shard map: `replicas[0]`) is another
    /// voter that is active and caught up (within `catch_up_lag_entries`), starts a leadership
    /// transfer; at most `max_transfers_in_flight` transfers are in flight at once (raft-rs abandons a
    /// transfer after an election timeout). Returns the transfers started. Call it every few ticks.
    pub fn balance_leaders(&mut self, preferred: &BTreeMap<u64, NodeId>) -> Vec<(u64, NodeId)> {
        self.assert_no_pending("balance_leaders");
        let in_flight = self.groups.values().filter(|n| n.transfer_target().is_some()).count();
        let mut budget = self.config.max_transfers_in_flight.saturating_sub(in_flight);
        let lag = self.config.catch_up_lag_entries;
        let mut started = Vec::new();
        for (&group, node) in &mut self.groups {
            if budget == 0 {
                break;
            }
            let Some(&(mut to)) = preferred.get(&group) else { continue };
            if to == self.id && buggify!("raft.transfer_leader") && node.status().role == RaftRole::Leader {
                // Fault hook: the preferred leader hands leadership to another caught-up voter (a later
                // balancing round moves it back).
                let mut others = node.status().voters.into_iter().filter(|&v| v != self.id);
                to = others.find(|&v| moves::ready_to_lead(node, v, lag)).unwrap_or(self.id);
            }
            if to == self.id || node.transfer_target().is_some() {
                continue;
            }
            if !moves::ready_to_lead(node, to, lag) {
                continue;
            }
            node.transfer_leader(to);
            started.push((group, to));
            budget -= 1;
        }
        started
    }

    fn with_group<T>(
        &mut self,
        group: u64,
        f: impl FnOnce(&mut RaftNode) -> Result<T, RaftError>,
    ) -> Result<T, MultiRaftError> {
        self.assert_no_pending("a group input");
        let node = self.groups.get_mut(&group).ok_or(MultiRaftError::UnknownGroup(group))?;
        f(node).map_err(|error| MultiRaftError::Raft { group, error })
    }

    fn assert_no_pending(&self, what: &str) {
        assert!(self.pending.is_none(), "MultiRaft::{what} while a ready is outstanding (call advance first)");
    }
}
