//! GIGA+ partitions of directories' entries (docs/design/metadata.md, "Keys and ids"): which shard
//! holds the entry `(dir, name)`, and what each shard knows about it.
//!
//! **Partitions.** A directory's entries are partitioned by `h = name_hash(name)` (equally, by cookie:
//! a cookie keeps the hash's top 56 bits) into radix ranges: partition `(prefix, depth)` ([`PartitionId`])
//! covers the hashes whose top `depth` bits are `prefix`. A directory starts unsplit: one partition
//! [`PartitionId::WHOLE`] in the directory's own shard (its *home*), with no record anywhere. A partition
//! holding more than the shard's split threshold splits (see `split`): its lower half stays, its upper
//! half moves to [`partition_shard`] (so a directory's partitions spread over every shard). Partitions
//! never merge, so ownership of a position in hash space only ever refines.
//!
//! **Records** (`(dir, first hash, depth) -> shard`, one map per shard):
//! - the home of a split directory keeps its whole partition map: every partition and its shard, tiling
//!   the hash space (an unsplit directory has no record);
//! - any other shard keeps the partitions it owns (value: itself) and, for partitions it split off,
//!   where the upper half went (value: that shard), plus a copy of the directory's access attributes
//!   ([`DirAccess`]) so that a lookup is answered by the partition's shard alone.
//!
//! **Routing** ([`Partitions::owner`]): a shard owns `(dir, h)` if a record of its own covers `h`, or it is
//! the home of an unsplit directory. Otherwise it names a shard to ask: the home names the exact owner;
//! another shard the most specific record it has (where it sent that range) or else the home. Following
//! these answers always ends at the owner: a forward record points to a shard that received the range
//! later, and the home is exact.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use crate::name::COOKIE_COLLISION_BITS;
use crate::{Attr, InodeId};

/// The deepest partition: 56 bits of hash, all a cookie keeps (entries whose names share them share a
/// cookie range, which never spans partitions).
pub const PARTITION_DEPTH_MAX: u8 = (u64::BITS - COOKIE_COLLISION_BITS) as u8;
/// A partition holding more entries than this splits (the default of [`super::ShardState`]).
pub const SPLIT_THRESHOLD_DEFAULT: u32 = 8192;
/// Most entries one split moves: a split whose upper half holds more keeps both halves in place (a
/// relabelling; the halves split further), so a split's messages stay far below the message limit.
pub const SPLIT_MOVE_ENTRIES_MAX: u32 = 16_384;
/// Largest split threshold a shard accepts.
pub const SPLIT_THRESHOLD_MAX: u32 = SPLIT_MOVE_ENTRIES_MAX;
/// Upper bound of one encoded `PutEntry` change (a 255-byte name; checked in the tests).
pub(super) const ENTRY_CHANGE_BYTES_MAX: usize = 320;
/// The metadata service's message size limit.
pub(super) const MESSAGE_BYTES_MAX: usize = 16 << 20;
// A split's prepare carries every moved entry once (and the coordinator's log entry once more).
const _: () = assert!(SPLIT_MOVE_ENTRIES_MAX as usize * ENTRY_CHANGE_BYTES_MAX * 2 <= MESSAGE_BYTES_MAX);
const _: () = assert!(PARTITION_DEPTH_MAX == 56);

/// A partition of a directory: the hashes whose top `depth` bits are `prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PartitionId {
    pub prefix: u64,
    pub depth: u8,
}

impl PartitionId {
    /// The whole hash space: an unsplit directory's only partition.
    pub const WHOLE: PartitionId = PartitionId { prefix: 0, depth: 0 };

    /// Partition `(prefix, depth)`. Panics beyond [`PARTITION_DEPTH_MAX`] or for a prefix of more bits.
    pub fn new(prefix: u64, depth: u8) -> PartitionId {
        assert!(depth <= PARTITION_DEPTH_MAX, "partition depth {depth}");
        assert!(prefix >> depth == 0, "prefix {prefix:#x} longer than {depth} bits");
        PartitionId { prefix, depth }
    }

    /// The partition of depth `depth` holding hash `h`.
    pub fn of(h: u64, depth: u8) -> PartitionId {
        let prefix = if depth == 0 { 0 } else { h >> (u64::BITS - u32::from(depth)) };
        PartitionId::new(prefix, depth)
    }

    /// The first hash (and cookie) it covers.
    pub fn first(self) -> u64 {
        if self.depth == 0 { 0 } else { self.prefix << (u64::BITS - u32::from(self.depth)) }
    }

    /// The last hash (and cookie) it covers.
    pub fn last(self) -> u64 {
        self.first() | (u64::MAX >> self.depth)
    }

    pub fn contains(self, h: u64) -> bool {
        self.first() <= h && h <= self.last()
    }

    /// Whether the two partitions share a hash (radix ranges are nested or disjoint).
    pub fn overlaps(self, other: PartitionId) -> bool {
        self.contains(other.first()) || other.contains(self.first())
    }

    /// The lower and the upper half. Panics at [`PARTITION_DEPTH_MAX`].
    pub fn halves(self) -> (PartitionId, PartitionId) {
        assert!(self.depth < PARTITION_DEPTH_MAX, "{self:?} cannot split");
        let depth = self.depth + 1;
        (PartitionId::new(self.prefix << 1, depth), PartitionId::new(self.prefix << 1 | 1, depth))
    }
}

/// What a permission check needs of a directory: a partition owner's copy of its attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirAccess {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl DirAccess {
    pub fn of(attr: &Attr) -> DirAccess {
        DirAccess { mode: attr.mode, uid: attr.uid, gid: attr.gid }
    }
}

/// The shard the upper half `part` of a split of directory `dir` moves to: a hash of both, so that a
/// directory's partitions spread over every shard. Frozen: it decides where entries live.
pub fn partition_shard(dir: InodeId, part: PartitionId, shard_count: u16) -> u16 {
    assert!(shard_count > 0, "no shards");
    let mut h = dir.0.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ part.prefix.wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    h ^= u64::from(part.depth).wrapping_mul(0x1656_67b1_9e37_79f9);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    (h % u64::from(shard_count)) as u16
}

/// Where a shard finds position `h` of a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Owner {
    /// This shard owns the partition holding it.
    Here(PartitionId),
    /// Ask this shard.
    There(u16),
}

/// One shard's partition records (see the module documentation), with the entry count of every
/// partition it owns and those due to split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Partitions {
    records: BTreeMap<(InodeId, u64, u8), u16>,
    access: BTreeMap<InodeId, DirAccess>,
    /// Entries per owned partition, keyed `(dir, first hash)` (owned partitions are disjoint); an
    /// unsplit directory's at its home under 0. Only non-zero counts are kept.
    counts: BTreeMap<(InodeId, u64), u32>,
    /// Owned partitions holding more than `split_threshold` entries, keyed as `counts`.
    due: BTreeSet<(InodeId, u64)>,
    split_threshold: u32,
}

impl Partitions {
    pub(super) fn new(split_threshold: u32) -> Partitions {
        assert!((1..=SPLIT_THRESHOLD_MAX).contains(&split_threshold), "split threshold {split_threshold}");
        Partitions {
            records: BTreeMap::new(),
            access: BTreeMap::new(),
            counts: BTreeMap::new(),
            due: BTreeSet::new(),
            split_threshold,
        }
    }

    pub(super) fn split_threshold(&self) -> u32 {
        self.split_threshold
    }

    /// Where shard `me` finds position `h` of `dir` (see the module documentation).
    pub(super) fn owner(&self, me: u16, dir: InodeId, h: u64) -> Owner {
        let home = dir.shard();
        let found = self.records.range(..=(dir, h, u8::MAX)).next_back();
        if let Some((&(d, first, depth), &shard)) = found
            && d == dir
        {
            let part = PartitionId::of(first, depth);
            if part.contains(h) {
                return if shard == me { Owner::Here(part) } else { Owner::There(shard) };
            }
            // At the home the map tiles the hash space: the greatest record at or before `h` holds it.
            assert_ne!(me, home, "the partition map of {dir:?} has a hole at {h:#x}");
            return Owner::There(home);
        }
        if me == home { Owner::Here(PartitionId::WHOLE) } else { Owner::There(home) }
    }

    /// The records of `dir` held here, in hash order: at its home the partition map.
    pub(super) fn records_of(&self, dir: InodeId) -> impl Iterator<Item = (PartitionId, u16)> + '_ {
        let range = (Bound::Included((dir, 0, 0)), Bound::Included((dir, u64::MAX, u8::MAX)));
        self.records.range(range).map(|(&(_, first, depth), &shard)| (PartitionId::of(first, depth), shard))
    }

    /// Whether any record of `dir` is held here (at its home: whether it is split).
    pub(super) fn has_records(&self, dir: InodeId) -> bool {
        self.records_of(dir).next().is_some()
    }

    /// At the home of `dir`: the shards other than `me` owning partitions of it.
    pub(super) fn foreign_owners(&self, me: u16, dir: InodeId) -> BTreeSet<u16> {
        self.records_of(dir).map(|(_, s)| s).filter(|&s| s != me).collect()
    }

    /// The record of exactly `part` of `dir`, if any.
    pub(super) fn record(&self, dir: InodeId, part: PartitionId) -> Option<u16> {
        self.records.get(&(dir, part.first(), part.depth)).copied()
    }

    pub(super) fn set_record(&mut self, dir: InodeId, part: PartitionId, shard: Option<u16>) {
        let key = (dir, part.first(), part.depth);
        match shard {
            Some(s) => self.records.insert(key, s),
            None => self.records.remove(&key),
        };
    }

    /// The access attributes of `dir` a partition owner keeps.
    pub(super) fn access(&self, dir: InodeId) -> Option<DirAccess> {
        self.access.get(&dir).copied()
    }

    pub(super) fn set_access(&mut self, dir: InodeId, access: DirAccess) {
        self.access.insert(dir, access);
    }

    /// Forget everything about `dir` (it was removed, empty).
    pub(super) fn drop_dir(&mut self, dir: InodeId) {
        let range = (dir, 0, 0)..=(dir, u64::MAX, u8::MAX);
        let keys: Vec<_> = self.records.range(range).map(|(k, _)| *k).collect();
        for key in keys {
            self.records.remove(&key);
        }
        self.access.remove(&dir);
        let counted: Vec<_> = self.counts.range((dir, 0)..=(dir, u64::MAX)).map(|(k, _)| *k).collect();
        for key in counted {
            self.counts.remove(&key);
            self.due.remove(&key);
        }
    }

    /// The entry count of owned partition `part` of `dir`.
    pub(super) fn count(&self, dir: InodeId, part: PartitionId) -> u32 {
        self.counts.get(&(dir, part.first())).copied().unwrap_or(0)
    }

    /// Set the entry count of owned partition `part` (after its records changed).
    pub(super) fn set_count(&mut self, dir: InodeId, part: PartitionId, count: u32) {
        let key = (dir, part.first());
        if count == 0 {
            self.counts.remove(&key);
        } else {
            self.counts.insert(key, count);
        }
        if count > self.split_threshold && part.depth < PARTITION_DEPTH_MAX {
            self.due.insert(key);
        } else {
            self.due.remove(&key);
        }
    }

    /// An entry at `cookie` of `dir` was added to owned partition `part`.
    pub(super) fn entry_added(&mut self, dir: InodeId, part: PartitionId) {
        let count = self.count(dir, part) + 1;
        self.set_count(dir, part, count);
    }

    /// An entry of `dir` was removed from owned partition `part`.
    pub(super) fn entry_removed(&mut self, dir: InodeId, part: PartitionId) {
        let count = self.count(dir, part);
        assert!(count > 0, "entry count of {dir:?} {part:?} underflows");
        self.set_count(dir, part, count - 1);
    }

    /// The owned partitions due to split, as `(dir, first hash)`.
    pub(super) fn due(&self) -> impl Iterator<Item = (InodeId, u64)> + '_ {
        self.due.iter().copied()
    }

    pub(super) fn has_due(&self) -> bool {
        !self.due.is_empty()
    }

    /// Every record, access copy and count (for the invariant checks).
    pub(super) fn all_records(&self) -> impl Iterator<Item = (InodeId, PartitionId, u16)> + '_ {
        self.records.iter().map(|(&(dir, first, depth), &s)| (dir, PartitionId::of(first, depth), s))
    }

    pub(super) fn all_access(&self) -> impl Iterator<Item = (InodeId, DirAccess)> + '_ {
        self.access.iter().map(|(&d, &a)| (d, a))
    }

    pub(super) fn all_counts(&self) -> impl Iterator<Item = ((InodeId, u64), u32)> + '_ {
        self.counts.iter().map(|(&k, &c)| (k, c))
    }

    pub(super) fn all_due(&self) -> impl Iterator<Item = (InodeId, u64)> + '_ {
        self.due.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_radix_ranges() {
        assert_eq!((PartitionId::WHOLE.first(), PartitionId::WHOLE.last()), (0, u64::MAX));
        let (lower, upper) = PartitionId::WHOLE.halves();
        assert_eq!((lower.first(), lower.last()), (0, u64::MAX >> 1));
        assert_eq!((upper.first(), upper.last()), (1 << 63, u64::MAX));
        let (a, b) = upper.halves();
        assert_eq!((a, b), (PartitionId::new(0b10, 2), PartitionId::new(0b11, 2)));
        assert!(upper.overlaps(b) && b.overlaps(upper) && !a.overlaps(b) && !lower.overlaps(a));
        let deepest = PartitionId::of(0x1234_5678_9abc_def0, PARTITION_DEPTH_MAX);
        assert_eq!((deepest.first(), deepest.last()), (0x1234_5678_9abc_de00, 0x1234_5678_9abc_deff));
        assert_eq!(PartitionId::of(deepest.first(), 5), PartitionId::of(0x1234_5678_9abc_def0, 5));
    }

    #[test]
    fn partitions_spread_over_every_shard() {
        let dir = InodeId::new(3, 77);
        let mut seen = BTreeSet::new();
        for prefix in 0..256u64 {
            seen.insert(partition_shard(dir, PartitionId::new(prefix, 8), 64));
        }
        assert!(seen.len() > 60, "{} shards of 64", seen.len());
    }

    #[test]
    fn routing_follows_records_and_falls_back_to_the_home() {
        let dir = InodeId::new(0, 9);
        let (lower, upper) = PartitionId::WHOLE.halves();
        let (ul, uu) = upper.halves();
        // The home (shard 0): lower here, upper-lower at 1, upper-upper at 2.
        let mut home = Partitions::new(4);
        assert_eq!(home.owner(0, dir, 5), Owner::Here(PartitionId::WHOLE));
        home.set_record(dir, lower, Some(0));
        home.set_record(dir, ul, Some(1));
        home.set_record(dir, uu, Some(2));
        assert_eq!(home.owner(0, dir, 5), Owner::Here(lower));
        assert_eq!(home.owner(0, dir, ul.first() + 3), Owner::There(1));
        assert_eq!(home.owner(0, dir, u64::MAX), Owner::There(2));
        // Shard 1 got the upper half, and sent its upper half on to 2.
        let mut one = Partitions::new(4);
        one.set_record(dir, ul, Some(1));
        one.set_record(dir, uu, Some(2));
        assert_eq!(one.owner(1, dir, ul.last()), Owner::Here(ul));
        assert_eq!(one.owner(1, dir, uu.first()), Owner::There(2));
        assert_eq!(one.owner(1, dir, 7), Owner::There(0));
        // A nested record (a range received back later) is more specific than the coarser forward.
        let (uul, _) = uu.halves();
        one.set_record(dir, uul, Some(1));
        assert_eq!(one.owner(1, dir, uul.first()), Owner::Here(uul));
        assert_eq!(one.owner(1, dir, u64::MAX), Owner::There(0));
        assert_eq!(one.records_of(dir).count(), 3);
        one.drop_dir(dir);
        assert!(!one.has_records(dir));
    }
}
