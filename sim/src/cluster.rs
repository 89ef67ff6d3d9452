//! The cluster harness: simulated nodes, each a madsim node with a rack, disks that outlive its crashes,
//! a network endpoint and its own clocks, booted by a function that runs again on every restart.
//!
//! `kill` is power loss for the whole node: madsim drops every task of the node at its current await
//! point, every disk of the node crashes (unflushed writes torn or lost) and the network forgets the
//! node's queued messages. `restart` powers the disks back on (and clears their fencing, as re-opening a
//! device does), brings the endpoint up and re-runs the node's boot function, which finds only what its
//! disks made durable.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use madsim::runtime::{Handle, NodeHandle};
use tessera_env::{DetRng, NodeId, Rng};

use crate::disk::{DiskModel, SimDisk};
use crate::env::{SimClock, SimSpawn, SimWallClock};
use crate::net::{NetConfig, SimNet, SimNetwork};
use crate::trace::Trace;

const SOURCE: &str = "cluster";

/// What one node is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSpec {
    pub id: NodeId,
    pub rack: u32,
    pub disks: usize,
}

/// Everything a node's boot function receives: the node's doors to the simulated world.
#[derive(Debug)]
pub struct NodeEnv {
    pub id: NodeId,
    pub rack: u32,
    /// How many times this node booted before (0 on the first boot).
    pub boot: u64,
    pub disks: Vec<SimDisk>,
    pub net: SimNet,
    pub clock: SimClock,
    pub wall: SimWallClock,
    pub spawn: SimSpawn,
    /// A fresh generator for this boot, forked from the node's generator.
    pub rng: DetRng,
    pub trace: Trace,
}

struct ClusterNode {
    rack: u32,
    disks: Vec<SimDisk>,
    wall: SimWallClock,
    madsim: NodeHandle,
    alive: bool,
}

/// A set of simulated nodes on one network. Create it inside a madsim runtime.
pub struct Cluster {
    handle: Handle,
    trace: Trace,
    rng: DetRng,
    network: SimNetwork,
    disk_model: DiskModel,
    wall: SimWallClock,
    nodes: BTreeMap<NodeId, ClusterNode>,
    kills: u64,
    restarts: u64,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let alive: Vec<(NodeId, bool)> = self.nodes.iter().map(|(&id, n)| (id, n.alive)).collect();
        f.debug_struct("Cluster").field("nodes", &alive).field("kills", &self.kills).finish_non_exhaustive()
    }
}

impl Drop for Cluster {
    /// The run is over: return the disks' memory, which tasks leaked by madsim's runtime (madsim issue
    /// 242: a dropped runtime does not drop its tasks) would otherwise keep.
    fn drop(&mut self) {
        for node in self.nodes.values() {
            for disk in &node.disks {
                disk.release_memory();
            }
        }
    }
}

impl Cluster {
    /// An empty cluster. Panics outside a madsim runtime.
    pub fn new(mut rng: DetRng, trace: Trace, net_config: NetConfig, disk_model: DiskModel) -> Cluster {
        let network = SimNetwork::new(rng.fork("net"), trace.clone(), net_config);
        let wall = SimWallClock::new(&mut rng.fork("wall"));
        Cluster {
            handle: Handle::current(),
            trace,
            rng,
            network,
            disk_model,
            wall,
            nodes: BTreeMap::new(),
            kills: 0,
            restarts: 0,
        }
    }

    /// Add a node and boot it. `boot` runs on the node now and again after every restart; it should run
    /// for as long as the node lives (a node whose boot future returns is stopped by madsim).
    pub fn add_node<F, Fut>(&mut self, spec: NodeSpec, boot: F)
    where
        F: Fn(NodeEnv) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        assert!(!self.nodes.contains_key(&spec.id), "node {} added twice", spec.id);
        let id = spec.id;
        let disks: Vec<SimDisk> = (0..spec.disks)
            .map(|d| {
                let name = format!("{id}/disk{d}");
                let rng = self.rng.fork(&format!("disk:{id}:{d}"));
                SimDisk::new(name, self.disk_model.clone(), rng, self.trace.clone())
            })
            .collect();
        let net = self.network.endpoint(id, spec.rack);
        let wall = self.wall.for_node();
        let boot_rng = Arc::new(Mutex::new(self.rng.fork(&format!("boot:{id}"))));
        let boots = Arc::new(AtomicU64::new(0));
        let (rack, trace, node_disks, node_wall) = (spec.rack, self.trace.clone(), disks.clone(), wall.clone());
        let init = move || {
            let boot_number = boots.fetch_add(1, Ordering::Relaxed);
            let rng = boot_rng.lock().unwrap_or_else(|e| e.into_inner()).fork("boot");
            trace.record(SOURCE, format_args!("{id} boots (boot #{boot_number})"));
            boot(NodeEnv {
                id,
                rack,
                boot: boot_number,
                disks: node_disks.clone(),
                net: net.clone(),
                clock: SimClock,
                wall: node_wall.clone(),
                spawn: SimSpawn::new(trace.clone(), id.to_string()),
                rng,
                trace: trace.clone(),
            })
        };
        let madsim = self.handle.create_node().name(id.to_string()).init(init).build();
        self.nodes.insert(id, ClusterNode { rack: spec.rack, disks, wall, madsim, alive: true });
    }

    fn node(&self, id: NodeId) -> &ClusterNode {
        self.nodes.get(&id).unwrap_or_else(|| panic!("no node {id} in the cluster"))
    }

    /// Power loss of one node: its tasks stop, its disks crash, its network endpoint goes down.
    pub fn kill(&mut self, id: NodeId) {
        self.trace.record(SOURCE, format_args!("kill {id}"));
        let node = self.nodes.get_mut(&id).unwrap_or_else(|| panic!("no node {id} in the cluster"));
        self.handle.kill(node.madsim.id());
        for disk in &node.disks {
            disk.crash();
        }
        self.network.node_down(id);
        node.alive = false;
        self.kills += 1;
    }

    /// Power the node back on: disks online (fencing cleared), endpoint up, boot function re-run.
    /// Restarting a live node kills it first.
    pub fn restart(&mut self, id: NodeId) {
        if self.node(id).alive {
            self.kill(id);
        }
        self.trace.record(SOURCE, format_args!("restart {id}"));
        let node = self.nodes.get_mut(&id).unwrap_or_else(|| panic!("no node {id} in the cluster"));
        for disk in &node.disks {
            disk.restart();
            disk.repair();
        }
        self.network.node_up(id);
        self.handle.restart(node.madsim.id());
        node.alive = true;
        self.restarts += 1;
    }

    /// Stop polling the node's tasks (a long GC pause, a stalled VM): its state, timers and drives stay;
    /// messages to it queue in its mailbox (bounded) until it runs again.
    pub fn pause(&mut self, id: NodeId) {
        self.trace.record(SOURCE, format_args!("pause {id}"));
        self.handle.pause(self.node(id).madsim.id());
    }

    /// Run a paused node's tasks again.
    pub fn resume(&mut self, id: NodeId) {
        self.trace.record(SOURCE, format_args!("resume {id}"));
        self.handle.resume(self.node(id).madsim.id());
    }

    /// Spawn a task on `id` (it dies with the node).
    pub fn spawn_on<F>(&self, id: NodeId, task: F) -> madsim::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.node(id).madsim.spawn(task)
    }

    pub fn network(&self) -> &SimNetwork {
        &self.network
    }

    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    pub fn nodes(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    pub fn rack_of(&self, id: NodeId) -> u32 {
        self.node(id).rack
    }

    pub fn disks(&self, id: NodeId) -> &[SimDisk] {
        &self.node(id).disks
    }

    pub fn wall_clock(&self, id: NodeId) -> &SimWallClock {
        &self.node(id).wall
    }

    pub fn is_alive(&self, id: NodeId) -> bool {
        self.node(id).alive
    }

    /// Node kills so far (including the kill inside a restart of a live node).
    pub fn kills(&self) -> u64 {
        self.kills
    }

    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// A generator for the caller's purpose, forked from the cluster's.
    pub fn fork_rng(&mut self, purpose: &str) -> DetRng {
        self.rng.fork(purpose)
    }
}
