//! The clients of the data scenario and the durability checker.
//!
//! Each client owns a few files (one writer per file, so its model knows what every read must return):
//! it writes (small writes may stay inline, larger ones are striped), overwrites, truncates and reads
//! them back, checking every read against the model. An operation whose outcome is unknown adds a
//! candidate content; a later read settles it. After healing, [`check_files`] reads every file whole,
//! [`check_stripes`] checks every stripe's chunks on their nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tessera_config::placement::PlacementNode;
use tessera_data::client::{DataClient, DataClientConfig, DataPathError};
use tessera_data::rebuild::SharedDataMap;
use tessera_data::stripe_io::{ChunkError, StripeIo, StripeShape, encode_stripe, whole_chunk_gets};
use tessera_env::{Clock, DetRng, NodeId, Rng};
use tessera_meta::client::{ClientConfig, MetaClient, ShardDirectory};
use tessera_meta::content::StripeRef;
use tessera_meta::{Credentials, InodeId, MetaOp, MetaReply};

use super::DataScenario;
use super::model::{Change, FileModel};
use super::node::io_config;
use crate::cluster::Cluster;
use crate::env::{SimClock, SimWallClock};
use crate::net::SimNet;

pub type SimDataClient = DataClient<SimClock, SimWallClock, SimNet, DetRng>;

fn creds() -> Credentials {
    Credentials::root()
}

/// A client on endpoint `id` (metadata) and its data endpoint, on a node of its own.
pub fn make_client(
    cluster: &Cluster,
    id: NodeId,
    directory: ShardDirectory,
    meta_config: ClientConfig,
    config: DataClientConfig,
    nodes: Vec<PlacementNode>,
    mut rng: DetRng,
) -> Result<SimDataClient, String> {
    let fabric = cluster.network();
    let meta_net = fabric.endpoint_on(id, id, u32::MAX);
    let data_net = fabric.endpoint_on(tessera_data::data_endpoint(id), id, u32::MAX);
    let wall = cluster.wall_clock(id).clone();
    let meta = MetaClient::new(id.0, directory, meta_config, SimClock, wall, meta_net, rng.fork("meta"))
        .map_err(|e| e.to_string())?;
    DataClient::new(meta, data_net, SimClock, &mut rng, config, nodes).map_err(|e| e.to_string())
}

/// The data scenario's client configuration.
pub fn scenario_client_config(s: &DataScenario) -> (ClientConfig, DataClientConfig) {
    let meta = ClientConfig { op_timeout_ms: 20_000, attempts_max: 40, ..ClientConfig::default() };
    let data = DataClientConfig {
        protection: s.protection,
        inline_max_bytes: s.inline_max_bytes,
        request_timeout_ms: io_config().request_timeout.as_millis() as u64,
        resend_max: io_config().resend_max,
        ..DataClientConfig::default()
    };
    (meta, data)
}

/// A second data endpoint of client `id`, for the checker's direct chunk reads.
pub fn checker_io(cluster: &Cluster, id: NodeId, rng: &mut DetRng) -> StripeIo<SimClock, SimNet> {
    let endpoint = tessera_data::data_endpoint(NodeId(id.0 | (1 << 60)));
    let net = cluster.network().endpoint_on(endpoint, id, u32::MAX);
    StripeIo::new(SimClock, net, io_config(), rng.next_u64() >> 1)
}

/// The files of the run: `(client, inode)`.
#[derive(Clone, Debug)]
pub struct FileSet {
    files: Vec<(u64, InodeId)>,
}

impl FileSet {
    /// Create `per_client` files for each client in the root directory (no faults yet).
    pub async fn create(client: &mut SimDataClient, clients: u64, per_client: u64) -> Result<FileSet, String> {
        let mut files = Vec::new();
        for c in 0..clients {
            for f in 0..per_client {
                let op =
                    MetaOp::Create { parent: InodeId::ROOT, name: format!("c{c}-f{f}"), mode: 0o644, creds: creds() };
                match client.meta().execute(op.clone()).await {
                    Ok(Ok(MetaReply::Entry(attr))) => files.push((c, attr.ino)),
                    other => return Err(format!("setup {op:?}: {other:?}")),
                }
            }
        }
        Ok(FileSet { files })
    }

    pub fn of_client(&self, c: u64) -> Vec<InodeId> {
        self.files.iter().filter(|(owner, _)| *owner == c).map(|(_, ino)| *ino).collect()
    }
}

/// What the clients saw, shared with the checker.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    pub files: BTreeMap<InodeId, FileModel>,
    pub violations: Vec<String>,
    pub writes: u64,
    pub reads: u64,
    pub unknown: u64,
    pub read_errors: u64,
    pub bytes_written: u64,
}

impl Ledger {
    pub fn new(files: &FileSet) -> Ledger {
        Ledger { files: files.files.iter().map(|(_, ino)| (*ino, FileModel::default())).collect(), ..Ledger::default() }
    }
}

/// Whether a failed operation may have taken effect.
fn may_have_applied(e: &DataPathError) -> bool {
    matches!(e, DataPathError::OutcomeUnknown(_))
}

/// Bytes that tell writes apart: each byte depends on the write's number and its position.
fn pattern(tag: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (tag.wrapping_mul(31).wrapping_add(i as u64 / 7).wrapping_add(i as u64 * 13) % 251) as u8)
        .collect()
}

/// One client's operations on its files.
pub async fn run_client(
    mut client: SimDataClient,
    files: Vec<InodeId>,
    mut rng: DetRng,
    s: Arc<DataScenario>,
    map: SharedDataMap,
    ledger: Arc<Mutex<Ledger>>,
    done: Arc<AtomicU64>,
) {
    for op_number in 0..s.ops_per_client {
        let live = map.lock().expect("data map").live();
        client.set_nodes(live);
        let ino = files[rng.below(files.len() as u64) as usize];
        let model = ledger.lock().expect("ledger").files[&ino].clone();
        let size = model.size_max();
        let roll = rng.below(100);
        if roll < 45 && !model.is_full() {
            let len = if rng.chance(1, 3) {
                rng.range_inclusive(1, 600)
            } else {
                rng.range_inclusive(1, s.write_len_max_bytes)
            };
            let offset = if rng.chance(1, 4) { size } else { rng.below(size + 1 + len / 4) };
            let tag = client.writer_id().wrapping_add(op_number);
            let bytes = pattern(tag, len as usize);
            let change = Change::Write { offset, bytes: bytes.clone() };
            let result = client.write(ino, offset, &bytes, &creds()).await;
            settle(&ledger, ino, &change, result.map(|_| ()), len);
        } else if roll < 55 && !model.is_full() {
            let new_size = rng.below(size + 2048);
            let change = Change::Truncate { size: new_size };
            let result = client.truncate(ino, new_size, &creds()).await;
            settle(&ledger, ino, &change, result.map(|_| ()), 0);
        } else {
            let (offset, len) = if rng.chance(1, 2) {
                (0, size + 100)
            } else {
                let offset = rng.below(size + 1);
                (offset, rng.range_inclusive(1, 64 * 1024))
            };
            match client.read(ino, offset, len).await {
                Ok(bytes) => {
                    let mut l = ledger.lock().expect("ledger");
                    l.reads += 1;
                    let model = l.files.get_mut(&ino).expect("file");
                    if let Err(e) = model.observe(offset, len, &bytes) {
                        l.violations.push(format!("{ino:?}: {e}"));
                    }
                }
                Err(_) => ledger.lock().expect("ledger").read_errors += 1,
            }
        }
        let _ = client.run_repairs().await;
        SimClock.sleep(Duration::from_millis(rng.range_inclusive(0, 300))).await;
    }
    done.fetch_add(1, Ordering::Relaxed);
}

fn settle(ledger: &Arc<Mutex<Ledger>>, ino: InodeId, change: &Change, result: Result<(), DataPathError>, len: u64) {
    let mut l = ledger.lock().expect("ledger");
    match result {
        Ok(()) => {
            l.writes += 1;
            l.bytes_written += len;
            l.files.get_mut(&ino).expect("file").apply(change);
        }
        Err(e) if may_have_applied(&e) => {
            l.unknown += 1;
            l.files.get_mut(&ino).expect("file").apply_maybe(change);
        }
        Err(_) => {}
    }
}

/// Every file, read whole after healing, has exactly one of its candidate contents.
pub async fn check_files(client: &mut SimDataClient, ledger: &Ledger) -> Result<(), String> {
    for (ino, model) in &ledger.files {
        let mut model = model.clone();
        let len = model.size_max() + 4096;
        let bytes = client.read(*ino, 0, len).await.map_err(|e| format!("after healing, reading {ino:?}: {e}"))?;
        model.observe(0, len, &bytes).map_err(|e| format!("after healing, {ino:?}: {e}"))?;
    }
    Ok(())
}

/// Over budget (`K + 1` domains lost): every read is exact or fails with an error, never other bytes.
/// Returns the files that could not be read.
pub async fn check_over_budget(client: &mut SimDataClient, ledger: &Ledger) -> Result<u64, String> {
    let mut unreadable = 0;
    for (ino, model) in &ledger.files {
        let mut model = model.clone();
        let len = model.size_max() + 4096;
        match client.read(*ino, 0, len).await {
            Ok(bytes) => model.observe(0, len, &bytes).map_err(|e| format!("over budget, {ino:?}: {e}"))?,
            Err(DataPathError::Unrecoverable { .. } | DataPathError::Meta(_)) => unreadable += 1,
            Err(e) => return Err(format!("over budget, {ino:?}: unexpected error {e}")),
        }
    }
    Ok(unreadable)
}

/// Wait until every live node's rebuilder finished a pass that began after this call and found nothing
/// left to do; returns the stripes rebuilt (the client library's summed progress).
pub async fn wait_for_rebuild(
    client: &mut SimDataClient,
    io: &mut StripeIo<SimClock, SimNet>,
    live: &[PlacementNode],
    dead: &BTreeSet<NodeId>,
    limit: Duration,
) -> Result<u64, String> {
    let start = SimClock.now();
    let ids: Vec<NodeId> = live.iter().map(|n| n.id).collect();
    let mut first: BTreeMap<NodeId, (u64, u64)> = BTreeMap::new();
    loop {
        SimClock.sleep(Duration::from_millis(1_000)).await;
        let mut settled = true;
        let mut unsettled = Vec::new();
        for (id, status) in ids.iter().zip(io.status(&ids).await) {
            match status {
                Ok(s) => {
                    let (cycles, passes) = *first.entry(*id).or_insert((s.rebuild.scrub_cycles, s.rebuild.passes));
                    // A full pass and a full scrub cycle that began after healing found nothing to do.
                    let done = s.rebuild.idle
                        && s.rebuild.passes >= passes + 2
                        && s.rebuild.scrub_cycles >= cycles + 2
                        && s.rebuild.scrub_clean;
                    if !done {
                        unsettled.push(format!("{id}: {:?}", s.rebuild));
                    }
                    settled &= done;
                }
                Err(e) => {
                    unsettled.push(format!("{id}: {e}"));
                    settled = false;
                }
            }
        }
        if settled {
            let status = client.rebuild_status(&ids).await.map_err(|e| format!("rebuild status: {e}"))?;
            return Ok(status.progress.stripes_done);
        }
        if SimClock.now().saturating_since(start) > limit {
            let first = unsettled.first().cloned().unwrap_or_default();
            return Err(format!(
                "rebuild not finished {} s after healing ({} dead nodes); {} nodes unsettled, first {first}",
                limit.as_secs(),
                dead.len(),
                unsettled.len()
            ));
        }
    }
}

/// Rounds of asking unanswered chunk gets again in [`check_stripes`] (one second apart).
const CHECK_GET_ROUNDS_MAX: u32 = 60;

/// Every stripe referenced by any shard: chunks in distinct failure domains, none on a dead node, every
/// chunk present on its node and verified, parity consistent with the data.
pub async fn check_stripes(
    client: &mut SimDataClient,
    io: &mut StripeIo<SimClock, SimNet>,
    dead: &BTreeSet<NodeId>,
    shards: u16,
    nodes: &[PlacementNode],
) -> Result<(), String> {
    let rack: BTreeMap<NodeId, u32> = nodes.iter().map(|n| (n.id, n.rack)).collect();
    for shard in 0..shards {
        let mut after = None;
        loop {
            let op = MetaOp::ScanStripes { shard, after, max: 128 };
            let (stripes, next) = match client.meta().execute(op).await {
                Ok(Ok(MetaReply::Stripes { stripes, next })) => (stripes, next),
                other => return Err(format!("scan of shard {shard}: {other:?}")),
            };
            for (ino, stripe) in &stripes {
                check_stripe(io, *ino, stripe, &rack, dead).await?;
            }
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    }
    Ok(())
}

async fn check_stripe(
    io: &mut StripeIo<SimClock, SimNet>,
    ino: InodeId,
    stripe: &StripeRef,
    rack: &BTreeMap<NodeId, u32>,
    dead: &BTreeSet<NodeId>,
) -> Result<(), String> {
    let racks: BTreeSet<u32> = stripe.nodes.iter().map(|n| rack[n]).collect();
    if racks.len() != stripe.nodes.len() {
        return Err(format!("{ino:?} {:?}: two chunks in one failure domain: {:?}", stripe.id, stripe.nodes));
    }
    if let Some(n) = stripe.nodes.iter().find(|n| dead.contains(n)) {
        return Err(format!("{ino:?} {:?}: chunk still on dead node {n} after rebuild", stripe.id));
    }
    let gets = whole_chunk_gets(stripe);
    let mut chunks = Vec::new();
    // A node still working off a backlog (a slow drive's queue) may not answer at once: unanswered gets
    // are asked again for a bounded time; any answer that is an error fails the check.
    let mut results = io.get_chunks(&gets).await;
    for _ in 0..CHECK_GET_ROUNDS_MAX {
        if !results.iter().any(|r| matches!(r, Err(ChunkError::Timeout { .. }))) {
            break;
        }
        SimClock.sleep(Duration::from_secs(1)).await;
        results = io.get_chunks(&gets).await;
    }
    for (get, result) in gets.iter().zip(results) {
        match result {
            Ok(bytes) => chunks.push(bytes),
            Err(e) => return Err(format!("{ino:?} {:?}: chunk {} on {}: {e}", stripe.id, get.key.index, get.node)),
        }
    }
    let data_chunks = stripe.layout.data_chunks();
    let data: Vec<u8> = chunks[..data_chunks].concat();
    let shape = StripeShape {
        layout: stripe.layout,
        chunk_len_bytes: stripe.chunk_len_bytes,
        data_len_bytes: stripe.data_len_bytes,
    };
    let expected = encode_stripe(&shape, &data[..stripe.data_len_bytes as usize]).map_err(|e| e.to_string())?;
    if expected != chunks {
        return Err(format!("{ino:?} {:?}: parity does not match the data", stripe.id));
    }
    Ok(())
}

/// Liveness after healing: a new file in the root, written and read back, within the client's bounded
/// retries (any error fails the run).
pub async fn probe(client: &mut SimDataClient, bytes: &[u8]) -> Result<(), String> {
    let op = MetaOp::Create { parent: InodeId::ROOT, name: "probe".into(), mode: 0o644, creds: creds() };
    let ino = match client.meta().execute(op).await {
        Ok(Ok(MetaReply::Entry(attr))) => attr.ino,
        other => return Err(format!("create: {other:?}")),
    };
    client.write(ino, 0, bytes, &creds()).await.map_err(|e| format!("write: {e}"))?;
    let back = client.read(ino, 0, bytes.len() as u64 + 4096).await.map_err(|e| format!("read: {e}"))?;
    if back != bytes {
        return Err(format!("read back {} bytes, wrote {}", back.len(), bytes.len()));
    }
    Ok(())
}
