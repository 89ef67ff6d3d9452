//! [`RaftLogStore`]: the Raft logs of many groups as records in one `tessera_store::Store`.
//!
//! Format (byte by byte in docs/formats/raft-log.md): each record is one extent holding the 8-byte
//! magic `TSRAFTL2` followed by the `tessera-proto` encoding of a sequence of group records
//! `{ group, hard_state, entries, snapshot, compaction }`, groups strictly ascending: one record
//! carries the persist batches of every group of one node tick ([`RaftLogStore::save_many`]). Records of
//! version 1 (magic `TSRAFTL1`, one group record) are still read. Extents without either magic are not
//! ours and are left alone. A group's records replay in extent-id order (ids are monotonic, so id order
//! is save order) through [`PersistedState::apply`].
//!
//! Space: after every save, each group's parts that can no longer change its replayed state are
//! released (see `log_store/free.rs`); an extent is freed once every group with a part in it has
//! released it. Freeing never changes any group's replay result, so a crash in the middle is safe.
//!
//! Memory: the index keeps, per group, one small entry (~64 bytes) per present part, and per extent the
//! groups with a part in it. A group's needed parts are bounded by `entries after its latest snapshot +
//! 2`; released parts stay until their extent is freed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use tessera_env::Disk;
use tessera_proto::CodecError;
use tessera_store::{ExtentId, Store, StoreError};

mod free;

use crate::persist::{PersistBatch, PersistedState, PersistedStateError};
use crate::types::{HardState, LogEntry, SnapshotData};
use free::{Liveness, RecordMeta, classify};

/// Marks an extent as a Raft log record (format version 2: the records of several groups).
pub const RECORD_MAGIC: [u8; 8] = *b"TSRAFTL2";

/// Marks a record of format version 1 (one group); read, never written.
pub const RECORD_MAGIC_V1: [u8; 8] = *b"TSRAFTL1";

/// Largest record written by default: the store's default `max_extent_bytes` (4 MiB).
pub const DEFAULT_MAX_RECORD_BYTES: usize = 4 * 1024 * 1024;

/// Bytes reserved in every record for the magic, the part count and slack.
const RECORD_OVERHEAD_BYTES: usize = 1024;

/// Bytes reserved per group part for everything but entry and snapshot payloads (group, options,
/// counts).
const PART_OVERHEAD_BYTES: usize = 64;

/// A hard state that alone keeps an extent alive is rewritten into the next record when the extent is
/// at least this many times larger than the rewritten bytes (about 16 per group).
const REWRITE_GAIN: u64 = 64;

/// At most this many groups' hard states are rewritten by one save.
const MAX_REWRITES_PER_SAVE: usize = 256;

/// One group's part of a record. Field order is the format (identical to a version 1 record).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct GroupRecord {
    group: u64,
    hard_state: Option<HardState>,
    entries: Vec<LogEntry>,
    snapshot: Option<SnapshotData>,
    compaction: Option<SnapshotData>,
}

impl GroupRecord {
    fn new(group: u64) -> GroupRecord {
        GroupRecord { group, hard_state: None, entries: Vec::new(), snapshot: None, compaction: None }
    }

    fn meta(&self) -> RecordMeta {
        let snapshot = match (&self.snapshot, &self.compaction) {
            (Some(s), _) => Some((s.index, true)),
            (None, Some(c)) => Some((c.index, false)),
            (None, None) => None,
        };
        RecordMeta {
            entries: self.entries.first().zip(self.entries.last()).map(|(f, l)| (f.index, l.index)),
            hard_state: self.hard_state.is_some(),
            snapshot,
        }
    }

    fn batch(self) -> PersistBatch {
        PersistBatch {
            hard_state: self.hard_state,
            entries: self.entries,
            snapshot: self.snapshot,
            compaction: self.compaction,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RaftLogError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// An extent carrying our magic does not decode: the store returned verified bytes, so this is a
    /// bug or a format from other software.
    #[error("{extent} carries the raft log magic but does not decode: {error}")]
    Codec { extent: ExtentId, error: CodecError },
    /// An extent decodes but breaks a rule of the format (no part, groups not strictly ascending).
    #[error("{extent} is not a valid raft log record: {reason}")]
    Malformed { extent: ExtentId, reason: &'static str },
    /// One entry or snapshot does not fit a record.
    #[error("a record of {size_bytes} bytes exceeds the limit of {max_bytes} bytes")]
    RecordTooLarge { size_bytes: u64, max_bytes: u64 },
    #[error("group {group}: {error}")]
    Corrupt { group: u64, error: PersistedStateError },
}

/// What the index knows of one group.
#[derive(Debug, Default)]
struct GroupIndex {
    /// Parts present on the device (needed or released), by extent.
    parts: BTreeMap<ExtentId, RecordMeta>,
    /// The group's latest hard state (for rewriting it, see [`REWRITE_GAIN`]).
    hard_state: Option<HardState>,
}

/// What the index knows of one extent.
#[derive(Debug)]
struct ExtentUse {
    len_bytes: u64,
    /// Every group with a part in it.
    members: Vec<u64>,
    /// Groups whose part is still needed; the extent is freed when this is empty.
    holders: BTreeSet<u64>,
    /// Holders that need their part only for its hard state (see [`Liveness::HardStateOnly`]).
    hard_state_only: BTreeSet<u64>,
}

/// The Raft logs of many groups on one extent store. Owns the store; one caller at a time.
pub struct RaftLogStore<D: Disk> {
    store: Store<D>,
    max_record_bytes: usize,
    groups: BTreeMap<u64, GroupIndex>,
    extents: BTreeMap<ExtentId, ExtentUse>,
    /// Extents no group needs that are not freed yet (found when opening, or held for a larger batch).
    pending_free: Vec<ExtentId>,
    /// Unneeded extents are freed once at least this many are pending (0 and 1: at once). See
    /// [`set_free_batch_extents`](RaftLogStore::set_free_batch_extents).
    free_batch_extents: usize,
}

impl<D: Disk> fmt::Debug for RaftLogStore<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RaftLogStore")
            .field("groups", &self.groups.len())
            .field("records", &self.extents.len())
            .finish_non_exhaustive()
    }
}

impl<D: Disk> RaftLogStore<D> {
    /// Opens the log store on an opened (recovered) store with [`DEFAULT_MAX_RECORD_BYTES`]. Reads every
    /// record once to build the index (startup cost: the live Raft log bytes on this device).
    pub async fn open(store: Store<D>) -> Result<RaftLogStore<D>, RaftLogError> {
        RaftLogStore::open_with(store, DEFAULT_MAX_RECORD_BYTES).await
    }

    /// As [`open`](Self::open), writing records of at most `max_record_bytes` (at most the store's
    /// `max_extent_bytes`, at least 64 KiB).
    pub async fn open_with(store: Store<D>, max_record_bytes: usize) -> Result<RaftLogStore<D>, RaftLogError> {
        assert!(max_record_bytes >= 64 * 1024, "max_record_bytes {max_record_bytes} below 64 KiB");
        let mut log = RaftLogStore {
            store,
            max_record_bytes,
            groups: BTreeMap::new(),
            extents: BTreeMap::new(),
            pending_free: Vec::new(),
            free_batch_extents: 0,
        };
        for (id, len_bytes) in log.store.extents() {
            if let Some(parts) = read_record(&log.store, id).await? {
                log.index(id, len_bytes, &parts);
            }
        }
        let all: BTreeSet<u64> = log.groups.keys().copied().collect();
        log.pending_free = log.release(&all);
        Ok(log)
    }

    /// Holds unneeded extents until `extents` of them can be freed together (at most that many stay
    /// allocated; 0 or 1 frees each save's at once). A free costs a journal write and flush whatever its
    /// size, so batching saves flushes; an extent freed late is only space held (after a crash, opening
    /// finds it unneeded again). Batches of 450 or more span several journal blocks.
    pub fn set_free_batch_extents(&mut self, extents: usize) {
        self.free_batch_extents = extents;
    }

    /// Makes `batch` of `group` durable: `save_many` with one group.
    pub async fn save(&mut self, group: u64, batch: &PersistBatch) -> Result<(), RaftLogError> {
        self.save_refs(vec![(group, batch)]).await
    }

    /// Makes the batches of many groups (one node's ready, say) durable together: durable when Ok.
    /// Normally ONE record (one extent: one data flush and one journal flush for all of them); what does
    /// not fit one record is split into several written by one `write_extents` call, each group's parts
    /// in order so that any prefix that survives a crash replays, for every group, to a state Raft
    /// could have written (snapshot first, hard state last). Empty batches are skipped; a group may
    /// appear at most once (a programmer error otherwise). Then frees the records no group needs any
    /// more (one journal flush per freed extent).
    pub async fn save_many(&mut self, batches: &[(u64, PersistBatch)]) -> Result<(), RaftLogError> {
        self.save_refs(batches.iter().map(|(g, b)| (*g, b)).collect()).await
    }

    async fn save_refs(&mut self, mut batches: Vec<(u64, &PersistBatch)>) -> Result<(), RaftLogError> {
        batches.retain(|(_, b)| !b.is_empty());
        batches.sort_by_key(|(g, _)| *g);
        for pair in batches.windows(2) {
            assert!(pair[0].0 != pair[1].0, "save_many: group {} appears twice", pair[0].0);
        }
        if batches.is_empty() {
            return Ok(());
        }
        let rewrites = self.hard_states_to_rewrite(&batches);
        let records = self.pack(&batches, &rewrites)?;
        let mut encoded = Vec::with_capacity(records.len());
        for parts in &records {
            let mut bytes = RECORD_MAGIC.to_vec();
            let body = tessera_proto::try_encode(parts).map_err(|_| RaftLogError::RecordTooLarge {
                size_bytes: u64::MAX,
                max_bytes: self.max_record_bytes as u64,
            })?;
            bytes.extend_from_slice(&body);
            if bytes.len() > self.max_record_bytes {
                return Err(RaftLogError::RecordTooLarge {
                    size_bytes: bytes.len() as u64,
                    max_bytes: self.max_record_bytes as u64,
                });
            }
            encoded.push(bytes);
        }
        let slices: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
        let ids = self.store.write_extents(&slices).await?;
        assert_eq!(ids.len(), records.len());
        let mut touched = BTreeSet::new();
        for ((id, parts), bytes) in ids.iter().zip(&records).zip(&encoded) {
            assert!(self.extents.keys().next_back().is_none_or(|last| last < id), "extent ids not monotonic");
            self.index(*id, bytes.len() as u64, parts);
            touched.extend(parts.iter().map(|p| p.group));
        }
        self.free_unneeded(touched).await
    }

    /// The persisted state of `group` (`None` if nothing was ever saved for it), replayed from its
    /// records in save order and checked.
    pub async fn load(&self, group: u64) -> Result<Option<PersistedState>, RaftLogError> {
        let Some(index) = self.groups.get(&group) else { return Ok(None) };
        let mut state = PersistedState::default();
        for &id in index.parts.keys() {
            let parts = read_record(&self.store, id).await?.expect("indexed extent is a record");
            let part = parts.into_iter().find(|p| p.group == group).expect("indexed part is in its record");
            state.apply(&part.batch());
        }
        state.check().map_err(|error| RaftLogError::Corrupt { group, error })?;
        Ok(Some(state))
    }

    /// The persisted state of every group, reading each record once (a node's restart).
    pub async fn load_all(&self) -> Result<BTreeMap<u64, PersistedState>, RaftLogError> {
        let mut states: BTreeMap<u64, PersistedState> = BTreeMap::new();
        for &id in self.extents.keys() {
            let parts = read_record(&self.store, id).await?.expect("indexed extent is a record");
            for part in parts {
                states.entry(part.group).or_default().apply(&part.batch());
            }
        }
        for (&group, state) in &mut states {
            state.check().map_err(|error| RaftLogError::Corrupt { group, error })?;
        }
        Ok(states)
    }

    /// Groups with at least one record.
    pub fn groups(&self) -> Vec<u64> {
        self.groups.keys().copied().collect()
    }

    /// Records (extents) holding a part of `group`.
    pub fn record_count(&self, group: u64) -> usize {
        self.groups.get(&group).map_or(0, |g| g.parts.len())
    }

    /// Records (extents) of all groups.
    pub fn total_record_count(&self) -> usize {
        self.extents.len()
    }

    pub fn store(&self) -> &Store<D> {
        &self.store
    }

    pub fn into_store(self) -> Store<D> {
        self.store
    }

    fn index(&mut self, id: ExtentId, len_bytes: u64, parts: &[GroupRecord]) {
        let members: Vec<u64> = parts.iter().map(|p| p.group).collect();
        for part in parts {
            let g = self.groups.entry(part.group).or_default();
            g.parts.insert(id, part.meta());
            if part.hard_state.is_some() {
                g.hard_state = part.hard_state;
            }
        }
        let holders = members.iter().copied().collect();
        self.extents.insert(id, ExtentUse { len_bytes, members, holders, hard_state_only: BTreeSet::new() });
    }

    /// Re-classifies the parts of `groups`, releasing the ones no longer needed. Returns the extents that
    /// no group holds any more, oldest first.
    fn release(&mut self, groups: &BTreeSet<u64>) -> Vec<ExtentId> {
        let mut free = Vec::new();
        for g in groups {
            let Some(index) = self.groups.get(g) else { continue };
            for (id, liveness) in classify(&index.parts) {
                let ext = self.extents.get_mut(&id).expect("part of an indexed extent");
                if liveness == Liveness::HardStateOnly {
                    ext.hard_state_only.insert(*g);
                } else {
                    ext.hard_state_only.remove(g);
                }
                if liveness == Liveness::Removable && ext.holders.remove(g) && ext.holders.is_empty() {
                    free.push(id);
                }
            }
        }
        free.sort();
        free
    }

    /// Releases what `touched` groups no longer need and frees the extents nobody holds, oldest first,
    /// until nothing more can go (freeing an extent can make other parts of its groups removable).
    async fn free_unneeded(&mut self, mut touched: BTreeSet<u64>) -> Result<(), RaftLogError> {
        loop {
            let mut free = self.release(&touched);
            free.append(&mut self.pending_free);
            free.sort();
            if free.is_empty() {
                return Ok(());
            }
            if free.len() < self.free_batch_extents {
                self.pending_free = free;
                return Ok(());
            }
            touched.clear();
            // One journal entry for the whole round (split, oldest first, only past the largest entry):
            // durable all together, so a crash leaves either the state before or the state after.
            self.store.free_extents(&free).await?;
            for id in free {
                let ext = self.extents.remove(&id).expect("freed extent indexed");
                for g in ext.members {
                    let index = self.groups.get_mut(&g).expect("member group indexed");
                    index.parts.remove(&id);
                    if index.parts.is_empty() {
                        self.groups.remove(&g);
                    }
                    touched.insert(g);
                }
            }
        }
    }

    /// Groups (not in `batches` with a hard state) whose latest hard state alone keeps an extent much
    /// larger than itself: rewriting it into this save lets that extent go.
    fn hard_states_to_rewrite(&self, batches: &[(u64, &PersistBatch)]) -> BTreeMap<u64, HardState> {
        let saving: BTreeSet<u64> = batches.iter().filter(|(_, b)| b.hard_state.is_some()).map(|(g, _)| *g).collect();
        let mut out = BTreeMap::new();
        for ext in self.extents.values() {
            if ext.holders.is_empty() || ext.holders != ext.hard_state_only {
                continue;
            }
            let groups: Vec<u64> = ext.holders.iter().copied().filter(|g| !saving.contains(g)).collect();
            let gain_ok = ext.len_bytes >= REWRITE_GAIN * 16 * groups.len() as u64;
            if !gain_ok || out.len() + groups.len() > MAX_REWRITES_PER_SAVE {
                continue;
            }
            for g in groups {
                let hs = self.groups[&g].hard_state.expect("a hard-state-only part holds the latest hard state");
                out.insert(g, hs);
            }
        }
        out
    }

    /// Packs the batches (groups ascending) and the rewritten hard states into records that fit: per
    /// group its snapshot and compaction in its first part, its hard state in its last, entries in order.
    fn pack(
        &self,
        batches: &[(u64, &PersistBatch)],
        rewrites: &BTreeMap<u64, HardState>,
    ) -> Result<Vec<Vec<GroupRecord>>, RaftLogError> {
        let budget = self.max_record_bytes - RECORD_MAGIC.len() - RECORD_OVERHEAD_BYTES;
        let too_large = |size_bytes: usize| RaftLogError::RecordTooLarge {
            size_bytes: size_bytes as u64,
            max_bytes: self.max_record_bytes as u64,
        };
        let empty = PersistBatch::default();
        let mut all: BTreeMap<u64, (&PersistBatch, Option<HardState>)> =
            batches.iter().map(|(g, b)| (*g, (*b, b.hard_state))).collect();
        for (&g, &hs) in rewrites {
            let slot = all.entry(g).or_insert((&empty, None));
            slot.1 = slot.1.or(Some(hs));
        }
        let mut records: Vec<Vec<GroupRecord>> = vec![Vec::new()];
        let mut used = 0usize;
        for (group, (batch, hard_state)) in all {
            let snapshot_bytes: usize =
                [&batch.snapshot, &batch.compaction].iter().filter_map(|s| s.as_ref()).map(snapshot_size_bytes).sum();
            if PART_OVERHEAD_BYTES + snapshot_bytes > budget {
                return Err(too_large(snapshot_bytes));
            }
            if used + PART_OVERHEAD_BYTES + snapshot_bytes > budget {
                records.push(Vec::new());
                used = 0;
            }
            let mut first = GroupRecord::new(group);
            first.snapshot = batch.snapshot.clone();
            first.compaction = batch.compaction.clone();
            records.last_mut().expect("a record").push(first);
            used += PART_OVERHEAD_BYTES + snapshot_bytes;
            for e in &batch.entries {
                let size = e.size_bytes() as usize;
                if PART_OVERHEAD_BYTES + size > budget {
                    return Err(too_large(size));
                }
                if used + size > budget {
                    records.push(vec![GroupRecord::new(group)]);
                    used = PART_OVERHEAD_BYTES;
                }
                records.last_mut().expect("a record").last_mut().expect("a part").entries.push(e.clone());
                used += size;
            }
            let last = records.last_mut().expect("a record").last_mut().expect("a part");
            assert_eq!(last.group, group);
            last.hard_state = hard_state;
        }
        for parts in &records {
            assert!(!parts.is_empty(), "empty record packed");
            assert!(parts.windows(2).all(|w| w[0].group < w[1].group), "groups not ascending in a record");
        }
        Ok(records)
    }
}

/// Bytes a snapshot takes in a record, at most (payload plus up to 9 bytes per varint).
fn snapshot_size_bytes(s: &SnapshotData) -> usize {
    let ids = s.voters.len() + s.learners.len() + s.voters_outgoing.len() + s.learners_next.len();
    s.data.len() + 9 * ids + 64
}

/// The group parts of a record, or `None` if the extent is not a Raft log record.
async fn read_record<D: Disk>(store: &Store<D>, id: ExtentId) -> Result<Option<Vec<GroupRecord>>, RaftLogError> {
    let bytes = store.read_extent(id).await?;
    if bytes.len() < RECORD_MAGIC.len() {
        return Ok(None);
    }
    let (magic, body) = bytes.split_at(RECORD_MAGIC.len());
    let codec = |error| RaftLogError::Codec { extent: id, error };
    if magic == RECORD_MAGIC_V1 {
        return tessera_proto::decode::<GroupRecord>(body).map(|p| Some(vec![p])).map_err(codec);
    }
    if magic != RECORD_MAGIC {
        return Ok(None);
    }
    let parts: Vec<GroupRecord> = tessera_proto::decode(body).map_err(codec)?;
    if parts.is_empty() {
        return Err(RaftLogError::Malformed { extent: id, reason: "a record without parts" });
    }
    if !parts.windows(2).all(|w| w[0].group < w[1].group) {
        return Err(RaftLogError::Malformed { extent: id, reason: "groups not strictly ascending" });
    }
    Ok(Some(parts))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The examples in docs/formats/raft-log.md.
    #[test]
    fn record_bytes_match_the_format_doc() {
        let part = |group, hard_state| GroupRecord { hard_state, ..GroupRecord::new(group) };
        let hs = Some(HardState { term: 2, vote: 1, commit: 5 });
        let mut v1 = RECORD_MAGIC_V1.to_vec();
        v1.extend(tessera_proto::encode(&part(7, hs)));
        assert_eq!(v1, [0x54, 0x53, 0x52, 0x41, 0x46, 0x54, 0x4C, 0x31, 7, 1, 2, 1, 5, 0, 0, 0]);
        let mut v2 = RECORD_MAGIC.to_vec();
        v2.extend(tessera_proto::encode(&vec![part(7, hs), part(9, Some(HardState { term: 3, vote: 2, commit: 0 }))]));
        assert_eq!(
            v2,
            [0x54, 0x53, 0x52, 0x41, 0x46, 0x54, 0x4C, 0x32, 2, 7, 1, 2, 1, 5, 0, 0, 0, 9, 1, 3, 2, 0, 0, 0, 0]
        );
        assert_eq!(tessera_proto::encode(&300u64), [0xFB, 0x2C, 0x01]);
    }
}
