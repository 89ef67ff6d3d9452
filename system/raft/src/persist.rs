//! What a replica persists, and how persisted batches replay into the state a replica restarts from.

use serde::{Deserialize, Serialize};

use crate::types::{HardState, LogEntry, SnapshotData};

/// Everything one `ready` asks the caller to make durable, before sending that ready's messages.
///
/// Replay order inside a batch (and across batches, in the order they were saved): `snapshot`,
/// `compaction`, `entries`, `hard_state` — see [`PersistedState::apply`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistBatch {
    /// The new hard state, if it changed.
    pub hard_state: Option<HardState>,
    /// New log entries, contiguous. They replace every persisted entry at or after the first one's index.
    pub entries: Vec<LogEntry>,
    /// A snapshot received from the leader: it replaces the whole persisted log.
    pub snapshot: Option<SnapshotData>,
    /// A snapshot made locally by `compact`: it replaces the entries up to its index; later entries stay.
    pub compaction: Option<SnapshotData>,
}

impl PersistBatch {
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none() && self.entries.is_empty() && self.snapshot.is_none() && self.compaction.is_none()
    }
}

/// The durable state of one replica: what [`crate::RaftNode::new`] restarts from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedState {
    pub hard_state: HardState,
    /// The latest snapshot, received or made by compaction.
    pub snapshot: Option<SnapshotData>,
    /// The entries after the snapshot, contiguous from `snapshot index + 1` (from 1 without a snapshot).
    pub entries: Vec<LogEntry>,
}

/// A persisted state that is not a state Raft could have written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PersistedStateError {
    #[error("persisted log is not contiguous at index {index}")]
    Gap { index: u64 },
    #[error("persisted commit index {commit} is past the last persisted entry {last_index}")]
    CommitPastLog { commit: u64, last_index: u64 },
}

impl PersistedState {
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |s| s.index)
    }

    pub fn last_index(&self) -> u64 {
        self.entries.last().map_or(self.snapshot_index(), |e| e.index)
    }

    /// Replays one batch on top of this state, exactly as a replica's log evolves: a received snapshot
    /// replaces the log, a compaction drops the entries it covers, new entries replace every entry at or
    /// after the first new index. A gap before the new entries is kept (replaying a log store whose
    /// superseded records were freed leaves gaps below the final snapshot); [`PersistedState::check`]
    /// drops what the snapshot covers and rejects any gap that remains.
    pub fn apply(&mut self, batch: &PersistBatch) {
        if let Some(s) = &batch.snapshot {
            self.entries.clear();
            self.snapshot = Some(s.clone());
        }
        if let Some(c) = &batch.compaction
            && c.index > self.snapshot_index()
        {
            self.entries.retain(|e| e.index > c.index);
            self.snapshot = Some(c.clone());
        }
        if let Some(first) = batch.entries.first().map(|e| e.index) {
            self.entries.retain(|e| e.index < first);
            for (i, e) in batch.entries.iter().enumerate() {
                assert_eq!(e.index, first + i as u64, "persist batch entries not contiguous");
            }
            self.entries.extend(batch.entries.iter().cloned());
        }
        if let Some(hs) = batch.hard_state {
            self.hard_state = hs;
        }
    }

    /// Normalises a replayed state and checks it: entries at or below the snapshot are dropped, the
    /// log must start right after the snapshot (at 1 without one) and be contiguous, the commit index
    /// is raised to the snapshot index and must not pass the last entry.
    pub fn check(&mut self) -> Result<(), PersistedStateError> {
        let snap = self.snapshot_index();
        self.entries.retain(|e| e.index > snap);
        for (expect, e) in (snap + 1..).zip(&self.entries) {
            if e.index != expect {
                return Err(PersistedStateError::Gap { index: expect });
            }
        }
        self.hard_state.commit = self.hard_state.commit.max(snap);
        if self.hard_state.commit > self.last_index() {
            return Err(PersistedStateError::CommitPastLog {
                commit: self.hard_state.commit,
                last_index: self.last_index(),
            });
        }
        Ok(())
    }
}
