//! The metadata shard host in simulation: a cluster of `tessera_meta::host::MetaHost` nodes (each on
//! its own simulated drive), a hand-rolled client that calls shards with retries, and one scenario
//! ([`run_meta_seed`]): clients create, stat, look up and list single-shard entries while a nemesis
//! kills and restarts leaders and partitions nodes over a lossy network; optionally the shard map
//! changes (a node leaves and its replicas move); then everything heals and every acknowledged create
//! must still be there.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tessera_config::placement::{self, PlacementNode};
use tessera_env::{Clock, DetRng, Net, NodeId, Rng};
use tessera_meta::exec::{ReqId, ShardAnswer, ShardCall};
use tessera_meta::host::{
    EpochMap, HostConfig, HostEnv, HostSetup, HostView, MetaHost, SharedHostView, SharedShardMap,
};
use tessera_meta::shard::dir_shard;
use tessera_meta::wire::MetaMessage;
use tessera_meta::{Credentials, FileType, InodeId, MetaOp, MetaReply, READDIR_START};
use tessera_raft::{RaftLogStore, RaftRole};
use tessera_store::{DeviceIdentity, Store, StoreConfig};

use crate::cluster::{Cluster, NodeEnv, NodeSpec};
use crate::disk::DiskModel;
use crate::env::SimClock;
use crate::net::{NetConfig, SimNet};
use crate::trace::Trace;

const SOURCE: &str = "meta";
const MIB: u64 = 1024 * 1024;
/// Client node ids start here (clients are never crashed).
pub const CLIENT_BASE: u64 = 1001;
/// Every file system root lives at counter 1 of its shard: each shard holds one root in this
/// scenario, so every operation on it is single-shard.
const ROOT_CREATED_NS: u64 = 1_000_000_000;

/// The journal of a host's metadata drive (drive 0).
pub const META_JOURNAL_BYTES: u64 = 4 * MIB;

/// What the seed chose (or the test set).
#[derive(Clone, Debug)]
pub struct MetaScenario {
    pub seed: u64,
    /// Nodes, each in its own rack.
    pub nodes: u64,
    pub shards: u16,
    pub replication: u32,
    pub clients: u64,
    pub chaos: Duration,
    /// Kill/restart and partition nodes during the chaos phase.
    pub faults: bool,
    pub net: NetConfig,
    pub host: HostConfig,
    /// After the chaos phase, the last node leaves the shard map and its replicas move.
    pub map_change: bool,
    /// Directory partitions split above this many entries.
    pub split_threshold_entries: u32,
    /// Nodes per rack (failure domain); with 1, node `i` is alone in rack `i`.
    pub nodes_per_rack: u64,
    /// Drives per node besides the metadata drive (handed to the boot hook).
    pub data_disks: usize,
    /// The drives' model.
    pub disk: DiskModel,
    /// Each host's Raft log store frees unneeded records in batches of this many (0: at once); 450 or
    /// more make journal entries of several blocks (see `RaftLogStore::set_free_batch_extents`).
    pub raft_free_batch_extents: usize,
}

impl MetaScenario {
    pub fn new(seed: u64, nodes: u64, shards: u16) -> MetaScenario {
        let mut rng = DetRng::from_seed(seed).fork("meta-scenario");
        let net = NetConfig {
            latency_us_min: 200,
            latency_us_max: rng.range_inclusive(1_000, 5_000),
            loss_per_million: rng.range_inclusive(0, 20_000),
            duplicate_per_million: rng.range_inclusive(0, 10_000),
            queue_limit_messages: 4096,
        };
        let mut host = HostConfig { compact_every_entries: rng.range_inclusive(32, 256), ..HostConfig::default() };
        host.multi.raft.election_ticks = rng.range_inclusive(8, 14) as usize;
        MetaScenario {
            seed,
            nodes,
            shards,
            replication: 3,
            clients: 3,
            chaos: Duration::from_secs(rng.range_inclusive(15, 30)),
            faults: true,
            net,
            host,
            map_change: false,
            split_threshold_entries: tessera_meta::shard::SPLIT_THRESHOLD_DEFAULT,
            nodes_per_rack: 1,
            data_disks: 0,
            disk: DiskModel::nvme(256 * MIB),
            raft_free_batch_extents: 0,
        }
    }

    /// The failure domain of node `id`.
    pub fn rack_of(&self, id: NodeId) -> u32 {
        rack_of(self.nodes_per_rack, id)
    }

    pub fn summary(&self) -> String {
        format!(
            "{} nodes, {} shards x{}, {} clients, chaos {} s, faults {}, loss {}/M, dup {}/M, election {} ticks of {} ms, compact every {}, map change {}",
            self.nodes,
            self.shards,
            self.replication,
            self.clients,
            self.chaos.as_secs(),
            self.faults,
            self.net.loss_per_million,
            self.net.duplicate_per_million,
            self.host.multi.raft.election_ticks,
            self.host.tick_interval_ms,
            self.host.compact_every_entries,
            self.map_change
        )
    }

    pub fn node_ids(&self) -> Vec<NodeId> {
        (1..=self.nodes).map(NodeId).collect()
    }

    pub fn placement_nodes(&self) -> Vec<PlacementNode> {
        self.node_ids().into_iter().map(|id| PlacementNode { id, rack: self.rack_of(id), weight: 1 }).collect()
    }

    fn roots(&self) -> BTreeMap<u16, (InodeId, u64)> {
        (0..self.shards).map(|s| (s, (InodeId::new(s, 1), ROOT_CREATED_NS))).collect()
    }
}

/// The failure domain of node `id` when nodes are grouped `nodes_per_rack` to a rack (with 1, node `i`
/// is alone in rack `i`).
pub fn rack_of(nodes_per_rack: u64, id: NodeId) -> u32 {
    if nodes_per_rack <= 1 { id.0 as u32 } else { ((id.0 - 1) / nodes_per_rack) as u32 }
}

/// What one run measured and decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetaOutcome {
    pub passed: bool,
    pub reason: Option<String>,
    /// Operations answered during the workload.
    pub ops: u64,
    /// Creates (files and directories) acknowledged.
    pub acked: u64,
    pub kills: u64,
    /// Longest time one workload operation took, retries included (simulated ms).
    pub op_latency_ms_max: u64,
    /// Longest operation latency while the shard map change was being carried out.
    pub move_latency_ms_max: u64,
    /// Shards led by their preferred replica once healed (out of all shards).
    pub preferred_leaders: u64,
}

/// The command replaying a meta seed (the test's, until the simulator binary grows a `meta` command).
pub fn meta_replay_command(seed: u64) -> String {
    format!("META_SEED={seed} cargo test -p tessera-sim --test meta_host -- --nocapture replay")
}

/// Run `scenario` in a fresh madsim runtime; a panic is a failed run. Returns the outcome and the
/// trace hash.
pub fn run_meta_seed(scenario: MetaScenario, verbose: bool) -> (MetaOutcome, u64) {
    let trace = Trace::new(verbose);
    let outcome = crate::run::in_runtime(scenario.seed, run(scenario, trace.clone()))
        .unwrap_or_else(|panic| MetaOutcome { reason: Some(panic), ..Default::default() });
    (outcome, trace.hash())
}

/// What the clients saw, shared between their tasks and the checker.
#[derive(Debug, Default)]
struct Ledger {
    /// Acknowledged creates: (parent, name) -> (ino, kind).
    acked: BTreeMap<(InodeId, String), (InodeId, FileType)>,
    /// Creates whose answer never came (they may or may not have happened).
    maybe: BTreeSet<(InodeId, String)>,
    violations: Vec<String>,
    ops: u64,
    latency_ms_max: u64,
    /// The longest latency while this is set (during the map change).
    window: Option<u64>,
    move_latency_ms_max: u64,
}

type SharedLedger = Arc<Mutex<Ledger>>;

struct Run {
    s: Arc<MetaScenario>,
    cluster: Cluster,
    maps: BTreeMap<NodeId, SharedShardMap>,
    views: BTreeMap<NodeId, SharedHostView>,
    map: EpochMap,
    rng: DetRng,
    trace: Trace,
    ledger: SharedLedger,
    /// The clients' shard map.
    client_map: SharedShardMap,
    preferred: u64,
}

/// A started cluster of metadata hosts: the fabric and nodes, each node's shard-map source and
/// published view, and the map they started from.
#[allow(missing_debug_implementations)] // the fabric and nodes have no useful Debug
pub struct HostCluster {
    pub cluster: Cluster,
    pub maps: BTreeMap<NodeId, SharedShardMap>,
    pub views: BTreeMap<NodeId, SharedHostView>,
    pub map: EpochMap,
}

/// Start `s.nodes` hosts (node ids 1..=nodes, one rack each) on a genesis placement of `s.shards`
/// shards, the file system roots in `roots`.
pub fn start_hosts(
    s: &Arc<MetaScenario>,
    roots: BTreeMap<u16, (InodeId, u64)>,
    rng: &mut DetRng,
    trace: &Trace,
) -> HostCluster {
    start_hosts_with(s, roots, rng, trace, None)
}

/// What a boot hook gets: the node's other doors, for services beside its metadata host.
#[derive(Debug)]
pub struct HookEnv {
    pub id: NodeId,
    pub rack: u32,
    /// The node's drives after the metadata drive (`MetaScenario::data_disks` of them).
    pub disks: Vec<crate::disk::SimDisk>,
    /// The node's endpoint (its fabric registers more endpoints of the node).
    pub net: SimNet,
    pub wall: crate::env::SimWallClock,
    pub spawn: crate::env::SimSpawn,
    pub rng: DetRng,
    pub trace: Trace,
}

/// Runs on every boot of every node and returns the node's other services as one task, which the boot
/// spawns on the node before its metadata host starts (so they die with the node).
pub type BootHook = Arc<dyn Fn(HookEnv) -> tessera_env::BoxTask + Send + Sync>;

/// [`start_hosts`] with nodes grouped `s.nodes_per_rack` to a rack, `1 + s.data_disks` drives each, and
/// `hook` run on every boot.
pub fn start_hosts_with(
    s: &Arc<MetaScenario>,
    roots: BTreeMap<u16, (InodeId, u64)>,
    rng: &mut DetRng,
    trace: &Trace,
    hook: Option<BootHook>,
) -> HostCluster {
    let genesis = placement::place(&s.placement_nodes(), u32::from(s.shards), s.replication, None)
        .expect("the scenario's nodes can be placed");
    let map = EpochMap { epoch: 1, map: genesis.clone() };
    let setup = HostSetup { genesis, roots, split_threshold_entries: s.split_threshold_entries };
    let mut cluster = Cluster::new(rng.fork("cluster"), trace.clone(), s.net.clone(), s.disk.clone());
    let mut maps = BTreeMap::new();
    let mut views = BTreeMap::new();
    for id in s.node_ids() {
        let shared_map: SharedShardMap = Arc::new(Mutex::new(map.clone()));
        let view: SharedHostView = Arc::new(Mutex::new(HostView::default()));
        let provisioned = Arc::new(AtomicBool::new(false));
        let (s2, setup2, m2, v2) = (s.clone(), setup.clone(), shared_map.clone(), view.clone());
        let hook = hook.clone();
        cluster.add_node(NodeSpec { id, rack: s.rack_of(id), disks: 1 + s.data_disks }, move |mut env| {
            let services = hook.as_ref().map(|hook| {
                let hook_rng = env.rng.fork("services");
                hook(HookEnv {
                    id: env.id,
                    rack: env.rack,
                    disks: env.disks[1..].to_vec(),
                    net: env.net.clone(),
                    wall: env.wall.clone(),
                    spawn: env.spawn.clone(),
                    rng: hook_rng,
                    trace: env.trace.clone(),
                })
            });
            boot(env, s2.clone(), setup2.clone(), m2.clone(), v2.clone(), provisioned.clone(), services)
        });
        maps.insert(id, shared_map);
        views.insert(id, view);
    }
    HostCluster { cluster, maps, views, map }
}

/// Wait until every one of `shards` shards has a leader, for at most `limit` of simulated time.
pub async fn wait_for_all_leaders(
    cluster: &Cluster,
    views: &BTreeMap<NodeId, SharedHostView>,
    shards: u16,
    limit: Duration,
) -> Result<(), String> {
    let start = SimClock.now();
    loop {
        let led = leaders(cluster, views).len();
        if led >= usize::from(shards) {
            return Ok(());
        }
        if SimClock.now().saturating_since(start) > limit {
            return Err(format!("only {led} of {shards} shards have a leader; {}", leaderless(cluster, views, shards)));
        }
        SimClock.sleep(Duration::from_millis(100)).await;
    }
}

/// How the live replicas of each shard without a leader see their group (for failure messages).
fn leaderless(cluster: &Cluster, views: &BTreeMap<NodeId, SharedHostView>, shards: u16) -> String {
    let led = leaders(cluster, views);
    let mut parts = Vec::new();
    for shard in (0..shards).filter(|s| !led.contains_key(s)) {
        let mut replicas = Vec::new();
        for (&id, view) in views.iter().filter(|(id, _)| cluster.is_alive(**id)) {
            if let Some(g) = view.lock().expect("view").groups.get(&shard) {
                let s = &g.status;
                replicas.push(format!(
                    "{id} {:?} term {} leader {:?} commit {} applied {} last {} voters {:?} learners {:?}",
                    s.role, s.term, s.leader, s.commit, s.applied, s.last_index, s.voters, s.learners
                ));
            }
        }
        parts.push(format!("shard {shard}: [{}]", replicas.join("; ")));
    }
    parts.join(" ")
}

/// Leaders per shard as the live nodes report them (the highest term wins).
pub fn leaders(cluster: &Cluster, views: &BTreeMap<NodeId, SharedHostView>) -> BTreeMap<u16, (NodeId, u64)> {
    let mut leaders: BTreeMap<u16, (NodeId, u64)> = BTreeMap::new();
    for (&id, view) in views {
        if !cluster.is_alive(id) {
            continue;
        }
        for (&shard, g) in &view.lock().expect("view").groups {
            if g.status.role == RaftRole::Leader && leaders.get(&shard).is_none_or(|(_, t)| *t < g.status.term) {
                leaders.insert(shard, (id, g.status.term));
            }
        }
    }
    leaders
}

async fn run(s: MetaScenario, trace: Trace) -> MetaOutcome {
    trace.record(SOURCE, format_args!("seed {}: {}", s.seed, s.summary()));
    let mut rng = DetRng::from_seed(s.seed).fork("meta-run");
    let s = Arc::new(s);
    let HostCluster { cluster, maps, views, map } = start_hosts(&s, s.roots(), &mut rng, &trace);
    let client_map = Arc::new(Mutex::new(map.clone()));
    let mut run = Run { s, cluster, maps, views, map, rng, trace, ledger: Arc::default(), client_map, preferred: 0 };
    let verdict = run.phases().await;
    let ledger = run.ledger.lock().expect("ledger");
    let mut outcome = MetaOutcome {
        passed: false,
        reason: None,
        ops: ledger.ops,
        acked: ledger.acked.len() as u64,
        kills: run.cluster.kills(),
        op_latency_ms_max: ledger.latency_ms_max,
        move_latency_ms_max: ledger.move_latency_ms_max,
        preferred_leaders: run.preferred,
    };
    match verdict {
        Ok(()) => outcome.passed = true,
        Err(reason) => outcome.reason = Some(reason),
    }
    run.trace.record(SOURCE, format_args!("outcome {outcome:?}"));
    outcome
}

/// Boot one node: open (the first time, format) its drive, open the Raft log store, run the host.
async fn boot(
    env: NodeEnv,
    s: Arc<MetaScenario>,
    setup: HostSetup,
    maps: SharedShardMap,
    view: SharedHostView,
    provisioned: Arc<AtomicBool>,
    services: Option<tessera_env::BoxTask>,
) {
    *view.lock().expect("view lock") = HostView::default();
    if let Some(task) = services {
        tessera_env::Spawn::spawn(&env.spawn, "services", task);
    }
    let NodeEnv { id, disks, net, clock, wall, rng, trace, .. } = env;
    let source = id.to_string();
    let store = if provisioned.load(Ordering::Relaxed) {
        Store::open(disks[0].clone()).await.map_err(|e| format!("open store: {e}"))
    } else {
        let identity = DeviceIdentity { cluster_id: u128::from(s.seed) + 1, device_id: u128::from(id.0) };
        let config = StoreConfig { max_extent_bytes: 4 * MIB as u32, journal_bytes: Some(META_JOURNAL_BYTES) };
        let store = Store::format(disks[0].clone(), identity, config).await.map_err(|e| format!("format store: {e}"));
        if store.is_ok() {
            provisioned.store(true, Ordering::Relaxed);
        }
        store
    };
    let started = async {
        let mut log = RaftLogStore::open(store?).await.map_err(|e| format!("open raft log: {e}"))?;
        log.set_free_batch_extents(s.raft_free_batch_extents);
        let env = HostEnv { id, clock, wall, net, rng };
        MetaHost::open(env, s.host.clone(), setup, log, maps, view).await.map_err(|e| format!("open host: {e}"))
    };
    match started.await {
        Ok(host) => {
            if let Err(e) = host.run().await {
                trace.record(&source, format_args!("host stopped: {e}"));
            }
        }
        Err(reason) => trace.record(&source, format_args!("host cannot start: {reason}")),
    }
    std::future::pending().await
}

fn creds() -> Credentials {
    Credentials { uid: 0, gid: 0, groups: Vec::new() }
}

impl Run {
    async fn phases(&mut self) -> Result<(), String> {
        self.wait_for_leaders(Duration::from_secs(20)).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for c in 0..self.s.clients {
            let id = NodeId(CLIENT_BASE + c);
            self.cluster.add_node(NodeSpec { id, rack: 0, disks: 0 }, |_env| std::future::pending());
            let client = self.client(id);
            let (ledger, stop, shards) = (self.ledger.clone(), stop.clone(), self.s.shards);
            tasks.push(self.cluster.spawn_on(id, workload(client, shards, ledger, stop)));
        }
        self.chaos().await;
        if self.s.faults {
            self.power_loss().await;
        }
        if self.s.map_change {
            self.change_map().await?;
        }
        self.heal().await;
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            task.await.map_err(|e| format!("workload task failed: {e}"))?;
        }
        self.wait_for_leaders(Duration::from_secs(30)).await?;
        SimClock.sleep(Duration::from_millis(3 * self.s.host.balance_interval_ms)).await;
        self.preferred = self.preferred_leaders();
        self.check().await
    }

    fn client(&mut self, id: NodeId) -> MetaClient {
        let net = self.cluster.network().endpoint(id, 0);
        MetaClient::new(id, net, self.client_map.clone(), self.rng.fork(&format!("client:{id}")))
    }

    fn leaders(&self) -> BTreeMap<u16, (NodeId, u64)> {
        leaders(&self.cluster, &self.views)
    }

    async fn wait_for_leaders(&self, limit: Duration) -> Result<(), String> {
        let start = SimClock.now();
        while self.leaders().len() < usize::from(self.s.shards) {
            if SimClock.now().saturating_since(start) > limit {
                return Err(format!("only {} of {} shards have a leader", self.leaders().len(), self.s.shards));
            }
            SimClock.sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// Kill and restart leaders, partition nodes: one fault at a time, so a quorum of every shard is
    /// back between faults (with 5 nodes, sometimes two at once).
    async fn chaos(&mut self) {
        let start = SimClock.now();
        while SimClock.now().saturating_since(start) < self.s.chaos {
            SimClock.sleep(Duration::from_millis(self.rng.range_inclusive(500, 2_500))).await;
            if !self.s.faults {
                continue;
            }
            let leaders = self.leaders();
            let busiest =
                leaders.values().map(|(n, _)| *n).max_by_key(|n| leaders.values().filter(|(m, _)| m == n).count());
            let victim = match busiest {
                Some(n) if self.rng.chance(2, 3) => n,
                _ => NodeId(self.rng.range_inclusive(1, self.s.nodes)),
            };
            let mut victims = vec![victim];
            if self.s.nodes >= 5 && self.rng.chance(1, 3) {
                let other = NodeId(self.rng.range_inclusive(1, self.s.nodes));
                if other != victim {
                    victims.push(other);
                }
            }
            let outage = Duration::from_millis(self.rng.range_inclusive(500, 4_000));
            if self.rng.chance(1, 2) {
                self.trace.record(SOURCE, format_args!("nemesis: kill {victims:?} for {outage:?}"));
                for &v in &victims {
                    self.cluster.kill(v);
                }
                SimClock.sleep(outage).await;
                for &v in &victims {
                    self.cluster.restart(v);
                }
            } else {
                self.trace.record(SOURCE, format_args!("nemesis: isolate {victims:?} for {outage:?}"));
                let rest: Vec<NodeId> = self.cluster.nodes().into_iter().filter(|n| !victims.contains(n)).collect();
                let mut groups: Vec<Vec<NodeId>> = victims.iter().map(|&v| vec![v]).collect();
                groups.push(rest);
                self.cluster.network().partition(&groups);
                SimClock.sleep(outage).await;
                self.cluster.network().heal();
            }
        }
    }

    /// Every node loses power at once and restarts: the groups come back from the drives alone.
    async fn power_loss(&mut self) {
        self.cluster.network().heal();
        self.trace.record(SOURCE, format_args!("nemesis: power loss of every node"));
        for id in self.s.node_ids() {
            if self.cluster.is_alive(id) {
                self.cluster.kill(id);
            }
        }
        SimClock.sleep(Duration::from_millis(self.rng.range_inclusive(100, 2_000))).await;
        for id in self.s.node_ids() {
            self.cluster.restart(id);
        }
    }

    /// Shards led by their preferred replica (`replicas[0]`).
    fn preferred_leaders(&self) -> u64 {
        let leaders = self.leaders();
        let preferred = |(shard, r): (usize, &placement::ShardReplicas)| {
            leaders.get(&(shard as u16)).is_some_and(|(l, _)| r.replicas.first() == Some(l))
        };
        self.map.map.shards.iter().enumerate().filter(|&x| preferred(x)).count() as u64
    }

    /// The last node leaves the map: its replicas move (learner -> voter -> removal) while the clients
    /// keep going; done when every shard's leader has exactly the new replicas as voters and the node
    /// hosts nothing.
    async fn change_map(&mut self) -> Result<(), String> {
        let leaving = NodeId(self.s.nodes);
        let nodes: Vec<PlacementNode> = self.s.placement_nodes().into_iter().filter(|n| n.id != leaving).collect();
        let next = placement::place(&nodes, u32::from(self.s.shards), self.s.replication, Some(&self.map.map))
            .map_err(|e| format!("placement without {leaving}: {e}"))?;
        self.map = EpochMap { epoch: self.map.epoch + 1, map: next };
        self.trace.record(SOURCE, format_args!("map change: {leaving} leaves, epoch {}", self.map.epoch));
        self.ledger.lock().expect("ledger").window = Some(0);
        for shared in self.maps.values().chain([&self.client_map]) {
            *shared.lock().expect("map lock") = self.map.clone();
        }
        let start = SimClock.now();
        loop {
            if self.moved(leaving) {
                break;
            }
            if SimClock.now().saturating_since(start) > Duration::from_secs(60) {
                return Err(format!("shard map change not carried out within 60 s: {:?}", self.leaders()));
            }
            SimClock.sleep(Duration::from_millis(200)).await;
        }
        let took = SimClock.now().saturating_since(start);
        let mut l = self.ledger.lock().expect("ledger");
        l.move_latency_ms_max = l.window.take().unwrap_or(0);
        self.trace.record(SOURCE, format_args!("map change carried out in {} ms", took.as_millis()));
        Ok(())
    }

    fn moved(&self, leaving: NodeId) -> bool {
        if !self.views[&leaving].lock().expect("view").groups.is_empty() {
            return false;
        }
        let leaders = self.leaders();
        (0..self.s.shards).all(|shard| {
            let Some((leader, _)) = leaders.get(&shard) else { return false };
            let view = self.views[leader].lock().expect("view");
            let Some(g) = view.groups.get(&shard) else { return false };
            let mut target = self.map.map.shards[usize::from(shard)].replicas.clone();
            target.sort();
            g.status.voters == target && g.status.learners.is_empty()
        })
    }

    async fn heal(&mut self) {
        self.cluster.network().heal();
        for id in self.cluster.nodes() {
            if !self.cluster.is_alive(id) {
                self.cluster.restart(id);
            }
        }
        self.trace.record(SOURCE, format_args!("healed"));
        SimClock.sleep(Duration::from_secs(2)).await;
    }

    /// Every acknowledged create is still there: looked up, stat'ed, listed.
    async fn check(&mut self) -> Result<(), String> {
        let ledger = std::mem::take(&mut *self.ledger.lock().expect("ledger"));
        if let Some(v) = ledger.violations.first() {
            return Err(format!("{} violations, first: {v}", ledger.violations.len()));
        }
        let id = NodeId(CLIENT_BASE + 100);
        self.cluster.add_node(NodeSpec { id, rack: 0, disks: 0 }, |_env| std::future::pending());
        let client = self.client(id);
        let acked = ledger.acked.clone();
        let shards = self.s.shards;
        let task = self.cluster.spawn_on(id, check_all(client, acked, shards));
        let verdict = task.await.map_err(|e| format!("checker task failed: {e}"))?;
        *self.ledger.lock().expect("ledger") = ledger;
        verdict
    }
}

async fn check_all(
    mut client: MetaClient,
    acked: BTreeMap<(InodeId, String), (InodeId, FileType)>,
    shards: u16,
) -> Result<(), String> {
    let deadline = Duration::from_secs(30);
    for ((parent, name), (ino, kind)) in &acked {
        let op = MetaOp::Lookup { parent: *parent, name: name.clone(), creds: creds() };
        match client.apply(parent.shard(), op, deadline).await {
            Some(Ok(MetaReply::Child { ino: i, kind: k })) if i == *ino && k == *kind => {}
            other => return Err(format!("acknowledged {name:?} in {parent:?} ({ino:?}) lost: lookup {other:?}")),
        }
        match client.apply(ino.shard(), MetaOp::GetAttr { ino: *ino }, deadline).await {
            Some(Ok(MetaReply::Attr(a))) if a.ino == *ino && a.kind == *kind => {}
            other => return Err(format!("acknowledged {ino:?} lost: getattr {other:?}")),
        }
    }
    for shard in 0..shards {
        let root = InodeId::new(shard, 1);
        let listed = client.list(root, deadline).await.ok_or_else(|| format!("readdir of {root:?} never answered"))?;
        let listed = listed.map_err(|e| format!("readdir of {root:?}: {e:?}"))?;
        for ((parent, name), _) in acked.range((root, String::new())..) {
            if *parent != root {
                break;
            }
            if !listed.contains(name) {
                return Err(format!("acknowledged {name:?} missing from readdir of {root:?}"));
            }
        }
    }
    Ok(())
}

/// One workload client: single-shard creates, mkdirs, getattrs, lookups and readdirs of its own
/// names, one at a time, each answer checked against what it was told before.
async fn workload(mut client: MetaClient, shards: u16, ledger: SharedLedger, stop: Arc<AtomicBool>) {
    let me = client.id;
    let deadline = Duration::from_secs(20);
    let mut mine: Vec<(InodeId, String, InodeId, FileType)> = Vec::new();
    let mut dirs: Vec<InodeId> = Vec::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let started = SimClock.now();
        let roll = client.rng.below(100);
        if roll < 50 || mine.is_empty() {
            let shard = client.rng.below(u64::from(shards)) as u16;
            let in_dir = dirs.iter().filter(|d| d.shard() == shard).copied().collect::<Vec<_>>();
            let parent = if !in_dir.is_empty() && client.rng.chance(1, 3) {
                in_dir[client.rng.below(in_dir.len() as u64) as usize]
            } else {
                InodeId::new(shard, 1)
            };
            n += 1;
            let mut name = format!("{me}-{n}");
            // A new directory lives in a shard hashed from its name: keep mkdirs single-shard by
            // picking a name that hashes to the parent's shard.
            let mkdir = client.rng.chance(1, 4) && {
                while dir_shard(parent, &name, shards) != shard {
                    n += 1;
                    name = format!("{me}-{n}");
                }
                true
            };
            let op = if mkdir {
                MetaOp::Mkdir { parent, name: name.clone(), mode: 0o755, creds: creds() }
            } else {
                MetaOp::Create { parent, name: name.clone(), mode: 0o644, creds: creds() }
            };
            let kind = if mkdir { FileType::Directory } else { FileType::Regular };
            let answer = client.apply(shard, op, deadline).await;
            let mut l = ledger.lock().expect("ledger");
            match answer {
                Some(Ok(MetaReply::Entry(attr))) if attr.kind == kind && attr.ino.shard() == shard => {
                    l.acked.insert((parent, name.clone()), (attr.ino, kind));
                    mine.push((parent, name, attr.ino, kind));
                    if mkdir {
                        dirs.push(attr.ino);
                    }
                }
                None => {
                    l.maybe.insert((parent, name));
                }
                other => l.violations.push(format!("{me}: {kind:?} {name:?} in {parent:?} answered {other:?}")),
            }
        } else if roll < 70 {
            let (_, name, ino, kind) = mine[client.rng.below(mine.len() as u64) as usize].clone();
            match client.apply(ino.shard(), MetaOp::GetAttr { ino }, deadline).await {
                Some(Ok(MetaReply::Attr(a))) if a.ino == ino && a.kind == kind => {}
                None => {}
                other => ledger.lock().expect("ledger").violations.push(format!("{me}: getattr {name:?} {other:?}")),
            }
        } else if roll < 85 {
            let (parent, name, ino, kind) = mine[client.rng.below(mine.len() as u64) as usize].clone();
            let op = MetaOp::Lookup { parent, name: name.clone(), creds: creds() };
            match client.apply(parent.shard(), op, deadline).await {
                Some(Ok(MetaReply::Child { ino: i, kind: k })) if i == ino && k == kind => {}
                None => {}
                other => ledger.lock().expect("ledger").violations.push(format!("{me}: lookup {name:?} {other:?}")),
            }
        } else {
            let root = InodeId::new(client.rng.below(u64::from(shards)) as u16, 1);
            let Some(listed) = client.list(root, deadline).await else { continue };
            let mut l = ledger.lock().expect("ledger");
            match listed {
                Ok(names) => {
                    for (parent, name, _, _) in &mine {
                        if *parent == root && !names.contains(name) {
                            l.violations.push(format!("{me}: acknowledged {name:?} missing from readdir of {root:?}"));
                        }
                    }
                    let prefix = format!("{me}-");
                    for name in names.iter().filter(|n| n.starts_with(&prefix)) {
                        let key = (root, name.clone());
                        if !l.acked.contains_key(&key) && !l.maybe.contains(&key) {
                            l.violations.push(format!("{me}: readdir of {root:?} lists {name:?}, never created"));
                        }
                    }
                }
                Err(e) => l.violations.push(format!("{me}: readdir of {root:?}: {e:?}")),
            }
        }
        let took = SimClock.now().saturating_since(started).as_millis() as u64;
        let mut l = ledger.lock().expect("ledger");
        l.ops += 1;
        l.latency_ms_max = l.latency_ms_max.max(took);
        if let Some(w) = &mut l.window {
            *w = (*w).max(took);
        }
    }
}

/// A minimal metadata client: calls one shard, following `NotLeader` hints, rotating over the
/// shard's replicas on timeouts, backing off on `Busy`; a request keeps its id across retries.
#[derive(Debug)]
pub struct MetaClient {
    pub id: NodeId,
    net: SimNet,
    map: SharedShardMap,
    seq: u64,
    guesses: BTreeMap<u16, NodeId>,
    pub rng: DetRng,
    attempt_timeout: Duration,
}

impl MetaClient {
    pub fn new(id: NodeId, net: SimNet, map: SharedShardMap, rng: DetRng) -> MetaClient {
        MetaClient { id, net, map, seq: 0, guesses: BTreeMap::new(), rng, attempt_timeout: Duration::from_millis(600) }
    }

    /// `op` on its shard: the POSIX result, `None` if no answer came within `deadline`. A `NotLocal`
    /// answer (never expected here) is reported as `EXDEV`.
    pub async fn apply(&mut self, shard: u16, op: MetaOp, deadline: Duration) -> Option<tessera_meta::MetaResult> {
        match self.call(shard, ShardCall::Apply { op }, deadline).await? {
            ShardAnswer::Applied(Ok(result)) => Some(result),
            ShardAnswer::Applied(Err(_)) => Some(Err(tessera_meta::Errno::EXDEV)),
            other => panic!("an Apply answered {other:?}"),
        }
    }

    /// Every name in `dir`, page by page.
    pub async fn list(
        &mut self,
        dir: InodeId,
        deadline: Duration,
    ) -> Option<Result<BTreeSet<String>, tessera_meta::Errno>> {
        let mut names = BTreeSet::new();
        let mut cookie = READDIR_START;
        loop {
            let op = MetaOp::Readdir { dir, cookie, max_entries: 64, creds: creds() };
            match self.apply(dir.shard(), op, deadline).await? {
                Ok(MetaReply::DirEntries { entries, eof }) => {
                    if let Some(last) = entries.last() {
                        cookie = last.cookie;
                    }
                    names.extend(entries.into_iter().map(|e| e.name));
                    if eof {
                        return Some(Ok(names));
                    }
                }
                Ok(other) => panic!("readdir answered {other:?}"),
                Err(e) => return Some(Err(e)),
            }
        }
    }

    pub async fn call(&mut self, shard: u16, call: ShardCall, deadline: Duration) -> Option<ShardAnswer> {
        self.seq += 1;
        let req = ReqId { client: self.id.0, seq: self.seq };
        let start = SimClock.now();
        while SimClock.now().saturating_since(start) < deadline {
            let (epoch, replicas) = {
                let m = self.map.lock().expect("map lock");
                (m.epoch, m.map.shards.get(usize::from(shard)).map(|r| r.replicas.clone()).unwrap_or_default())
            };
            let target = match self.guesses.get(&shard) {
                Some(&node) => node,
                None if replicas.is_empty() => return None,
                None => replicas[self.rng.below(replicas.len() as u64) as usize],
            };
            let request = MetaMessage::Request { req, shard, epoch, call: call.clone() };
            let _ = self.net.send(target, request.encode()).await;
            let attempt_end = SimClock.now() + self.attempt_timeout;
            loop {
                let wait = attempt_end.saturating_since(SimClock.now());
                let Some(Ok((from, bytes))) = tessera_env::recv_or_sleep(&self.net, &SimClock, wait).await else {
                    self.guesses.remove(&shard);
                    break;
                };
                match MetaMessage::decode(&bytes) {
                    Ok(MetaMessage::Response { req: r, answer }) if r == req => {
                        self.guesses.insert(shard, from);
                        return Some(answer);
                    }
                    Ok(MetaMessage::NotLeader { req: r, leader, .. }) if r == req => {
                        match leader {
                            Some(l) => self.guesses.insert(shard, l),
                            None => self.guesses.remove(&shard),
                        };
                        SimClock.sleep(Duration::from_millis(20)).await;
                        break;
                    }
                    Ok(MetaMessage::Busy { req: r }) if r == req => {
                        SimClock.sleep(Duration::from_millis(self.rng.range_inclusive(50, 200))).await;
                        break;
                    }
                    _ => {}
                }
            }
        }
        None
    }
}
