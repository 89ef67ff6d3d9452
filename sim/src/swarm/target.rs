//! The simulated cluster as a fault target: every injector of `tessera-faults` acts through this.

use std::collections::{BTreeMap, BTreeSet};

use tessera_data::rebuild::SharedDataMap;
use tessera_env::NodeId;
use tessera_faults::{FaultTarget, LinkFault};
use tessera_meta::host::SharedHostView;

use crate::cluster::Cluster;
use crate::data_scenario::node::DATA_JOURNAL_BYTES;
use crate::meta_support::META_JOURNAL_BYTES;
use crate::net::LinkConfig;

pub struct SimTarget<'a> {
    pub cluster: &'a mut Cluster,
    /// Each metadata host's published view (who leads which shard).
    pub views: &'a BTreeMap<NodeId, SharedHostView>,
    pub map: &'a SharedDataMap,
    pub servers: &'a [NodeId],
    pub clients: &'a [NodeId],
}

impl SimTarget<'_> {
    /// The simulated drive behind data drive `drive` of `node` (drive 0 of the node holds metadata).
    fn drive(&self, node: NodeId, drive: usize) -> &crate::disk::SimDisk {
        &self.cluster.disks(node)[1 + drive]
    }

    /// A written block of the data region of a data drive (the store's superblocks, checkpoints and
    /// journal are left alone: the store's own crash tests cover them, and the drive's data blocks are
    /// what chunk checksums protect).
    fn written_block(&self, node: NodeId, drive: usize, pick: u64) -> Option<u64> {
        let disk = self.drive(node, drive);
        let region = tessera_store::data_region_blocks(disk.model().capacity_bytes, DATA_JOURNAL_BYTES)?;
        let written: Vec<u64> =
            disk.durable_sectors_from(region.start).into_iter().take_while(|s| *s < region.end).collect();
        (!written.is_empty()).then(|| written[(pick % written.len() as u64) as usize])
    }
}

impl FaultTarget for SimTarget<'_> {
    fn servers(&self) -> Vec<NodeId> {
        self.servers.to_vec()
    }

    fn clients(&self) -> Vec<NodeId> {
        self.clients.to_vec()
    }

    fn leaders(&self) -> Vec<NodeId> {
        let leaders: BTreeSet<NodeId> =
            crate::meta_support::leaders(self.cluster, self.views).values().map(|(node, _)| *node).collect();
        leaders.into_iter().collect()
    }

    fn rack_of(&self, node: NodeId) -> u32 {
        self.cluster.rack_of(node)
    }

    fn is_alive(&self, node: NodeId) -> bool {
        self.cluster.is_alive(node)
    }

    fn data_drives(&self, node: NodeId) -> usize {
        self.cluster.disks(node).len().saturating_sub(1)
    }

    fn kill(&mut self, node: NodeId) {
        self.cluster.kill(node);
    }

    fn crash_drives_after_io(&mut self, node: NodeId, ios: u64) {
        for disk in self.cluster.disks(node) {
            disk.crash_after_io(ios);
        }
    }

    fn crash_in_journal_commit(&mut self, node: NodeId) {
        let disk = &self.cluster.disks(node)[0];
        let journal = tessera_store::journal_region_blocks(disk.model().capacity_bytes, META_JOURNAL_BYTES)
            .expect("the metadata drive has a journal");
        // Store blocks are drive sectors (4 KiB both).
        disk.crash_at_write(journal, 2);
    }

    fn pause(&mut self, node: NodeId) {
        self.cluster.pause(node);
    }

    fn resume(&mut self, node: NodeId) {
        self.cluster.resume(node);
    }

    fn restart(&mut self, node: NodeId) {
        self.cluster.restart(node);
    }

    fn partition(&mut self, groups: &[Vec<NodeId>]) {
        self.cluster.network().partition(groups);
    }

    fn cut(&mut self, from: NodeId, to: NodeId) {
        self.cluster.network().cut(from, to);
    }

    fn heal_cuts(&mut self) {
        self.cluster.network().heal();
    }

    fn degrade_links(&mut self, node: NodeId, fault: Option<LinkFault>) {
        let net = self.cluster.network();
        match fault {
            Some(f) => {
                let link = LinkConfig {
                    latency_us_min: f.latency_us_min,
                    latency_us_max: f.latency_us_max,
                    loss_per_million: f.loss_per_million,
                    duplicate_per_million: f.duplicate_per_million,
                };
                for &other in self.servers.iter().chain(self.clients) {
                    if other != node {
                        net.set_link(node, other, link.clone());
                        net.set_link(other, node, link.clone());
                    }
                }
            }
            None => net.clear_links_of(node),
        }
    }

    fn slow_drives(&mut self, node: NodeId, factor: u32, duration_ms: u64) {
        for disk in self.cluster.disks(node) {
            disk.slow_episode(factor, std::time::Duration::from_millis(duration_ms));
        }
    }

    fn corrupt_data_block(&mut self, node: NodeId, drive: usize, pick: u64) -> bool {
        match self.written_block(node, drive, pick) {
            Some(sector) => {
                self.drive(node, drive).corrupt_sector(sector);
                true
            }
            None => false,
        }
    }

    fn fail_data_reads(&mut self, node: NodeId, drive: usize, pick: u64) -> Option<u64> {
        let sector = self.written_block(node, drive, pick)?;
        self.drive(node, drive).fail_reads(sector, true);
        Some(sector)
    }

    fn clear_failing_reads(&mut self, node: NodeId, drive: usize, block: u64) {
        self.drive(node, drive).fail_reads(block, false);
    }

    fn fail_next_data_write(&mut self, node: NodeId, drive: usize) {
        self.drive(node, drive).fail_next_write();
    }

    fn clear_drive_faults(&mut self, node: NodeId) {
        for disk in self.cluster.disks(node) {
            disk.clear_faults();
        }
    }

    fn skew_clock(&mut self, node: NodeId, skew_ns: i64) {
        self.cluster.wall_clock(node).set_skew_ns(skew_ns);
    }

    fn declare_dead(&mut self, nodes: &[NodeId]) {
        self.map.lock().expect("data map").declare_dead(nodes);
    }

    fn note(&mut self, event: &str) {
        self.cluster.trace().record("nemesis", format_args!("{event}"));
    }
}
