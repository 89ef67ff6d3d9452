//! The fault models (DESIGN.md section 9), by name: what a scenario file lists and what a seed mixes.

use serde::{Deserialize, Serialize};

/// One kind of fault an injector can cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// Power loss of one node (its unflushed writes are lost, writes in flight tear), restarted later.
    Crash,
    /// One data drive of a node fails for good (every write and read errors) until the node is repaired.
    DriveLoss,
    /// Data blocks rot on a drive: reads return corrupt bytes (checksums catch them).
    CorruptRead,
    /// A sector of a data drive fails its reads for a while.
    FailingRead,
    /// Power fails while the node's metadata drive writes a journal entry of several blocks (a large
    /// group commit): the write tears, then the node is down for a while. Never in the default swarm
    /// mix (scenario files ask for it): it needs hosts that batch their log frees into large entries.
    CrashInCommit,
    /// A node stops running for a while (a long GC pause, a stalled VM) and resumes where it was: a
    /// leader that paused may still believe it leads.
    Pause,
    /// A node's drives serve IO many times slower for a while (a noisy neighbour).
    SlowDisk,
    /// A node's links are slow for a while (a noisy neighbour on the network).
    SlowNode,
    /// A node's links lose messages for a while.
    MessageLoss,
    /// A node's links delay messages by a wide, random amount for a while (which also reorders them).
    Delay,
    /// A node's links duplicate messages for a while.
    Duplicate,
    /// The servers split into two groups that cannot talk.
    Partition,
    /// Messages from one node to another are dropped, the reverse direction works.
    OneWay,
    /// Two groups that cannot talk, and one bridge node both can reach.
    Bridge,
    /// A node's wall clock jumps forwards or backwards.
    ClockSkew,
    /// Every node of one failure domain is lost for good (declared dead after a detection delay).
    RackLoss,
}

impl FaultKind {
    pub const ALL: [FaultKind; 16] = [
        FaultKind::Crash,
        FaultKind::CrashInCommit,
        FaultKind::Pause,
        FaultKind::DriveLoss,
        FaultKind::CorruptRead,
        FaultKind::FailingRead,
        FaultKind::SlowDisk,
        FaultKind::SlowNode,
        FaultKind::MessageLoss,
        FaultKind::Delay,
        FaultKind::Duplicate,
        FaultKind::Partition,
        FaultKind::OneWay,
        FaultKind::Bridge,
        FaultKind::ClockSkew,
        FaultKind::RackLoss,
    ];

    /// The name used in scenario files and reports (`crash`, `drive-loss`, ...).
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::CrashInCommit => "crash-in-commit",
            FaultKind::Pause => "pause",
            FaultKind::DriveLoss => "drive-loss",
            FaultKind::CorruptRead => "corrupt-read",
            FaultKind::FailingRead => "failing-read",
            FaultKind::SlowDisk => "slow-disk",
            FaultKind::SlowNode => "slow-node",
            FaultKind::MessageLoss => "message-loss",
            FaultKind::Delay => "delay",
            FaultKind::Duplicate => "duplicate",
            FaultKind::Partition => "partition",
            FaultKind::OneWay => "one-way",
            FaultKind::Bridge => "bridge",
            FaultKind::ClockSkew => "clock-skew",
            FaultKind::RackLoss => "rack-loss",
        }
    }

    /// Whether the default swarm mix may choose the fault (the others come only from scenario files).
    pub fn in_swarm_mix(self) -> bool {
        !matches!(self, FaultKind::RackLoss | FaultKind::CrashInCommit)
    }

    /// Whether the fault can destroy a chunk (it counts against the fault budget of the safety phase).
    pub fn loses_chunks(self) -> bool {
        matches!(self, FaultKind::DriveLoss | FaultKind::CorruptRead | FaultKind::RackLoss)
    }
}
