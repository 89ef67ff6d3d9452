//! [`RaftNode`]: one replica of one Raft group, as a sans-IO state machine around raft-rs's `RawNode`.

use std::fmt;

use protobuf::Message as _;
use raft::eraftpb::{ConfChangeSingle, ConfChangeType, ConfChangeV2, ConfState};
use raft::{RawNode, StateRole};
use serde::{Deserialize, Serialize};
use tessera_env::{DetRng, NodeId, Rng, mark};

use crate::config::{ConfigError, RaftConfig};
use crate::persist::{PersistBatch, PersistedState, PersistedStateError};
use crate::storage::MemLog;
use crate::types::{EntryKind, HardState, LogEntry, MessageType, RaftMessage, SnapshotData};

/// A membership change, as proposed and as carried (encoded with `tessera-proto`) in the `context` of
/// a conf-change log entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfChangeRequest {
    /// Add a voter, or promote a learner to voter.
    AddVoter(NodeId),
    /// Remove a voter or a learner.
    RemoveVoter(NodeId),
    /// Add a learner: it receives the log but neither votes nor counts for commit.
    AddLearner(NodeId),
}

/// The encoded form of a [`ConfChangeRequest`] (node ids as plain integers).
#[derive(Serialize, Deserialize)]
enum ConfChangeWire {
    AddVoter(u64),
    RemoveVoter(u64),
    AddLearner(u64),
}

impl ConfChangeRequest {
    /// The `tessera-proto` encoding carried in a conf-change entry's `context`.
    pub fn encode(self) -> Vec<u8> {
        tessera_proto::encode(&match self {
            ConfChangeRequest::AddVoter(n) => ConfChangeWire::AddVoter(n.0),
            ConfChangeRequest::RemoveVoter(n) => ConfChangeWire::RemoveVoter(n.0),
            ConfChangeRequest::AddLearner(n) => ConfChangeWire::AddLearner(n.0),
        })
    }

    pub fn decode(bytes: &[u8]) -> Result<ConfChangeRequest, tessera_proto::CodecError> {
        Ok(match tessera_proto::decode(bytes)? {
            ConfChangeWire::AddVoter(n) => ConfChangeRequest::AddVoter(NodeId(n)),
            ConfChangeWire::RemoveVoter(n) => ConfChangeRequest::RemoveVoter(NodeId(n)),
            ConfChangeWire::AddLearner(n) => ConfChangeRequest::AddLearner(NodeId(n)),
        })
    }

    fn to_pb(self) -> ConfChangeV2 {
        let (change_type, node) = match self {
            ConfChangeRequest::AddVoter(n) => (ConfChangeType::AddNode, n),
            ConfChangeRequest::RemoveVoter(n) => (ConfChangeType::RemoveNode, n),
            ConfChangeRequest::AddLearner(n) => (ConfChangeType::AddLearnerNode, n),
        };
        let single = ConfChangeSingle { change_type, node_id: node.0, ..Default::default() };
        ConfChangeV2 { changes: vec![single].into(), ..Default::default() }
    }
}

impl LogEntry {
    /// The membership change a committed conf-change entry carries: `None` for a normal entry and for
    /// raft-rs's own empty "leave joint configuration" entry. Reads only our `context` encoding, never
    /// the protobuf `data`.
    pub fn conf_change(&self) -> Result<Option<ConfChangeRequest>, tessera_proto::CodecError> {
        if self.kind == EntryKind::Normal || self.context.is_empty() {
            return Ok(None);
        }
        ConfChangeRequest::decode(&self.context).map(Some)
    }
}

/// The role of a replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RaftRole {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// A snapshot of a replica's progress, for callers and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftStatus {
    pub id: NodeId,
    pub term: u64,
    pub role: RaftRole,
    pub leader: Option<NodeId>,
    pub commit: u64,
    /// Index of the last entry (or snapshot) the caller has applied (all readies advanced so far).
    pub applied: u64,
    pub last_index: u64,
    /// Current voters and learners, sorted (outgoing voters of a joint configuration are not listed).
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
}

/// How far a member's log matches the leader's, as the leader sees it ([`RaftNode::progress`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerProgress {
    pub id: NodeId,
    /// Highest index known to be in this member's log.
    pub matched: u64,
    /// Heard from within the last election timeout (always true for the leader itself).
    pub recent_active: bool,
    pub learner: bool,
}

/// Errors the driver reports. Misuse of the call order is a programmer error and panics instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RaftError {
    #[error("invalid raft configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("node id 0 is reserved by raft")]
    ZeroNodeId,
    #[error("persisted state is inconsistent: {0}")]
    Persisted(#[from] PersistedStateError),
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader { leader_hint: Option<NodeId> },
    #[error("proposal of {size_bytes} bytes exceeds max_entry_bytes {max_bytes}")]
    ProposalTooLarge { size_bytes: u64, max_bytes: u64 },
    /// The leader refused the proposal (leadership transfer in progress, too many uncommitted bytes,
    /// or this node was removed from the group). Retry later or elsewhere.
    #[error("proposal dropped by the leader")]
    ProposalDropped,
    /// A previous membership change is not applied yet; one change at a time.
    #[error("a membership change is already pending")]
    ConfChangePending,
    #[error("message addressed to {to} delivered to {me}")]
    WrongRecipient { to: u64, me: NodeId },
    #[error("message claims sender {claimed} but arrived from {from}")]
    SenderMismatch { claimed: u64, from: NodeId },
    /// Message types raft only generates locally (Hup, Beat, ...), or a forwarded proposal: never
    /// accepted from the network. (We never forward proposals, so the leader never decodes conf-change
    /// bytes that a peer produced.)
    #[error("message type {0:?} is not accepted from peers")]
    NotFromPeers(MessageType),
    /// A response from a node that is not (any longer) in the group; dropping it is harmless.
    #[error("response from {0}, not a member of the group")]
    UnknownPeer(NodeId),
    #[error("cannot compact at {index}: {reason}")]
    Compaction { index: u64, reason: &'static str },
    /// Any other error raft-rs reports (its message).
    #[error("raft: {0}")]
    Raft(String),
}

fn raft_err(e: raft::Error) -> RaftError {
    match e {
        raft::Error::ProposalDropped => RaftError::ProposalDropped,
        other => RaftError::Raft(other.to_string()),
    }
}

/// Proof that a [`RaftReady`] was handed out; give it back to [`RaftNode::advance`].
#[derive(Debug, PartialEq, Eq)]
pub struct ReadyToken(u64);

/// The work a replica hands its caller. Handle it in this order:
/// 1. make `persist` durable (one `RaftLogStore::save`; skip if empty);
/// 2. send `messages` (only now: they may promise what `persist` holds);
/// 3. restore `snapshot_to_apply` into the state machine if present, then apply `committed` in order;
/// 4. call [`RaftNode::advance`] with `token`;
/// 5. if `snapshot_requested`, call [`RaftNode::compact`] (after `advance`).
#[derive(Debug)]
pub struct RaftReady {
    pub token: ReadyToken,
    pub persist: PersistBatch,
    /// Messages to peers, ordered by destination (stable: per destination in generation order).
    pub messages: Vec<(NodeId, RaftMessage)>,
    /// A snapshot received from the leader: replace the state machine with it before `committed`.
    pub snapshot_to_apply: Option<SnapshotData>,
    /// Committed entries to apply, in index order, all after `snapshot_to_apply`.
    pub committed: Vec<LogEntry>,
    /// A follower needs a snapshot that the latest compaction cannot serve (it is older than the
    /// follower's join): call [`RaftNode::compact`] at the applied index soon; raft-rs retries.
    pub snapshot_requested: bool,
}

struct Pending {
    token: u64,
    ready: raft::Ready,
    /// Last index applied once the caller has handled this ready.
    applied_to: u64,
    /// Committed membership changes to hand to raft-rs at `advance`.
    conf_changes: Vec<(u64, ConfChangeV2)>,
    /// Peers this ready sends a snapshot to.
    snapshots_to: Vec<u64>,
}

/// One replica of one Raft group: raft-rs's `RawNode` with our types, our randomness and a strict
/// call order.
///
/// # Call order
/// Inputs: [`tick`](Self::tick) (the caller's clock, one call per tick interval), [`step`](Self::step)
/// (a message from a peer), [`propose`](Self::propose), [`propose_conf_change`](Self::propose_conf_change),
/// [`campaign`](Self::campaign), [`transfer_leader`](Self::transfer_leader), [`compact`](Self::compact).
/// After inputs, loop: [`ready`](Self::ready) -> persist `RaftReady::persist` durably -> send its
/// messages -> apply its snapshot and committed entries -> [`advance`](Self::advance)`(token)`, until
/// `ready` returns `None`. No input may be given while a ready is outstanding (between `ready` and
/// `advance`): that is a programmer error and panics.
///
/// # Determinism
/// raft-rs draws each randomized election timeout from rand's `thread_rng` (in
/// `Raft::reset_randomized_election_timeout`, only called from `Raft::reset`, which then sets
/// `election_elapsed = 0`). After every call into raft-rs, if `election_elapsed == 0` we overwrite the
/// timeout with `election_ticks + rng.below(election_ticks)` from our [`DetRng`]. Nothing reads the
/// timeout between raft-rs's draw and our overwrite (only `tick` compares against it), so the OS draw
/// never influences behaviour; the overwrite depends only on deterministic state. raft-rs's internal
/// maps use a fixed hasher (FxHash), and we additionally order outgoing messages by destination.
pub struct RaftNode {
    id: NodeId,
    config: RaftConfig,
    raw: RawNode<MemLog>,
    rng: DetRng,
    pending: Option<Pending>,
    next_token: u64,
    /// Messages and committed entries raft-rs produced during `advance`; handed out by the next `ready`.
    carry_messages: Vec<raft::eraftpb::Message>,
    carry_committed: Vec<raft::eraftpb::Entry>,
    /// The hard state last handed out for persistence.
    persisted_hs: HardState,
    /// A local compaction snapshot not yet handed out for persistence.
    pending_compaction: Option<SnapshotData>,
    /// The configuration at the snapshot index, then after every applied membership change since
    /// (index, configuration); bounded by the changes in the uncompacted log.
    conf_history: Vec<(u64, ConfState)>,
    applied: u64,
}

// A replica moves into whichever task drives it.
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<RaftNode>();
    assert_send::<RaftReady>();
};

impl fmt::Debug for RaftNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RaftNode").field("status", &self.status()).finish_non_exhaustive()
    }
}

impl RaftNode {
    /// A replica `id` of a group. `voters` is the group's bootstrap configuration, used only when
    /// `persisted` holds no snapshot (every bootstrap member must pass the same list, on every restart;
    /// a node joining an existing group passes an empty list and learns the configuration from the
    /// leader's snapshot — it must never be sent the log from index 1 instead, which lacks the bootstrap
    /// voters: compact the leader first; `MultiRaft` enforces this). `persisted` is what `RaftLogStore::load` returned (`None` for a brand-new replica).
    /// After a restart the state machine must be rebuilt from `persisted.snapshot`; the entries after
    /// it are handed out again through `committed` as the commit index becomes known.
    pub fn new(
        id: NodeId,
        voters: &[NodeId],
        config: RaftConfig,
        persisted: Option<PersistedState>,
        rng: DetRng,
    ) -> Result<RaftNode, RaftError> {
        config.validate()?;
        if id.0 == 0 || voters.iter().any(|v| v.0 == 0) {
            return Err(RaftError::ZeroNodeId);
        }
        let mut persisted = persisted.unwrap_or_default();
        persisted.check()?;
        let bootstrap = ConfState { voters: voters.iter().map(|v| v.0).collect(), ..Default::default() };
        let mut log = MemLog::new(bootstrap.clone());
        let mut conf_history = vec![(0, bootstrap)];
        if let Some(snap) = &persisted.snapshot {
            log.apply_snapshot(snap.to_pb());
            conf_history = vec![(snap.index, snap.conf_state_pb())];
        }
        let entries: Vec<_> = persisted.entries.iter().map(LogEntry::to_pb).collect();
        log.append(&entries);
        log.set_hard_state(persisted.hard_state.to_pb());
        let applied = persisted.snapshot_index();
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let raw = RawNode::new(&config.to_raft(id.0, applied), log, &logger).map_err(raft_err)?;
        let mut node = RaftNode {
            id,
            config,
            raw,
            rng,
            pending: None,
            next_token: 1,
            carry_messages: Vec::new(),
            carry_committed: Vec::new(),
            persisted_hs: persisted.hard_state,
            pending_compaction: None,
            conf_history,
            applied,
        };
        node.pin_election_timeout();
        Ok(node)
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Advances the logical clock by one tick.
    pub fn tick(&mut self) {
        self.assert_no_pending("tick");
        self.raw.tick();
        self.pin_election_timeout();
    }

    /// Feeds a message that arrived from peer `from`.
    pub fn step(&mut self, from: NodeId, msg: RaftMessage) -> Result<(), RaftError> {
        self.assert_no_pending("step");
        if msg.to != self.id.0 {
            return Err(RaftError::WrongRecipient { to: msg.to, me: self.id });
        }
        if msg.from != from.0 {
            return Err(RaftError::SenderMismatch { claimed: msg.from, from });
        }
        if msg.msg_type.is_local() || msg.msg_type == MessageType::Propose {
            return Err(RaftError::NotFromPeers(msg.msg_type));
        }
        let result = match self.raw.step(msg.to_pb()) {
            Ok(()) => Ok(()),
            Err(raft::Error::StepPeerNotFound) => Err(RaftError::UnknownPeer(from)),
            Err(e) => Err(raft_err(e)),
        };
        self.pin_election_timeout();
        result
    }

    /// Proposes `data` as a new log entry. Only the leader accepts proposals (they are never
    /// forwarded); Ok means appended to the leader's log, not committed.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<(), RaftError> {
        self.assert_no_pending("propose");
        self.check_leader()?;
        let size_bytes = data.len() as u64;
        if size_bytes > self.config.max_entry_bytes {
            return Err(RaftError::ProposalTooLarge { size_bytes, max_bytes: self.config.max_entry_bytes });
        }
        let result = self.raw.propose(Vec::new(), data).map_err(raft_err);
        self.pin_election_timeout();
        result
    }

    /// Proposes one membership change (leader only, one pending change at a time). Shards move by
    /// adding a learner, letting it catch up, then promoting it with `AddVoter`.
    pub fn propose_conf_change(&mut self, change: ConfChangeRequest) -> Result<(), RaftError> {
        self.assert_no_pending("propose_conf_change");
        self.check_leader()?;
        match change {
            ConfChangeRequest::AddVoter(n) | ConfChangeRequest::RemoveVoter(n) | ConfChangeRequest::AddLearner(n)
                if n.0 == 0 =>
            {
                return Err(RaftError::ZeroNodeId);
            }
            _ => {}
        }
        if self.raw.raft.has_pending_conf() {
            return Err(RaftError::ConfChangePending);
        }
        let result = self.raw.propose_conf_change(change.encode(), change.to_pb()).map_err(raft_err);
        self.pin_election_timeout();
        result
    }

    /// Starts an election now (pre-vote first if configured).
    pub fn campaign(&mut self) -> Result<(), RaftError> {
        self.assert_no_pending("campaign");
        let result = self.raw.campaign().map_err(raft_err);
        self.pin_election_timeout();
        result
    }

    /// Asks the leader to hand leadership to `to` (a no-op if `to` is already leader or unknown).
    pub fn transfer_leader(&mut self, to: NodeId) {
        self.assert_no_pending("transfer_leader");
        self.raw.transfer_leader(to.0);
        self.pin_election_timeout();
    }

    /// Replaces the log up to `applied_index` (already applied) by a snapshot holding `app_snapshot`,
    /// the state machine's state at exactly that index. The snapshot is persisted through the next
    /// ready (`persist.compaction`), after which the log store frees the covered records.
    pub fn compact(&mut self, applied_index: u64, app_snapshot: Vec<u8>) -> Result<(), RaftError> {
        self.assert_no_pending("compact");
        let store = self.raw.store();
        if applied_index > self.applied {
            return Err(RaftError::Compaction { index: applied_index, reason: "not applied yet" });
        }
        if applied_index <= store.snapshot_index() {
            return Err(RaftError::Compaction { index: applied_index, reason: "already compacted" });
        }
        let term = store.entry_term(applied_index);
        let conf = self
            .conf_history
            .iter()
            .rev()
            .find(|(i, _)| *i <= applied_index)
            .map(|(_, c)| c.clone())
            .expect("conf history starts at the snapshot index");
        let keep_from = self.conf_history.iter().rposition(|(i, _)| *i <= applied_index).unwrap_or(0);
        self.conf_history.drain(..keep_from);
        self.conf_history[0] = (applied_index, conf.clone());
        let snapshot = SnapshotData::with_conf_state(applied_index, term, &conf, app_snapshot);
        self.raw.mut_store().compact(snapshot.to_pb());
        self.pending_compaction = Some(snapshot);
        Ok(())
    }

    /// The next batch of work, or `None` if there is nothing to do. See [`RaftReady`] for what to do
    /// with it; then call [`advance`](Self::advance).
    pub fn ready(&mut self) -> Option<RaftReady> {
        self.assert_no_pending("ready");
        let hs_now = HardState::from_pb(&self.raw.raft.hard_state());
        let snapshot_requested = self.raw.store().take_snapshot_wanted();
        if !snapshot_requested
            && !self.raw.has_ready()
            && self.carry_messages.is_empty()
            && self.carry_committed.is_empty()
            && self.pending_compaction.is_none()
            && hs_now == self.persisted_hs
        {
            return None;
        }
        let mut rd = self.raw.ready();
        let mut persist = PersistBatch::default();
        if !rd.snapshot().is_empty() {
            mark!("raft.snapshot_installed");
            let snap = SnapshotData::from_pb(rd.snapshot());
            self.raw.mut_store().apply_snapshot(rd.snapshot().clone());
            self.conf_history = vec![(snap.index, snap.conf_state_pb())];
            persist.snapshot = Some(snap);
        }
        persist.compaction = self.pending_compaction.take();
        if let (Some(s), Some(c)) = (&persist.snapshot, &persist.compaction) {
            assert!(c.index <= s.index, "compaction past a received snapshot");
            persist.compaction = None;
        }
        if !rd.entries().is_empty() {
            self.raw.mut_store().append(rd.entries());
            persist.entries = rd.entries().iter().map(LogEntry::from_pb).collect();
        }
        let hs_now = HardState::from_pb(&self.raw.raft.hard_state());
        if hs_now != self.persisted_hs {
            self.raw.mut_store().set_hard_state(hs_now.to_pb());
            self.persisted_hs = hs_now;
            persist.hard_state = Some(hs_now);
        }

        let mut pb_messages = std::mem::take(&mut self.carry_messages);
        pb_messages.extend(rd.take_messages());
        pb_messages.extend(rd.take_persisted_messages());
        let mut messages: Vec<(NodeId, RaftMessage)> =
            pb_messages.iter().map(|m| (NodeId(m.to), RaftMessage::from_pb(m))).collect();
        // Stable: per destination the generation order is kept.
        messages.sort_by_key(|(to, _)| *to);

        let mut committed_pb = std::mem::take(&mut self.carry_committed);
        committed_pb.extend(rd.take_committed_entries());
        let snapshot_to_apply = persist.snapshot.clone();
        if let Some(s) = &snapshot_to_apply {
            committed_pb.retain(|e| e.index > s.index);
        }
        let committed: Vec<LogEntry> = committed_pb.iter().map(LogEntry::from_pb).collect();
        for pair in committed.windows(2) {
            assert_eq!(pair[0].index + 1, pair[1].index, "committed entries not contiguous");
        }
        let mut applied_to = self.applied;
        if let Some(s) = &snapshot_to_apply {
            applied_to = applied_to.max(s.index);
        }
        if let Some(e) = committed.last() {
            assert!(e.index > applied_to || snapshot_to_apply.is_none(), "committed entry below the snapshot");
            applied_to = applied_to.max(e.index);
        }
        let conf_changes = committed.iter().filter_map(verified_conf_change).collect();

        let snapshots_to =
            messages.iter().filter(|(_, m)| m.msg_type == MessageType::Snapshot).map(|(to, _)| to.0).collect();
        let token = self.next_token;
        self.next_token += 1;
        self.pending = Some(Pending { token, ready: rd, applied_to, conf_changes, snapshots_to });
        Some(RaftReady {
            token: ReadyToken(token),
            persist,
            messages,
            snapshot_to_apply,
            committed,
            snapshot_requested,
        })
    }

    /// Tells the replica that the ready with `token` was fully handled: persisted, sent, applied.
    pub fn advance(&mut self, token: ReadyToken) {
        let pending = self.pending.take().expect("advance without an outstanding ready");
        assert_eq!(pending.token, token.0, "advance with the token of another ready");
        let mut light = self.raw.advance_append(pending.ready);
        self.carry_messages.extend(light.take_messages());
        self.carry_committed.extend(light.take_committed_entries());
        for (index, cc) in pending.conf_changes {
            // A change raft-rs rejects (for example removing the last voter) is rejected identically
            // on every replica; the configuration stays as it was.
            if let Ok(cs) = self.raw.apply_conf_change(&cc) {
                self.conf_history.push((index, cs));
            }
        }
        self.applied = self.applied.max(pending.applied_to);
        self.raw.advance_apply_to(self.applied);
        // The network is unreliable and has no delivery reports: count a snapshot as sent once it is
        // handed out. If it was lost, the follower rejects the next append and the leader sends the
        // snapshot again; without this report the leader would wait for it forever.
        for to in pending.snapshots_to {
            self.raw.report_snapshot(to, raft::SnapshotStatus::Finish);
        }
        self.pin_election_timeout();
    }

    pub fn status(&self) -> RaftStatus {
        let raft = &self.raw.raft;
        let role = match raft.state {
            StateRole::Follower => RaftRole::Follower,
            StateRole::PreCandidate => RaftRole::PreCandidate,
            StateRole::Candidate => RaftRole::Candidate,
            StateRole::Leader => RaftRole::Leader,
        };
        let conf = raft.prs().conf().to_conf_state();
        let mut voters: Vec<NodeId> = conf.voters.iter().map(|&n| NodeId(n)).collect();
        voters.sort();
        let mut learners: Vec<NodeId> = conf.learners.iter().map(|&n| NodeId(n)).collect();
        learners.sort();
        RaftStatus {
            id: self.id,
            term: raft.term,
            role,
            leader: (raft.leader_id != 0).then_some(NodeId(raft.leader_id)),
            commit: raft.raft_log.committed,
            applied: self.applied,
            last_index: raft.raft_log.last_index(),
            voters,
            learners,
        }
    }

    /// The leader's view of every member's replication (empty unless this replica leads), by id.
    pub fn progress(&self) -> Vec<PeerProgress> {
        let raft = &self.raw.raft;
        if raft.state != StateRole::Leader {
            return Vec::new();
        }
        let learners = raft.prs().conf().learners();
        let mut out: Vec<PeerProgress> = raft
            .prs()
            .iter()
            .map(|(&id, pr)| PeerProgress {
                id: NodeId(id),
                matched: pr.matched,
                recent_active: pr.recent_active || id == self.id.0,
                learner: learners.contains(&id),
            })
            .collect();
        out.sort_by_key(|p| p.id);
        out
    }

    /// A membership change is proposed but not yet applied (one change at a time).
    pub fn has_pending_conf_change(&self) -> bool {
        self.raw.raft.has_pending_conf()
    }

    /// The node a leadership transfer started by this leader is handing over to, while it lasts.
    pub fn transfer_target(&self) -> Option<NodeId> {
        self.raw.raft.lead_transferee.map(NodeId)
    }

    /// The current randomized election timeout in ticks (drawn from our `DetRng`).
    pub fn election_timeout_ticks(&self) -> usize {
        self.raw.raft.randomized_election_timeout()
    }

    fn check_leader(&self) -> Result<(), RaftError> {
        let raft = &self.raw.raft;
        if raft.state == StateRole::Leader {
            return Ok(());
        }
        let leader_hint = (raft.leader_id != 0).then_some(NodeId(raft.leader_id));
        Err(RaftError::NotLeader { leader_hint })
    }

    fn assert_no_pending(&self, what: &str) {
        assert!(self.pending.is_none(), "RaftNode::{what} while a ready is outstanding (call advance first)");
    }

    /// Overwrites raft-rs's thread_rng draw of the election timeout with one from our DetRng whenever
    /// the election clock has just been reset (see "Determinism" on the type).
    fn pin_election_timeout(&mut self) {
        if self.raw.raft.election_elapsed == 0 {
            let e = self.config.election_ticks as u64;
            let t = e + self.rng.below(e);
            self.raw.raft.set_randomized_election_timeout(t as usize);
        }
    }
}

/// The raft-rs conf change for a committed conf-change entry, rebuilt from OUR context encoding and
/// checked byte for byte against the protobuf `data` raft-rs wrote on the leader (we encode, never
/// decode, protobuf). Entries of other kinds: `None`.
///
/// Panics if the two disagree or the context does not decode: the log of an authenticated peer is
/// corrupt (a bug), and applying a membership change we cannot read would split the group's views.
fn verified_conf_change(entry: &LogEntry) -> Option<(u64, ConfChangeV2)> {
    match entry.kind {
        EntryKind::Normal => None,
        EntryKind::ConfChange => {
            panic!("entry {} is a v1 conf change; Tessera proposes only v2 conf changes", entry.index)
        }
        EntryKind::ConfChangeV2 => {
            let cc = match entry.conf_change() {
                Ok(Some(change)) => change.to_pb(),
                Ok(None) => ConfChangeV2::default(),
                Err(e) => panic!("entry {}: conf change context does not decode: {e}", entry.index),
            };
            let expect = cc.write_to_bytes().expect("protobuf encoding of a conf change");
            assert_eq!(expect, entry.data, "entry {}: conf change data disagrees with its context", entry.index);
            Some((entry.index, cc))
        }
    }
}
