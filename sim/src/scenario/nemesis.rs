//! The nemesis: injects faults into the cluster during the safety phase, at seed-chosen times, with the
//! seed-chosen mix of [`FaultConfig`]. It runs until its future is dropped; [`Nemesis::heal`] then undoes
//! everything it did.

use std::collections::BTreeMap;
use std::time::Duration;

use tessera_env::{Clock, DetRng, MonoTime, NodeId, Rng};

use super::config::{CLIENT, FaultConfig};
use crate::cluster::Cluster;
use crate::env::SimClock;

const SOURCE: &str = "nemesis";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Kill,
    CrashAtIo,
    Partition,
    SlowDisk,
    DiskFailure,
    ClockSkew,
}

#[derive(Debug)]
pub struct Nemesis {
    rng: DetRng,
    faults: FaultConfig,
    servers: Vec<NodeId>,
    racks: u32,
    /// Killed servers and when they come back.
    down: BTreeMap<NodeId, MonoTime>,
    heal_partition_at: Option<MonoTime>,
}

impl Nemesis {
    pub fn new(rng: DetRng, faults: FaultConfig, servers: Vec<NodeId>, racks: u32) -> Nemesis {
        Nemesis { rng, faults, servers, racks, down: BTreeMap::new(), heal_partition_at: None }
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.rng.below(items.len() as u64) as usize]
    }

    fn ms(&mut self, max_ms: u64) -> Duration {
        Duration::from_millis(self.rng.range_inclusive(1, max_ms.max(1)))
    }

    /// Inject faults forever. The first action is always a kill of a random server (with a later
    /// restart), so that every run crashes and restarts at least one node.
    pub async fn run(&mut self, cluster: &mut Cluster) {
        let first = Duration::from_millis(self.rng.range_inclusive(5, 200));
        SimClock.sleep(first).await;
        self.kill(cluster);
        loop {
            let pause = Duration::from_millis(
                self.rng.range_inclusive(self.faults.interval_ms_min, self.faults.interval_ms_max),
            );
            SimClock.sleep(pause).await;
            self.housekeeping(cluster);
            let f = &self.faults;
            let weighted = [
                (Action::Kill, f.kill_weight),
                (Action::CrashAtIo, f.crash_at_io_weight),
                (Action::Partition, f.partition_weight),
                (Action::SlowDisk, f.slow_disk_weight),
                (Action::DiskFailure, f.disk_failure_weight),
                (Action::ClockSkew, f.clock_skew_weight),
            ];
            let total: u64 = weighted.iter().map(|(_, w)| w).sum();
            let mut draw = self.rng.below(total);
            let mut action = Action::Kill;
            for (a, w) in weighted {
                if draw < w {
                    action = a;
                    break;
                }
                draw -= w;
            }
            match action {
                Action::Kill => self.kill(cluster),
                Action::CrashAtIo => self.crash_at_io(cluster),
                Action::Partition => self.partition(cluster),
                Action::SlowDisk => self.slow_disk(cluster),
                Action::DiskFailure => self.disk_failure(cluster),
                Action::ClockSkew => self.clock_skew(cluster),
            }
        }
    }

    /// Restart servers whose downtime is over, kill servers whose disk crashed under them (an armed
    /// crash-at-I/O fired), heal an expired partition.
    fn housekeeping(&mut self, cluster: &mut Cluster) {
        let now = SimClock.now();
        let due: Vec<NodeId> = self.down.iter().filter(|&(_, &at)| at <= now).map(|(&n, _)| n).collect();
        for node in due {
            self.down.remove(&node);
            cluster.restart(node);
        }
        for node in self.servers.clone() {
            if cluster.is_alive(node) && cluster.disks(node).iter().any(|d| d.is_offline()) {
                cluster.trace().record(SOURCE, format_args!("{node} lost power during disk I/O"));
                cluster.kill(node);
                let downtime = self.ms(self.faults.downtime_ms_max);
                self.down.insert(node, now + downtime);
            }
        }
        if self.heal_partition_at.is_some_and(|at| at <= now) {
            self.heal_partition_at = None;
            cluster.network().heal();
        }
    }

    fn kill(&mut self, cluster: &mut Cluster) {
        let alive: Vec<NodeId> = self.servers.iter().copied().filter(|&n| cluster.is_alive(n)).collect();
        if alive.is_empty() {
            return;
        }
        let node = self.pick(&alive);
        let downtime = self.ms(self.faults.downtime_ms_max);
        cluster.trace().record(SOURCE, format_args!("kill {node} for {}ms", downtime.as_millis()));
        cluster.kill(node);
        self.down.insert(node, SimClock.now() + downtime);
    }

    fn random_disk(&mut self, cluster: &Cluster) -> Option<crate::disk::SimDisk> {
        let node = self.pick(&self.servers.clone());
        let disks = cluster.disks(node);
        if disks.is_empty() {
            return None;
        }
        Some(disks[self.rng.below(disks.len() as u64) as usize].clone())
    }

    fn crash_at_io(&mut self, cluster: &mut Cluster) {
        let n = self.rng.range_inclusive(1, 20);
        if let Some(disk) = self.random_disk(cluster) {
            cluster.trace().record(SOURCE, format_args!("{} will lose power at its write/flush #{n}", disk.name()));
            disk.crash_after_io(n);
        }
    }

    fn partition(&mut self, cluster: &mut Cluster) {
        if self.heal_partition_at.is_some() {
            return;
        }
        let mut everyone = self.servers.clone();
        everyone.push(CLIENT);
        let net = cluster.network().clone();
        let a = self.pick(&everyone);
        let others: Vec<NodeId> = everyone.iter().copied().filter(|&n| n != a).collect();
        let b = self.pick(&others);
        match self.rng.below(4) {
            0 => net.cut_both(a, b),
            1 => net.cut(a, b),
            2 => {
                let rack = self.rng.below(u64::from(self.racks)) as u32;
                net.isolate_rack(rack);
            }
            _ => {
                let (mut left, mut right) = (Vec::new(), Vec::new());
                for n in everyone {
                    if self.rng.chance(1, 2) { left.push(n) } else { right.push(n) }
                }
                net.partition(&[left, right]);
            }
        }
        let duration = self.ms(self.faults.partition_ms_max);
        self.heal_partition_at = Some(SimClock.now() + duration);
    }

    fn slow_disk(&mut self, cluster: &mut Cluster) {
        let factor = self.rng.range_inclusive(2, 50) as u32;
        let duration = self.ms(5_000);
        if let Some(disk) = self.random_disk(cluster) {
            disk.slow_episode(factor, duration);
        }
    }

    fn disk_failure(&mut self, cluster: &mut Cluster) {
        let flush = self.rng.chance(1, 2);
        if let Some(disk) = self.random_disk(cluster) {
            if flush { disk.fail_next_flush() } else { disk.fail_next_write() }
        }
    }

    fn clock_skew(&mut self, cluster: &mut Cluster) {
        let node = self.pick(&self.servers.clone());
        let skew_ns = self.rng.range_inclusive(0, 20_000_000_000) as i64 - 10_000_000_000;
        cluster.trace().record(SOURCE, format_args!("{node} wall clock skew {skew_ns}ns"));
        cluster.wall_clock(node).set_skew_ns(skew_ns);
    }

    /// Undo every fault: heal the network, clear link overrides and armed disk faults, reset clock skew.
    /// Down nodes stay down (the caller restarts every server next).
    pub fn heal(&mut self, cluster: &mut Cluster) {
        cluster.trace().record(SOURCE, format_args!("heal everything"));
        cluster.network().heal();
        cluster.network().clear_links();
        self.heal_partition_at = None;
        self.down.clear();
        for node in self.servers.clone() {
            for disk in cluster.disks(node) {
                disk.clear_faults();
            }
            cluster.wall_clock(node).set_skew_ns(0);
        }
    }
}
