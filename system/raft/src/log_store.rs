//! [`RaftLogStore`]: the Raft logs of many groups as records in one `tessera_store::Store`.
//!
//! Format (byte by byte in docs/formats/raft-log.md): each record is one extent holding the 8-byte
//! magic `TSRAFTL1` followed by the `tessera-proto` encoding of `{ group, hard_state, entries,
//! snapshot, compaction }`. Extents without the magic are not ours and are left alone. Records of a
//! group replay in extent-id order (ids are monotonic, so id order is save order) through
//! [`PersistedState::apply`].
//!
//! Space: after every save, the group's records that no longer contribute to its replayed state are
//! freed, oldest first: records whose entries are all at or below the latest snapshot, overwritten by
//! a later record, or older than a later received snapshot, and that hold neither the latest hard
//! state nor the latest snapshot. Freeing never changes the replay result (a record's liveness depends
//! only on newer records, and dead records are freed oldest first), so a crash in the middle is safe.
//!
//! Memory: the index keeps, per group, one small entry (~64 bytes) per live record. A live record holds
//! at least one live log entry, or the latest hard state or snapshot, so a group's index is bounded by
//! `entries after its latest snapshot + 2`; the caller bounds that by compacting.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use tessera_env::Disk;
use tessera_proto::CodecError;
use tessera_store::{ExtentId, Store, StoreError};

use crate::persist::{PersistBatch, PersistedState, PersistedStateError};
use crate::types::{HardState, LogEntry, SnapshotData};

/// Marks an extent as a Raft log record (format version 1).
pub const RECORD_MAGIC: [u8; 8] = *b"TSRAFTL1";

/// Largest record written by default: the store's default `max_extent_bytes` (4 MiB).
pub const DEFAULT_MAX_RECORD_BYTES: usize = 4 * 1024 * 1024;

/// Bytes reserved in every record for everything but entry and snapshot payloads.
const RECORD_OVERHEAD_BYTES: usize = 1024;

/// One record as encoded after the magic. Field order is the format.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct LogRecord {
    group: u64,
    hard_state: Option<HardState>,
    entries: Vec<LogEntry>,
    snapshot: Option<SnapshotData>,
    compaction: Option<SnapshotData>,
}

/// What the index remembers of one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RecordMeta {
    /// First and last entry index.
    entries: Option<(u64, u64)>,
    hard_state: bool,
    /// Index of the snapshot it holds, and whether it was received (replaces the whole log).
    snapshot: Option<(u64, bool)>,
}

impl RecordMeta {
    fn of(record: &LogRecord) -> RecordMeta {
        let snapshot = match (&record.snapshot, &record.compaction) {
            (Some(s), _) => Some((s.index, true)),
            (None, Some(c)) => Some((c.index, false)),
            (None, None) => None,
        };
        RecordMeta {
            entries: record.entries.first().zip(record.entries.last()).map(|(f, l)| (f.index, l.index)),
            hard_state: record.hard_state.is_some(),
            snapshot,
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
    /// One entry or snapshot does not fit a record.
    #[error("a record of {size_bytes} bytes exceeds the limit of {max_bytes} bytes")]
    RecordTooLarge { size_bytes: u64, max_bytes: u64 },
    #[error("group {group}: {error}")]
    Corrupt { group: u64, error: PersistedStateError },
}

/// The Raft logs of many groups on one extent store. Owns the store; one caller at a time.
pub struct RaftLogStore<D: Disk> {
    store: Store<D>,
    max_record_bytes: usize,
    /// group -> live records in id order.
    groups: BTreeMap<u64, BTreeMap<ExtentId, RecordMeta>>,
}

impl<D: Disk> fmt::Debug for RaftLogStore<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RaftLogStore")
            .field("groups", &self.groups.len())
            .field("records", &self.groups.values().map(BTreeMap::len).sum::<usize>())
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
        let mut groups: BTreeMap<u64, BTreeMap<ExtentId, RecordMeta>> = BTreeMap::new();
        for (id, _len) in store.extents() {
            if let Some(record) = read_record(&store, id).await? {
                groups.entry(record.group).or_default().insert(id, RecordMeta::of(&record));
            }
        }
        Ok(RaftLogStore { store, max_record_bytes, groups })
    }

    /// Makes `batch` of `group` durable: durable when Ok. Normally one record (one extent); a batch too
    /// large for one record is split into several written together, ordered so that any prefix that
    /// survives a crash replays to a state Raft could have written (snapshot first, hard state last).
    /// Then frees the group's records that no longer matter.
    pub async fn save(&mut self, group: u64, batch: &PersistBatch) -> Result<(), RaftLogError> {
        if batch.is_empty() {
            return Ok(());
        }
        let records = self.split(group, batch)?;
        let mut encoded = Vec::with_capacity(records.len());
        for record in &records {
            let mut bytes = RECORD_MAGIC.to_vec();
            let body = tessera_proto::try_encode(record).map_err(|_| RaftLogError::RecordTooLarge {
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
        let index = self.groups.entry(group).or_default();
        for (id, record) in ids.iter().zip(&records) {
            assert!(index.keys().next_back().is_none_or(|last| last < id), "extent ids not monotonic");
            index.insert(*id, RecordMeta::of(record));
        }
        for id in dead_records(index) {
            self.store.free_extent(id).await?;
            self.groups.get_mut(&group).expect("group indexed").remove(&id);
        }
        Ok(())
    }

    /// The persisted state of `group` (`None` if nothing was ever saved for it), replayed from its
    /// records in save order and checked.
    pub async fn load(&self, group: u64) -> Result<Option<PersistedState>, RaftLogError> {
        let Some(index) = self.groups.get(&group) else { return Ok(None) };
        let mut state = PersistedState::default();
        for &id in index.keys() {
            let record = read_record(&self.store, id).await?.expect("indexed extent is a record");
            assert_eq!(record.group, group, "{id} indexed under the wrong group");
            state.apply(&PersistBatch {
                hard_state: record.hard_state,
                entries: record.entries,
                snapshot: record.snapshot,
                compaction: record.compaction,
            });
        }
        state.check().map_err(|error| RaftLogError::Corrupt { group, error })?;
        Ok(Some(state))
    }

    /// Groups with at least one record.
    pub fn groups(&self) -> Vec<u64> {
        self.groups.keys().copied().collect()
    }

    /// Live records of `group` (the index's size for it).
    pub fn record_count(&self, group: u64) -> usize {
        self.groups.get(&group).map_or(0, BTreeMap::len)
    }

    pub fn store(&self) -> &Store<D> {
        &self.store
    }

    pub fn into_store(self) -> Store<D> {
        self.store
    }

    /// Splits a batch into records that fit: the snapshot and compaction in the first, the hard state
    /// in the last, entries in order across them.
    fn split(&self, group: u64, batch: &PersistBatch) -> Result<Vec<LogRecord>, RaftLogError> {
        let budget = self.max_record_bytes - RECORD_MAGIC.len() - RECORD_OVERHEAD_BYTES;
        let too_large = |size_bytes: usize| RaftLogError::RecordTooLarge {
            size_bytes: size_bytes as u64,
            max_bytes: self.max_record_bytes as u64,
        };
        let snapshot_bytes: usize =
            [&batch.snapshot, &batch.compaction].iter().filter_map(|s| s.as_ref()).map(snapshot_size_bytes).sum();
        if snapshot_bytes > budget {
            return Err(too_large(snapshot_bytes));
        }
        let mut records = vec![LogRecord {
            group,
            hard_state: None,
            entries: Vec::new(),
            snapshot: batch.snapshot.clone(),
            compaction: batch.compaction.clone(),
        }];
        let mut used = snapshot_bytes;
        for e in &batch.entries {
            let size = e.size_bytes() as usize;
            if size > budget {
                return Err(too_large(size));
            }
            if used + size > budget {
                records.push(LogRecord {
                    group,
                    hard_state: None,
                    entries: Vec::new(),
                    snapshot: None,
                    compaction: None,
                });
                used = 0;
            }
            records.last_mut().expect("at least one record").entries.push(e.clone());
            used += size;
        }
        records.last_mut().expect("at least one record").hard_state = batch.hard_state;
        Ok(records)
    }
}

/// Bytes a snapshot takes in a record, at most (payload plus up to 9 bytes per varint).
fn snapshot_size_bytes(s: &SnapshotData) -> usize {
    let ids = s.voters.len() + s.learners.len() + s.voters_outgoing.len() + s.learners_next.len();
    s.data.len() + 9 * ids + 64
}

async fn read_record<D: Disk>(store: &Store<D>, id: ExtentId) -> Result<Option<LogRecord>, RaftLogError> {
    let bytes = store.read_extent(id).await?;
    if bytes.len() < RECORD_MAGIC.len() || bytes[..RECORD_MAGIC.len()] != RECORD_MAGIC {
        return Ok(None);
    }
    tessera_proto::decode(&bytes[RECORD_MAGIC.len()..])
        .map(Some)
        .map_err(|error| RaftLogError::Codec { extent: id, error })
}

/// Records of one group that no longer contribute to its replayed state, oldest first.
fn dead_records(index: &BTreeMap<ExtentId, RecordMeta>) -> Vec<ExtentId> {
    let latest_hs = index.iter().rev().find(|(_, m)| m.hard_state).map(|(&id, _)| id);
    let latest_snapshot = index.iter().rev().find_map(|(&id, m)| m.snapshot.map(|(i, _)| (id, i)));
    let floor = latest_snapshot.map_or(0, |(_, i)| i);
    let replaced_before = index.iter().rev().find(|(_, m)| matches!(m.snapshot, Some((_, true)))).map(|(&id, _)| id);
    // Entries at or after `cut` were overwritten by a newer record.
    let mut cut = u64::MAX;
    let mut dead = Vec::new();
    for (&id, meta) in index.iter().rev() {
        let mut live = Some(id) == latest_hs || Some(id) == latest_snapshot.map(|(sid, _)| sid);
        if let Some((first, last)) = meta.entries {
            let replaced = replaced_before.is_some_and(|r| id < r);
            let lo = first.max(floor + 1);
            let hi = last.min(cut.saturating_sub(1));
            if !replaced && lo <= hi {
                live = true;
            }
            cut = cut.min(first);
        }
        if !live {
            dead.push(id);
        }
    }
    dead.reverse();
    dead
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(entries: Option<(u64, u64)>, hard_state: bool, snapshot: Option<(u64, bool)>) -> RecordMeta {
        RecordMeta { entries, hard_state, snapshot }
    }

    /// The example in docs/formats/raft-log.md.
    #[test]
    fn record_bytes_match_the_format_doc() {
        let record = LogRecord {
            group: 7,
            hard_state: Some(HardState { term: 2, vote: 1, commit: 5 }),
            entries: Vec::new(),
            snapshot: None,
            compaction: None,
        };
        let mut bytes = RECORD_MAGIC.to_vec();
        bytes.extend(tessera_proto::encode(&record));
        assert_eq!(bytes, [0x54, 0x53, 0x52, 0x41, 0x46, 0x54, 0x4C, 0x31, 7, 1, 2, 1, 5, 0, 0, 0]);
        assert_eq!(tessera_proto::encode(&300u64), [0xFB, 0x2C, 0x01]);
    }

    #[test]
    fn dead_records_follow_supersession() {
        let mut index = BTreeMap::new();
        index.insert(ExtentId(1), meta(Some((1, 5)), true, None));
        index.insert(ExtentId(2), meta(None, true, None)); // supersedes hs of 1, 1 still has live entries
        index.insert(ExtentId(3), meta(Some((4, 6)), false, None)); // overwrites 4..5 of 1
        assert_eq!(dead_records(&index), vec![]);
        index.insert(ExtentId(4), meta(None, true, None));
        assert_eq!(dead_records(&index), vec![ExtentId(2)]);
        index.remove(&ExtentId(2));
        index.insert(ExtentId(5), meta(None, false, Some((3, false)))); // compaction at 3: 1 holds only 1..3 live
        assert_eq!(dead_records(&index), vec![ExtentId(1)]);
        index.remove(&ExtentId(1));
        index.insert(ExtentId(6), meta(Some((7, 9)), true, Some((6, true)))); // received snapshot at 6
        assert_eq!(dead_records(&index), vec![ExtentId(3), ExtentId(4), ExtentId(5)]);
    }
}
