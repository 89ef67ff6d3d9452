//! What a data client call answers when it does not succeed.

use std::collections::BTreeSet;

use tessera_config::stripe::StripePlacementError;
use tessera_env::NodeId;
use tessera_meta::Errno;
use tessera_meta::client::ClientError;
use tessera_meta::content::StripeId;

use crate::stripe_io::StripeIoError;

/// Why a data client call failed. Expected failures only; a bug panics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataPathError {
    /// The operation's own POSIX answer (from the shard).
    #[error("{0}")]
    Posix(Errno),
    /// No answer from metadata for an operation that changes nothing (a map, a stat): retry.
    #[error("metadata: {0}")]
    Meta(ClientError),
    /// No answer from metadata for a commit: it may or may not have taken effect. The stripes it named
    /// are left alone (a file may reference them).
    #[error("commit outcome unknown: {0}")]
    OutcomeUnknown(ClientError),
    /// A stripe lost more chunks than its layout tolerates (readable again if a node comes back).
    #[error("stripe {stripe:?} unrecoverable: {available} chunks readable, {needed} needed")]
    Unrecoverable { stripe: StripeId, available: usize, needed: usize },
    /// The live nodes cannot hold a stripe (too few racks).
    #[error("placement: {0}")]
    Placement(StripePlacementError),
    /// Every placement tried for a stripe had a node that did not store its chunk.
    #[error("no durable placement after {attempts} attempts (failed nodes {failed_nodes:?})")]
    NoDurablePlacement { attempts: u32, failed_nodes: BTreeSet<NodeId> },
    /// Metadata described a stripe or a file map that cannot be read (a service bug).
    #[error("bad data map: {0}")]
    BadMap(String),
    /// The client's data endpoint is closed (the node is stopping).
    #[error("data endpoint closed")]
    Closed,
}

impl From<StripeIoError> for DataPathError {
    fn from(e: StripeIoError) -> DataPathError {
        match e {
            StripeIoError::Unrecoverable { stripe, available, needed, .. } => {
                DataPathError::Unrecoverable { stripe, available, needed }
            }
            StripeIoError::BadStripe { .. } | StripeIoError::Decode { .. } => DataPathError::BadMap(e.to_string()),
            StripeIoError::Closed => DataPathError::Closed,
        }
    }
}
