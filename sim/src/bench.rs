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
//! Paths map onto the metadata service's (parent, name) operations through a per-process cache of
//! path -> (inode, type), filled by `Lookup`s from the file-system root (the run's root), the way a
//! kernel's dentry cache does; attributes are never cached. An entry another process removed is found
//! stale (`ESTALE`) on use and the operation is retried once from a fresh walk.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::Either;
use tessera_config::model::Protection;
use tessera_config::placement::{self, PlacementNode};
use tessera_data::client::{DataClientConfig, DataPathError};
use tessera_data::rebuild::{DataMap, RebuildConfig, SharedDataMap};
use tessera_env::{Clock, DetRng, NodeId, Rng, SECTOR_SIZE_BYTES};
use tessera_meta::client::{ClientConfig, ClientError, ShardDirectory};
use tessera_meta::{
    Attr, Credentials, DirEntry, Errno, FileType, InodeId, MODE_MASK, MetaOp, MetaReply, READDIR_START, SetAttr,
};
use tessera_workloads::metrics::{PhaseReport, RunReport};
use tessera_workloads::op::{Op, OpError, Outcome, content_bytes};
use tessera_workloads::run::{
    Executor, ProgressSink, RunOptions, Target, TargetError, phase_report, run_process, run_workload,
};
use tessera_workloads::workload::{Params, Phase, Process, Workload};

use crate::cluster::{Cluster, NodeSpec};
use crate::data_scenario::node::{ServicesSetup, services_hook};
use crate::data_scenario::workload::{SimDataClient, make_client};
use crate::disk::DiskModel;
use crate::env::SimClock;
use crate::meta_support::{HostCluster, MetaScenario, start_hosts_with, wait_for_all_leaders};
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
/// Largest piece one data-client write is given: bounds the buffer a write fills (one 4+2 stripe holds
/// 4 MiB).
const WRITE_PIECE_BYTES: u64 = 4 * MIB;
/// Largest piece one data-client read asks for (the client refuses more than 64 MiB).
const READ_PIECE_BYTES: u64 = 8 * MIB;
/// Entries one `Readdir` call asks for.
const READDIR_PAGE_ENTRIES: u32 = 1024;
/// Path-cache entries a process keeps at most (past this the cache starts over: memory stays bounded).
const PATH_CACHE_ENTRIES_MAX: usize = 1 << 20;
/// Modes of what the targets create (as `MemFs` does).
const DIR_MODE: u32 = 0o755;
const FILE_MODE: u32 = 0o644;

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
                    let name = protection_name(*protection);
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

/// `4+2`, `3 copies`.
fn protection_name(protection: Protection) -> String {
    match protection {
        Protection::ErasureCoded { data, parity } => format!("{data}+{parity}"),
        Protection::Replicated { copies } => format!("{copies} copies"),
    }
}

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
        format!("sim:{} nodes, {} racks, {}", self.nodes, self.racks(), protection_name(self.protection))
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
        clients.push((id, Some(SimExec::new(client))));
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
        let mut back = Vec::with_capacity(results.len());
        let mut recorders = Vec::with_capacity(results.len());
        let mut end_ns = started_ns;
        for ((node, slot), result) in self.clients.iter_mut().zip(results) {
            let (exec, process, recorder, done_ns) =
                result.map_err(|e| TargetError::Failed(format!("client {node}: task failed: {e}")))?;
            *slot = Some(exec);
            back.push(process);
            recorders.push(recorder);
            end_ns = end_ns.max(done_ns);
        }
        let report = phase_report(phase, &recorders, options, end_ns - started_ns);
        Ok((back, report))
    }
}

/// Why one attempt of an operation failed, before it is named by its path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Fail {
    Errno(Errno),
    /// Not a POSIX answer: a timeout, a data-path failure, a reply of the wrong kind.
    Other(String),
}

impl From<DataPathError> for Fail {
    fn from(e: DataPathError) -> Fail {
        match e {
            DataPathError::Posix(errno) => Fail::Errno(errno),
            other => Fail::Other(other.to_string()),
        }
    }
}

impl Fail {
    /// The operation's error, named by the operation's path.
    fn into_op_error(self, path: &str) -> OpError {
        let path = path.to_string();
        match self {
            Fail::Errno(Errno::ENOENT) => OpError::NotFound { path },
            Fail::Errno(Errno::EEXIST) => OpError::Exists { path },
            Fail::Errno(Errno::ENOTEMPTY) => OpError::NotEmpty { path },
            Fail::Errno(Errno::EACCES | Errno::EPERM) => OpError::PermissionDenied { path },
            Fail::Errno(errno) => OpError::Other { path, message: errno.to_string() },
            Fail::Other(message) => OpError::Other { path, message },
        }
    }
}

fn unexpected(op: &str, reply: &MetaReply) -> Fail {
    Fail::Other(format!("unexpected reply to {op}: {reply:?}"))
}

/// `a/b/c` -> (`a/b`, `c`); `c` -> (``, `c`).
fn split_parent(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

/// Whether `creds` may read an object with these attributes (`access(R_OK)`): root always may.
fn may_read(attr: &Attr, creds: &Credentials) -> bool {
    if creds.is_root() {
        return true;
    }
    let bits = if attr.uid == creds.uid {
        attr.mode >> 6
    } else if creds.in_group(attr.gid) {
        attr.mode >> 3
    } else {
        attr.mode
    };
    bits & 0o4 != 0
}

/// One process's client: its data client, its credentials (root) and its path cache.
struct SimExec {
    client: SimDataClient,
    creds: Credentials,
    /// Path (relative to the root, no leading slash) -> the inode it named when last looked up.
    cache: BTreeMap<String, (InodeId, FileType)>,
    /// Whether the current attempt used a cached entry (a failure may then be a stale one).
    used_cache: bool,
}

impl SimExec {
    fn new(client: SimDataClient) -> SimExec {
        SimExec { client, creds: Credentials::root(), cache: BTreeMap::new(), used_cache: false }
    }

    async fn meta(&mut self, op: MetaOp) -> Result<MetaReply, Fail> {
        match self.client.meta().execute(op).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(errno)) | Err(ClientError::Posix(errno)) => Err(Fail::Errno(errno)),
            Err(e) => Err(Fail::Other(e.to_string())),
        }
    }

    fn remember(&mut self, path: &str, entry: (InodeId, FileType)) {
        if self.cache.len() >= PATH_CACHE_ENTRIES_MAX {
            self.cache.clear();
        }
        self.cache.insert(path.to_string(), entry);
    }

    /// Forget `path` and everything below it.
    fn forget_tree(&mut self, path: &str) {
        self.cache.remove(path);
        let prefix = format!("{path}/");
        let below: Vec<String> = self
            .cache
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .map(|(p, _)| p.clone())
            .collect();
        for p in below {
            self.cache.remove(&p);
        }
    }

    /// Forget `path`, what is below it and every directory above it (after a stale entry on the way).
    fn forget_path(&mut self, path: &str) {
        self.forget_tree(path);
        let mut at = path;
        while let Some((parent, _)) = at.rsplit_once('/') {
            self.cache.remove(parent);
            at = parent;
        }
    }

    /// The inode `path` names: from the cache, or looked up component by component from the deepest
    /// cached directory above it (the root is never looked up).
    async fn resolve(&mut self, path: &str) -> Result<(InodeId, FileType), Fail> {
        if path.is_empty() {
            return Ok((InodeId::ROOT, FileType::Directory));
        }
        if let Some(&hit) = self.cache.get(path) {
            self.used_cache = true;
            return Ok(hit);
        }
        let mut current = (InodeId::ROOT, FileType::Directory);
        let mut walked = 0;
        for (slash, _) in path.rmatch_indices('/') {
            if let Some(&hit) = self.cache.get(&path[..slash]) {
                self.used_cache = true;
                current = hit;
                walked = slash + 1;
                break;
            }
        }
        let mut end = walked;
        for name in path[walked..].split('/') {
            if current.1 != FileType::Directory {
                return Err(Fail::Errno(Errno::ENOTDIR));
            }
            let op = MetaOp::Lookup { parent: current.0, name: name.to_string(), creds: self.creds.clone() };
            current = match self.meta(op).await? {
                MetaReply::Child { ino, kind } => (ino, kind),
                other => return Err(unexpected("lookup", &other)),
            };
            end += name.len();
            self.remember(&path[..end], current);
            end += 1;
        }
        Ok(current)
    }

    async fn resolve_dir(&mut self, path: &str) -> Result<InodeId, Fail> {
        match self.resolve(path).await? {
            (ino, FileType::Directory) => Ok(ino),
            _ => Err(Fail::Errno(Errno::ENOTDIR)),
        }
    }

    async fn resolve_file(&mut self, path: &str) -> Result<InodeId, Fail> {
        match self.resolve(path).await? {
            (ino, FileType::Regular) => Ok(ino),
            (_, FileType::Directory) => Err(Fail::Errno(Errno::EISDIR)),
            _ => Err(Fail::Errno(Errno::EINVAL)),
        }
    }

    /// Make `path` (a directory or an empty regular file) in its parent.
    async fn make(&mut self, path: &str, kind: FileType) -> Result<InodeId, Fail> {
        let (parent, name) = split_parent(path);
        if name.is_empty() {
            return Err(Fail::Errno(Errno::EEXIST));
        }
        let parent = self.resolve_dir(parent).await?;
        let (name, creds) = (name.to_string(), self.creds.clone());
        let op = match kind {
            FileType::Directory => MetaOp::Mkdir { parent, name, mode: DIR_MODE, creds },
            _ => MetaOp::Create { parent, name, mode: FILE_MODE, creds },
        };
        match self.meta(op).await? {
            MetaReply::Entry(attr) => {
                self.remember(path, (attr.ino, kind));
                Ok(attr.ino)
            }
            other => Err(unexpected("create", &other)),
        }
    }

    /// Remove `path` (a file, or an empty directory if `dir`).
    async fn remove(&mut self, path: &str, dir: bool) -> Result<(), Fail> {
        let (parent, name) = split_parent(path);
        if name.is_empty() {
            return Err(Fail::Errno(Errno::EBUSY));
        }
        let parent = self.resolve_dir(parent).await?;
        let (name, creds) = (name.to_string(), self.creds.clone());
        let op = if dir { MetaOp::Rmdir { parent, name, creds } } else { MetaOp::Unlink { parent, name, creds } };
        let reply = self.meta(op).await;
        // Whatever the answer, the entry may be gone: look it up afresh next time.
        self.forget_tree(path);
        match reply? {
            MetaReply::Done => Ok(()),
            other => Err(unexpected("remove", &other)),
        }
    }

    /// Write `len_bytes` of content `content` at `offset`, in pieces of at most [`WRITE_PIECE_BYTES`].
    async fn write_content(&mut self, ino: InodeId, offset: u64, len_bytes: u64, content: u64) -> Result<(), Fail> {
        let mut done = 0;
        while done < len_bytes {
            let piece = (len_bytes - done).min(WRITE_PIECE_BYTES);
            let bytes = content_bytes(content, offset + done, piece as usize);
            self.client.write(ino, offset + done, &bytes, &self.creds).await?;
            done += piece;
        }
        Ok(())
    }

    /// Up to `len_bytes` from `offset` (fewer where the file ends), in reads of at most
    /// [`READ_PIECE_BYTES`].
    async fn read_range(&mut self, ino: InodeId, offset: u64, len_bytes: u64) -> Result<Vec<u8>, Fail> {
        let mut out = Vec::new();
        let mut at = offset;
        let end = offset.saturating_add(len_bytes);
        while at < end {
            let want = (end - at).min(READ_PIECE_BYTES);
            let got = self.client.read(ino, at, want).await?;
            let short = (got.len() as u64) < want;
            at += got.len() as u64;
            out.extend_from_slice(&got);
            if short {
                break;
            }
        }
        Ok(out)
    }

    /// Every entry of directory `dir`, page by page, in cookie order.
    async fn list(&mut self, dir: InodeId) -> Result<Vec<DirEntry>, Fail> {
        let mut entries = Vec::new();
        let mut cookie = READDIR_START;
        loop {
            let op = MetaOp::Readdir { dir, cookie, max_entries: READDIR_PAGE_ENTRIES, creds: self.creds.clone() };
            let (page, eof) = match self.meta(op).await? {
                MetaReply::DirEntries { entries, eof } => (entries, eof),
                other => return Err(unexpected("readdir", &other)),
            };
            let Some(last) = page.last() else {
                if eof {
                    return Ok(entries);
                }
                return Err(Fail::Other("readdir returned an empty page before the end".into()));
            };
            cookie = last.cookie;
            entries.extend(page);
            if eof {
                return Ok(entries);
            }
        }
    }

    /// One attempt of `op`.
    async fn attempt(&mut self, op: &Op) -> Result<Outcome, Fail> {
        match op {
            Op::Mkdir { path } => self.make(path, FileType::Directory).await.map(|_| Outcome::Done),
            Op::Create { path } => self.make(path, FileType::Regular).await.map(|_| Outcome::Done),
            Op::WriteFile { path, size_bytes, content } => {
                let ino = match self.resolve_file(path).await {
                    Ok(ino) => {
                        self.client.truncate(ino, 0, &self.creds).await?;
                        ino
                    }
                    Err(Fail::Errno(Errno::ENOENT)) => match self.make(path, FileType::Regular).await {
                        Ok(ino) => ino,
                        // Made by another process meanwhile.
                        Err(Fail::Errno(Errno::EEXIST)) => {
                            let ino = self.resolve_file(path).await?;
                            self.client.truncate(ino, 0, &self.creds).await?;
                            ino
                        }
                        Err(e) => return Err(e),
                    },
                    Err(e) => return Err(e),
                };
                self.write_content(ino, 0, *size_bytes, *content).await?;
                Ok(Outcome::Done)
            }
            Op::Write { path, offset, len_bytes, content } => {
                let ino = self.resolve_file(path).await?;
                self.write_content(ino, *offset, *len_bytes, *content).await?;
                Ok(Outcome::Done)
            }
            Op::ReadFile { path } => {
                let ino = self.resolve_file(path).await?;
                // Read until a read comes back short: one call for a file below READ_PIECE_BYTES.
                Ok(Outcome::Bytes(self.read_range(ino, 0, u64::MAX).await?))
            }
            Op::Read { path, offset, len_bytes } => {
                let ino = self.resolve_file(path).await?;
                Ok(Outcome::Bytes(self.read_range(ino, *offset, *len_bytes).await?))
            }
            Op::Stat { path } => {
                let (ino, _) = self.resolve(path).await?;
                let attr = self.client.getattr(ino).await?;
                Ok(Outcome::Attr { size_bytes: attr.size, mode: attr.mode, is_dir: attr.kind == FileType::Directory })
            }
            Op::Access { path } => {
                let (ino, _) = self.resolve(path).await?;
                let attr = self.client.getattr(ino).await?;
                if may_read(&attr, &self.creds) { Ok(Outcome::Done) } else { Err(Fail::Errno(Errno::EACCES)) }
            }
            Op::Chmod { path, mode } => {
                let (ino, _) = self.resolve(path).await?;
                let set = SetAttr { mode: Some(mode & MODE_MASK), ..SetAttr::default() };
                match self.meta(MetaOp::SetAttr { ino, set, creds: self.creds.clone() }).await? {
                    MetaReply::Attr(_) => Ok(Outcome::Done),
                    other => Err(unexpected("chmod", &other)),
                }
            }
            Op::Readdir { path } => {
                let dir = self.resolve_dir(path).await?;
                let mut names: Vec<String> = self.list(dir).await?.into_iter().map(|e| e.name).collect();
                names.sort();
                Ok(Outcome::Names(names))
            }
            Op::Unlink { path } => self.remove(path, false).await.map(|()| Outcome::Done),
            Op::Rmdir { path } => self.remove(path, true).await.map(|()| Outcome::Done),
            Op::Find { path } => {
                let mut dirs = vec![self.resolve_dir(path).await?];
                let mut count = 0u64;
                while let Some(dir) = dirs.pop() {
                    for entry in self.list(dir).await? {
                        count += 1;
                        if entry.kind == FileType::Directory {
                            dirs.push(entry.ino);
                        }
                    }
                }
                Ok(Outcome::Count(count))
            }
        }
    }
}

impl Executor for SimExec {
    fn now_ns(&self) -> u64 {
        now_ns()
    }

    async fn sleep_until_ns(&mut self, at_ns: u64) {
        let now = now_ns();
        if at_ns > now {
            SimClock.sleep(Duration::from_nanos(at_ns - now)).await;
        }
    }

    /// Runs `op`; if it failed after using a cached path with ESTALE (an inode on the path is gone: the
    /// shards answer that for a removed parent or file) or ENOTDIR (a directory became a file), forgets
    /// the path and tries once more from a fresh walk.
    async fn execute(&mut self, op: &Op) -> Result<Outcome, OpError> {
        self.used_cache = false;
        let result = match self.attempt(op).await {
            Err(Fail::Errno(Errno::ESTALE | Errno::ENOTDIR)) if self.used_cache => {
                self.forget_path(op.path());
                self.used_cache = false;
                self.attempt(op).await
            }
            result => result,
        };
        result.map_err(|fail| fail.into_op_error(op.path()))
    }
}
