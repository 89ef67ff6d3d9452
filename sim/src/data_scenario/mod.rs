//! The data-path scenario (issue 5): clients write, overwrite, truncate and read files through the real
//! data client (striped, erasure-coded or replicated chunks on the nodes' drives, extent maps in the
//! metadata shards) while a nemesis crashes and restarts nodes, partitions the network and loses whole
//! failure domains for good; then everything heals, the lost domains are rebuilt, and a durability
//! checker reads every file back:
//!
//! 1. every acknowledged write reads back with its exact bytes (an operation whose outcome is unknown
//!    leaves the file in one of its candidate contents, see `model`), after any sequence of up to `K`
//!    domain losses (`K` = the losses the protection tolerates), crashes and partitions;
//! 2. rebuild finishes: no stripe names a lost node, every chunk of every stripe is present on its node
//!    and verifies, parity agrees with data, and no stripe has two chunks in one failure domain;
//! 3. in the over-budget mode (`K + 1` domains lost), every read returns its exact bytes or a clear
//!    error, never other bytes.
//!
//! `cargo run --release -p tessera-sim -- data --seeds 0..1000 --jobs 2` runs many seeds; `... data
//! --seed S --verbose` replays one with its trace.

pub mod model;
mod nemesis;
pub mod node;
pub mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tessera_config::model::Protection;
use tessera_config::placement::PlacementNode;
use tessera_data::rebuild::{DataMap, SharedDataMap};
use tessera_env::{Clock, DetRng, NodeId, Rng};
use tessera_meta::InodeId;
use tessera_meta::host::{HostConfig, SharedHostView};

use crate::cluster::{Cluster, NodeSpec};
use crate::disk::DiskModel;
use crate::env::SimClock;
use crate::meta_support::{HostCluster, MetaScenario, start_hosts_with, wait_for_all_leaders};
use crate::net::NetConfig;
use crate::trace::Trace;
use nemesis::Nemesis;
use workload::{FileSet, SimDataClient};

const SOURCE: &str = "data-scenario";
/// The setup and checking client, then the workload clients.
const CHECKER: NodeId = NodeId(1000);
const CLIENT_BASE: u64 = 1001;
const ROOT_CREATED_NS: u64 = 1_000_000_000;
const MIB: u64 = 1024 * 1024;

/// What a seed chose.
#[derive(Clone, Debug)]
pub struct DataScenario {
    pub seed: u64,
    pub racks: u64,
    pub nodes_per_rack: u64,
    pub protection: Protection,
    pub shards: u16,
    pub meta_replicas: u32,
    pub clients: u64,
    pub files_per_client: u64,
    pub ops_per_client: u64,
    /// Files up to this size stay inline in metadata.
    pub inline_max_bytes: u64,
    /// Longest write.
    pub write_len_max_bytes: u64,
    /// Crash/restart and partition nodes during the safety phase.
    pub faults: bool,
    pub fault_interval_ms_max: u64,
    /// Failure domains lost for good during the safety phase.
    pub rack_losses: u64,
    pub net: NetConfig,
    pub host: HostConfig,
}

impl DataScenario {
    pub fn from_seed(seed: u64) -> DataScenario {
        let mut rng = DetRng::from_seed(seed).fork("data-scenario");
        let protection = match rng.below(10) {
            0..=5 => Protection::ErasureCoded { data: 4, parity: 2 },
            6..=7 => Protection::ErasureCoded { data: 4, parity: 3 },
            _ => Protection::Replicated { copies: 3 },
        };
        let k = tolerated(protection);
        // Enough racks to place new stripes after losing K of them, and at least 5 for the metadata.
        let racks = (u64::from(protection.failure_domains_needed()) + k).max(5) + rng.below(2);
        let net = NetConfig {
            latency_us_min: 100,
            latency_us_max: rng.range_inclusive(500, 3_000),
            loss_per_million: rng.range_inclusive(0, 10_000),
            duplicate_per_million: rng.range_inclusive(0, 5_000),
            queue_limit_messages: 4096,
        };
        let mut host = HostConfig { compact_every_entries: rng.range_inclusive(64, 256), ..HostConfig::default() };
        host.multi.raft.election_ticks = rng.range_inclusive(8, 14) as usize;
        DataScenario {
            seed,
            racks,
            nodes_per_rack: rng.range_inclusive(1, 2),
            protection,
            shards: [4, 8][rng.below(2) as usize],
            meta_replicas: 5,
            clients: rng.range_inclusive(2, 3),
            files_per_client: rng.range_inclusive(2, 3),
            ops_per_client: rng.range_inclusive(10, 20),
            inline_max_bytes: [0, 512, 4096][rng.below(3) as usize],
            write_len_max_bytes: [8 * 1024, 96 * 1024][rng.below(2) as usize],
            faults: true,
            fault_interval_ms_max: rng.range_inclusive(800, 3_000),
            rack_losses: rng.below(k.min(2) + 1),
            net,
            host,
        }
    }

    /// The scenario of `seed` for the over-budget mode: `2 (K + 1) + 1` metadata replicas (so the
    /// metadata outlives the `K + 1` lost domains) and enough racks for them.
    pub fn over_budget(seed: u64) -> DataScenario {
        let mut s = DataScenario::from_seed(seed);
        s.meta_replicas = 2 * (tolerated(s.protection) as u32 + 1) + 1;
        s.racks = s.racks.max(u64::from(s.meta_replicas));
        s.rack_losses = tolerated(s.protection) + 1;
        s
    }

    pub fn summary(&self) -> String {
        format!(
            "{} racks x {} nodes, {:?}, {} shards x{}, {} clients x {} files x {} ops, inline <= {} B, writes <= {} B, faults {} every <= {} ms, {} racks lost, loss {}/M, dup {}/M",
            self.racks,
            self.nodes_per_rack,
            self.protection,
            self.shards,
            self.meta_replicas,
            self.clients,
            self.files_per_client,
            self.ops_per_client,
            self.inline_max_bytes,
            self.write_len_max_bytes,
            self.faults,
            self.fault_interval_ms_max,
            self.rack_losses,
            self.net.loss_per_million,
            self.net.duplicate_per_million,
        )
    }

    fn nodes(&self) -> u64 {
        self.racks * self.nodes_per_rack
    }

    pub fn meta(&self) -> MetaScenario {
        let mut m = MetaScenario::new(self.seed, self.nodes(), self.shards);
        m.replication = self.meta_replicas;
        m.net = self.net.clone();
        m.host = self.host.clone();
        m.nodes_per_rack = self.nodes_per_rack;
        m.data_disks = 2;
        m.disk = DiskModel::nvme(256 * MIB);
        m
    }
}

/// Chunks a stripe of `protection` may lose and still be read.
pub fn tolerated(protection: Protection) -> u64 {
    match protection {
        Protection::ErasureCoded { parity, .. } => u64::from(parity),
        Protection::Replicated { copies } => u64::from(copies) - 1,
    }
}

/// What a run measured and decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataOutcome {
    pub passed: bool,
    pub reason: Option<String>,
    /// Writes and truncates acknowledged, reads verified, operations with unknown outcome.
    pub writes: u64,
    pub reads: u64,
    pub unknown: u64,
    /// Reads that failed with an error while faults were active (allowed; never wrong bytes).
    pub read_errors: u64,
    pub kills: u64,
    pub racks_lost: u64,
    /// Stripes the rebuild found damaged and rebuilt.
    pub stripes_rebuilt: u64,
    /// Bytes of file data acknowledged.
    pub bytes_written: u64,
    /// The run lost one failure domain more than the protection tolerates.
    pub over_budget: bool,
    /// Over budget: files whose final read failed with an error (the others read back exactly).
    pub unreadable: u64,
}

pub fn data_replay_command(seed: u64, over_budget: bool) -> String {
    let flag = if over_budget { " --over-budget" } else { "" };
    format!("cargo run -p tessera-sim -- data --seed {seed}{flag} --verbose")
}

pub fn data_line(seed: u64, outcome: &DataOutcome, trace_hash: u64) -> String {
    let head = format!("seed={seed} trace_hash={trace_hash:016x}");
    if outcome.passed {
        format!(
            "{head} result=pass writes={} reads={} unknown={} read_errors={} kills={} racks_lost={} rebuilt={} unreadable={}",
            outcome.writes,
            outcome.reads,
            outcome.unknown,
            outcome.read_errors,
            outcome.kills,
            outcome.racks_lost,
            outcome.stripes_rebuilt,
            outcome.unreadable
        )
    } else {
        let reason = outcome.reason.as_deref().unwrap_or("unknown").replace('"', "'");
        format!("{head} result=fail reason=\"{reason}\" replay=\"{}\"", data_replay_command(seed, outcome.over_budget))
    }
}

/// Run the scenario of `seed`.
pub fn run_data_seed(seed: u64, verbose: bool) -> (DataOutcome, u64) {
    run_data_scenario(DataScenario::from_seed(seed), false, verbose)
}

/// Run `s`; with `over_budget`, `K + 1` failure domains are lost and reads must fail cleanly or be exact.
pub fn run_data_scenario(s: DataScenario, over_budget: bool, verbose: bool) -> (DataOutcome, u64) {
    let trace = Trace::new(verbose);
    let seed = s.seed;
    let mut outcome = crate::run::in_runtime(seed, run(s, over_budget, trace.clone()))
        .unwrap_or_else(|panic| DataOutcome { reason: Some(panic), ..Default::default() });
    outcome.over_budget = over_budget;
    (outcome, trace.hash())
}

struct Run {
    s: Arc<DataScenario>,
    cluster: Cluster,
    views: BTreeMap<NodeId, SharedHostView>,
    map: SharedDataMap,
    nodes: Vec<PlacementNode>,
    directory: tessera_meta::client::ShardDirectory,
    rng: DetRng,
    trace: Trace,
    outcome: DataOutcome,
}

async fn run(s: DataScenario, over_budget: bool, trace: Trace) -> DataOutcome {
    trace.record(SOURCE, format_args!("seed {}: {} (over budget: {over_budget})", s.seed, s.summary()));
    let mut rng = DetRng::from_seed(s.seed).fork("data-run");
    let meta = Arc::new(s.meta());
    let nodes = meta.placement_nodes();
    let map: SharedDataMap = Arc::new(Mutex::new(DataMap::new(nodes.clone())));
    let roots = BTreeMap::from([(0, (InodeId::ROOT, ROOT_CREATED_NS))]);
    let genesis = tessera_config::placement::place(&nodes, u32::from(s.shards), s.meta_replicas, None)
        .expect("the scenario's nodes can be placed");
    let directory =
        tessera_meta::client::ShardDirectory::new(&genesis, 1).expect("the genesis map is a valid directory");
    let hook = node::services_hook(node::ServicesSetup::for_scenario(&s), map.clone(), directory.clone());
    let HostCluster { cluster, views, map: shard_map, .. } =
        start_hosts_with(&meta, roots, &mut rng, &trace, Some(hook));
    assert_eq!(shard_map.map, genesis, "the hosts start from the same placement");
    let mut run =
        Run { s: Arc::new(s), cluster, views, map, nodes, directory, rng, trace, outcome: DataOutcome::default() };
    let verdict = run.phases(over_budget).await;
    let mut outcome = std::mem::take(&mut run.outcome);
    outcome.kills = run.cluster.kills();
    match verdict {
        Ok(()) => outcome.passed = true,
        Err(reason) => outcome.reason = Some(reason),
    }
    run.trace.record(SOURCE, format_args!("outcome {outcome:?}"));
    outcome
}

impl Run {
    async fn phases(&mut self, over_budget: bool) -> Result<(), String> {
        self.wait_for_leaders(Duration::from_secs(30)).await?;
        let mut checker = self.client(CHECKER);
        let files = FileSet::create(&mut checker, self.s.clients, self.s.files_per_client).await?;
        let done = Arc::new(AtomicU64::new(0));
        let ledger = Arc::new(Mutex::new(workload::Ledger::new(&files)));
        let mut tasks = Vec::new();
        for c in 0..self.s.clients {
            let id = NodeId(CLIENT_BASE + c);
            let client = self.client(id);
            let rng = self.rng.fork(&format!("workload:{id}"));
            let mine = files.of_client(c);
            let task =
                workload::run_client(client, mine, rng, self.s.clone(), self.map.clone(), ledger.clone(), done.clone());
            tasks.push(self.cluster.spawn_on(id, task));
        }
        // Over budget, the K + 1 domains go at once after the workload, so rebuild cannot save anything.
        let losses = if over_budget { 0 } else { self.s.rack_losses };
        let mut nemesis = Nemesis::new(self.rng.fork("nemesis"), self.s.clone(), self.map.clone(), losses);
        let until = SimClock.now() + Duration::from_secs(900);
        let (n, finished) = (self.s.clients, done.clone());
        nemesis.run(&mut self.cluster, until, move || finished.load(Ordering::Relaxed) >= n).await;
        if over_budget {
            nemesis.lose_racks_now(&mut self.cluster, tolerated(self.s.protection) + 1);
        }
        nemesis.heal(&mut self.cluster);
        self.outcome.racks_lost = nemesis.racks_lost();
        if over_budget {
            // Let the failure detector declare them and the survivors try (and fail) to rebuild.
            SimClock.sleep(Duration::from_secs(5)).await;
        }
        self.trace.record(SOURCE, format_args!("healed; lost racks {:?}", nemesis.lost_racks()));
        for task in tasks {
            task.await.map_err(|e| format!("workload task failed: {e}"))?;
        }
        {
            let l = ledger.lock().expect("ledger");
            if let Some(v) = l.violations.first() {
                return Err(format!("during the workload: {v}"));
            }
            self.outcome.writes = l.writes;
            self.outcome.reads = l.reads;
            self.outcome.unknown = l.unknown;
            self.outcome.read_errors = l.read_errors;
            self.outcome.bytes_written = l.bytes_written;
        }
        self.wait_for_leaders(Duration::from_secs(60)).await?;
        let live: Vec<PlacementNode> = self.map.lock().expect("map").live();
        checker.set_nodes(live.clone());
        let dead: BTreeSet<NodeId> = self.map.lock().expect("map").dead.clone();
        if over_budget {
            let l = ledger.lock().expect("ledger").clone();
            self.outcome.unreadable = workload::check_over_budget(&mut checker, &l).await?;
            return Ok(());
        }
        let mut io = workload::checker_io(&self.cluster, CHECKER, &mut self.rng);
        let rebuilt = workload::wait_for_rebuild(&mut checker, &mut io, &live, &dead, Duration::from_secs(600)).await?;
        self.outcome.stripes_rebuilt = rebuilt;
        let l = ledger.lock().expect("ledger").clone();
        workload::check_files(&mut checker, &l).await?;
        workload::check_stripes(&mut checker, &mut io, &dead, self.s.shards, &self.nodes).await
    }

    fn client(&mut self, id: NodeId) -> SimDataClient {
        self.cluster.add_node(NodeSpec { id, rack: u32::MAX, disks: 0 }, |_env| std::future::pending());
        let rng = self.rng.fork(&format!("client:{id}"));
        let (meta_config, config) = workload::scenario_client_config(&self.s);
        let nodes = self.map.lock().expect("map").live();
        workload::make_client(&self.cluster, id, self.directory.clone(), meta_config, config, nodes, rng)
            .expect("a valid client config")
    }

    async fn wait_for_leaders(&self, limit: Duration) -> Result<(), String> {
        wait_for_all_leaders(&self.cluster, &self.views, self.s.shards, limit).await
    }
}
