//! Swarm configuration: the seed picks the cluster shape, the network, the workload and the fault mix
//! (STYLE.md rule 9), so that many seeds explore many configurations, not one.

use std::time::Duration;

use tessera_env::{DetRng, NodeId, Rng};

use super::store::StoreKind;
use crate::disk::DiskModel;
use crate::net::NetConfig;

/// The client's id; servers are `n1..=nN`.
pub const CLIENT: NodeId = NodeId(0);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadConfig {
    pub puts: u32,
    pub max_put_bytes: u64,
    pub put_timeout: Duration,
    pub put_attempts: u32,
    pub get_timeout: Duration,
    pub get_attempts: u32,
}

/// Relative weights of the nemesis' actions (0 disables one) and its timing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultConfig {
    pub interval_ms_min: u64,
    pub interval_ms_max: u64,
    pub kill_weight: u64,
    pub crash_at_io_weight: u64,
    pub partition_weight: u64,
    pub slow_disk_weight: u64,
    pub disk_failure_weight: u64,
    pub clock_skew_weight: u64,
    pub downtime_ms_max: u64,
    pub partition_ms_max: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioConfig {
    pub seed: u64,
    pub servers: u64,
    pub racks: u32,
    pub disks_per_server: usize,
    pub disk: DiskModel,
    pub net: NetConfig,
    pub store: StoreKind,
    pub workload: WorkloadConfig,
    pub faults: FaultConfig,
}

const MIB: u64 = 1024 * 1024;

/// A weight that is 0 with probability 3/10 (swarm testing: leaving a fault out also explores).
fn weight(rng: &mut DetRng, max: u64) -> u64 {
    if rng.chance(3, 10) { 0 } else { rng.range_inclusive(1, max) }
}

impl ScenarioConfig {
    pub fn from_seed(seed: u64) -> ScenarioConfig {
        let mut rng = DetRng::from_seed(seed).fork("swarm");
        let servers = rng.range_inclusive(3, 7);
        let racks = rng.range_inclusive(2, 4.min(servers)) as u32;
        let disks_per_server = rng.range_inclusive(1, 2) as usize;
        let latency_us_min = rng.range_inclusive(100, 2_000);
        let net = NetConfig {
            latency_us_min,
            latency_us_max: latency_us_min + rng.range_inclusive(0, 20_000),
            loss_per_million: if rng.chance(1, 4) { 0 } else { rng.range_inclusive(0, 50_000) },
            duplicate_per_million: if rng.chance(1, 4) { 0 } else { rng.range_inclusive(0, 30_000) },
            queue_limit_messages: rng.range_inclusive(32, 1024) as usize,
        };
        let workload = WorkloadConfig {
            puts: rng.range_inclusive(20, 60) as u32,
            max_put_bytes: rng.range_inclusive(4 * 1024, 256 * 1024),
            put_timeout: Duration::from_millis(rng.range_inclusive(100, 1_000)),
            put_attempts: rng.range_inclusive(2, 5) as u32,
            get_timeout: Duration::from_secs(1),
            get_attempts: 30,
        };
        let faults = FaultConfig {
            interval_ms_min: 20,
            interval_ms_max: rng.range_inclusive(100, 2_000),
            // Kills are always on: every run crashes and restarts at least one node.
            kill_weight: rng.range_inclusive(1, 10),
            crash_at_io_weight: weight(&mut rng, 10),
            partition_weight: weight(&mut rng, 10),
            slow_disk_weight: weight(&mut rng, 10),
            disk_failure_weight: weight(&mut rng, 3),
            clock_skew_weight: weight(&mut rng, 5),
            downtime_ms_max: rng.range_inclusive(10, 5_000),
            partition_ms_max: rng.range_inclusive(10, 5_000),
        };
        ScenarioConfig {
            seed,
            servers,
            racks,
            disks_per_server,
            disk: DiskModel::nvme(64 * MIB),
            net,
            store: StoreKind::Tessera,
            workload,
            faults,
        }
    }

    pub fn server_ids(&self) -> Vec<NodeId> {
        (1..=self.servers).map(NodeId).collect()
    }

    /// Servers go round-robin over the racks; the client has a rack of its own (`racks`).
    pub fn rack_of(&self, node: NodeId) -> u32 {
        if node == CLIENT { self.racks } else { ((node.0 - 1) % u64::from(self.racks)) as u32 }
    }

    /// One line for the trace and for humans.
    pub fn summary(&self) -> String {
        let (w, f, n) = (&self.workload, &self.faults, &self.net);
        format!(
            "servers={} racks={} disks/server={} store={:?} net: {}-{}us loss={}ppm dup={}ppm queue={} | \
             puts={} max_put={}B timeout={}ms attempts={} | faults every {}-{}ms weights kill={} crash_at_io={} \
             partition={} slow_disk={} disk_failure={} skew={} downtime<={}ms partition<={}ms",
            self.servers,
            self.racks,
            self.disks_per_server,
            self.store,
            n.latency_us_min,
            n.latency_us_max,
            n.loss_per_million,
            n.duplicate_per_million,
            n.queue_limit_messages,
            w.puts,
            w.max_put_bytes,
            w.put_timeout.as_millis(),
            w.put_attempts,
            f.interval_ms_min,
            f.interval_ms_max,
            f.kill_weight,
            f.crash_at_io_weight,
            f.partition_weight,
            f.slow_disk_weight,
            f.disk_failure_weight,
            f.clock_skew_weight,
            f.downtime_ms_max,
            f.partition_ms_max,
        )
    }
}
