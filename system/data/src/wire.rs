//! Messages to and from a node's data endpoint (encoded with `tessera-proto`; docs/formats/wire.md).
//!
//! Every request carries a `req` number chosen by the sender, echoed in the reply; requests are
//! idempotent (a put of the same key and payload, a free of a freed key), so senders simply re-send
//! after a timeout.

use serde::{Deserialize, Serialize};
use tessera_meta::InodeId;
use tessera_meta::content::{StripeId, StripeLayout};

/// Largest chunk payload a put may carry, in bytes.
pub const CHUNK_PAYLOAD_MAX_BYTES: usize = 1024 * 1024;
/// Most keys one free may name.
pub const FREE_KEYS_MAX: usize = 1024;

/// One chunk of one stripe: chunk `index` (data chunks first, then parity, or the copies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ChunkKey {
    pub stripe: StripeId,
    pub index: u8,
}

/// What a chunk says about itself (kept in its header, see `chunk`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChunkMeta {
    pub key: ChunkKey,
    /// The inode whose content referenced the stripe when it was written (diagnostics, orphan sweeps).
    pub owner: InodeId,
    pub layout: StripeLayout,
}

/// Why a data request failed. Every one is expected; the sender decides (retry, degrade, give up).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum DataError {
    /// The node holds no such chunk (never written, freed, or lost with a drive).
    #[error("no chunk {0:?}")]
    NotFound(ChunkKey),
    /// The chunk's bytes failed their checksum (it is dropped; the caller degrades and repairs it).
    #[error("chunk {0:?} is corrupt")]
    Corrupt(ChunkKey),
    /// The drive holding or chosen for the chunk failed; the node stopped trusting it.
    #[error("drive failed: {0}")]
    DriveFailed(String),
    /// No drive of the node has room for the chunk.
    #[error("no space for {needed_bytes} bytes")]
    NoSpace { needed_bytes: u64 },
    /// The request is malformed (too large, out of range, header mismatch).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The node's queue is full: retry after a backoff.
    #[error("node busy")]
    Busy,
}

/// Rebuild work one node has found and done (see `rebuild`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebuildProgress {
    /// Damaged stripes found in the shards this node rebuilds, since it started.
    pub stripes_found: u64,
    /// Of those, rebuilt (or found gone) so far.
    pub stripes_done: u64,
    /// Chunk bytes written by rebuild.
    pub bytes_rebuilt: u64,
    /// Stripes found with more chunks lost than their layout tolerates (unreadable until a node returns).
    pub stripes_unrecoverable: u64,
    /// Whether the rebuilder's last full pass over its shards found nothing left to do.
    pub idle: bool,
    /// Passes completed since the node started (a pass that began after some moment has completed once
    /// this grew by two).
    pub passes: u64,
    /// Full stripe-scrub cycles over this node's shards completed since start.
    pub scrub_cycles: u64,
    /// Chunks the stripe scrub found missing or inconsistent and put back, since start.
    pub scrub_repaired_chunks: u64,
    /// Whether the last completed scrub cycle found every chunk of every stripe present and consistent.
    pub scrub_clean: bool,
}

impl RebuildProgress {
    /// Adds `other`'s rebuild counters into these (a cluster-wide sum); `idle` only while both are.
    /// Scrub fields are per node and left alone.
    pub fn add_rebuild(&mut self, other: &RebuildProgress) {
        self.stripes_found += other.stripes_found;
        self.stripes_done += other.stripes_done;
        self.bytes_rebuilt += other.bytes_rebuilt;
        self.stripes_unrecoverable += other.stripes_unrecoverable;
        self.idle &= other.idle;
    }
}

/// A node's data endpoint's account of itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataStatus {
    pub chunks: u64,
    pub used_bytes: u64,
    pub free_bytes: u64,
    /// Drives fenced after a failure (their chunks are gone from the index).
    pub failed_drives: u32,
    /// Chunks scrub found corrupt and dropped, since start.
    pub scrub_bad_chunks: u64,
    /// Blocks scrub verified, since start.
    pub scrub_blocks_checked: u64,
    pub rebuild: RebuildProgress,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataMessage {
    /// Store a chunk durably. Answer: `PutDone`.
    Put {
        req: u64,
        meta: ChunkMeta,
        payload: Vec<u8>,
    },
    PutDone {
        req: u64,
        result: Result<(), DataError>,
    },
    /// Read `len_bytes` of a chunk's payload from `offset_bytes`. Answer: `GetDone`.
    Get {
        req: u64,
        key: ChunkKey,
        offset_bytes: u32,
        len_bytes: u32,
    },
    GetDone {
        req: u64,
        result: Result<Vec<u8>, DataError>,
    },
    /// Free chunks (unknown keys are fine). Answer: `FreeDone` once the frees are durable.
    Free {
        req: u64,
        keys: Vec<ChunkKey>,
    },
    FreeDone {
        req: u64,
        result: Result<(), DataError>,
    },
    /// The node's status. Answer: `StatusDone`.
    Status {
        req: u64,
    },
    StatusDone {
        req: u64,
        status: DataStatus,
    },
}

impl DataMessage {
    pub fn encode(&self) -> Vec<u8> {
        tessera_proto::encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<DataMessage, tessera_proto::CodecError> {
        tessera_proto::decode(bytes)
    }

    /// The request number a message carries.
    pub fn req(&self) -> u64 {
        match self {
            DataMessage::Put { req, .. }
            | DataMessage::PutDone { req, .. }
            | DataMessage::Get { req, .. }
            | DataMessage::GetDone { req, .. }
            | DataMessage::Free { req, .. }
            | DataMessage::FreeDone { req, .. }
            | DataMessage::Status { req }
            | DataMessage::StatusDone { req, .. } => *req,
        }
    }
}
