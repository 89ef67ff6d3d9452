//! [`RaftBatch`], the one envelope per node pair, and [`Outbox`], which packs messages into envelopes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tessera_env::NodeId;
use tessera_proto::MAX_MESSAGE_BYTES;

use crate::types::{RaftMessage, SnapshotData};

/// Default bound of one envelope's estimated size: half the codec's message limit, leaving room for the
/// estimate's slack and the caller's framing.
pub const DEFAULT_MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;

const _: () = assert!(DEFAULT_MAX_BATCH_BYTES * 2 <= MAX_MESSAGE_BYTES);

/// All Raft messages one node sends another in one round, for every group they share: the only
/// envelope multi-raft traffic travels in (encoded with `tessera-proto` by the caller). Within one
/// ready's batch messages are in group order; an [`Outbox`] merging several readies appends them in
/// ready order; each group's messages stay in generation order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftBatch {
    /// (group, message).
    pub messages: Vec<(u64, RaftMessage)>,
}

/// An upper estimate of a message's encoded size in bytes (varints counted at their widest).
pub fn message_size_bytes(m: &RaftMessage) -> usize {
    let entries: usize = m.entries.iter().map(|e| e.size_bytes() as usize).sum();
    let snapshot = m.snapshot.as_ref().map_or(0, snapshot_size_bytes);
    128 + entries + snapshot + m.context.len()
}

fn snapshot_size_bytes(s: &SnapshotData) -> usize {
    let ids = s.voters.len() + s.learners.len() + s.voters_outgoing.len() + s.learners_next.len();
    64 + s.data.len() + 9 * ids
}

/// Collects outgoing messages and packs them into one [`RaftBatch`] per destination, split only when a
/// batch would exceed `max_batch_bytes` (estimated). A driver may feed it the `outgoing` of several
/// readies of one round and send once, so that every node pair sees one envelope per round.
#[derive(Debug)]
pub struct Outbox {
    max_batch_bytes: usize,
    /// destination -> batches (the last one open) with their estimated sizes.
    pending: BTreeMap<NodeId, Vec<(RaftBatch, usize)>>,
}

impl Outbox {
    pub fn new(max_batch_bytes: usize) -> Outbox {
        assert!(max_batch_bytes > 0, "max_batch_bytes must be positive");
        Outbox { max_batch_bytes, pending: BTreeMap::new() }
    }

    pub fn push(&mut self, to: NodeId, group: u64, message: RaftMessage) {
        let size = message_size_bytes(&message);
        let batches = self.pending.entry(to).or_default();
        match batches.last_mut() {
            Some((batch, used)) if *used + size <= self.max_batch_bytes => {
                batch.messages.push((group, message));
                *used += size;
            }
            _ => batches.push((RaftBatch { messages: vec![(group, message)] }, size)),
        }
    }

    /// Adds every message of already packed batches (merging them with what is pending).
    pub fn extend(&mut self, outgoing: Vec<(NodeId, RaftBatch)>) {
        for (to, batch) in outgoing {
            for (group, message) in batch.messages {
                self.push(to, group, message);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The packed envelopes, by destination, and empties the outbox.
    pub fn take(&mut self) -> Vec<(NodeId, RaftBatch)> {
        let mut out = Vec::new();
        for (to, batches) in std::mem::take(&mut self.pending) {
            out.extend(batches.into_iter().map(|(b, _)| (to, b)));
        }
        out
    }
}
