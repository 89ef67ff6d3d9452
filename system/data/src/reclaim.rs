//! Space reclamation (docs/design/data-path.md, "Garbage"): a shard queues every stripe its files stop
//! referencing; the [`Reclaimer`] takes the oldest entries, frees every chunk of each stripe on the node
//! holding it, and releases the entries whose frees all succeeded. A lost release only means a stripe
//! is freed twice (frees are idempotent). A stripe is released only once every node it names has
//! confirmed the free, except nodes known removed from the cluster (skipped and counted): a node that is
//! merely down keeps its stripes pending until it answers.
//!
//! Two entry points over one loop: [`Reclaimer::reclaim`] with the reclaimer's own metadata client and
//! data endpoint (removed nodes set by [`Reclaimer::set_removed_nodes`]), and the associated
//! [`Reclaimer::reclaim_once`] over borrowed ones (the rebuilder's, after each pass; nodes the
//! [`DataMap`] declares dead or no longer lists are skipped).
//!
//! Limitation: `TakeGarbage` answers the oldest entries only, so a stripe on a node that is down but not
//! declared dead holds back its shard's queue behind it until the node answers or is declared dead.

use std::collections::{BTreeMap, BTreeSet};

use tessera_env::{Clock, Net, NodeId, Rng, WallClock};
use tessera_meta::client::{ClientError, MetaClient};
use tessera_meta::content::{STRIPES_PAGE_MAX, StripeRef};
use tessera_meta::{Errno, MetaOp, MetaReply};

use crate::rebuild::DataMap;
use crate::stripe_io::{ChunkError, IoConfig, StripeIo};
use crate::wire::ChunkKey;

/// How a [`Reclaimer`] works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReclaimConfig {
    /// Garbage entries taken per `TakeGarbage` (1..=[`STRIPES_PAGE_MAX`]).
    pub take_max: u32,
    pub request_timeout_ms: u64,
    pub resend_max: u32,
}

impl Default for ReclaimConfig {
    fn default() -> ReclaimConfig {
        ReclaimConfig { take_max: 256, request_timeout_ms: 500, resend_max: 3 }
    }
}

/// Why a [`ReclaimConfig`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReclaimConfigError {
    #[error("take_max {0} outside 1..={STRIPES_PAGE_MAX}")]
    TakeMax(u32),
    #[error("request_timeout_ms {0} outside 1..={max}", max = crate::client::REQUEST_TIMEOUT_MS_MAX)]
    RequestTimeout(u64),
    #[error("resend_max {0} above {max}", max = crate::client::RESEND_MAX_LIMIT)]
    ResendMax(u32),
}

impl ReclaimConfig {
    pub fn validate(&self) -> Result<(), ReclaimConfigError> {
        if !(1..=STRIPES_PAGE_MAX).contains(&self.take_max) {
            return Err(ReclaimConfigError::TakeMax(self.take_max));
        }
        if !(1..=crate::client::REQUEST_TIMEOUT_MS_MAX).contains(&self.request_timeout_ms) {
            return Err(ReclaimConfigError::RequestTimeout(self.request_timeout_ms));
        }
        if self.resend_max > crate::client::RESEND_MAX_LIMIT {
            return Err(ReclaimConfigError::ResendMax(self.resend_max));
        }
        Ok(())
    }
}

/// What one [`Reclaimer::reclaim_once`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReclaimReport {
    /// Garbage entries released (every chunk freed).
    pub stripes_freed: u64,
    /// Chunk frees confirmed for released entries.
    pub chunks_freed: u64,
    /// Chunks not freed because their node is known removed.
    pub chunks_skipped: u64,
    /// Entries taken but left queued (some node did not confirm its frees).
    pub pending: u64,
}

/// Why a reclaim pass stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReclaimError {
    /// The shard answered with an error (EINVAL for a bad `max`; a shard that is not in the map).
    #[error("{0}")]
    Posix(Errno),
    /// No answer from metadata; nothing is lost (entries stay queued until released).
    #[error("metadata: {0}")]
    Meta(ClientError),
    /// The data endpoint is closed.
    #[error("data endpoint closed")]
    Closed,
}

/// Frees garbage stripes of some shards (see the module documentation). One pass at a time.
pub struct Reclaimer<C: Clock, W: WallClock, N: Net, R: Rng> {
    meta: MetaClient<C, W, N, R>,
    io: StripeIo<C, N>,
    config: ReclaimConfig,
    removed: BTreeSet<NodeId>,
}

impl<C: Clock, W: WallClock, N: Net, R: Rng> std::fmt::Debug for Reclaimer<C, W, N, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reclaimer")
            .field("io", &self.io)
            .field("config", &self.config)
            .field("removed", &self.removed)
            .finish_non_exhaustive()
    }
}

impl<C: Clock, W: WallClock, N: Net, R: Rng> Reclaimer<C, W, N, R> {
    /// A reclaimer over `meta` and its own data endpoint `data_net`; draws its first request number
    /// from `rng`.
    pub fn new(
        meta: MetaClient<C, W, N, R>,
        data_net: N,
        clock: C,
        rng: &mut R,
        config: ReclaimConfig,
    ) -> Result<Reclaimer<C, W, N, R>, ReclaimConfigError> {
        config.validate()?;
        let io_config = IoConfig {
            request_timeout: std::time::Duration::from_millis(config.request_timeout_ms),
            resend_max: config.resend_max,
        };
        let io = StripeIo::new(clock, data_net, io_config, rng.next_u64());
        Ok(Reclaimer { meta, io, config, removed: BTreeSet::new() })
    }

    /// Nodes removed from the cluster for good: their chunks are gone with them, so frees skip them.
    pub fn set_removed_nodes(&mut self, removed: BTreeSet<NodeId>) {
        self.removed = removed;
    }

    pub fn meta(&mut self) -> &mut MetaClient<C, W, N, R> {
        &mut self.meta
    }

    /// One pass over `shards` with this reclaimer's endpoints, skipping nodes set by
    /// [`Reclaimer::set_removed_nodes`]. See [`Reclaimer::reclaim_once`].
    pub async fn reclaim(&mut self, shards: &[u16]) -> Result<ReclaimReport, ReclaimError> {
        let removed = &self.removed;
        reclaim_shards(&mut self.meta, &mut self.io, shards, self.config.take_max, |n| removed.contains(&n)).await
    }

    /// One pass over `shards` with borrowed endpoints (the rebuilder's): per shard, take the oldest
    /// `take_max` garbage entries, free, release what was freed, and go on while whole batches are
    /// freed. Nodes `map` declares dead or no longer lists are skipped (their chunks went with them). A
    /// batch with a stripe that could not be freed ends the shard's pass (the queue is taken oldest
    /// first: the next pass retries it).
    pub async fn reclaim_once(
        meta: &mut MetaClient<C, W, N, R>,
        io: &mut StripeIo<C, N>,
        shards: &[u16],
        map: &DataMap,
        take_max: u32,
    ) -> Result<ReclaimReport, ReclaimError> {
        let gone = |n: NodeId| map.dead.contains(&n) || !map.nodes.iter().any(|m| m.id == n);
        reclaim_shards(meta, io, shards, take_max.clamp(1, STRIPES_PAGE_MAX), gone).await
    }
}

async fn reclaim_shards<C: Clock, W: WallClock, N: Net, R: Rng>(
    meta: &mut MetaClient<C, W, N, R>,
    io: &mut StripeIo<C, N>,
    shards: &[u16],
    take_max: u32,
    gone: impl Fn(NodeId) -> bool,
) -> Result<ReclaimReport, ReclaimError> {
    let mut report = ReclaimReport::default();
    for &shard in shards {
        loop {
            let batch = match meta_call(meta, MetaOp::TakeGarbage { shard, max: take_max }).await? {
                MetaReply::Garbage(batch) => batch,
                other => return Err(unexpected("take garbage", other)),
            };
            if batch.is_empty() {
                break;
            }
            let freed = free_batch(io, &batch, &gone, &mut report).await?;
            let all_freed = freed.len() == batch.len();
            report.pending += (batch.len() - freed.len()) as u64;
            if !freed.is_empty() {
                let count = freed.len() as u64;
                match meta_call(meta, MetaOp::ReleaseGarbage { shard, seqs: freed }).await? {
                    MetaReply::Done => {}
                    other => return Err(unexpected("release garbage", other)),
                }
                report.stripes_freed += count;
            }
            if !all_freed || batch.len() < take_max as usize {
                break;
            }
        }
    }
    Ok(report)
}

/// Frees every chunk of the batch's stripes (but those on `gone` nodes); the sequence numbers of the
/// entries fully freed.
async fn free_batch<C: Clock, N: Net>(
    io: &mut StripeIo<C, N>,
    batch: &[(u64, StripeRef)],
    gone: &impl Fn(NodeId) -> bool,
    report: &mut ReclaimReport,
) -> Result<Vec<u64>, ReclaimError> {
    let mut per_node: BTreeMap<NodeId, Vec<ChunkKey>> = BTreeMap::new();
    for (_, stripe) in batch {
        for (i, &node) in stripe.nodes.iter().enumerate() {
            if !gone(node) {
                per_node.entry(node).or_default().push(ChunkKey { stripe: stripe.id, index: i as u8 });
            }
        }
    }
    let nodes: Vec<NodeId> = per_node.keys().copied().collect();
    let results = io.free_chunks(per_node.into_iter().collect()).await;
    let mut failed = BTreeSet::new();
    for (node, result) in nodes.into_iter().zip(results) {
        match result {
            Ok(()) => {}
            Err(ChunkError::Closed) => return Err(ReclaimError::Closed),
            Err(_) => {
                failed.insert(node);
            }
        }
    }
    let mut freed = Vec::new();
    for (seq, stripe) in batch {
        if stripe.nodes.iter().any(|n| failed.contains(n)) {
            continue;
        }
        freed.push(*seq);
        let skipped = stripe.nodes.iter().filter(|&&n| gone(n)).count() as u64;
        report.chunks_skipped += skipped;
        report.chunks_freed += stripe.nodes.len() as u64 - skipped;
    }
    Ok(freed)
}

async fn meta_call<C: Clock, W: WallClock, N: Net, R: Rng>(
    meta: &mut MetaClient<C, W, N, R>,
    op: MetaOp,
) -> Result<MetaReply, ReclaimError> {
    match meta.execute(op).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(errno)) | Err(ClientError::Posix(errno)) => Err(ReclaimError::Posix(errno)),
        Err(e) => Err(ReclaimError::Meta(e)),
    }
}

fn unexpected(op: &'static str, got: MetaReply) -> ReclaimError {
    ReclaimError::Meta(ClientError::UnexpectedReply { op, got: Box::new(got) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_bounds() {
        assert_eq!(ReclaimConfig::default().validate(), Ok(()));
        let ok = ReclaimConfig::default();
        assert!(ReclaimConfig { take_max: 0, ..ok }.validate().is_err());
        assert!(ReclaimConfig { take_max: STRIPES_PAGE_MAX + 1, ..ok }.validate().is_err());
        assert!(ReclaimConfig { request_timeout_ms: 0, ..ok }.validate().is_err());
        assert!(ReclaimConfig { resend_max: crate::client::RESEND_MAX_LIMIT + 1, ..ok }.validate().is_err());
    }
}
