//! The read path (map, then zeros, inline bytes and stripe pieces, degraded if need be) and the repair
//! queue degraded reads fill.

use std::collections::BTreeSet;

use tessera_env::{Clock, Net, Rng, WallClock, mark};
use tessera_meta::content::{FileMap, StripeRef};
use tessera_meta::{Errno, InodeId, MetaOp, MetaReply};

use super::{DataClient, DataPathError, unexpected};
use crate::stripe_io::{ChunkError, ChunkPut, StripeIoError};
use crate::wire::ChunkKey;

/// Maps a read asks for before giving up on an unrecoverable stripe (a concurrent overwrite may have
/// freed the stripe the first map named: the next map names the new one).
pub const READ_MAP_ATTEMPTS_MAX: u32 = 3;

/// Longest read one call serves (the bytes are returned in one buffer); longer is EINVAL.
pub const READ_LEN_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Chunks of one stripe a read found gone, to put back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeRepair {
    pub ino: InodeId,
    pub stripe: StripeRef,
    /// Chunk indexes, ascending.
    pub lost: Vec<u8>,
}

/// What [`DataClient::run_repairs`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Chunks put back.
    pub chunks_repaired: u64,
    /// Stripes skipped: no longer referenced, moved by rebuild, or their node is not live.
    pub stripes_skipped: u64,
    /// Stripes whose repair failed (unreadable now, or a put failed); dropped from the queue.
    pub stripes_failed: u64,
}

impl<C: Clock, W: WallClock, N: Net, R: Rng> DataClient<C, W, N, R> {
    /// Reads `len` bytes of regular file `ino` from `offset` (fewer at the end of the file); `len` at
    /// most [`READ_LEN_MAX_BYTES`] (EINVAL otherwise).
    pub async fn read(&mut self, ino: InodeId, offset: u64, len: u64) -> Result<Vec<u8>, DataPathError> {
        if len > READ_LEN_MAX_BYTES {
            return Err(DataPathError::Posix(Errno::EINVAL));
        }
        let mut attempt = 1;
        loop {
            let map = match self.meta_call(MetaOp::ReadMap { ino, offset, len }, false).await? {
                MetaReply::FileMap(map) => map,
                other => return Err(unexpected("read", other)),
            };
            match self.assemble(ino, offset, len, &map).await {
                Err(DataPathError::Unrecoverable { .. }) if attempt < READ_MAP_ATTEMPTS_MAX => attempt += 1,
                result => return result,
            }
        }
    }

    /// Lays out zeros, then the inline bytes, then every piece read from its stripe.
    async fn assemble(&mut self, ino: InodeId, offset: u64, len: u64, map: &FileMap) -> Result<Vec<u8>, DataPathError> {
        let end = offset.saturating_add(len).min(map.size);
        let out_len = usize::try_from(end.saturating_sub(offset)).map_err(|_| bad("read too large"))?;
        let mut out = vec![0u8; out_len];
        let inline = map.inline.len().min(out_len);
        out[..inline].copy_from_slice(&map.inline[..inline]);
        for piece in &map.pieces {
            let start = piece.file_offset.checked_sub(offset).ok_or_else(|| bad("piece before the range"))?;
            let stop = start.checked_add(piece.len_bytes).filter(|&s| s <= out_len as u64);
            let stop = stop.ok_or_else(|| bad("piece beyond the range"))?;
            let stripe_offset = u32::try_from(piece.stripe_offset_bytes).map_err(|_| bad("stripe offset"))?;
            let piece_len = u32::try_from(piece.len_bytes).map_err(|_| bad("piece length"))?;
            let read = self.io.read_stripe_range(&piece.stripe, stripe_offset, piece_len).await?;
            out[start as usize..stop as usize].copy_from_slice(&read.bytes);
            let lost = read.lost_indexes();
            if !lost.is_empty() {
                self.queue_repair(StripeRepair { ino, stripe: piece.stripe.clone(), lost });
            }
        }
        Ok(out)
    }

    fn queue_repair(&mut self, repair: StripeRepair) {
        if let Some(queued) = self.repairs.iter_mut().find(|r| r.stripe.id == repair.stripe.id) {
            let merged: BTreeSet<u8> = queued.lost.iter().chain(&repair.lost).copied().collect();
            queued.lost = merged.into_iter().collect();
        } else if self.repairs.len() < self.config.repair_queue_max {
            self.repairs.push_back(repair);
        } else {
            self.repairs_dropped += 1;
        }
    }

    /// Drains the repair queue: for each stripe still referenced by its inode, reconstructs the lost
    /// chunks and puts them back on the node that should hold them (same key), if that node is still
    /// the stripe's (rebuild did not move the chunk) and is live. A metadata error stops the drain and
    /// keeps the repair at hand queued.
    pub async fn run_repairs(&mut self) -> Result<RepairReport, DataPathError> {
        let mut report = RepairReport::default();
        while let Some(repair) = self.repairs.pop_front() {
            let op = MetaOp::GetStripe { ino: repair.ino, stripe: repair.stripe.id };
            let current = match self.meta_call(op, false).await {
                Ok(MetaReply::Stripe(stripe)) => stripe,
                Ok(other) => return Err(unexpected("get stripe", other)),
                Err(DataPathError::Posix(Errno::ENOENT | Errno::ESTALE)) => {
                    report.stripes_skipped += 1;
                    continue;
                }
                Err(e) => {
                    self.repairs.push_front(repair);
                    return Err(e);
                }
            };
            let targets: BTreeSet<u8> = repair
                .lost
                .iter()
                .copied()
                .filter(|&i| {
                    let node = current.nodes.get(usize::from(i));
                    node.is_some_and(|n| Some(n) == repair.stripe.nodes.get(usize::from(i)))
                        && node.is_some_and(|n| self.nodes.iter().any(|live| live.id == *n))
                })
                .collect();
            if targets.is_empty() {
                report.stripes_skipped += 1;
                continue;
            }
            let chunks = match self.io.read_stripe_chunks(&current, &targets).await {
                Ok((chunks, _)) => chunks,
                Err(StripeIoError::Closed) => return Err(DataPathError::Closed),
                Err(_) => {
                    report.stripes_failed += 1;
                    continue;
                }
            };
            let puts: Vec<ChunkPut> = targets
                .iter()
                .map(|&i| ChunkPut {
                    node: current.nodes[usize::from(i)],
                    key: ChunkKey { stripe: current.id, index: i },
                    payload: chunks[usize::from(i)].clone(),
                })
                .collect();
            let results = self.io.put_chunks(repair.ino, current.layout, puts).await;
            if results.contains(&Err(ChunkError::Closed)) {
                return Err(DataPathError::Closed);
            }
            let repaired = results.iter().filter(|r| r.is_ok()).count() as u64;
            if repaired > 0 {
                mark!("data.repair_put_back");
            }
            report.chunks_repaired += repaired;
            if results.iter().any(Result::is_err) {
                report.stripes_failed += 1;
            }
        }
        Ok(report)
    }
}

fn bad(what: &str) -> DataPathError {
    DataPathError::BadMap(format!("file map: {what}"))
}
