//! Executing one [`MetaOp`] over the shards, as a sans-IO state machine ([`OpDriver`]) that both the
//! networked client library (`crate::client`) and the in-process cluster (`crate::local`) drive.
//!
//! An operation is first tried on its home shard ([`ShardCall::Apply`]): most operations touch keys of
//! one shard only and commit in one log entry there. When the home shard answers `NotLocal`, the
//! driver plans the operation optimistically: it reads the records it needs from each shard
//! ([`ShardCall::Read`]), runs the operation's own logic over the merged view (so its checks and errno
//! order are exactly the single-shard code's), and turns the result into a [`TxnPlan`]: per shard, the
//! records it expects unchanged and the records it writes. The coordinator shard runs the plan as a
//! two-phase commit ([`ShardCall::Begin`]); every participant validates its expectations under locks at
//! prepare, so a plan made from stale reads is refused and the driver plans again.
//!
//! **Directory partitions.** The entries of a split directory live in the shards of their partitions
//! (`shard::partition`). The driver asks a directory's home first; a shard that does not hold an
//! entry or page it is asked for answers [`ReadValue::Moved`] with the shard to ask, and the driver
//! reads the key there (the home knows every partition of its directories, so one redirection is the
//! rule). A `Lookup` the home answers `NotLocal { shards: [s] }` is applied at `s` (the partition's
//! shard answers it alone). A `Readdir` of a split directory is planned like any cross-shard
//! operation: its page is gathered partition after partition ([`ReadKey::Page`]), and the plan's
//! expectations make it one linearizable read.
//!
//! Call order of [`OpDriver`]: [`OpDriver::new`], then [`OpDriver::next`]; after each
//! [`Next::Call`] exactly one [`OpDriver::answer`] with the shard's answer before the next `next`;
//! after [`Next::Backoff`] wait (the caller's policy, growing with `attempt`) and call `next` again;
//! [`Next::Done`] and [`Next::GiveUp`] are final (`next` repeats them). A caller that loses a call (a
//! timeout, a leader change) retries the same call with the same [`ReqId`] and feeds its answer.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::shard::plan::{Planned, plan_op};
use crate::shard::{Fetched, NotLocal, ReadKey, ReadValue, TxnPlan, home_shard};
use crate::{Errno, MetaOp, MetaResult};

/// A request id: a client's id and a sequence number it never reuses. A shard remembers the answers
/// to recent requests, so a retried `Apply` or `Begin` takes effect at most once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReqId {
    pub client: u64,
    pub seq: u64,
}

/// What the driver asks of one shard (its leader). Each call is one command in that shard's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardCall {
    /// Apply the operation if every key it needs is held by this shard.
    Apply { op: crate::MetaOp },
    /// Read these keys (through the log: the answer reflects every operation committed before it).
    Read { keys: Vec<ReadKey> },
    /// Coordinate this plan as a cross-shard transaction; answered once decided.
    Begin { plan: TxnPlan },
}

/// A shard's answer to a [`ShardCall`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardAnswer {
    Applied(Result<MetaResult, NotLocal>),
    Read(Vec<Fetched>),
    /// The transaction committed (`Ok`) or aborted with this errno (EAGAIN: a participant's
    /// expectation failed or a key was locked; the driver plans again).
    Decided(Result<(), Errno>),
}

/// Attempts (apply or plan, then commit) before the driver gives up.
pub const ATTEMPTS_MAX: u32 = 32;
/// Reads of one planning attempt before it backs off (a tree changing under an ancestor walk).
const READS_PER_ATTEMPT_MAX: u32 = 256;
/// Shards a lookup is re-applied at after `NotLocal` before it is planned instead.
const LOOKUP_HOPS_MAX: u32 = 4;

/// What the caller of [`OpDriver::next`] does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Send `call` to `shard` (its leader) and feed the answer to [`OpDriver::answer`].
    Call { shard: u16, call: ShardCall },
    /// Wait, then call `next` again: the op met a locked key or a stale plan (`attempt` counts the
    /// failed attempts, from 1).
    Backoff { attempt: u32 },
    /// The operation's answer.
    Done(MetaResult),
    /// [`ATTEMPTS_MAX`] attempts met locked keys or stale plans: the operation did not take effect
    /// (every attempt was refused). Reported as `ClientError::GaveUp`, never as a POSIX error.
    GiveUp,
}

/// The answer the outstanding call waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    Apply,
    Read(u16),
    Begin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// `next` sends this call.
    Send(u16, ShardCall),
    Waiting(Waiting),
    /// `next` answers `Backoff`, then the op starts over with `Apply`.
    Backoff,
    Done(MetaResult),
    GaveUp,
}

/// Executes one [`MetaOp`] over the shards (see the module documentation for the protocol and the
/// call order). Sans-IO: it never sends, waits or reads a clock.
#[derive(Debug, Clone)]
pub struct OpDriver {
    op: MetaOp,
    now_ns: u64,
    shard_count: u16,
    state: State,
    /// Failed attempts so far.
    attempt: u32,
    /// The keys planning wants, by shard: read in one call per shard. Kept across attempts, so a
    /// replan fetches at once what the last plan needed.
    keys: BTreeMap<u16, BTreeSet<ReadKey>>,
    /// Keys found elsewhere than [`ReadKey::shard`] (an answer `Moved`), and where.
    routes: BTreeMap<ReadKey, u16>,
    /// What the current attempt has read, and from which shard.
    fetched: BTreeMap<ReadKey, (u16, ReadValue)>,
    /// Shards still to read before planning.
    to_read: Vec<u16>,
    reads: u32,
    /// Shards this attempt's `Apply` of a lookup was re-sent to.
    hops: u32,
    /// The reply of the plan being committed.
    reply: Option<MetaResult>,
}

impl OpDriver {
    /// A driver of `op`, applied at the caller's wall-clock reading `now_ns` (written into the records
    /// a planned operation changes), in a cluster of `shard_count` shards.
    pub fn new(op: MetaOp, now_ns: u64, shard_count: u16) -> OpDriver {
        assert!(shard_count > 0, "no shards");
        let mut driver = OpDriver {
            state: State::GaveUp,
            op,
            now_ns,
            shard_count,
            attempt: 0,
            keys: BTreeMap::new(),
            routes: BTreeMap::new(),
            fetched: BTreeMap::new(),
            to_read: Vec::new(),
            reads: 0,
            hops: 0,
            reply: None,
        };
        driver.start();
        driver
    }

    /// Start an attempt: `Apply` on the home shard; planning at once if the op names an inode of a
    /// shard beyond the cluster (no shard can apply it; such an inode does not exist).
    fn start(&mut self) {
        self.hops = 0;
        let home = home_shard(&self.op);
        if self.op.target_shard().is_some() && home >= self.shard_count {
            // A shard-addressed op for a shard beyond the cluster: nothing to plan.
            self.state = State::Done(Err(Errno::EINVAL));
        } else if home < self.shard_count {
            self.state = State::Send(home, ShardCall::Apply { op: self.op.clone() });
        } else {
            self.start_planning();
        }
    }

    pub fn op(&self) -> &MetaOp {
        &self.op
    }

    /// The next step. Panics while a call is outstanding (answer it first).
    // Not an `Iterator`: each call but the final ones waits for an `answer` in between.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Next {
        match std::mem::replace(&mut self.state, State::GaveUp) {
            State::Send(shard, call) => {
                self.state = State::Waiting(match &call {
                    ShardCall::Apply { .. } => Waiting::Apply,
                    ShardCall::Read { .. } => Waiting::Read(shard),
                    ShardCall::Begin { .. } => Waiting::Begin,
                });
                Next::Call { shard, call }
            }
            State::Waiting(w) => panic!("next while a {w:?} call is outstanding"),
            State::Backoff => {
                self.start();
                Next::Backoff { attempt: self.attempt }
            }
            State::Done(result) => {
                self.state = State::Done(result.clone());
                Next::Done(result)
            }
            State::GaveUp => Next::GiveUp,
        }
    }

    /// The answer to the outstanding call. Panics without one, or for an answer of another kind.
    pub fn answer(&mut self, answer: ShardAnswer) {
        let State::Waiting(waiting) = self.state else { panic!("answer {answer:?} without an outstanding call") };
        match (waiting, answer) {
            (Waiting::Apply, ShardAnswer::Applied(Ok(Err(Errno::EAGAIN)))) => self.back_off(),
            (Waiting::Apply, ShardAnswer::Applied(Ok(result))) => self.state = State::Done(result),
            (Waiting::Apply, ShardAnswer::Applied(Err(NotLocal { shards }))) => match shards[..] {
                // A lookup's entry lives in another partition's shard, which answers it alone.
                [shard]
                    if matches!(self.op, MetaOp::Lookup { .. })
                        && shard < self.shard_count
                        && self.hops < LOOKUP_HOPS_MAX =>
                {
                    self.hops += 1;
                    self.state = State::Send(shard, ShardCall::Apply { op: self.op.clone() });
                }
                _ => self.start_planning(),
            },
            (Waiting::Read(shard), ShardAnswer::Read(fetched)) => self.on_read(shard, fetched),
            (Waiting::Begin, ShardAnswer::Decided(Ok(()))) => {
                self.state = State::Done(self.reply.take().expect("a plan was begun"));
            }
            (Waiting::Begin, ShardAnswer::Decided(Err(_))) => self.back_off(),
            (waiting, answer) => panic!("answer {answer:?} to a {waiting:?} call"),
        }
    }

    fn back_off(&mut self) {
        self.attempt += 1;
        self.state = if self.attempt >= ATTEMPTS_MAX { State::GaveUp } else { State::Backoff };
    }

    /// The op needs other shards: read the keys it names (and those the last plan needed), one call
    /// per shard, then plan.
    fn start_planning(&mut self) {
        assert!(self.op.target_shard().is_none(), "shard-addressed {:?} answered NotLocal by its shard", self.op);
        self.fetched.clear();
        self.reads = 0;
        for key in crate::shard::plan::named_keys(&self.op) {
            let shard = self.route(&key);
            if shard < self.shard_count {
                self.keys.entry(shard).or_default().insert(key);
            }
        }
        self.to_read = self.keys.keys().rev().copied().collect();
        self.read_or_plan();
    }

    /// The shard to ask for `key`: where it was last found, else its home.
    fn route(&self, key: &ReadKey) -> u16 {
        self.routes.get(key).copied().unwrap_or_else(|| key.shard())
    }

    fn read_or_plan(&mut self) {
        match self.to_read.pop() {
            Some(shard) => self.read(shard),
            None => self.plan(),
        }
    }

    /// Read every key wanted from `shard` (one snapshot of the shard).
    fn read(&mut self, shard: u16) {
        self.reads += 1;
        if self.reads > READS_PER_ATTEMPT_MAX {
            return self.back_off();
        }
        let keys = self.keys[&shard].iter().cloned().collect();
        self.state = State::Send(shard, ShardCall::Read { keys });
    }

    fn on_read(&mut self, shard: u16, fetched: Vec<Fetched>) {
        let wanted = &self.keys[&shard];
        let redirected = |f: &Fetched| matches!(f.value, ReadValue::Moved(to) if f.key.is_routed() && to != shard && to < self.shard_count);
        let fits = fetched.len() == wanted.len()
            && fetched
                .iter()
                .zip(wanted)
                .all(|(f, key)| f.key == *key && (f.value.fits(key) || redirected(f)) && !f.locked);
        if !fits {
            // A locked key (its value may be about to change) or a misrouted read: try again later.
            return self.back_off();
        }
        self.fetched.retain(|_, (s, _)| *s != shard);
        for f in fetched {
            match f.value {
                ReadValue::Moved(to) => self.redirect(shard, f.key, to),
                value => {
                    self.fetched.insert(f.key, (shard, value));
                }
            }
        }
        self.read_or_plan();
    }

    /// `key` is not held by `from`, which named `to`: want it from `to` (read again if read already).
    fn redirect(&mut self, from: u16, key: ReadKey, to: u16) {
        let left = self.keys.get_mut(&from).expect("a read shard has keys");
        left.remove(&key);
        if left.is_empty() {
            self.keys.remove(&from);
        }
        // A file created beside its entry is numbered by the entry's shard: read its counter at once.
        if let MetaOp::Create { parent, name, .. }
        | MetaOp::Mknod { parent, name, .. }
        | MetaOp::Symlink { parent, name, .. } = &self.op
            && key == (ReadKey::Entry { parent: *parent, name: name.clone() })
        {
            self.keys.entry(to).or_default().insert(ReadKey::NextInode(to));
        }
        self.routes.insert(key.clone(), to);
        self.keys.entry(to).or_default().insert(key);
        if !self.to_read.contains(&to) {
            self.to_read.push(to);
        }
    }

    fn plan(&mut self) {
        let plan = loop {
            match plan_op(&self.op, self.now_ns, self.shard_count, &self.fetched) {
                Planned::Need(key) if self.route(&key) >= self.shard_count => {
                    // A key of a shard beyond the cluster: nothing exists there, and it never will.
                    let absent = ReadValue::absent(&key);
                    self.fetched.insert(key.clone(), (key.shard(), absent));
                }
                Planned::Need(key) => {
                    let shard = self.route(&key);
                    let added = self.keys.entry(shard).or_default().insert(key);
                    assert!(added, "planning asked again for a fetched key");
                    return self.read(shard);
                }
                Planned::Stale => return self.back_off(),
                Planned::Plan(plan) => break plan,
            }
        };
        if plan.changes.is_empty() {
            // The answer depends on no shard's state (only on inodes that cannot exist).
            self.state = State::Done(plan.reply);
            return;
        }
        self.reply = Some(plan.reply.clone());
        self.state = State::Send(plan.coordinator, ShardCall::Begin { plan });
    }
}
