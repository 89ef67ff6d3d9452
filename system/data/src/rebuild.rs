//! Declustered rebuild, chunk repair and parity scrub: the background duties every storage node runs
//! (DESIGN.md section 5; docs/design/data-path.md, "Rebuild").
//!
//! **Who rebuilds what.** Stripes are listed by the metadata shards that reference them
//! (`MetaOp::ScanStripes`). Each metadata shard is given to one live node by rendezvous hashing of
//! (shard, node) over the live nodes of the [`DataMap`], so with thousands of shards every surviving
//! node rebuilds a share of the damaged stripes in parallel, and the chunks it writes go to nodes
//! chosen by hashing too: reads, decodes and writes spread over the whole cluster (declustering).
//!
//! **A pass** ([`Rebuilder::pass`]): drain the repair queue (chunks scrub found bad on this node, put
//! back from the others); then, if any node is dead, scan this node's shards for stripes naming a dead
//! node, order them most-damaged first, and for each: read the surviving chunks (whole), decode the
//! lost ones, write each to a live node in a failure domain the stripe does not use yet, and record
//! the move in metadata (`MetaOp::MoveChunk`, which succeeds only if the chunk is still where the
//! rebuilder found it). A chunk written for a stripe that was freed or moved meanwhile is freed again.
//! Stripes that lost more chunks than their layout tolerates are counted as unrecoverable and left
//! alone (their chunks may come back with their nodes).
//!
//! **Throttling.** One stripe at a time per node, and a byte rate per node
//! ([`RebuildConfig::rate_bytes_per_s`]) enforced by sleeping after each stripe; client I/O goes to the
//! same data endpoints and is not queued behind rebuild.
//!
//! **Progress** is published in a shared [`RebuildProgress`] that the node's data endpoint reports in
//! its status (`DataMessage::Status`); the client library sums it over the nodes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tessera_config::placement::PlacementNode;
use tessera_env::{Clock, MonoTime, Net, NodeId, Rng, WallClock, buggify, mark};
use tessera_meta::client::{ClientError, MetaClient};
use tessera_meta::content::{StripeId, StripeRef};
use tessera_meta::{Errno, InodeId, MetaOp, MetaReply};

use crate::reclaim::Reclaimer;
use crate::stripe_io::{
    ChunkPut, StripeIo, StripeIoError, StripeShape, decode_stripe, encode_stripe, splitmix64, stripe_key,
    whole_chunk_gets,
};
use crate::wire::{ChunkKey, ChunkMeta, RebuildProgress};

/// The nodes the data path may use, as the config service decides (the embedding process writes it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataMap {
    /// Bumped by every change.
    pub epoch: u64,
    /// Every member, dead or alive.
    pub nodes: Vec<PlacementNode>,
    /// Members declared dead: their chunks are rebuilt elsewhere.
    pub dead: BTreeSet<NodeId>,
}

impl DataMap {
    pub fn new(nodes: Vec<PlacementNode>) -> DataMap {
        DataMap { epoch: 1, nodes, dead: BTreeSet::new() }
    }

    /// The members not declared dead.
    pub fn live(&self) -> Vec<PlacementNode> {
        self.nodes.iter().copied().filter(|n| !self.dead.contains(&n.id)).collect()
    }

    pub fn declare_dead(&mut self, ids: &[NodeId]) {
        self.dead.extend(ids.iter().copied());
        self.epoch += 1;
    }

    /// The failure domain of `id`, if it is a member.
    pub fn rack_of(&self, id: NodeId) -> Option<u32> {
        self.nodes.iter().find(|n| n.id == id).map(|n| n.rack)
    }

    /// Whether every member in failure domain `rack` is declared dead (false for a rack without members).
    pub fn rack_is_dead(&self, rack: u32) -> bool {
        let mut members = self.nodes.iter().filter(|n| n.rack == rack).peekable();
        members.peek().is_some() && members.all(|n| self.dead.contains(&n.id))
    }
}

pub type SharedDataMap = Arc<Mutex<DataMap>>;
/// Chunks this node's scrub found bad, waiting to be put back (filled by `crate::host`).
pub type RepairQueue = Arc<Mutex<VecDeque<ChunkMeta>>>;
pub type SharedProgress = Arc<Mutex<RebuildProgress>>;

/// What a node's rebuilder shares with the rest of the node: the data map it reads, the repair queue
/// its chunk host fills, the progress its chunk host reports.
#[derive(Clone, Debug)]
pub struct NodeShared {
    pub map: SharedDataMap,
    pub repairs: RepairQueue,
    pub progress: SharedProgress,
}

/// Tunables of a node's rebuilder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RebuildConfig {
    /// Pause between passes.
    pub pass_interval_ms: u64,
    /// Chunk bytes this node rebuilds per second at most (0: unlimited).
    pub rate_bytes_per_s: u64,
    /// Stripes asked per `ScanStripes` page.
    pub scan_page_stripes: u32,
    /// Scrub-found chunks repaired per pass at most.
    pub repairs_per_pass_max: usize,
    /// Garbage stripes taken per shard per reclaim round.
    pub reclaim_batch_stripes: u32,
    /// Stripes the stripe scrub verifies per pass (0: no stripe scrub).
    pub scrub_stripes_per_pass: u32,
    /// A new stripe-scrub cycle starts at least this long after the previous one started (0: at once,
    /// within the same pass). Without it, a node whose shards hold few stripes re-scans them, one
    /// metadata read per shard, many times a second.
    pub scrub_cycle_interval_ms: u64,
}

impl Default for RebuildConfig {
    fn default() -> RebuildConfig {
        RebuildConfig {
            pass_interval_ms: 1_000,
            rate_bytes_per_s: 256 * 1024 * 1024,
            scan_page_stripes: 256,
            repairs_per_pass_max: 256,
            reclaim_batch_stripes: 256,
            scrub_stripes_per_pass: 64,
            scrub_cycle_interval_ms: 0,
        }
    }
}

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Damaged stripes found in this node's shards.
    pub damaged: u64,
    pub rebuilt: u64,
    pub unrecoverable: u64,
    /// Stripes that could not be finished this pass (read, write or metadata failures): retried next.
    pub deferred: u64,
    pub repaired: u64,
}

/// Why a stripe was not rebuilt in this pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RebuildError {
    /// Something did not answer or failed for now: the next pass tries again.
    Retry,
    /// Fewer chunks are left than the stripe needs (besides the dead nodes' chunks, others are gone).
    Unrecoverable,
}

/// A damaged stripe: the chunks lost, the inode referencing it.
#[derive(Clone, Debug)]
struct Damaged {
    ino: InodeId,
    stripe: StripeRef,
    lost: Vec<u8>,
}

/// One node's rebuilder (see the module documentation).
pub struct Rebuilder<C: Clock, W: WallClock, N: Net, R: Rng> {
    id: NodeId,
    shards: u16,
    meta: MetaClient<C, W, N, R>,
    io: StripeIo<C, N>,
    clock: C,
    map: SharedDataMap,
    repairs: RepairQueue,
    progress: SharedProgress,
    config: RebuildConfig,
    /// Stripes counted in `progress.stripes_found` already (so a retried stripe is not counted twice).
    counted: BTreeSet<StripeId>,
    unrecoverable: BTreeSet<StripeId>,
    scrub: ScrubCursor,
}

/// Where the stripe scrub resumes: the shard (index into this node's shards) and the last stripe seen.
#[derive(Clone, Debug, Default)]
struct ScrubCursor {
    shard_index: usize,
    after: Option<(InodeId, StripeId)>,
    /// Chunks repaired in the cycle under way.
    repaired: u64,
    /// Whether the cycle under way could not check some stripe.
    incomplete: bool,
    /// When the cycle under way began (the next may begin `scrub_cycle_interval_ms` later).
    started: Option<MonoTime>,
}

impl<C: Clock, W: WallClock, N: Net, R: Rng> std::fmt::Debug for Rebuilder<C, W, N, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rebuilder").field("id", &self.id).field("shards", &self.shards).finish_non_exhaustive()
    }
}

/// The live node that rebuilds (and reclaims) shard `shard`: the highest rendezvous score.
pub fn shard_owner(shard: u16, live: &[PlacementNode]) -> Option<NodeId> {
    live.iter().max_by_key(|n| (splitmix64(u64::from(shard) ^ splitmix64(n.id.0)), n.id)).map(|n| n.id)
}

/// Where lost chunk `index` of `stripe` goes: a live node in a failure domain no other chunk of the
/// stripe uses (`used`), chosen by rendezvous hashing of (stripe, index, node); `None` if there is none.
pub fn rebuild_target(stripe: StripeId, index: u8, live: &[PlacementNode], used: &BTreeSet<u32>) -> Option<NodeId> {
    let key = splitmix64(stripe_key(stripe) ^ u64::from(index));
    live.iter().filter(|n| !used.contains(&n.rack)).max_by_key(|n| (splitmix64(key ^ n.id.0), n.id)).map(|n| n.id)
}

impl<C: Clock, W: WallClock, N: Net, R: Rng> Rebuilder<C, W, N, R> {
    /// `meta` and `io` are this rebuilder's own endpoints (not the node's host or data endpoint).
    pub fn new(
        id: NodeId,
        shards: u16,
        endpoints: (MetaClient<C, W, N, R>, StripeIo<C, N>),
        clock: C,
        shared: NodeShared,
        config: RebuildConfig,
    ) -> Rebuilder<C, W, N, R> {
        let (meta, io) = endpoints;
        let NodeShared { map, repairs, progress } = shared;
        Rebuilder {
            id,
            shards,
            meta,
            io,
            clock,
            map,
            repairs,
            progress,
            config,
            counted: BTreeSet::new(),
            unrecoverable: BTreeSet::new(),
            scrub: ScrubCursor::default(),
        }
    }

    /// Passes forever, `pass_interval_ms` apart; garbage of this node's shards is reclaimed after each.
    pub async fn run(mut self) {
        loop {
            let report = self.pass().await;
            let map = self.map.lock().expect("data map").clone();
            let mine = self.my_shards(&map.live());
            let _ =
                Reclaimer::reclaim_once(&mut self.meta, &mut self.io, &mine, &map, self.config.reclaim_batch_stripes)
                    .await;
            if report.damaged == 0 && report.repaired == 0 {
                self.clock.sleep(Duration::from_millis(self.config.pass_interval_ms)).await;
            }
        }
    }

    fn my_shards(&self, live: &[PlacementNode]) -> Vec<u16> {
        (0..self.shards).filter(|&s| shard_owner(s, live) == Some(self.id)).collect()
    }

    /// One pass: repairs, then the damaged stripes of this node's shards, most damaged first.
    pub async fn pass(&mut self) -> PassReport {
        let map = self.map.lock().expect("data map").clone();
        let live = map.live();
        let mut report = PassReport::default();
        if map.dead.contains(&self.id) {
            return report;
        }
        report.repaired = self.repair_scrubbed(&map).await;
        let mut damaged = Vec::new();
        let mut complete = true;
        if !map.dead.is_empty() {
            for shard in self.my_shards(&live) {
                match self.scan_damaged(shard, &map.dead).await {
                    Ok(mut found) => damaged.append(&mut found),
                    Err(_) => complete = false,
                }
            }
        }
        damaged.sort_by(|a, b| {
            b.lost.len().cmp(&a.lost.len()).then(a.ino.cmp(&b.ino)).then(a.stripe.id.cmp(&b.stripe.id))
        });
        report.damaged = damaged.len() as u64;
        {
            let mut p = self.progress.lock().expect("progress");
            for d in &damaged {
                if self.counted.insert(d.stripe.id) {
                    p.stripes_found += 1;
                }
            }
        }
        for d in damaged {
            if d.lost.len() > d.stripe.layout.tolerated_losses() {
                report.unrecoverable += 1;
                if self.unrecoverable.insert(d.stripe.id) {
                    self.progress.lock().expect("progress").stripes_unrecoverable += 1;
                }
                continue;
            }
            match self.rebuild_stripe(&d, &map).await {
                Ok(bytes) => {
                    report.rebuilt += 1;
                    {
                        let mut p = self.progress.lock().expect("progress");
                        p.stripes_done += 1;
                        p.bytes_rebuilt += bytes;
                    }
                    self.throttle(bytes).await;
                }
                Err(RebuildError::Retry) => {
                    mark!("data.rebuild_deferred");
                    report.deferred += 1;
                }
                Err(RebuildError::Unrecoverable) => {
                    report.unrecoverable += 1;
                    if self.unrecoverable.insert(d.stripe.id) {
                        self.progress.lock().expect("progress").stripes_unrecoverable += 1;
                    }
                }
            }
        }
        if self.config.scrub_stripes_per_pass > 0 && (map.dead.is_empty() || report.damaged == report.unrecoverable) {
            report.repaired += self.scrub_stripes(&map).await;
        }
        // A pass that began before nodes were declared dead never looked for their stripes: not idle.
        let dead_unchanged = self.map.lock().expect("data map").dead == map.dead;
        let idle = dead_unchanged && complete && report.damaged == report.unrecoverable && report.deferred == 0;
        {
            let mut p = self.progress.lock().expect("progress");
            p.idle = idle && report.repaired == 0;
            p.passes += 1;
        }
        report
    }

    /// Sleep long enough that `bytes` keep within the configured rate (takes `&mut self`: the future
    /// must stay `Send`, and the metadata client is not `Sync`).
    async fn throttle(&mut self, bytes: u64) {
        if self.config.rate_bytes_per_s > 0 && bytes > 0 {
            let us = bytes.saturating_mul(1_000_000) / self.config.rate_bytes_per_s;
            self.clock.sleep(Duration::from_micros(us)).await;
        }
        if buggify!("data.rebuild_slow") {
            // Fault hook: a slow rebuilder (a busy node), so clients meet half-rebuilt stripes longer.
            self.clock.sleep(Duration::from_secs(1)).await;
        }
    }

    /// Every stripe of `shard` naming a dead node.
    async fn scan_damaged(&mut self, shard: u16, dead: &BTreeSet<NodeId>) -> Result<Vec<Damaged>, ClientError> {
        let mut found = Vec::new();
        let mut after = None;
        loop {
            let op = MetaOp::ScanStripes { shard, after, max: self.config.scan_page_stripes };
            let (stripes, next) = match self.meta.execute(op).await? {
                Ok(MetaReply::Stripes { stripes, next }) => (stripes, next),
                Ok(other) => return Err(ClientError::UnexpectedReply { op: "ScanStripes", got: Box::new(other) }),
                Err(errno) => return Err(ClientError::Posix(errno)),
            };
            for (ino, stripe) in stripes {
                let lost: Vec<u8> =
                    (0..stripe.nodes.len()).filter(|&i| dead.contains(&stripe.nodes[i])).map(|i| i as u8).collect();
                if !lost.is_empty() {
                    found.push(Damaged { ino, stripe, lost });
                }
            }
            match next {
                Some(n) => after = Some(n),
                None => return Ok(found),
            }
        }
    }

    /// Rebuild one stripe's lost chunks onto new nodes; returns the chunk bytes written.
    async fn rebuild_stripe(&mut self, d: &Damaged, map: &DataMap) -> Result<u64, RebuildError> {
        let live = map.live();
        let skip: BTreeSet<u8> = d.lost.iter().copied().collect();
        let (chunks, _failures) = match self.io.read_stripe_chunks(&d.stripe, &skip).await {
            Ok(read) => read,
            // Too few chunks left, and every missing one is gone for sure (not merely unanswered).
            Err(StripeIoError::Unrecoverable { failures, .. }) if failures.iter().all(|f| f.error.chunk_lost()) => {
                return Err(RebuildError::Unrecoverable);
            }
            Err(_) => return Err(RebuildError::Retry),
        };
        let mut used: BTreeSet<u32> = (0..d.stripe.nodes.len() as u8)
            .filter(|i| !skip.contains(i))
            .filter_map(|i| map.rack_of(d.stripe.nodes[usize::from(i)]))
            .collect();
        let mut puts = Vec::new();
        for &index in &d.lost {
            let target = rebuild_target(d.stripe.id, index, &live, &used).ok_or(RebuildError::Retry)?;
            used.insert(map.rack_of(target).expect("a live node is a member"));
            let key = ChunkKey { stripe: d.stripe.id, index };
            puts.push(ChunkPut { node: target, key, payload: chunks[usize::from(index)].clone() });
        }
        let targets: Vec<(u8, NodeId)> = puts.iter().map(|p| (p.key.index, p.node)).collect();
        let results = self.io.put_chunks(d.ino, d.stripe.layout, puts).await;
        // Fault hook: defer as if a put had failed (the next pass puts the same chunks again, a no-op).
        if results.iter().any(Result::is_err) || buggify!("data.rebuild_defer") {
            // Not freed: the next pass puts the same chunks to the same targets again (a put of the same
            // key and bytes is a no-op), and a free re-sent or delayed past that put would delete it.
            return Err(RebuildError::Retry);
        }
        let mut bytes = 0;
        for &(index, to) in &targets {
            let from = d.stripe.nodes[usize::from(index)];
            let op = MetaOp::MoveChunk { ino: d.ino, stripe: d.stripe.id, index, from, to };
            match self.meta.execute(op).await {
                Ok(Ok(_)) => {
                    bytes += u64::from(d.stripe.chunk_len_bytes);
                    if map.rack_of(from).is_some_and(|rack| map.rack_is_dead(rack)) {
                        mark!("data.rebuild_after_rack_loss");
                    }
                }
                // Freed meanwhile: our copy is not referenced.
                Ok(Err(Errno::ENOENT | Errno::ESTALE)) => {
                    self.free_best_effort(d.stripe.id, &[(index, to)]).await;
                }
                // Moved by someone else (another rebuilder owning the shard under a newer map, or our
                // own earlier attempt whose answer was lost): possibly to the very node we chose, so our
                // copy is freed only if the stripe now names another node.
                Ok(Err(Errno::EAGAIN)) => {
                    let op = MetaOp::GetStripe { ino: d.ino, stripe: d.stripe.id };
                    match self.meta.execute(op).await {
                        Ok(Ok(MetaReply::Stripe(now))) if now.nodes.get(usize::from(index)) != Some(&to) => {
                            self.free_best_effort(d.stripe.id, &[(index, to)]).await;
                        }
                        Ok(Err(Errno::ENOENT | Errno::ESTALE)) => {
                            self.free_best_effort(d.stripe.id, &[(index, to)]).await;
                        }
                        _ => {}
                    }
                }
                // Unknown outcome: the next pass sees where the chunk is (the same target is chosen again).
                _ => return Err(RebuildError::Retry),
            }
        }
        Ok(bytes)
    }

    async fn free_best_effort(&mut self, stripe: StripeId, chunks: &[(u8, NodeId)]) {
        let mut by_node: BTreeMap<NodeId, Vec<ChunkKey>> = BTreeMap::new();
        for &(index, node) in chunks {
            by_node.entry(node).or_default().push(ChunkKey { stripe, index });
        }
        let _ = self.io.free_chunks(by_node.into_iter().collect()).await;
    }

    /// Put back the chunks this node's scrub dropped: each rebuilt from the stripe's other chunks.
    async fn repair_scrubbed(&mut self, map: &DataMap) -> u64 {
        let mut repaired = 0;
        for _ in 0..self.config.repairs_per_pass_max {
            let next = self.repairs.lock().expect("repair queue").pop_front();
            let Some(bad) = next else { break };
            let op = MetaOp::GetStripe { ino: bad.owner, stripe: bad.key.stripe };
            let stripe = match self.meta.execute(op).await {
                Ok(Ok(MetaReply::Stripe(stripe))) => stripe,
                // No longer referenced: nothing to repair.
                Ok(Err(_)) => continue,
                // No answer: try again next pass.
                _ => {
                    self.repairs.lock().expect("repair queue").push_back(bad);
                    break;
                }
            };
            let index = bad.key.index;
            if stripe.nodes.get(usize::from(index)) != Some(&self.id) || map.dead.contains(&self.id) {
                continue;
            }
            // Chunks on nodes declared dead are not asked for (they would only time out); the map is read
            // again for each repair, since nodes may be declared dead while a long queue drains.
            let dead = self.map.lock().expect("data map").dead.clone();
            let mut skip = BTreeSet::from([index]);
            skip.extend((0..stripe.nodes.len()).filter(|&i| dead.contains(&stripe.nodes[i])).map(|i| i as u8));
            let Ok((chunks, _)) = self.io.read_stripe_chunks(&stripe, &skip).await else {
                self.repairs.lock().expect("repair queue").push_back(bad);
                break;
            };
            let put = ChunkPut { node: self.id, key: bad.key, payload: chunks[usize::from(index)].clone() };
            if self.io.put_chunks(bad.owner, stripe.layout, vec![put]).await.iter().all(Result::is_ok) {
                repaired += 1;
            }
        }
        repaired
    }

    /// Verify up to `scrub_stripes_per_pass` stripes of this node's shards, resuming where the last pass
    /// stopped: every chunk is read whole (the node verifies its checksums), and the parity is computed
    /// again from the data and compared. A chunk that is missing, corrupt or inconsistent is put back on
    /// its node (decoded from the others; with all chunks present and the parity disagreeing, the data
    /// chunks are taken as right, since each passed its checksum, and the parity is rewritten). Returns
    /// the chunks repaired.
    async fn scrub_stripes(&mut self, map: &DataMap) -> u64 {
        let live = map.live();
        let shards = self.my_shards(&live);
        let mut budget = self.config.scrub_stripes_per_pass;
        let mut repaired = 0;
        let mut unanswered = BTreeSet::new();
        while budget > 0 {
            // Nodes declared dead since the pass began: their stripes come first (the next pass), and a
            // scrub cycle completed now would vouch for a cluster this pass never scanned for damage.
            if self.map.lock().expect("data map").dead != map.dead {
                break;
            }
            if self.scrub.started.is_none() {
                self.scrub.started = Some(self.clock.now());
            }
            if self.scrub.shard_index >= shards.len() {
                let interval = Duration::from_millis(self.config.scrub_cycle_interval_ms);
                if let Some(started) = self.scrub.started
                    && self.clock.now() < started + interval
                {
                    break;
                }
                let cycle = std::mem::take(&mut self.scrub);
                {
                    let mut p = self.progress.lock().expect("progress");
                    p.scrub_cycles += 1;
                    p.scrub_clean = cycle.repaired + repaired == 0 && !cycle.incomplete;
                }
                if shards.is_empty() {
                    break;
                }
                budget -= 1;
                continue;
            }
            let shard = shards[self.scrub.shard_index];
            let max = budget.min(self.config.scan_page_stripes);
            let op = MetaOp::ScanStripes { shard, after: self.scrub.after, max };
            let (stripes, next) = match self.meta.execute(op).await {
                Ok(Ok(MetaReply::Stripes { stripes, next })) => (stripes, next),
                _ => {
                    self.scrub.incomplete = true;
                    self.scrub.shard_index += 1;
                    self.scrub.after = None;
                    continue;
                }
            };
            budget = budget.saturating_sub(stripes.len().max(1) as u32);
            for (ino, stripe) in &stripes {
                // Stripes on dead nodes are the rebuild's; the map is read again for each stripe, since
                // nodes may be declared dead during a pass. A node that did not answer this pass is not
                // asked again before the next one (the cycle is then incomplete).
                let dead = self.map.lock().expect("data map").dead.clone();
                if stripe.nodes.iter().any(|n| dead.contains(n) || map.dead.contains(n)) {
                    continue;
                }
                if stripe.nodes.iter().any(|n| unanswered.contains(n)) {
                    self.scrub.incomplete = true;
                    continue;
                }
                match self.scrub_stripe(*ino, stripe, &mut unanswered).await {
                    Ok(n) => repaired += n,
                    Err(()) => self.scrub.incomplete = true,
                }
            }
            match next {
                Some(n) => self.scrub.after = Some(n),
                None => {
                    self.scrub.shard_index += 1;
                    self.scrub.after = None;
                }
            }
        }
        self.scrub.repaired += repaired;
        self.progress.lock().expect("progress").scrub_repaired_chunks += repaired;
        repaired
    }

    /// Check one stripe (see [`Rebuilder::scrub_stripes`]); returns the chunks put back.
    async fn scrub_stripe(
        &mut self,
        ino: InodeId,
        stripe: &StripeRef,
        unanswered: &mut BTreeSet<NodeId>,
    ) -> Result<u64, ()> {
        let total = stripe.nodes.len();
        let gets = whole_chunk_gets(stripe);
        let mut have: Vec<Option<Vec<u8>>> = Vec::with_capacity(total);
        let mut lost = BTreeSet::new();
        for (i, result) in self.io.get_chunks(&gets).await.into_iter().enumerate() {
            match result {
                Ok(bytes) => have.push(Some(bytes)),
                Err(e) if e.chunk_lost() => {
                    lost.insert(i as u8);
                    have.push(None);
                }
                // No answer: the node may be down; rebuild or a later cycle deals with it.
                Err(_) => {
                    unanswered.insert(gets[i].node);
                    return Err(());
                }
            }
        }
        let all = decode_stripe(stripe.layout, stripe.chunk_len_bytes, have.clone()).map_err(|_| ())?;
        let data: Vec<u8> = all[..stripe.layout.data_chunks()].concat();
        let shape = StripeShape {
            layout: stripe.layout,
            chunk_len_bytes: stripe.chunk_len_bytes,
            data_len_bytes: stripe.data_len_bytes,
        };
        let expected = encode_stripe(&shape, &data[..stripe.data_len_bytes as usize]).map_err(|_| ())?;
        let mut puts = Vec::new();
        for (i, got) in have.iter().enumerate() {
            let wrong = got.as_ref().is_some_and(|got| *got != expected[i]);
            if lost.contains(&(i as u8)) || wrong {
                let key = ChunkKey { stripe: stripe.id, index: i as u8 };
                puts.push(ChunkPut { node: stripe.nodes[i], key, payload: expected[i].clone() });
            }
        }
        if puts.is_empty() {
            return Ok(0);
        }
        // Still referenced, and not moved? (A stripe freed since the scan must not get chunks back.)
        match self.meta.execute(MetaOp::GetStripe { ino, stripe: stripe.id }).await {
            Ok(Ok(MetaReply::Stripe(now))) if now.nodes == stripe.nodes => {}
            _ => return Err(()),
        }
        let n = puts.len() as u64;
        if self.io.put_chunks(ino, stripe.layout, puts).await.iter().all(Result::is_ok) { Ok(n) } else { Err(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(racks: u32, per_rack: u32) -> Vec<PlacementNode> {
        (0..racks)
            .flat_map(|r| {
                (0..per_rack).map(move |i| PlacementNode { id: NodeId(u64::from(r * 10 + i + 1)), rack: r, weight: 1 })
            })
            .collect()
    }

    /// Every shard has exactly one owner, and with many shards every live node owns some: rebuild work
    /// is spread over the whole cluster.
    #[test]
    fn shards_spread_over_every_live_node() {
        let live = nodes(16, 2);
        let mut owned: BTreeMap<NodeId, u32> = BTreeMap::new();
        for shard in 0..4096u16 {
            *owned.entry(shard_owner(shard, &live).unwrap()).or_default() += 1;
        }
        assert_eq!(owned.len(), live.len(), "every node owns shards");
        let even = 4096 / live.len() as u32;
        assert!(owned.values().all(|&n| n > even / 2 && n < even * 2), "{owned:?}");
    }

    /// A rebuilt chunk never lands in a failure domain the stripe already uses, and the choice is
    /// deterministic.
    #[test]
    fn targets_avoid_used_domains() {
        let live = nodes(8, 2);
        for s in 0..500u64 {
            let used: BTreeSet<u32> = (0..5).map(|r| ((s as u32) + r) % 8).collect();
            let id = StripeId::new(7, s);
            let t = rebuild_target(id, 3, &live, &used).unwrap();
            let rack = live.iter().find(|n| n.id == t).unwrap().rack;
            assert!(!used.contains(&rack));
            assert_eq!(rebuild_target(id, 3, &live, &used), Some(t));
        }
        let all: BTreeSet<u32> = (0..8).collect();
        assert_eq!(rebuild_target(StripeId::new(1, 1), 0, &live, &all), None);
    }
}
