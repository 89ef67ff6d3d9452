//! Tessera's data path (DESIGN.md section 5; docs/design/data-path.md).
//!
//! - [`wire`]: the messages of a node's data endpoint.
//! - [`chunk`]: a chunk's on-disk form (header + payload in one store extent).
//! - [`server`]: [`server::ChunkServer`], a node's chunks over its drives.
//! - [`host`]: the data endpoint's task: serves requests, scrubs in the background.

pub mod chunk;
pub mod client;
pub mod host;
pub mod rebuild;
pub mod reclaim;
pub mod server;
pub mod stripe_io;
pub mod wire;

#[cfg(test)]
mod test_disk;
#[cfg(test)]
mod tests_host;
#[cfg(test)]
mod tests_server;

use tessera_env::NodeId;

/// The bit that turns a node (or client) id into its data endpoint's id.
pub const DATA_ENDPOINT_BIT: u64 = 1 << 62;

/// The network endpoint of `node`'s data service (its metadata host listens at `node` itself).
pub const fn data_endpoint(node: NodeId) -> NodeId {
    NodeId(node.0 | DATA_ENDPOINT_BIT)
}

/// The node whose data endpoint `endpoint` is.
pub const fn node_of_endpoint(endpoint: NodeId) -> NodeId {
    NodeId(endpoint.0 & !DATA_ENDPOINT_BIT)
}
