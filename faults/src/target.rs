//! What an injector acts on: the cluster's fault surface. The simulator implements it over its
//! simulated cluster; an injector never knows which world it is in (DESIGN.md section 9).

use tessera_env::NodeId;

/// Behaviour forced on every link to and from one node for a while (a noisy neighbour on the network,
/// a lossy or duplicating NIC, a congested switch port).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkFault {
    pub latency_us_min: u64,
    pub latency_us_max: u64,
    pub loss_per_million: u64,
    pub duplicate_per_million: u64,
}

/// The faults a cluster can be made to suffer. Server nodes hold drives and serve; client nodes only
/// run workloads (they take part in network faults, never in crashes or drive faults).
pub trait FaultTarget {
    /// Every server node, alive or not, in id order.
    fn servers(&self) -> Vec<NodeId>;
    /// Every client node, in id order.
    fn clients(&self) -> Vec<NodeId>;
    /// Servers that currently lead some replication group (the favourite targets of partitions: a
    /// leader cut off from its followers while clients still reach it). Empty if unknown.
    fn leaders(&self) -> Vec<NodeId> {
        Vec::new()
    }
    /// The failure domain (rack) of a server.
    fn rack_of(&self, node: NodeId) -> u32;
    fn is_alive(&self, node: NodeId) -> bool;
    /// How many data drives the node has (drive indices `0..n`; the metadata drive is not one of them).
    fn data_drives(&self, node: NodeId) -> usize;

    /// Power loss: tasks stop, unflushed writes are lost or torn, the endpoint goes down.
    fn kill(&mut self, node: NodeId);
    /// Every drive of `node` loses power at its `ios`-th write or flush from now (a write caught that way
    /// is torn: each of its sectors reaches the medium or not). The node itself is killed separately.
    fn crash_drives_after_io(&mut self, node: NodeId, ios: u64);
    /// The metadata drive of `node` loses power during its next journal write of two or more blocks
    /// (torn: each block reaches the medium or not). The node itself is killed separately.
    fn crash_in_journal_commit(&mut self, node: NodeId);
    /// Stop running the node's tasks (its state, timers and drives stay as they are).
    fn pause(&mut self, node: NodeId);
    /// Run a paused node's tasks again.
    fn resume(&mut self, node: NodeId);
    /// Power back on (the node boots from its drives).
    fn restart(&mut self, node: NodeId);

    /// Cut both ways between every two nodes in different groups (nodes in no group keep their links).
    fn partition(&mut self, groups: &[Vec<NodeId>]);
    /// Cut one direction.
    fn cut(&mut self, from: NodeId, to: NodeId);
    /// Remove every cut (link faults stay: see [`FaultTarget::degrade_links`]).
    fn heal_cuts(&mut self);
    /// Force `fault` on every link to and from `node`, or (`None`) give it back the fabric's default.
    fn degrade_links(&mut self, node: NodeId, fault: Option<LinkFault>);

    /// Every drive of `node` is `factor` times slower for `duration_ms`.
    fn slow_drives(&mut self, node: NodeId, factor: u32, duration_ms: u64);
    /// Rot a written block of a data drive; `pick` chooses which. False if the drive holds no data yet.
    fn corrupt_data_block(&mut self, node: NodeId, drive: usize, pick: u64) -> bool;
    /// Make reads of one written block of a data drive fail; returns the block, `None` if nothing is written.
    fn fail_data_reads(&mut self, node: NodeId, drive: usize, pick: u64) -> Option<u64>;
    /// Reads of `block` work again.
    fn clear_failing_reads(&mut self, node: NodeId, drive: usize, block: u64);
    /// The next write of a data drive fails and the drive is fenced until the node is repaired.
    fn fail_next_data_write(&mut self, node: NodeId, drive: usize);
    /// End every slow episode and failing read of the node's drives, and disarm pending write failures.
    fn clear_drive_faults(&mut self, node: NodeId);

    /// Set the node's wall clock `skew_ns` away from true time.
    fn skew_clock(&mut self, node: NodeId, skew_ns: i64);
    /// The failure detector declares these nodes dead for good (rebuild starts).
    fn declare_dead(&mut self, nodes: &[NodeId]);

    /// Record an event in the run's trace.
    fn note(&mut self, event: &str);
}
