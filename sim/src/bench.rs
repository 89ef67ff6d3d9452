//! The simulated cluster as a workload target (issue 7): a fresh metadata + data cluster per run, one
//! client node per workload process, each process's operations mapped onto its own data client, and
//! every latency measured on the simulated clock.
//!
//! A run is a function of its seed: the cluster, the network's delays and the workload's choices all
//! come from `params.seed`, and time is madsim's virtual time, so two runs of one seed give the same
//! [`RunReport`] to the bit. What the figures mean: see [`crate::data_scale`] (drives move 2 GB/s with
//! 25-80 us per I/O, the network adds [`SimBenchConfig::net_latency_us_min`]..`max` per message and has
//! no bandwidth limit, the simulator charges no CPU).
//!
//! Each process's operations run through a [`ClusterExec`] (shared with the real cluster), with paths
//! relative to the file system's root directory and time from the simulated clock.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::Either;
use tessera_config::model::Protection;
use tessera_config::placement::{self, PlacementNode};
use tessera_data::client::DataClientConfig;
use tessera_data::rebuild::{DataMap, RebuildConfig, SharedDataMap};
use tessera_env::{Clock, DetRng, NodeId, Rng, SECTOR_SIZE_BYTES};
use tessera_meta::InodeId;
use tessera_meta::client::{ClientConfig, ShardDirectory};
use tessera_workloads::cluster::ClusterExec;
use tessera_workloads::metrics::{PhaseReport, RunReport};
use tessera_workloads::run::{ProgressSink, RunOptions, Target, TargetError, finish_phase, run_process, run_workload};
use tessera_workloads::workload::{Params, Phase, Process, Workload};

use crate::cluster::{Cluster, NodeSpec};
use crate::data_scenario::node::{ServicesSetup, services_hook};
use crate::data_scenario::workload::make_client;
use crate::disk::DiskModel;
use crate::env::{SimClock, SimWallClock};
use crate::meta_support::{HostCluster, MetaScenario, start_hosts_with, wait_for_all_leaders};
use crate::net::SimNet;
use crate::trace::Trace;

const MIB: u64 = 1024 * 1024;
/// When the file system's root directory was created (virtual wall time of the genesis).
const ROOT_CREATED_NS: u64 = 1_000_000_000;
/// Most nodes a bench cluster has.
pub const NODES_MAX: u64 = 1024;
/// Client node `i` is node `CLIENT_NODE_BASE + i` (above every storage node).
const CLIENT_NODE_BASE: u64 = 10_000;
/// Most workload processes (client nodes) one run has.
pub const PROCS_MAX: usize = 100_000;
/// Virtual time a run may take besides its time-bounded phases (a hang is reported, not waited out).
const TIME_LIMIT_BASE: Duration = crate::run::TIME_LIMIT;
/// How long the cluster may take to elect a leader for every shard.
const LEADERS_WAIT: Duration = Duration::from_secs(120);
/// Settling time after the leaders are up (the data services format their drives).
const SETTLE: Duration = Duration::from_secs(2);
/// How often the driver copies the completed-operation count into the caller's counter.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// One process's executor: the shared cluster executor over the simulator's doors (a [`SimDataClient`]).
///
/// [`SimDataClient`]: crate::data_scenario::workload::SimDataClient
type SimExec = ClusterExec<SimClock, SimWallClock, SimNet, DetRng>;

/// The simulated cluster a bench runs on. Everything not here is fixed: 3 metadata replicas, one data
/// drive per node besides the metadata drive, no faults, no message loss.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimBenchConfig {
    /// Storage nodes (each runs a metadata host and a chunk server).
    pub nodes: u64,
    /// Nodes per rack (failure domain); the racks are `nodes / nodes_per_rack`.
    pub nodes_per_rack: u64,
    /// Metadata shards per node.
    pub shards_per_node: u16,
    /// How file data is protected (each stripe needs that many racks).
    pub protection: Protection,
    /// Files whose bytes all lie below this stay inline in metadata (0: never).
    pub inline_max_bytes: u64,
    /// Capacity of every drive (NVMe model), bytes.
    pub drive_bytes: u64,
    /// One-way network delay of a message, drawn from this range.
    pub net_latency_us_min: u64,
    pub net_latency_us_max: u64,
}

impl Default for SimBenchConfig {
    /// 8 nodes, one per rack, 4 shards each, 4+2 erasure coding, small files inline up to 16 KiB, 512 MiB
    /// NVMe drives, 0.1-0.5 ms network.
    fn default() -> SimBenchConfig {
        SimBenchConfig {
            nodes: 8,
            nodes_per_rack: 1,
            shards_per_node: 4,
            protection: Protection::ErasureCoded { data: 4, parity: 2 },
            inline_max_bytes: DataClientConfig::default().inline_max_bytes,
            drive_bytes: 512 * MIB,
            net_latency_us_min: 100,
            net_latency_us_max: 500,
        }
    }
}

/// Why a [`SimBenchConfig`] was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimBenchConfigError {
    /// Fewer nodes than metadata replicas, or more than [`NODES_MAX`].
    Nodes { nodes: u64 },
    /// Racks of 0 nodes, or racks that do not divide the nodes evenly.
    RackSize { nodes: u64, nodes_per_rack: u64 },
    /// A stripe (or the metadata's replicas) needs more failure domains than there are racks.
    TooFewRacks { racks: u64, needed: u64, protection: Protection },
    /// No shards, or more than shard ids can name.
    Shards { nodes: u64, shards_per_node: u16 },
    /// The data clients' configuration is refused (protection, inline size).
    Data(String),
    /// A drive too small to format, or not whole sectors.
    DriveBytes { drive_bytes: u64 },
    /// Minimum network latency above the maximum.
    Latency { min_us: u64, max_us: u64 },
}

impl fmt::Display for SimBenchConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimBenchConfigError::Nodes { nodes } => {
                write!(f, "the simulated cluster takes {METADATA_REPLICAS} to {NODES_MAX} nodes, got {nodes}")
            }
            SimBenchConfigError::RackSize { nodes, nodes_per_rack } => write!(
                f,
                "nodes per rack must be at least 1 and divide the node count: {nodes} nodes, {nodes_per_rack} per rack"
            ),
            SimBenchConfigError::TooFewRacks { racks, needed, protection } => {
                if u64::from(protection.failure_domains_needed()) >= *needed {
                    let name = protection.to_string();
                    write!(f, "{name} needs at least {needed} racks (one per chunk), the cluster has {racks}")
                } else {
                    write!(f, "the {needed} metadata replicas need as many racks, the cluster has {racks}")
                }
            }
            SimBenchConfigError::Shards { nodes, shards_per_node } => write!(
                f,
                "shards per node must be at least 1 and the shards at most {}: {nodes} nodes x {shards_per_node}",
                u16::MAX
            ),
            SimBenchConfigError::Data(message) => write!(f, "data client: {message}"),
            SimBenchConfigError::DriveBytes { drive_bytes } => write!(
                f,
                "drive capacity must be at least 64 MiB and a multiple of {SECTOR_SIZE_BYTES} bytes, got {drive_bytes}"
            ),
            SimBenchConfigError::Latency { min_us, max_us } => {
                write!(f, "network latency range {min_us}..{max_us} us is empty")
            }
        }
    }
}

impl std::error::Error for SimBenchConfigError {}

/// Metadata replicas per shard (fixed).
const METADATA_REPLICAS: u64 = 3;

impl SimBenchConfig {
    pub fn racks(&self) -> u64 {
        self.nodes / self.nodes_per_rack.max(1)
    }

    pub fn shards(&self) -> u64 {
        self.nodes * u64::from(self.shards_per_node)
    }

    /// Checks the cluster can be built and can hold a stripe.
    pub fn validate(&self) -> Result<(), SimBenchConfigError> {
        if !(METADATA_REPLICAS..=NODES_MAX).contains(&self.nodes) {
            return Err(SimBenchConfigError::Nodes { nodes: self.nodes });
        }
        if self.nodes_per_rack == 0 || !self.nodes.is_multiple_of(self.nodes_per_rack) {
            return Err(SimBenchConfigError::RackSize { nodes: self.nodes, nodes_per_rack: self.nodes_per_rack });
        }
        self.data_config().validate().map_err(|e| SimBenchConfigError::Data(e.to_string()))?;
        let needed = u64::from(self.protection.failure_domains_needed()).max(METADATA_REPLICAS);
        if self.racks() < needed {
            return Err(SimBenchConfigError::TooFewRacks { racks: self.racks(), needed, protection: self.protection });
        }
        if self.shards_per_node == 0 || self.shards() > u64::from(u16::MAX) {
            return Err(SimBenchConfigError::Shards { nodes: self.nodes, shards_per_node: self.shards_per_node });
        }
        if self.drive_bytes < 64 * MIB || !self.drive_bytes.is_multiple_of(SECTOR_SIZE_BYTES as u64) {
            return Err(SimBenchConfigError::DriveBytes { drive_bytes: self.drive_bytes });
        }
        if self.net_latency_us_min > self.net_latency_us_max {
            return Err(SimBenchConfigError::Latency {
                min_us: self.net_latency_us_min,
                max_us: self.net_latency_us_max,
            });
        }
        Ok(())
    }

    /// How the target names itself in reports: `sim:8 nodes, 8 racks, 4+2`.
    pub fn describe(&self) -> String {
        format!("sim:{} nodes, {} racks, {}", self.nodes, self.racks(), self.protection)
    }

    /// The data clients' configuration (long timeouts: a fault-free cluster answers, a slow one is
    /// measured rather than failed).
    fn data_config(&self) -> DataClientConfig {
        DataClientConfig {
            protection: self.protection,
            inline_max_bytes: self.inline_max_bytes,
            request_timeout_ms: 2_000,
            ..DataClientConfig::default()
        }
    }
}

/// Run `workload` at `params` on a fresh simulated cluster built from `config` (in a madsim runtime
/// seeded with `params.seed`) and report it. `progress` is set to the number of operations completed
/// in the current phase, every 100 ms of simulated time. An `Err` says the cluster could not be built
/// or a phase could not run (a client task died); operations that fail are counted in the report.
pub fn run_bench(
    workload: &dyn Workload,
    params: &Params,
    options: &RunOptions,
    config: &SimBenchConfig,
    sink: &dyn ProgressSink,
    progress: &AtomicU64,
) -> Result<RunReport, String> {
    config.validate().map_err(|e| e.to_string())?;
    let procs = workload.process_count(params);
    if procs > PROCS_MAX {
        return Err(format!("{}: {procs} processes, the simulated cluster takes at most {PROCS_MAX}", workload.name()));
    }
    // A time-bounded phase may run long (IO500's are 300 s each): allow for every such phase twice
    // over, beyond the hour an until-done workload gets.
    let bounded_ns: u64 = workload.phases(params).iter().filter_map(|p| p.duration_ns).sum();
    let limit = TIME_LIMIT_BASE.saturating_add(Duration::from_nanos(bounded_ns.saturating_mul(2)));
    crate::run::in_runtime_limited(params.seed, limit, bench(workload, params, options, config, sink, progress))?
}

async fn bench(
    workload: &dyn Workload,
    params: &Params,
    options: &RunOptions,
    config: &SimBenchConfig,
    sink: &dyn ProgressSink,
    progress: &AtomicU64,
) -> Result<RunReport, String> {
    let seed = params.seed;
    let trace = Trace::new(false);
    let shards = u16::try_from(config.shards()).map_err(|e| e.to_string())?;
    let mut m = MetaScenario::new(seed, config.nodes, shards);
    m.faults = false;
    m.net.loss_per_million = 0;
    m.net.duplicate_per_million = 0;
    m.net.latency_us_min = config.net_latency_us_min;
    m.net.latency_us_max = config.net_latency_us_max;
    m.net.queue_limit_messages = 1 << 16;
    m.nodes_per_rack = config.nodes_per_rack;
    m.data_disks = 1;
    m.disk = DiskModel::nvme(config.drive_bytes);
    let m = Arc::new(m);
    let placement_nodes: Vec<PlacementNode> = m.placement_nodes();
    let genesis = placement::place(&placement_nodes, u32::from(shards), m.replication, None)
        .map_err(|e| format!("metadata placement: {e}"))?;
    let directory = ShardDirectory::new(&genesis, 1).map_err(|e| e.to_string())?;
    let map: SharedDataMap = Arc::new(Mutex::new(DataMap::new(placement_nodes.clone())));
    let setup = ServicesSetup { cluster_id: u128::from(seed) + 1, shards, rebuild: RebuildConfig::default() };
    let hook = services_hook(setup, map, directory.clone());
    let mut rng = DetRng::from_seed(seed).fork("sim-bench");
    let roots = BTreeMap::from([(0, (InodeId::ROOT, ROOT_CREATED_NS))]);
    let HostCluster { mut cluster, views, .. } = start_hosts_with(&m, roots, &mut rng, &trace, Some(hook));
    wait_for_all_leaders(&cluster, &views, shards, LEADERS_WAIT).await?;
    SimClock.sleep(SETTLE).await;

    let mut clients = Vec::new();
    for i in 0..workload.process_count(params) {
        let id = NodeId(CLIENT_NODE_BASE + i as u64);
        cluster.add_node(NodeSpec { id, rack: u32::MAX, disks: 0 }, |_env| std::future::pending());
        let meta_config = ClientConfig { op_timeout_ms: 60_000, ..ClientConfig::default() };
        let client_rng = rng.fork(&id.to_string());
        let client = make_client(
            &cluster,
            id,
            directory.clone(),
            meta_config,
            config.data_config(),
            placement_nodes.clone(),
            client_rng,
        )?;
        clients.push((id, Some(SimExec::new(client, SimClock, InodeId::ROOT))));
    }
    let mut target = SimCluster { cluster, clients, describe: config.describe() };
    run_workload(&mut target, workload, params, options, sink, progress).await.map_err(|e| e.to_string())
}

/// Virtual nanoseconds since the runtime started.
fn now_ns() -> u64 {
    SimClock.now().as_nanos()
}

/// The simulated cluster with one client per workload process.
struct SimCluster {
    cluster: Cluster,
    /// Each process's client node and executor (`None` only while a phase runs).
    clients: Vec<(NodeId, Option<SimExec>)>,
    describe: String,
}

impl Target for SimCluster {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    /// Every process runs as a task on its client node, all starting at the same virtual instant; the
    /// phase lasts until the last one is done.
    async fn run_phase(
        &mut self,
        index: usize,
        phase: &Phase,
        procs: Vec<Box<dyn Process>>,
        options: &RunOptions,
        progress: &AtomicU64,
    ) -> Result<(Vec<Box<dyn Process>>, PhaseReport), TargetError> {
        if procs.len() != self.clients.len() {
            return Err(TargetError::Failed(format!(
                "{} processes for {} client nodes",
                procs.len(),
                self.clients.len()
            )));
        }
        let done_ops = Arc::new(AtomicU64::new(0));
        let started_ns = now_ns();
        let mut tasks = Vec::with_capacity(procs.len());
        for ((node, slot), mut process) in self.clients.iter_mut().zip(procs) {
            let mut exec =
                slot.take().ok_or_else(|| TargetError::Failed(format!("client {node} lost by an earlier phase")))?;
            let (phase, options, done_ops) = (phase.clone(), options.clone(), done_ops.clone());
            tasks.push(self.cluster.spawn_on(*node, async move {
                let recorder =
                    run_process(&mut exec, process.as_mut(), index, &phase, started_ns, &options, &done_ops).await;
                (exec, process, recorder, now_ns())
            }));
        }
        let mut all = Box::pin(futures::future::join_all(tasks));
        let results = loop {
            match futures::future::select(all, Box::pin(SimClock.sleep(PROGRESS_EVERY))).await {
                Either::Left((results, _)) => break results,
                Either::Right(((), rest)) => {
                    progress.store(done_ops.load(Ordering::Relaxed), Ordering::Relaxed);
                    all = rest;
                }
            }
        };
        progress.store(done_ops.load(Ordering::Relaxed), Ordering::Relaxed);
        let done = self
            .clients
            .iter()
            .zip(results)
            .map(|((node, _), result)| {
                result.map_err(|e| TargetError::Failed(format!("client {node}: task failed: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(finish_phase(phase, options, started_ns, self.clients.iter_mut().map(|(_, slot)| slot), done))
    }
}
