//! [`ShardReplica`]: the replicated state of one shard (its [`ShardState`], the request-deduplication
//! table and the shard's clock) and the pure, deterministic application of [`ShardCommand`]s to it.
//! A Raft snapshot of the shard is [`ShardReplica::snapshot`], the encoded value.
//!
//! Call order: [`ShardReplica::new`] (bootstrap) or [`ShardReplica::from_snapshot`] (restart, joiner),
//! then [`ShardReplica::apply`] for every committed command, in log order, on every replica alike. Only
//! the leader acts on the [`ApplyOutput`] (answers clients, sends envelopes); followers drop it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::command::ShardCommand;
use super::dedup::{DEDUP_CAPACITY, DedupTable, Remembered, Seen};
use crate::Errno;
use crate::exec::{ReqId, ShardAnswer};
use crate::shard::{Decision, Envelope, ShardState, TxnChange, TxnPlan};

/// The replicated state of one shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardReplica {
    state: ShardState,
    dedup: DedupTable,
    /// The latest `now_ns` applied: the shard's clock never runs backwards.
    now_ns: u64,
}

/// What applying one command produced, for the leader to act on.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ApplyOutput {
    /// Client requests answered by this command (a retry of a remembered request is answered again).
    pub answers: Vec<(ReqId, ShardAnswer)>,
    /// Two-phase-commit messages to send to other shards.
    pub send: Vec<Envelope>,
}

impl ShardReplica {
    pub fn new(state: ShardState) -> ShardReplica {
        ShardReplica::with_capacity(state, DEDUP_CAPACITY)
    }

    /// As [`ShardReplica::new`], remembering at most `dedup_capacity` requests.
    pub fn with_capacity(state: ShardState, dedup_capacity: usize) -> ShardReplica {
        ShardReplica { state, dedup: DedupTable::new(dedup_capacity), now_ns: 0 }
    }

    pub fn from_snapshot(bytes: &[u8]) -> Result<ShardReplica, tessera_proto::CodecError> {
        tessera_proto::decode(bytes)
    }

    pub fn snapshot(&self) -> Vec<u8> {
        tessera_proto::encode(self)
    }

    pub fn state(&self) -> &ShardState {
        &self.state
    }

    pub fn shard(&self) -> u16 {
        self.state.shard()
    }

    /// What the shard remembers of `req` (a leader answers a retry from it without a new entry).
    pub fn remembered(&self, req: ReqId) -> Option<&Remembered> {
        self.dedup.get(req)
    }

    /// How `req` relates to what the shard remembers of its client (a leader answers a retry, or drops
    /// a stale duplicate, without a new entry).
    pub fn seen(&self, req: ReqId) -> Seen<'_> {
        self.dedup.seen(req)
    }

    /// The shard's clock: the latest `now_ns` applied.
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// Apply one committed command.
    pub fn apply(&mut self, command: &ShardCommand) -> ApplyOutput {
        let mut out = ApplyOutput::default();
        if let Some(req) = command.req() {
            match self.dedup.seen(req) {
                Seen::New => {}
                // A duplicate of a request older than its client's latest: never applied again.
                Seen::Stale => return out,
                Seen::Latest(remembered) => {
                    if let Remembered::Answered(answer) = remembered {
                        out.answers.push((req, answer.clone()));
                    }
                    return out;
                }
            }
        }
        match command {
            ShardCommand::Apply { req, op, now_ns } => {
                let now = self.tick(*now_ns);
                let answer = ShardAnswer::Applied(self.state.apply(op, now));
                if op.is_read_only() {
                    out.answers.push((*req, answer));
                } else {
                    self.answer(*req, answer, &mut out);
                }
            }
            // Reads are not remembered: re-executing one is harmless, and its answer can be large.
            ShardCommand::Read { req, keys } => out.answers.push((*req, ShardAnswer::Read(self.state.read(keys)))),
            ShardCommand::Begin { req, plan, now_ns } => {
                let now = self.tick(*now_ns);
                self.begin(*req, plan, now, &mut out);
            }
            ShardCommand::Txn { envelope, now_ns } => {
                let now = self.tick(*now_ns);
                if envelope.to == self.state.shard() && envelope.from != envelope.to {
                    out.send = self.state.on_message(envelope, now);
                }
            }
            ShardCommand::PrepareTimeout { id, now_ns } => {
                let now = self.tick(*now_ns);
                if id.coordinator == self.state.shard() {
                    out.send = self.state.prepare_timeout(*id, now);
                }
            }
            ShardCommand::Split { dir, part, now_ns } => {
                let now = self.tick(*now_ns);
                // Refused (no longer due, a duplicate, keys locked): nothing logged; the leader's next
                // duty proposes it again if it is still due.
                if let Ok((_, send)) = self.state.begin_split(*dir, *part, now) {
                    out.send = send;
                }
            }
        }
        self.resolve_pending(&mut out);
        out
    }

    fn tick(&mut self, now_ns: u64) -> u64 {
        self.now_ns = self.now_ns.max(now_ns);
        self.now_ns
    }

    fn answer(&mut self, req: ReqId, answer: ShardAnswer, out: &mut ApplyOutput) {
        self.dedup.insert(req, Remembered::Answered(answer.clone()));
        out.answers.push((req, answer));
    }

    fn begin(&mut self, req: ReqId, plan: &TxnPlan, now: u64, out: &mut ApplyOutput) {
        if plan.coordinator != self.state.shard() {
            // Misrouted: another shard coordinates this plan. Nothing is logged.
            self.answer(req, ShardAnswer::Decided(Err(Errno::EINVAL)), out);
            return;
        }
        let id = self.state.next_txn_id();
        let (local, remote) = plan_changes(self.state.shard(), plan);
        match self.state.begin(id, local, remote, now) {
            Err(errno) => self.answer(req, ShardAnswer::Decided(Err(errno)), out),
            Ok(send) => {
                out.send = send;
                match decided(self.state.decision(id)) {
                    Some(answer) => self.answer(req, answer, out),
                    None => self.dedup.insert(req, Remembered::Pending(id)),
                }
            }
        }
    }

    /// Record the answers of transactions this command decided. Checked after every command, so a
    /// decision is seen before the record can be forgotten (that takes further acknowledgements).
    fn resolve_pending(&mut self, out: &mut ApplyOutput) {
        for (id, _) in self.dedup.pending() {
            let decision = self.state.decision(id);
            assert!(decision != Decision::Forgotten, "{id:?} forgotten before its decision was seen");
            if let Some(answer) = decided(decision) {
                let req = self.dedup.resolve(id, answer.clone()).expect("pending request");
                out.answers.push((req, answer));
            }
        }
    }
}

/// The client's answer for a decided transaction, `None` while pending.
fn decided(decision: Decision) -> Option<ShardAnswer> {
    match decision {
        Decision::Pending => None,
        Decision::Commit => Some(ShardAnswer::Decided(Ok(()))),
        Decision::Abort(errno) => Some(ShardAnswer::Decided(Err(errno))),
        Decision::Forgotten => Some(ShardAnswer::Decided(Err(Errno::EAGAIN))),
    }
}

/// The coordinator's own changes and each participant's, from a plan coordinated by `coordinator`.
fn plan_changes(coordinator: u16, plan: &TxnPlan) -> (Vec<TxnChange>, BTreeMap<u16, Vec<TxnChange>>) {
    let mut remote = plan.changes.clone();
    let local = remote.remove(&coordinator).unwrap_or_default();
    (local, remote)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::{ReadKey, ReadValue, TxnId, TxnMsg};
    use crate::{Credentials, InodeId, MetaOp, MetaReply};

    fn replica() -> ShardReplica {
        ShardReplica::new(ShardState::new(3, 8, Some((InodeId::new(3, 1), 10))))
    }

    fn create(seq: u64, name: &str, now_ns: u64) -> ShardCommand {
        let creds = Credentials { uid: 0, gid: 0, groups: Vec::new() };
        let op = MetaOp::Create { parent: InodeId::new(3, 1), name: name.into(), mode: 0o644, creds };
        ShardCommand::Apply { req: ReqId { client: 1, seq }, op, now_ns }
    }

    #[test]
    fn a_retried_request_applies_once_and_gets_the_same_answer() {
        let mut r = replica();
        let first = r.apply(&create(1, "a", 100));
        let again = r.apply(&create(1, "a", 200));
        assert_eq!(first, again);
        let (_, ShardAnswer::Applied(Ok(Ok(MetaReply::Entry(attr))))) = &first.answers[0] else {
            panic!("create answered {first:?}")
        };
        assert_eq!(attr.ctime_ns, 100);
        let other = r.apply(&create(2, "a", 50));
        assert_eq!(other.answers[0].1, ShardAnswer::Applied(Ok(Err(Errno::EEXIST))));
        assert_eq!(r.now_ns(), 100, "the shard clock never runs backwards");
    }

    #[test]
    fn snapshot_round_trips() {
        let mut r = replica();
        r.apply(&create(1, "a", 100));
        assert_eq!(ShardReplica::from_snapshot(&r.snapshot()).expect("decodes"), r);
    }

    #[test]
    fn begin_of_an_empty_plan_is_answered_and_remembered() {
        let mut r = replica();
        let id = r.state().next_txn_id();
        let plan = TxnPlan { coordinator: 3, changes: BTreeMap::new(), reply: Ok(MetaReply::Done), now_ns: 5 };
        let begin = ShardCommand::Begin { req: ReqId { client: 1, seq: 9 }, plan, now_ns: 5 };
        let out = r.apply(&begin);
        assert_eq!(out.answers, vec![(ReqId { client: 1, seq: 9 }, ShardAnswer::Decided(Ok(())))]);
        assert_eq!(r.apply(&begin).answers, out.answers);
        assert_eq!(r.state().next_txn_id().seq, id.seq + 1, "the retry began no second transaction");
    }

    #[test]
    fn a_participant_answers_a_prepare_and_acknowledges_the_decision() {
        let mut r = replica();
        let id = TxnId { coordinator: 5, seq: 0 };
        let root = InodeId::new(3, 1);
        let value = ReadValue::Inode(r.state().inode_record(root).cloned());
        let change = TxnChange::Expect { key: ReadKey::Inode(root), value };
        let prepare = Envelope { from: 5, to: 3, msg: TxnMsg::Prepare { id, changes: vec![change] } };
        let out = r.apply(&ShardCommand::Txn { envelope: prepare, now_ns: 1 });
        assert_eq!(out.send, vec![Envelope { from: 3, to: 5, msg: TxnMsg::Prepared { id } }]);
        let decision =
            Envelope { from: 5, to: 3, msg: TxnMsg::Decision { id, outcome: crate::shard::Outcome::Commit } };
        let out = r.apply(&ShardCommand::Txn { envelope: decision, now_ns: 2 });
        assert_eq!(out.send, vec![Envelope { from: 3, to: 5, msg: TxnMsg::Ack { id } }]);
        assert!(r.state().intent(id).is_none());
    }
}
