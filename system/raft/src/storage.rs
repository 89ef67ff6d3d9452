//! The in-memory view of this replica's log that raft-rs reads through its `Storage` trait.
//!
//! It holds exactly what the caller has been asked to persist (a [`crate::PersistBatch`] is appended
//! here when `ready` hands it out; the caller persists it before `advance`): the hard state, the latest
//! snapshot (received or created by compaction) and the entries after it. Memory is bounded by the
//! caller's compaction policy: entries stay here until `compact` covers them.

use std::cell::Cell;

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

#[derive(Debug, Default)]
pub(crate) struct MemLog {
    hard_state: HardState,
    /// The configuration raft-rs starts from: as of the snapshot (or the bootstrap voters).
    initial_conf: ConfState,
    /// Latest snapshot; index 0 when there is none.
    snapshot: Snapshot,
    /// Contiguous entries starting at `snapshot index + 1`.
    entries: Vec<Entry>,
    /// raft-rs asked for a snapshot that the latest one cannot serve (too old for the request, or
    /// taken before the receiver joined): the caller should `compact` soon.
    snapshot_wanted: Cell<bool>,
}

impl MemLog {
    pub(crate) fn new(initial_conf: ConfState) -> MemLog {
        MemLog { initial_conf, ..MemLog::default() }
    }

    pub(crate) fn snapshot_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    pub(crate) fn first(&self) -> u64 {
        self.snapshot_index() + 1
    }

    pub(crate) fn last(&self) -> u64 {
        self.snapshot_index() + self.entries.len() as u64
    }

    pub(crate) fn set_hard_state(&mut self, hs: HardState) {
        self.hard_state = hs;
    }

    /// Appends entries, first truncating every entry at or after the first new index (raft's conflict
    /// resolution). Entries at or below the snapshot are never rewritten (raft never sends them here).
    pub(crate) fn append(&mut self, entries: &[Entry]) {
        let Some(first_new) = entries.first().map(|e| e.index) else { return };
        assert!(first_new > self.snapshot_index(), "append at {first_new} at or below the snapshot");
        assert!(first_new <= self.last() + 1, "append at {first_new} leaves a gap after {}", self.last());
        self.entries.truncate((first_new - self.first()) as usize);
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(e.index, first_new + i as u64, "appended entries not contiguous");
            self.entries.push(e.clone());
        }
    }

    /// Installs a snapshot received from the leader: the whole log is replaced.
    pub(crate) fn apply_snapshot(&mut self, snapshot: Snapshot) {
        let meta = snapshot.get_metadata();
        assert!(meta.index >= self.snapshot_index(), "snapshot at {} older than ours", meta.index);
        self.initial_conf = meta.get_conf_state().clone();
        self.entries.clear();
        if self.hard_state.commit < meta.index {
            self.hard_state.commit = meta.index;
        }
        self.snapshot = snapshot;
    }

    /// Replaces the entries up to `snapshot`'s index (which must be in the log) by the snapshot.
    pub(crate) fn compact(&mut self, snapshot: Snapshot) {
        let index = snapshot.get_metadata().index;
        assert!(index > self.snapshot_index() && index <= self.last(), "compaction at {index} outside the log");
        assert_eq!(snapshot.get_metadata().term, self.entry_term(index), "compaction term mismatch");
        self.entries.drain(..(index - self.snapshot_index()) as usize);
        self.initial_conf = snapshot.get_metadata().get_conf_state().clone();
        self.snapshot = snapshot;
    }

    /// Whether a snapshot was wanted since the last call (and clears the flag).
    pub(crate) fn take_snapshot_wanted(&self) -> bool {
        self.snapshot_wanted.replace(false)
    }

    /// The term of an entry in the log or of the snapshot's last entry.
    pub(crate) fn entry_term(&self, index: u64) -> u64 {
        if index == self.snapshot_index() {
            return self.snapshot.get_metadata().term;
        }
        assert!(index >= self.first() && index <= self.last(), "entry {index} not in the log");
        self.entries[(index - self.first()) as usize].term
    }
}

impl Storage for MemLog {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState { hard_state: self.hard_state.clone(), conf_state: self.initial_conf.clone() })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        assert!(high <= self.last() + 1, "entries({low}, {high}) past the last index {}", self.last());
        let lo = (low - self.first()) as usize;
        let hi = (high - self.first()) as usize;
        let mut out = self.entries[lo..hi].to_vec();
        raft::util::limit_size(&mut out, max_size.into());
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.snapshot_index() {
            return Ok(self.snapshot.get_metadata().term);
        }
        if idx < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.entries[(idx - self.first()) as usize].term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    /// The latest snapshot, if it can serve `to`: at or after `request_index`, and with `to` in its
    /// configuration (raft-rs refuses to restore a snapshot whose configuration does not contain the
    /// receiver, so one taken before `to` joined is useless). Otherwise "temporarily unavailable"
    /// (raft-rs retries on a later probe) and the caller is asked to compact.
    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let cs = self.snapshot.get_metadata().get_conf_state();
        let member = cs.voters.iter().chain(&cs.learners).chain(&cs.voters_outgoing).any(|&id| id == to);
        if self.snapshot_index() < request_index || !member {
            self.snapshot_wanted.set(true);
            return Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable));
        }
        Ok(self.snapshot.clone())
    }
}
