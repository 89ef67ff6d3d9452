//! Metadata throughput against cluster size, in simulated time: `nodes` metadata hosts (16 shards
//! per node, three replicas each, or one per node below three nodes), 8 closed-loop clients per node,
//! each working in its own directory (placed by the directory-placement hash, so directories spread
//! over the shards): create, stat, unlink, repeated. After a warm-up, the operations answered in a
//! window of simulated time give operations per simulated second.
//!
//! What limits a node here is its host loop: one round persists the Raft log of every group it hosts
//! with one write and one flush of its simulated NVMe drive (a flush costs 400 us), so a node commits
//! in groups; the network adds 0.2-2 ms per message. The simulator does not charge CPU time, so the
//! figures show how the protocol scales (per-node batching, the number of round trips, leadership
//! spread), not how fast the code is: that is the criterion bench `cargo bench -p tessera-real-io
//! --bench meta`.
//!
//! `cargo run --release -p tessera-sim -- meta-scale --nodes 1,4,16,64`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tessera_env::{Clock, DetRng, NodeId, Rng};
use tessera_meta::client::{ClientConfig, MetaClient, ShardDirectory};
use tessera_meta::{Credentials, InodeId, MetaOp, MetaReply};

use crate::cluster::NodeSpec;
use crate::env::{SimClock, SimWallClock};
use crate::meta_support::{HostCluster, MetaScenario, start_hosts, wait_for_all_leaders};
use crate::net::SimNet;
use crate::trace::Trace;

const SHARDS_PER_NODE: u16 = 16;
const CLIENTS_PER_NODE: u64 = 8;
const WARMUP: Duration = Duration::from_secs(3);
const WINDOW: Duration = Duration::from_secs(5);
const ROOT_CREATED_NS: u64 = 1_000_000_000;

/// One measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct ScaleResult {
    pub nodes: u64,
    pub shards: u16,
    pub replication: u32,
    pub clients: u64,
    /// Operations answered in the window, and per simulated second.
    pub ops: u64,
    pub ops_per_sec: f64,
    /// Operations that failed (an errno or no answer): must be 0.
    pub failures: u64,
}

/// Measure a cluster of `nodes` on `seed` in a fresh madsim runtime.
pub fn measure(nodes: u64, seed: u64) -> Result<ScaleResult, String> {
    let trace = Trace::new(std::env::var_os("TESSERA_SCALE_TRACE").is_some());
    crate::run::in_runtime(seed, run(nodes, seed, trace))?
}

type Client = MetaClient<SimClock, SimWallClock, SimNet, DetRng>;

async fn run(nodes: u64, seed: u64, trace: Trace) -> Result<ScaleResult, String> {
    let shards = u16::try_from(nodes).ok().and_then(|n| n.checked_mul(SHARDS_PER_NODE)).ok_or("too many nodes")?;
    let mut s = MetaScenario::new(seed, nodes, shards);
    s.replication = nodes.min(3) as u32;
    s.faults = false;
    s.net.loss_per_million = 0;
    s.net.duplicate_per_million = 0;
    s.net.latency_us_max = 2_000;
    s.net.queue_limit_messages = 1 << 16;
    let replication = s.replication;
    let s = Arc::new(s);
    let mut rng = DetRng::from_seed(seed).fork("meta-scale");
    let roots = BTreeMap::from([(0, (InodeId::ROOT, ROOT_CREATED_NS))]);
    let HostCluster { mut cluster, views, map, .. } = start_hosts(&s, roots, &mut rng, &trace);
    let directory = ShardDirectory::new(&map.map, map.epoch).map_err(|e| e.to_string())?;
    wait_for_all_leaders(&cluster, &views, shards, Duration::from_secs(120)).await?;
    // Let leadership settle on the preferred replicas before measuring.
    SimClock.sleep(Duration::from_secs(2)).await;
    let clients = nodes * CLIENTS_PER_NODE;
    let counters = Arc::new(Counters::default());
    let mut new_client = |cluster: &mut crate::cluster::Cluster, id: NodeId| {
        cluster.add_node(NodeSpec { id, rack: 0, disks: 0 }, |_env| std::future::pending());
        let net = cluster.network().endpoint(id, 0);
        let wall = cluster.wall_clock(id).clone();
        let config = ClientConfig { op_timeout_ms: 60_000, ..ClientConfig::default() };
        MetaClient::new(id.0, directory.clone(), config, SimClock, wall, net, rng.fork(&id.to_string()))
            .map_err(|e| e.to_string())
    };
    // Each client's directory, made first by one client (concurrent mkdirs in one directory conflict).
    let setup = new_client(&mut cluster, NodeId(9_999))?;
    let dirs = cluster.spawn_on(NodeId(9_999), make_dirs(setup, clients)).await.map_err(|e| e.to_string())??;
    let mut tasks = Vec::new();
    for (c, dir) in dirs.into_iter().enumerate() {
        let id = NodeId(10_000 + c as u64);
        let client = new_client(&mut cluster, id)?;
        tasks.push(cluster.spawn_on(id, client_loop(client, c as u64, dir, counters.clone())));
    }
    let begin = SimClock.now() + WARMUP;
    SimClock.sleep(WARMUP).await;
    let before = counters.ops.load(Ordering::Relaxed);
    SimClock.sleep(WINDOW).await;
    let ops = counters.ops.load(Ordering::Relaxed) - before;
    let window = SimClock.now().saturating_since(begin);
    counters.stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.map_err(|e| format!("client task: {e}"))?;
    }
    let failures = counters.failures.load(Ordering::Relaxed);
    if let Some(first) = counters.first_failure.lock().expect("failure").clone() {
        return Err(format!("{failures} operations failed, first: {first}"));
    }
    Ok(ScaleResult {
        nodes,
        shards,
        replication,
        clients,
        ops,
        ops_per_sec: ops as f64 / window.as_secs_f64(),
        failures,
    })
}

#[derive(Debug, Default)]
struct Counters {
    ops: AtomicU64,
    failures: AtomicU64,
    first_failure: Mutex<Option<String>>,
    stop: AtomicBool,
}

impl Counters {
    fn fail(&self, what: String) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.first_failure.lock().expect("failure").get_or_insert(what);
    }
}

async fn make_dirs(mut client: Client, clients: u64) -> Result<Vec<InodeId>, String> {
    let mut dirs = Vec::new();
    for c in 0..clients {
        let mkdir =
            MetaOp::Mkdir { parent: InodeId::ROOT, name: format!("c{c}"), mode: 0o755, creds: Credentials::root() };
        match client.execute(mkdir).await {
            Ok(Ok(MetaReply::Entry(attr))) => dirs.push(attr.ino),
            other => return Err(format!("mkdir c{c}: {other:?}")),
        }
    }
    Ok(dirs)
}

async fn client_loop(mut client: Client, c: u64, dir: InodeId, counters: Arc<Counters>) {
    let root = Credentials::root();
    let mut n = 0u64;
    while !counters.stop.load(Ordering::Relaxed) {
        n += 1;
        let name = format!("f{n}");
        let create = MetaOp::Create { parent: dir, name: name.clone(), mode: 0o644, creds: root.clone() };
        let ino = match client.execute(create).await {
            Ok(Ok(MetaReply::Entry(attr))) => attr.ino,
            other => return counters.fail(format!("client {c}: create {other:?}")),
        };
        counters.ops.fetch_add(1, Ordering::Relaxed);
        match client.execute(MetaOp::GetAttr { ino }).await {
            Ok(Ok(MetaReply::Attr(_))) => {}
            other => return counters.fail(format!("client {c}: getattr {other:?}")),
        }
        counters.ops.fetch_add(1, Ordering::Relaxed);
        match client.execute(MetaOp::Unlink { parent: dir, name, creds: root.clone() }).await {
            Ok(Ok(MetaReply::Done)) => {}
            other => return counters.fail(format!("client {c}: unlink {other:?}")),
        }
        counters.ops.fetch_add(1, Ordering::Relaxed);
    }
}
