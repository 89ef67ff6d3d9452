//! [`LocalCluster`]: every shard of one file system in one process, each operation driven by an
//! [`OpDriver`] whose calls are applied to the shards directly and whose transactions run to the end
//! at once (every message delivered in FIFO order). For benchmarks, large-directory tests and the
//! differential test against the reference model; no concurrency, no faults.
//!
//! Call order: [`LocalCluster::new`], then [`LocalCluster::execute`] per operation (with
//! non-decreasing times); [`LocalCluster::check`] at any point between operations.

use std::collections::{BTreeMap, VecDeque};

use crate::exec::{Next, OpDriver, ShardAnswer, ShardCall};
use crate::shard::{Decision, ShardState};
use crate::{Errno, InodeId, MetaOp, MetaResult};

/// How the operations so far were executed (evidence that tests reach the cross-shard paths).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterStats {
    pub ops: u64,
    /// Operations that needed a transaction (planned after `NotLocal`).
    pub planned: u64,
    /// Planned operations whose answer is an errno.
    pub planned_errors: u64,
    pub reads: u64,
    pub messages: u64,
    pub backoffs: u64,
}

/// The shards of one file system, its root [`InodeId::ROOT`] in shard 0.
#[derive(Debug, Clone)]
pub struct LocalCluster {
    shards: Vec<ShardState>,
    stats: ClusterStats,
}

impl LocalCluster {
    /// `shard_count` empty shards but shard 0, which holds the root directory (all times 0).
    pub fn new(shard_count: u16) -> LocalCluster {
        LocalCluster::with_root_time(shard_count, 0)
    }

    /// As [`LocalCluster::new`], the root's times `now_ns`.
    pub fn with_root_time(shard_count: u16, now_ns: u64) -> LocalCluster {
        let shards = (0..shard_count)
            .map(|s| ShardState::new(s, shard_count, (s == 0).then_some((InodeId::ROOT, now_ns))))
            .collect();
        LocalCluster { shards, stats: ClusterStats::default() }
    }

    pub fn root(&self) -> InodeId {
        InodeId::ROOT
    }

    pub fn shard_count(&self) -> u16 {
        self.shards.len() as u16
    }

    pub fn shards(&self) -> &[ShardState] {
        &self.shards
    }

    pub fn stats(&self) -> ClusterStats {
        self.stats
    }

    /// Execute `op` at the client's wall-clock reading `now_ns`: its answer. Panics if the driver
    /// gives up (nothing runs concurrently here, so a plan is never stale and never meets a lock).
    pub fn execute(&mut self, op: &MetaOp, now_ns: u64) -> MetaResult {
        self.stats.ops += 1;
        let mut driver = OpDriver::new(op.clone(), now_ns, self.shard_count());
        loop {
            match driver.next() {
                Next::Call { shard, call } => {
                    let answer = self.call(shard, call, now_ns);
                    driver.answer(answer);
                }
                Next::Backoff { .. } => self.stats.backoffs += 1,
                Next::Done(result) => return result,
                Next::GiveUp => panic!("{op:?} gave up in a cluster without concurrency"),
            }
        }
    }

    /// Apply one driver call to its shard at `now_ns` (a `Begin` runs the transaction to its end), as
    /// [`LocalCluster::execute`] does: for callers interleaving several drivers.
    pub fn call(&mut self, shard: u16, call: ShardCall, now_ns: u64) -> ShardAnswer {
        let state = &mut self.shards[shard as usize];
        match call {
            ShardCall::Apply { op } => ShardAnswer::Applied(state.apply(&op, now_ns)),
            ShardCall::Read { keys } => {
                self.stats.reads += 1;
                ShardAnswer::Read(state.read(&keys))
            }
            ShardCall::Begin { plan } => {
                self.stats.planned += 1;
                self.stats.planned_errors += u64::from(plan.reply.is_err());
                ShardAnswer::Decided(self.run_txn(shard, plan, now_ns))
            }
        }
    }

    /// Begin `plan` at `coordinator` and deliver every message until none is left; the decision.
    fn run_txn(&mut self, coordinator: u16, plan: crate::shard::TxnPlan, now_ns: u64) -> Result<(), Errno> {
        let c = coordinator as usize;
        let (id, out) = self.shards[c].begin_plan(plan, now_ns)?;
        let mut decided = match self.shards[c].decision(id) {
            Decision::Pending => None,
            Decision::Commit => Some(Ok(())),
            Decision::Abort(e) => Some(Err(e)),
            Decision::Forgotten => panic!("{id:?} forgotten at once"),
        };
        let mut net: VecDeque<_> = out.into();
        while let Some(env) = net.pop_front() {
            self.stats.messages += 1;
            let to = env.to as usize;
            net.extend(self.shards[to].on_message(&env, now_ns));
            if decided.is_none() && to == c {
                decided = match self.shards[c].decision(id) {
                    Decision::Pending => None,
                    Decision::Commit => Some(Ok(())),
                    Decision::Abort(e) => Some(Err(e)),
                    Decision::Forgotten => panic!("{id:?} forgotten before its decision was seen"),
                };
            }
        }
        decided.unwrap_or_else(|| panic!("{id:?} undecided with no message left"))
    }

    /// Every shard's invariants and the cross-shard ones (see [`check_shards`]).
    pub fn check(&self) -> Result<(), String> {
        check_shards(&self.shards)
    }
}

/// The invariants across shards: every shard's own, no entry naming a missing inode or one of another
/// type (a directory's `..` is its entry's parent), every non-directory named by exactly `nlink`
/// entries, every directory but the root by exactly one. Valid when no transaction is half applied.
pub fn check_shards(shards: &[ShardState]) -> Result<(), String> {
    let inode = |ino: InodeId| shards.get(ino.shard() as usize).and_then(|s| s.inode_record(ino));
    let mut names: BTreeMap<InodeId, u32> = BTreeMap::new();
    for s in shards {
        s.check_invariants().map_err(|e| format!("shard {}: {e}", s.shard()))?;
        for (&(dir, _), e) in s.entries() {
            let child = inode(e.ino).ok_or_else(|| format!("dangling entry {:?} of {dir:?}", e.name))?;
            if child.attr.kind != e.kind || (child.is_dir() && child.parent != Some(dir)) {
                return Err(format!("entry {:?} of {dir:?} disagrees with its inode", e.name));
            }
            *names.entry(e.ino).or_default() += 1;
        }
    }
    for s in shards {
        for (&ino, r) in s.inodes() {
            let n = names.get(&ino).copied().unwrap_or(0);
            let want = if Some(ino) == s.root() {
                0
            } else if r.is_dir() {
                1
            } else {
                r.attr.nlink
            };
            if n != want {
                return Err(format!("{ino:?} is named by {n} entries, wants {want}"));
            }
        }
    }
    Ok(())
}
