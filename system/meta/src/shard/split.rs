//! GIGA+ splits of directory partitions (see `partition`), as cross-shard transactions through the
//! ordinary two-phase commit (`txn`): the shard owning an over-full partition coordinates its split.
//!
//! **A split** of partition `p` of directory `d`, owned by shard S, with halves `(lower, upper)`:
//! - S (the coordinator) removes the entries of `upper` and replaces its record of `p` by `lower`
//!   (its own) and `upper` (where it went);
//! - the destination D = [`partition_shard`]`(d, upper)` records `upper` as its own, keeps a copy of
//!   the directory's access attributes and puts the moved entries;
//! - the directory's home replaces `p` by the two halves in its partition map.
//!
//! One [`TxnChange::Split`] goes to each of them (a shard may play several parts), beside S's
//! `RemoveEntry`s and D's `PutEntry`s. Each validates its part at prepare: S that it owns `p` and that
//! the upper half holds exactly the planned entries (their cookies, and a digest of the records), the
//! home that its map has `p` at S, D that it owns nothing of `upper` yet. While prepared, each locks
//! the directory's inode key in its shard, so no operation on the directory's entries there runs
//! concurrently (they get EAGAIN and retry). A split never changes the directory's attributes. An
//! upper half of more than [`SPLIT_MOVE_ENTRIES_MAX`] entries is not moved: the split only relabels
//! (both halves stay at S, and split further), so a split's messages stay small.
//!
//! **Call order** (the shard's leader; the host wires it): after applying commands, and on its duty
//! timer, the leader calls [`ShardState::due_splits`]. For each `(dir, part)` it proposes one logged
//! command whose application calls [`ShardState::begin_split`] on every replica (with the command's
//! `now_ns`). `begin_split` plans the split from the state it applies to and begins it as
//! [`ShardState::begin_plan`] would: `Ok((id, send))`: the leader sends `send`, and the transaction
//! runs like a client's (votes and acknowledgements through [`ShardState::on_message`], the prepare
//! timeout, [`ShardState::recover`]); nobody waits for [`ShardState::decision`]. `Err(EAGAIN)` (keys
//! locked by another transaction) or `Err(EINVAL)` (no longer due: split already, or a duplicate
//! command) logged nothing: drop it; the partition stays due and is proposed again later.
//! [`ShardState::plan_split`] is the pure planning step: a plan it returns may also be begun later
//! (e.g. logged as a client `Begin`), and is then refused with EAGAIN if the partition changed since.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use crate::{Errno, InodeId, MetaReply};

use super::partition::{DirAccess, Owner, PARTITION_DEPTH_MAX, PartitionId, SPLIT_MOVE_ENTRIES_MAX, partition_shard};
use super::txn::{Envelope, TxnId, TxnState};
use super::txn_changes::{LockKey, TxnChange};
use super::{EntryRecord, ShardState, TxnPlan};

/// A digest of the entries a split moves (their cookies and records), which the source checks at
/// prepare: a plan made from other entries than those held then is refused.
fn entries_digest<'a>(entries: impl Iterator<Item = (u64, &'a EntryRecord)>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut mix = |v: u64| {
        h ^= v;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        h ^= h >> 29;
    };
    for (cookie, entry) in entries {
        mix(cookie);
        mix(entry.ino.0);
        mix(entry.kind as u64);
        for chunk in entry.name.as_bytes().chunks(8) {
            mix(chunk.iter().fold(0, |acc, &b| acc << 8 | u64::from(b)));
        }
    }
    h
}

impl ShardState {
    /// The partitions this shard owns that are due to split (holding more entries than the split
    /// threshold, not at [`PARTITION_DEPTH_MAX`]) and not locked by a transaction now, as
    /// `(directory, partition)`. Cheap when none is (the usual case).
    pub fn due_splits(&self) -> Vec<(InodeId, PartitionId)> {
        if !self.parts.has_due() {
            return Vec::new();
        }
        let due = |(dir, first): (InodeId, u64)| {
            let Owner::Here(part) = self.parts.owner(self.shard, dir, first) else {
                panic!("{dir:?} at {first:#x} is due to split but not owned by shard {}", self.shard)
            };
            assert_eq!(part.first(), first, "a due partition starts at its count's key");
            (!self.locked(|| LockKey::Inode(dir))).then_some((dir, part))
        };
        self.parts.due().filter_map(due).collect()
    }

    /// The plan of the split of partition `part` of directory `dir` (see the module documentation), if
    /// this shard owns it and it is due; changes nothing. The plan's coordinator is this shard, its
    /// reply `Ok(Done)`, and `now_ns` the time of the plan.
    pub fn plan_split(&self, dir: InodeId, part: PartitionId, now_ns: u64) -> Option<TxnPlan> {
        let me = self.shard;
        if self.parts.owner(me, dir, part.first()) != Owner::Here(part)
            || part.depth >= PARTITION_DEPTH_MAX
            || self.parts.count(dir, part) <= self.parts.split_threshold()
        {
            return None;
        }
        let access = if dir.shard() == me {
            DirAccess::of(&self.inodes.get(&dir).expect("a directory holding entries exists").attr)
        } else {
            self.parts.access(dir).expect("a partition owner keeps the directory's access attributes")
        };
        let (_, upper_half) = part.halves();
        let moved: Vec<(u64, &EntryRecord)> =
            self.entry_range(dir, Bound::Included(upper_half.first()), upper_half.last()).collect();
        let upper = if moved.len() > SPLIT_MOVE_ENTRIES_MAX as usize {
            me
        } else {
            partition_shard(dir, upper_half, self.shard_count)
        };
        let digest = entries_digest(moved.iter().copied());
        let split = TxnChange::Split { dir, part, source: me, upper, access, digest };
        let mut changes: BTreeMap<u16, Vec<TxnChange>> = BTreeMap::new();
        if upper == me {
            changes.insert(me, vec![split.clone()]);
        } else {
            let removals = moved.iter().map(|&(cookie, _)| TxnChange::RemoveEntry { parent: dir, cookie });
            changes.insert(me, removals.chain([split.clone()]).collect());
            let puts = moved.iter().map(|&(cookie, e)| TxnChange::PutEntry { parent: dir, cookie, entry: e.clone() });
            changes.insert(upper, [split.clone()].into_iter().chain(puts).collect());
        }
        changes.entry(dir.shard()).or_insert_with(|| vec![split]);
        Some(TxnPlan { coordinator: me, changes, reply: Ok(MetaReply::Done), now_ns })
    }

    /// Plan the split of partition `part` of `dir` ([`ShardState::plan_split`]) and begin it as
    /// [`ShardState::begin_plan`] does: the transaction's id and the `Prepare`s to send. EINVAL if it
    /// is not due here (any more), EAGAIN if its keys are locked; either logs nothing. A logged
    /// command (see the module documentation for the call order).
    pub fn begin_split(
        &mut self,
        dir: InodeId,
        part: PartitionId,
        now_ns: u64,
    ) -> Result<(TxnId, Vec<Envelope>), Errno> {
        let plan = self.plan_split(dir, part, now_ns).ok_or(Errno::EINVAL)?;
        self.begin_plan(plan, now_ns)
    }

    /// The partitions this shard holds a record of owning, as `(directory, partition)` (an unsplit
    /// directory's whole range at its home has no record and is not listed).
    pub fn owned_partitions(&self) -> Vec<(InodeId, PartitionId)> {
        let me = self.shard;
        self.parts.all_records().filter(|&(_, _, s)| s == me).map(|(dir, part, _)| (dir, part)).collect()
    }

    /// Whether nothing is in flight here: no transaction this shard coordinates still preparing or
    /// owed acknowledgements, no intent (so no lock), and no partition due to split.
    pub fn is_settled(&self) -> bool {
        let owes =
            |r: &super::TxnRecord| r.state == TxnState::Preparing || r.participants().any(|p| !r.acked.contains(&p));
        self.txn.intents.is_empty() && !self.txn.records.values().any(owes) && self.due_splits().is_empty()
    }

    /// Validate this shard's part of a split (see the module documentation): EAGAIN if the state is
    /// not the one planned, EINVAL for a malformed split.
    pub(super) fn validate_split(&self, split: &TxnChange, changes: &[TxnChange]) -> Result<(), Errno> {
        let &TxnChange::Split { dir, part, source, upper, digest, .. } = split else { unreachable!() };
        let (me, home) = (self.shard, dir.shard());
        if part.depth >= PARTITION_DEPTH_MAX || source >= self.shard_count || upper >= self.shard_count {
            return Err(Errno::EINVAL);
        }
        if me != home && me != source && me != upper {
            return Err(Errno::EINVAL);
        }
        let (_, upper_half) = part.halves();
        let at = if me == home && !self.parts.has_records(dir) {
            (part == PartitionId::WHOLE).then_some(home)
        } else {
            self.parts.record(dir, part)
        };
        if (me == home || me == source) && at != Some(source) {
            return Err(Errno::EAGAIN);
        }
        if me == source && source != upper {
            let held = || self.entry_range(dir, Bound::Included(upper_half.first()), upper_half.last());
            let removed: BTreeSet<u64> = changes
                .iter()
                .filter_map(|c| match c {
                    TxnChange::RemoveEntry { parent, cookie } if *parent == dir => Some(*cookie),
                    _ => None,
                })
                .collect();
            let held_cookies: BTreeSet<u64> = held().map(|(c, _)| c).collect();
            if removed != held_cookies || entries_digest(held()) != digest {
                return Err(Errno::EAGAIN);
            }
        }
        if me == upper && me != source && me != home {
            let owns_some = self.parts.records_of(dir).any(|(p, s)| s == me && p.overlaps(upper_half));
            if owns_some
                || self.entry_range(dir, Bound::Included(upper_half.first()), upper_half.last()).next().is_some()
            {
                return Err(Errno::EAGAIN);
            }
        }
        Ok(())
    }

    /// Apply this shard's part of a validated split (after the source's removals, before the
    /// destination's writes), and recount the halves it owns.
    pub(super) fn apply_split(&mut self, split: &TxnChange) {
        let &TxnChange::Split { dir, part, source, upper, access, .. } = split else { unreachable!() };
        let (me, home) = (self.shard, dir.shard());
        let (lower_half, upper_half) = part.halves();
        if me == home || me == source {
            // The home's map, or the source's own records: the halves replace the partition.
            self.parts.set_record(dir, part, None);
            self.parts.set_record(dir, lower_half, Some(source));
            self.parts.set_record(dir, upper_half, Some(upper));
        }
        if me == upper && me != source && me != home {
            self.parts.set_record(dir, upper_half, Some(me));
            self.parts.set_access(dir, access);
        }
        for half in [lower_half, upper_half] {
            if self.parts.owner(me, dir, half.first()) == Owner::Here(half) {
                let count = self.entry_range(dir, Bound::Included(half.first()), half.last()).count();
                self.parts.set_count(dir, half, u32::try_from(count).expect("a partition's count fits u32"));
            }
        }
    }
}
