//! [`LocalCluster`]: every shard of one file system in one process, each operation driven by an
//! [`OpDriver`] whose calls are applied to the shards directly and whose transactions run to the end
//! at once (every message delivered in FIFO order). After each operation the partitions due to split
//! are split (as a shard's leader would: [`ShardState::due_splits`], [`ShardState::begin_split`]).
//! For benchmarks, large-directory tests and the differential test against the reference model; no
//! concurrency, no faults.
//!
//! Call order: [`LocalCluster::new`] (optionally [`LocalCluster::with_split_threshold`]), then
//! [`LocalCluster::execute`] per operation (with non-decreasing times); [`LocalCluster::check`] at any
//! point between operations. A caller interleaving drivers through [`LocalCluster::call`] runs
//! [`LocalCluster::run_due_splits`] itself.

use std::collections::{BTreeMap, VecDeque};

use crate::exec::{Next, OpDriver, ShardAnswer, ShardCall};
use crate::shard::{Decision, DirAccess, Envelope, PartitionId, ReadKey, ReadValue, ShardState, TxnId};
use crate::{Errno, FileType, InodeId, MetaOp, MetaResult};

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
    /// Partition splits run, and the entries they moved to another shard.
    pub splits: u64,
    pub entries_moved: u64,
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

    /// This (new) cluster with split threshold `entries` on every shard
    /// ([`ShardState::with_split_threshold`]).
    pub fn with_split_threshold(self, entries: u32) -> LocalCluster {
        let shards = self.shards.into_iter().map(|s| s.with_split_threshold(entries)).collect();
        LocalCluster { shards, ..self }
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

    /// Execute `op` at the client's wall-clock reading `now_ns`, then split the partitions due: its
    /// answer. Panics if the driver gives up (nothing runs concurrently here, so a plan is never stale
    /// and never meets a lock).
    pub fn execute(&mut self, op: &MetaOp, now_ns: u64) -> MetaResult {
        self.stats.ops += 1;
        let mut driver = OpDriver::new(op.clone(), now_ns, self.shard_count());
        let result = loop {
            match driver.next() {
                Next::Call { shard, call } => {
                    let answer = self.call(shard, call, now_ns);
                    driver.answer(answer);
                }
                Next::Backoff { .. } => self.stats.backoffs += 1,
                Next::Done(result) => break result,
                Next::GiveUp => panic!("{op:?} gave up in a cluster without concurrency"),
            }
        };
        self.run_due_splits(now_ns);
        result
    }

    /// Split every partition due to split, until none is (a split may leave a half still over the
    /// threshold): the number of splits run.
    pub fn run_due_splits(&mut self, now_ns: u64) -> u64 {
        let mut splits = 0;
        loop {
            let due: Vec<(u16, InodeId, PartitionId)> = self
                .shards
                .iter()
                .flat_map(|s| s.due_splits().into_iter().map(|(dir, part)| (s.shard(), dir, part)))
                .collect();
            if due.is_empty() {
                return splits;
            }
            for (shard, dir, part) in due {
                let plan = self.shards[shard as usize]
                    .plan_split(dir, part, now_ns)
                    .unwrap_or_else(|| panic!("{dir:?} {part:?} is due on shard {shard} but cannot be planned"));
                let moved =
                    plan.changes.values().flatten().filter(|c| matches!(c, crate::shard::TxnChange::PutEntry { .. }));
                self.stats.entries_moved += moved.count() as u64;
                let (id, out) = self.shards[shard as usize]
                    .begin_split(dir, part, now_ns)
                    .unwrap_or_else(|e| panic!("split of {dir:?} {part:?} on shard {shard}: {e:?}"));
                let decided = self.finish_txn(shard, id, out, now_ns);
                assert_eq!(decided, Ok(()), "split of {dir:?} {part:?} on shard {shard}");
                self.stats.splits += 1;
                splits += 1;
            }
        }
    }

    /// Directory `dir`'s partitions and their shards, in hash order, from its home's map (an unsplit
    /// directory: the whole hash space at its home).
    pub fn partitions(&self, dir: InodeId) -> Vec<(PartitionId, u16)> {
        let home = &self.shards[dir.shard() as usize];
        match &home.read(&[ReadKey::Partitions(dir)])[0].value {
            ReadValue::Partitions(map) if map.is_empty() => vec![(PartitionId::WHOLE, dir.shard())],
            ReadValue::Partitions(map) => map.clone(),
            other => panic!("partition map of {dir:?}: {other:?}"),
        }
    }

    /// The shard holding entry `name` of `dir`, following the home's answer.
    pub fn entry_shard(&self, dir: InodeId, name: &str) -> u16 {
        self.shards[dir.shard() as usize].entry_shard(dir, name)
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
        let (id, out) = self.shards[coordinator as usize].begin_plan(plan, now_ns)?;
        self.finish_txn(coordinator, id, out, now_ns)
    }

    /// Deliver the messages `out` of transaction `id` begun at `coordinator`, and all they cause,
    /// until none is left; the decision.
    fn finish_txn(&mut self, coordinator: u16, id: TxnId, out: Vec<Envelope>, now_ns: u64) -> Result<(), Errno> {
        let c = coordinator as usize;
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
/// entries, every directory but the root by exactly one, every directory's size and link count
/// those of its entries in all its partitions, and the partition records agreeing (see
/// [`check_partitions`]). Valid when no transaction is half applied.
pub fn check_shards(shards: &[ShardState]) -> Result<(), String> {
    let inode = |ino: InodeId| shards.get(ino.shard() as usize).and_then(|s| s.inode_record(ino));
    let mut names: BTreeMap<InodeId, u32> = BTreeMap::new();
    // Per directory: entries and subdirectories, over every shard.
    let mut per_dir: BTreeMap<InodeId, (u64, u32)> = BTreeMap::new();
    for s in shards {
        s.check_invariants().map_err(|e| format!("shard {}: {e}", s.shard()))?;
        for (&(dir, _), e) in s.entries() {
            let child = inode(e.ino).ok_or_else(|| format!("dangling entry {:?} of {dir:?}", e.name))?;
            if child.attr.kind != e.kind || (child.is_dir() && child.parent != Some(dir)) {
                return Err(format!("entry {:?} of {dir:?} disagrees with its inode", e.name));
            }
            *names.entry(e.ino).or_default() += 1;
            let counts = per_dir.entry(dir).or_default();
            counts.0 += 1;
            counts.1 += u32::from(e.kind == FileType::Directory);
        }
    }
    check_partitions(shards)?;
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
            let (size, subdirs) = per_dir.get(&ino).copied().unwrap_or((0, 0));
            if r.is_dir() && (r.attr.size != size || r.attr.nlink != 2 + subdirs) {
                return Err(format!("directory {ino:?}: size/nlink disagree with {size} entries, {subdirs} subdirs"));
            }
        }
    }
    Ok(())
}

/// The partition records agree between shards: every partition in a directory's map (at its home)
/// is owned by the shard it names, which keeps the directory's access attributes as its inode has
/// them; every partition a shard other than the home owns is in the map.
pub fn check_partitions(shards: &[ShardState]) -> Result<(), String> {
    let read = |shard: u16, key: ReadKey| shards[shard as usize].read(&[key]).remove(0).value;
    for s in shards {
        for (&ino, record) in s.inodes().filter(|(_, r)| r.is_dir()) {
            let ReadValue::Partitions(map) = read(s.shard(), ReadKey::Partitions(ino)) else { unreachable!() };
            for &(part, owner) in &map {
                let owner_state = shards.get(owner as usize).ok_or(format!("{ino:?} {part:?} at shard {owner}"))?;
                if owner_state.position_shard(ino, part.first()) != owner {
                    return Err(format!("{ino:?} {part:?}: the map says shard {owner}, which does not own it"));
                }
                if owner != s.shard()
                    && read(owner, ReadKey::Access { dir: ino, shard: owner })
                        != ReadValue::Access(Some(DirAccess::of(&record.attr)))
                {
                    return Err(format!("{ino:?}: shard {owner}'s access copy differs from the inode"));
                }
            }
        }
        for (dir, part) in s.owned_partitions() {
            if dir.shard() == s.shard() {
                continue;
            }
            let ReadValue::Partitions(map) = read(dir.shard(), ReadKey::Partitions(dir)) else { unreachable!() };
            if !map.contains(&(part, s.shard())) {
                return Err(format!("shard {} owns {dir:?} {part:?}, which the map lacks", s.shard()));
            }
        }
    }
    Ok(())
}
