//! The shard's side of cross-shard transactions: two-phase commit through the coordinator's log
//! (docs/design/metadata.md, "Cross-shard operations"), as pure state-machine commands on
//! [`ShardState`], following the protocol checked in `specs::txn_model`.
//!
//! Every method that changes state is a command the shard's Raft group logs and applies in order
//! (with the entry's `now_ns`, which dates intents and tombstones; the records a commit writes carry
//! the planner's time); every state here is therefore durable. What a leader keeps only in
//! memory is what it has sent: a new leader calls [`ShardState::recover`] (also the retransmission
//! timer's command) for the messages still owed. All validation runs before any change, and every
//! command is idempotent under duplication and tolerant of reordering.
//!
//! **Coordinator.** [`ShardState::begin`] validates and locks its own changes (an intent, like a
//! participant's) and logs a [`TxnRecord`] `Preparing` holding each participant's changes (re-sent
//! after a leader change). Votes ([`ShardState::on_prepared`], [`ShardState::on_refused`]) and
//! acknowledgements ([`ShardState::on_ack`]) are logged in the record. The decision (the commit
//! point) is written by [`ShardState::decide`] once all prepared, on a refusal, or by
//! [`ShardState::prepare_timeout`]; the coordinator applies or drops its own intent with it. When
//! every participant acknowledged, the record is forgotten (`Done`); [`ShardState::answer_query`]
//! then presumes abort. Answers that depend on the log must come from a leader that confirmed its
//! leadership (read index) — the host's business.
//!
//! **Participant.** [`ShardState::prepare`] validates its part of the plan (`txn_changes`: the
//! expectations hold, the new ids are free), locks the keys and logs an [`Intent`], or refuses
//! logging nothing. [`ShardState::commit`] / [`ShardState::abort`] apply or
//! drop the intent, release its locks and write a **tombstone** of the outcome; a decision for an
//! unknown transaction (an abort overtaking its prepare) writes the tombstone alone. A `Prepare` for
//! a transaction with a tombstone is ignored (answered with the recorded outcome): without this a
//! stale duplicated `Prepare` re-takes the intent after the commit (the bug the model found).
//! Tombstones are dropped by [`ShardState::forget_tombstones`] (meant for the coordinator to piggyback
//! the ids of `Done` transactions on later messages; not wired yet) or once older than
//! [`TOMBSTONE_TTL_NS`], a bound far beyond any message delay. [`ShardState::in_doubt`] lists intents
//! held longer than [`RESOLVE_TIMEOUT_NS`], for which the participant sends `Query`.
//!
//! [`ShardState::on_message`] dispatches one [`Envelope`] to these commands and returns what to send.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tessera_env::mark;

use super::txn_changes::{LockKey, TxnChange};
use super::{ShardState, TxnPlan};
use crate::Errno;

/// How long a participant holds an intent before asking the coordinator.
pub const RESOLVE_TIMEOUT_NS: u64 = 2_000_000_000;
/// How long a coordinator waits for votes before aborting (its leader proposes `prepare_timeout`).
pub const PREPARE_TIMEOUT_NS: u64 = 5_000_000_000;
/// How long a tombstone is kept at most. A tombstone only has to outlive a duplicate `Prepare` of its
/// transaction: a coordinator sends `Prepare` only while preparing (before any participant can hold a
/// tombstone), so the duplicates that matter are late copies in the network, or a `Txn` command an old
/// leader appended that a later leader commits: seconds, not minutes. Ten minutes bounds the table at
/// (cross-shard transactions per second x 600) per shard.
pub const TOMBSTONE_TTL_NS: u64 = 600_000_000_000;

/// A transaction: its coordinator shard and a sequence number of that shard (never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TxnId {
    pub coordinator: u16,
    pub seq: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    Commit,
    Abort,
}

/// A coordinator record's state; `Aborted` keeps the errno the client gets (EAGAIN on a timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnState {
    Preparing,
    Committed,
    Aborted(Errno),
}

/// The coordinator's durable record of a transaction, until every participant acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnRecord {
    pub id: TxnId,
    pub state: TxnState,
    /// Each participant (not this shard) with its changes: the participants are the keys.
    pub changes: BTreeMap<u16, Vec<TxnChange>>,
    /// Participants that voted `Prepared`.
    pub prepared: BTreeSet<u16>,
    /// Participants that acknowledged the decision.
    pub acked: BTreeSet<u16>,
    pub started_ns: u64,
}

impl TxnRecord {
    pub fn participants(&self) -> impl Iterator<Item = u16> + '_ {
        self.changes.keys().copied()
    }
}

/// Planned changes of a transaction, with the keys they lock (the coordinator's own part included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    pub id: TxnId,
    pub coordinator: u16,
    pub changes: Vec<TxnChange>,
    pub locks: BTreeSet<LockKey>,
    pub since_ns: u64,
}

/// The transaction part of a shard's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnTables {
    pub(super) records: BTreeMap<TxnId, TxnRecord>,
    pub(super) intents: BTreeMap<TxnId, Intent>,
    /// Every locked key and the transaction holding it (the union of the intents' locks).
    pub(super) locks: BTreeMap<LockKey, TxnId>,
    /// What this shard did as a participant with each resolved transaction, and when.
    pub(super) tombstones: BTreeMap<TxnId, (Outcome, u64)>,
    tombstone_times: BTreeSet<(u64, TxnId)>,
    next_seq: u64,
}

/// A participant's vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrepareVote {
    Prepared,
    Refused(Errno),
}

/// What the coordinator knows of a transaction: the client's answer once decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    Pending,
    Commit,
    Abort(Errno),
    /// No record: never begun here, or done (every participant acknowledged).
    Forgotten,
}

/// The coordinator's answer to a participant's `Query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueryAnswer {
    Committed,
    Aborted,
    /// Still preparing: the participant asks again later.
    AskAgain,
}

/// A message between shards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnMsg {
    Prepare { id: TxnId, changes: Vec<TxnChange> },
    Prepared { id: TxnId },
    Refused { id: TxnId, errno: Errno },
    Decision { id: TxnId, outcome: Outcome },
    Ack { id: TxnId },
    Query { id: TxnId },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub from: u16,
    pub to: u16,
    pub msg: TxnMsg,
}

impl ShardState {
    /// The id the next transaction this shard coordinates takes.
    pub fn next_txn_id(&self) -> TxnId {
        TxnId { coordinator: self.shard, seq: self.txn.next_seq }
    }

    pub fn txn_record(&self, id: TxnId) -> Option<&TxnRecord> {
        self.txn.records.get(&id)
    }

    pub fn intent(&self, id: TxnId) -> Option<&Intent> {
        self.txn.intents.get(&id)
    }

    pub fn tombstone(&self, id: TxnId) -> Option<Outcome> {
        self.txn.tombstones.get(&id).map(|&(o, _)| o)
    }

    /// Coordinator: start `plan` (a client's [`crate::exec::ShardCall::Begin`]) as the transaction
    /// [`ShardState::next_txn_id`]: its id and the `Prepare`s to send, as [`ShardState::begin`]. A
    /// plan coordinated elsewhere or naming a shard beyond the cluster is refused with EINVAL.
    pub fn begin_plan(&mut self, plan: TxnPlan, now: u64) -> Result<(TxnId, Vec<Envelope>), Errno> {
        if plan.coordinator != self.shard || plan.shards().any(|s| s >= self.shard_count) {
            return Err(Errno::EINVAL);
        }
        let mut remote = plan.changes;
        let local = remote.remove(&self.shard).unwrap_or_default();
        let id = self.next_txn_id();
        let out = self.begin(id, local, remote, now)?;
        Ok((id, out))
    }

    /// Coordinator: start transaction `id` (from [`ShardState::next_txn_id`]) with this shard's
    /// changes `local` and each participant's `remote` changes. On success the `Prepare`s to send;
    /// `Err` (the coordinator's own checks, EAGAIN for a stale plan or a locked key, EINVAL for a
    /// stale id or a malformed plan) logs nothing. A duplicate of a begun transaction re-sends what
    /// is owed.
    ///
    /// The client is answered once [`ShardState::decision`] is decided: check it after every command
    /// of the transaction (this one, votes, the prepare timeout); a decision stays readable until
    /// every participant acknowledged it, which takes later commands. A transaction without
    /// participants commits within `begin`; its record is dropped by the next `begin`.
    pub fn begin(
        &mut self,
        id: TxnId,
        local: Vec<TxnChange>,
        remote: BTreeMap<u16, Vec<TxnChange>>,
        now: u64,
    ) -> Result<Vec<Envelope>, Errno> {
        assert_eq!(id.coordinator, self.shard, "{id:?} is coordinated by another shard");
        assert!(!remote.contains_key(&self.shard), "the coordinator is no participant of {id:?}");
        if self.txn.records.contains_key(&id) {
            return Ok(self.owed(id));
        }
        if id.seq < self.txn.next_seq {
            return Err(Errno::EINVAL);
        }
        self.txn.records.retain(|_, r| r.state == TxnState::Preparing || !r.changes.is_empty());
        let locks = self.validate_changes(id, &local)?;
        self.reserve_ids(&local);
        self.take_intent(id, local, locks, now);
        self.txn.next_seq = id.seq + 1;
        let record = TxnRecord {
            id,
            state: TxnState::Preparing,
            changes: remote,
            prepared: BTreeSet::new(),
            acked: BTreeSet::new(),
            started_ns: now,
        };
        self.txn.records.insert(id, record);
        self.decide(id, now);
        Ok(self.owed(id))
    }

    /// Coordinator: participant `from` voted `Prepared`. The decisions to send if this decided.
    pub fn on_prepared(&mut self, id: TxnId, from: u16, now: u64) -> Vec<Envelope> {
        let Some(record) = self.txn.records.get_mut(&id) else { return Vec::new() };
        if record.state != TxnState::Preparing || !record.changes.contains_key(&from) {
            return Vec::new();
        }
        record.prepared.insert(from);
        if self.decide(id, now) == Decision::Pending { Vec::new() } else { self.owed(id) }
    }

    /// Coordinator: participant `from` refused with `errno`: abort (the client gets `errno`).
    pub fn on_refused(&mut self, id: TxnId, from: u16, errno: Errno, _now: u64) -> Vec<Envelope> {
        match self.txn.records.get(&id) {
            Some(r) if r.state == TxnState::Preparing && r.changes.contains_key(&from) => {
                self.write_decision(id, TxnState::Aborted(errno));
                self.owed(id)
            }
            _ => Vec::new(),
        }
    }

    /// Coordinator: commit if every participant prepared (the commit point); the decision.
    pub fn decide(&mut self, id: TxnId, _now: u64) -> Decision {
        if let Some(r) = self.txn.records.get(&id)
            && r.state == TxnState::Preparing
            && r.participants().all(|p| r.prepared.contains(&p))
        {
            self.write_decision(id, TxnState::Committed);
        }
        self.decision(id)
    }

    /// Coordinator: the prepare timeout of `id` fired: abort if still preparing (EAGAIN).
    pub fn prepare_timeout(&mut self, id: TxnId, _now: u64) -> Vec<Envelope> {
        match self.txn.records.get(&id) {
            Some(r) if r.state == TxnState::Preparing => {
                self.write_decision(id, TxnState::Aborted(Errno::EAGAIN));
                self.owed(id)
            }
            _ => Vec::new(),
        }
    }

    /// Coordinator: transactions preparing for longer than [`PREPARE_TIMEOUT_NS`] at `now`.
    pub fn expired_prepares(&self, now: u64) -> Vec<TxnId> {
        let old = |r: &&TxnRecord| r.state == TxnState::Preparing && r.started_ns + PREPARE_TIMEOUT_NS <= now;
        self.txn.records.values().filter(old).map(|r| r.id).collect()
    }

    /// Coordinator: what the client is told about `id` (read-only).
    pub fn decision(&self, id: TxnId) -> Decision {
        match self.txn.records.get(&id).map(|r| r.state) {
            None => Decision::Forgotten,
            Some(TxnState::Preparing) => Decision::Pending,
            Some(TxnState::Committed) => Decision::Commit,
            Some(TxnState::Aborted(e)) => Decision::Abort(e),
        }
    }

    /// Coordinator: participant `from` acknowledged the decision. `true` once the transaction is
    /// done (every participant acknowledged; the record is forgotten), now or before.
    pub fn on_ack(&mut self, id: TxnId, from: u16) -> bool {
        let Some(record) = self.txn.records.get_mut(&id) else { return true };
        if record.state == TxnState::Preparing || !record.changes.contains_key(&from) {
            return false;
        }
        record.acked.insert(from);
        if record.participants().all(|p| record.acked.contains(&p)) {
            self.txn.records.remove(&id);
            return true;
        }
        false
    }

    /// Coordinator: the answer to a participant's `Query` (presumed abort without a record).
    pub fn answer_query(&self, id: TxnId) -> QueryAnswer {
        match self.txn.records.get(&id).map(|r| r.state) {
            Some(TxnState::Preparing) => QueryAnswer::AskAgain,
            Some(TxnState::Committed) => QueryAnswer::Committed,
            Some(TxnState::Aborted(_)) | None => QueryAnswer::Aborted,
        }
    }

    /// Coordinator: every message still owed, from the log alone: `Prepare` to participants not yet
    /// prepared of `Preparing` transactions, the decision to participants not yet acknowledged. What a
    /// new leader sends, and what the retransmission timer sends.
    pub fn recover(&self) -> Vec<Envelope> {
        self.txn.records.keys().flat_map(|&id| self.owed(id)).collect()
    }

    /// The messages owed for transaction `id`.
    fn owed(&self, id: TxnId) -> Vec<Envelope> {
        let Some(r) = self.txn.records.get(&id) else { return Vec::new() };
        let send = |to: u16, msg: TxnMsg| Envelope { from: self.shard, to, msg };
        match r.state {
            TxnState::Preparing => r
                .changes
                .iter()
                .filter(|(p, _)| !r.prepared.contains(p))
                .map(|(&p, changes)| send(p, TxnMsg::Prepare { id, changes: changes.clone() }))
                .collect(),
            TxnState::Committed | TxnState::Aborted(_) => {
                let outcome = if r.state == TxnState::Committed { Outcome::Commit } else { Outcome::Abort };
                r.participants()
                    .filter(|p| !r.acked.contains(p))
                    .map(|p| send(p, TxnMsg::Decision { id, outcome }))
                    .collect()
            }
        }
    }

    /// Log the decision and apply or drop the coordinator's own intent.
    fn write_decision(&mut self, id: TxnId, state: TxnState) {
        let record = self.txn.records.get_mut(&id).expect("deciding a recorded transaction");
        assert_eq!(record.state, TxnState::Preparing, "{id:?} decided twice");
        record.state = state;
        self.release_intent(id, state == TxnState::Committed);
    }

    /// Participant: validate and lock `changes` of `id` coordinated by `coordinator`, and log the
    /// intent; or refuse, logging nothing. A transaction with a tombstone is not prepared again: the
    /// answer is its outcome (`Prepared` for a commit, `Refused(EAGAIN)` for an abort).
    pub fn prepare(&mut self, id: TxnId, coordinator: u16, changes: Vec<TxnChange>, now: u64) -> PrepareVote {
        assert_ne!(coordinator, self.shard, "the coordinator prepares through begin");
        match self.tombstone(id) {
            Some(Outcome::Commit) => return PrepareVote::Prepared,
            Some(Outcome::Abort) => return PrepareVote::Refused(Errno::EAGAIN),
            None => {}
        }
        if self.txn.intents.contains_key(&id) {
            return PrepareVote::Prepared;
        }
        match self.validate_changes(id, &changes) {
            Ok(locks) => {
                self.reserve_ids(&changes);
                self.take_intent(id, changes, locks, now);
                PrepareVote::Prepared
            }
            Err(e) => PrepareVote::Refused(e),
        }
    }

    /// Participant: apply the intent of `id` (if held), release its locks, keep a tombstone.
    pub fn commit(&mut self, id: TxnId, now: u64) {
        self.resolve(id, Outcome::Commit, now);
    }

    /// Participant: drop the intent of `id` (if held), release its locks, keep a tombstone.
    pub fn abort(&mut self, id: TxnId, now: u64) {
        self.resolve(id, Outcome::Abort, now);
    }

    fn resolve(&mut self, id: TxnId, outcome: Outcome, now: u64) {
        assert_ne!(id.coordinator, self.shard, "a coordinator resolves through its decision");
        if self.txn.tombstones.contains_key(&id) {
            assert!(!self.txn.intents.contains_key(&id), "{id:?} has an intent and a tombstone");
            return;
        }
        if self.txn.intents.get(&id).is_some_and(|i| i.since_ns.saturating_add(RESOLVE_TIMEOUT_NS) <= now) {
            // In doubt (this shard was querying the coordinator, see `in_doubt`), now resolved.
            mark!("txn.in_doubt_resolved");
        }
        self.release_intent(id, outcome == Outcome::Commit);
        self.txn.tombstones.insert(id, (outcome, now));
        self.txn.tombstone_times.insert((now, id));
        while let Some(&(at, old)) = self.txn.tombstone_times.first()
            && at.saturating_add(TOMBSTONE_TTL_NS) < now
        {
            self.txn.tombstone_times.remove(&(at, old));
            self.txn.tombstones.remove(&old);
        }
    }

    /// Participant: drop the tombstones of transactions their coordinators finished.
    pub fn forget_tombstones(&mut self, ids: &[TxnId]) {
        for id in ids {
            if let Some((_, at)) = self.txn.tombstones.remove(id) {
                self.txn.tombstone_times.remove(&(at, *id));
            }
        }
    }

    /// Participant: intents held since before `now - RESOLVE_TIMEOUT_NS`, with their coordinators
    /// (send each a `Query`).
    pub fn in_doubt(&self, now: u64) -> Vec<(TxnId, u16)> {
        self.txn
            .intents
            .values()
            .filter(|i| i.coordinator != self.shard && i.since_ns.saturating_add(RESOLVE_TIMEOUT_NS) <= now)
            .map(|i| (i.id, i.coordinator))
            .collect()
    }

    fn take_intent(&mut self, id: TxnId, changes: Vec<TxnChange>, locks: BTreeSet<LockKey>, now: u64) {
        for key in &locks {
            let previous = self.txn.locks.insert(key.clone(), id);
            assert!(previous.is_none_or(|holder| holder == id), "{key:?} locked twice");
        }
        let intent = Intent { id, coordinator: id.coordinator, changes, locks, since_ns: now };
        self.txn.intents.insert(id, intent);
    }

    /// Remove the intent of `id` if held, applying its changes when `apply`, and release its locks.
    fn release_intent(&mut self, id: TxnId, apply: bool) {
        let Some(intent) = self.txn.intents.remove(&id) else { return };
        for key in &intent.locks {
            let holder = self.txn.locks.remove(key);
            assert_eq!(holder, Some(id), "{key:?} was not locked by {id:?}");
        }
        if apply {
            self.apply_changes(&intent.changes);
        }
    }

    /// Handle one message addressed to this shard; what to send in answer.
    pub fn on_message(&mut self, env: &Envelope, now: u64) -> Vec<Envelope> {
        assert_eq!(env.to, self.shard, "message for another shard");
        let reply = |msg: TxnMsg| vec![Envelope { from: env.to, to: env.from, msg }];
        match &env.msg {
            TxnMsg::Prepare { id, changes } => match self.prepare(*id, env.from, changes.clone(), now) {
                PrepareVote::Prepared => reply(TxnMsg::Prepared { id: *id }),
                PrepareVote::Refused(errno) => reply(TxnMsg::Refused { id: *id, errno }),
            },
            TxnMsg::Prepared { id } => self.on_prepared(*id, env.from, now),
            TxnMsg::Refused { id, errno } => self.on_refused(*id, env.from, *errno, now),
            TxnMsg::Decision { id, outcome } => {
                self.resolve(*id, *outcome, now);
                reply(TxnMsg::Ack { id: *id })
            }
            TxnMsg::Ack { id } => {
                self.on_ack(*id, env.from);
                Vec::new()
            }
            TxnMsg::Query { id } => match self.answer_query(*id) {
                QueryAnswer::Committed => reply(TxnMsg::Decision { id: *id, outcome: Outcome::Commit }),
                QueryAnswer::Aborted => reply(TxnMsg::Decision { id: *id, outcome: Outcome::Abort }),
                QueryAnswer::AskAgain => Vec::new(),
            },
        }
    }

    /// The transaction tables agree with themselves and the shard (part of `check_invariants`).
    pub(super) fn check_txn_invariants(&self) -> Result<(), String> {
        let mut locks = BTreeMap::new();
        for (id, intent) in &self.txn.intents {
            if intent.id != *id || self.txn.tombstones.contains_key(id) {
                return Err(format!("intent {id:?} misfiled or tombstoned"));
            }
            for key in &intent.locks {
                if locks.insert(key.clone(), *id).is_some() {
                    return Err(format!("{key:?} locked by two intents"));
                }
            }
            if intent.coordinator == self.shard
                && self.txn.records.get(id).is_none_or(|r| r.state != TxnState::Preparing)
            {
                return Err(format!("coordinator intent {id:?} without a preparing record"));
            }
        }
        if locks != self.txn.locks {
            return Err("the lock table is not the union of the intents' locks".into());
        }
        for (id, record) in &self.txn.records {
            if id.coordinator != self.shard || record.id != *id || id.seq >= self.txn.next_seq {
                return Err(format!("record {id:?} misfiled"));
            }
            if record.state == TxnState::Preparing && !self.txn.intents.contains_key(id) {
                return Err(format!("preparing {id:?} without its coordinator intent"));
            }
        }
        if self.txn.tombstones.len() != self.txn.tombstone_times.len() {
            return Err("tombstone index out of step".into());
        }
        Ok(())
    }
}
