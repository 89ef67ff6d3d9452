use core::fmt;
use core::future::Future;

/// Identity of a node in the cluster. Stable across restarts of the node.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub u64);

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// Largest message payload any [`Net`] accepts. Data chunks are at most a few MiB; anything larger is a bug.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Errors a [`Net`] reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    #[error("message of {size_bytes} bytes exceeds the limit of {MAX_MESSAGE_BYTES} bytes")]
    MessageTooLarge { size_bytes: usize },
    #[error("no such node {0}")]
    UnknownNode(NodeId),
    /// The bounded send queue towards this peer is full; the caller backs off or drops.
    #[error("send queue to {0} is full")]
    QueueFull(NodeId),
    /// This node's network endpoint is shut down (the node is stopping or crashed).
    #[error("network endpoint closed")]
    Closed,
}

/// Unreliable, unordered message passing between nodes.
///
/// Semantics every implementation honours:
/// - `send` returning `Ok` means the message was accepted, not delivered. A message may be delivered
///   zero, one or several times, after any delay, in any order relative to other messages (also between
///   the same pair of nodes). Payloads are never altered: a delivered payload is exactly what was sent
///   (the real transport checksums frames and drops damaged ones).
/// - A link may be cut in one direction only (asymmetric partitions); messages sent into a cut are lost.
/// - Messages a node sent to itself are delivered like any other.
/// - `recv` waits for the next message addressed to this node and returns it with its sender.
/// - Everything is bounded: payloads by [`MAX_MESSAGE_BYTES`], queues by each implementation's limits,
///   reported as [`NetError::QueueFull`] at the sender or as loss.
pub trait Net: Send + Sync + 'static {
    fn local_id(&self) -> NodeId;
    fn send(&self, to: NodeId, payload: Vec<u8>) -> impl Future<Output = Result<(), NetError>> + Send;
    fn recv(&self) -> impl Future<Output = Result<(NodeId, Vec<u8>), NetError>> + Send;
}
