//! The model's state: shards (durable and volatile parts), the network, clients, fault budgets and
//! the ghost history the properties read.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::scenario::{Namespace, ShardId, TxnId};

/// A coordinator's decision, or what a participant did with its intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    Commit,
    Abort,
}

/// A coordinator's durable transaction record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Record {
    Preparing,
    Decided(Outcome),
    /// Every participant acknowledged; the coordinator has forgotten the transaction (the outcome
    /// is kept for the properties only: the protocol treats a `Done` transaction as unknown).
    Done(Outcome),
}

impl Record {
    pub fn outcome(self) -> Option<Outcome> {
        match self {
            Record::Preparing => None,
            Record::Decided(o) | Record::Done(o) => Some(o),
        }
    }
}

/// One shard: a Raft group seen as one process. Everything but `table` is in its log and survives a
/// leader crash; `table` is the leader's memory.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Shard {
    /// Committed entries and inodes.
    pub ns: Namespace,
    /// Intent records: transactions whose changes to this shard are planned and whose keys are locked
    /// (the coordinator's own part included).
    pub intents: BTreeSet<TxnId>,
    /// Transaction records of the transactions this shard coordinates.
    pub records: BTreeMap<TxnId, Record>,
    /// What this shard did as a participant with each transaction it resolved (so a stale `Prepare`
    /// or a duplicated decision arriving later is recognised).
    pub resolved: BTreeMap<TxnId, Outcome>,
    /// Volatile: the leader's table of unfinished transactions it coordinates, with the participants
    /// heard from (votes while `Preparing`, acknowledgements once decided). Rebuilt from `records`
    /// when a new leader takes over.
    pub table: BTreeMap<TxnId, BTreeSet<ShardId>>,
}

/// A message between shards. The network is a set: it loses, duplicates and reorders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Msg {
    Prepare { txn: TxnId, to: ShardId },
    Vote { txn: TxnId, from: ShardId, yes: bool },
    Decision { txn: TxnId, to: ShardId, outcome: Outcome },
    Ack { txn: TxnId, from: ShardId },
    Query { txn: TxnId, from: ShardId },
}

impl fmt::Display for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Msg::Prepare { txn, to } => write!(f, "Prepare(t{txn}) to s{to}"),
            Msg::Vote { txn, from, yes: true } => write!(f, "Prepared(t{txn}) from s{from}"),
            Msg::Vote { txn, from, yes: false } => write!(f, "Refused(t{txn}) from s{from}"),
            Msg::Decision { txn, to, outcome } => write!(f, "{outcome:?}(t{txn}) to s{to}"),
            Msg::Ack { txn, from } => write!(f, "Ack(t{txn}) from s{from}"),
            Msg::Query { txn, from } => write!(f, "QueryTxn(t{txn}) from s{from}"),
        }
    }
}

/// What a transaction's client knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Client {
    /// Not submitted yet.
    Idle,
    /// Submitted; no answer yet.
    Waiting,
    /// Answered: committed, or failed (an errno, or EAGAIN after an abort).
    Told(Outcome),
}

/// The single-shard `unlink(A/a)` competing with the transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unlink {
    Pending,
    /// Executed: `true` if it removed the entry, `false` for ENOENT.
    Done(bool),
}

/// Noteworthy events, recorded so `sometimes` properties can ask whether they are reachable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Seen {
    /// A coordinator leader crashed while a committed transaction was still in doubt at a participant.
    pub crash_in_doubt: bool,
    /// A coordinator aborted a transaction on its prepare timeout.
    pub prepare_timeout: bool,
    /// A coordinator answered a `QueryTxn` with `Abort` because it had no record.
    pub presumed_abort: bool,
}

/// The whole model state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct State {
    pub shards: Vec<Shard>,
    pub net: BTreeSet<Msg>,
    pub clients: Vec<Client>,
    pub unlink: Unlink,
    pub crashes: u8,
    pub losses: u8,
    pub duplicates: u8,
    /// Ghost: `(txn, shard, outcome)` for every time a shard applied (commit) or dropped (abort) its
    /// intent for a transaction, the coordinator's own part included.
    pub applied: BTreeSet<(TxnId, ShardId, Outcome)>,
    pub seen: Seen,
}

/// A step of the model: a client request, a delivery, a fault or a timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// The client submits transaction `txn` to its coordinator.
    Begin(TxnId),
    /// The single-shard unlink executes (it waits while its keys are locked).
    Unlink,
    Deliver(Msg),
    /// Deliver a copy and keep the message in the network (a duplicate).
    Duplicate(Msg),
    Lose(Msg),
    /// Retransmission timer: the coordinator (re)sends `Prepare` to a participant not heard from.
    SendPrepare(TxnId, ShardId),
    /// Retransmission timer: the coordinator (re)sends its decision to a participant not heard from.
    SendDecision(TxnId, ShardId),
    /// The coordinator's prepare timeout fires: abort.
    PrepareTimeout(TxnId),
    /// A participant's resolve timeout fires: it asks the coordinator.
    Query(TxnId, ShardId),
    /// The shard's leader crashes; a new leader takes over with the log (volatile state lost).
    Crash(ShardId),
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Action::Begin(t) => write!(f, "client submits t{t}"),
            Action::Unlink => write!(f, "unlink(A/a) executes on s0"),
            Action::Deliver(m) => write!(f, "deliver {m}"),
            Action::Duplicate(m) => write!(f, "deliver a duplicate of {m}"),
            Action::Lose(m) => write!(f, "lose {m}"),
            Action::SendPrepare(t, p) => write!(f, "coordinator of t{t} (re)sends Prepare to s{p}"),
            Action::SendDecision(t, p) => write!(f, "coordinator of t{t} (re)sends its decision to s{p}"),
            Action::PrepareTimeout(t) => write!(f, "prepare timeout of t{t}"),
            Action::Query(t, p) => write!(f, "s{p} times out holding t{t}'s intent and sends QueryTxn"),
            Action::Crash(s) => write!(f, "leader of s{s} crashes; a new leader recovers from the log"),
        }
    }
}
