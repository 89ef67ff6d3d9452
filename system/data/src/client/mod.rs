//! The data client (docs/design/data-path.md): file bytes over metadata and storage nodes.
//!
//! - [`DataClient::write`]: small files go inline into metadata; otherwise the bytes are cut into
//!   stripes, each encoded, placed one chunk per rack, put to its nodes in parallel and, once every
//!   chunk is durable, committed with `MetaOp::Write` (extents).
//! - [`DataClient::read`]: `ReadMap`, then zeros, inline bytes and stripe pieces; a stripe missing chunks
//!   is read degraded and queued for repair ([`DataClient::run_repairs`]).
//! - [`DataClient::truncate`], [`DataClient::rebuild_status`].
//!
//! One call at a time (`&mut self`). The client owns two network endpoints: its metadata client's and
//! its data endpoint (`tessera_data::data_endpoint(client)`), whose every message is taken to be for it.

mod config;
mod error;
mod read;
mod write;

use std::collections::VecDeque;

pub use config::{
    DataClientConfig, DataClientConfigError, REPAIR_QUEUE_MAX_LIMIT, REQUEST_TIMEOUT_MS_MAX, RESEND_MAX_LIMIT,
    WRITE_ATTEMPTS_MAX_LIMIT,
};
pub use error::DataPathError;
pub use read::{READ_MAP_ATTEMPTS_MAX, RepairReport, StripeRepair};

use tessera_config::placement::PlacementNode;
use tessera_env::{Clock, Net, NodeId, Rng, WallClock};
use tessera_meta::client::{ClientError, MetaClient};
use tessera_meta::content::StripeId;
use tessera_meta::{Attr, Credentials, InodeId, MetaOp, MetaReply};

use crate::stripe_io::{IoConfig, StripeIo, layout_of};
use crate::wire::RebuildProgress;

/// Rebuild progress summed over the nodes asked ([`DataClient::rebuild_status`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RebuildStatus {
    /// Sums of the answering nodes' counters; `idle` when every answering node is idle.
    pub progress: RebuildProgress,
    pub nodes_answered: usize,
    pub nodes_unreachable: usize,
}

/// A data client on one node's environment (see the module documentation).
pub struct DataClient<C: Clock, W: WallClock, N: Net, R: Rng> {
    meta: MetaClient<C, W, N, R>,
    io: StripeIo<C, N>,
    config: DataClientConfig,
    nodes: Vec<PlacementNode>,
    /// The high half of this incarnation's stripe ids (random, so never reused across restarts).
    writer_id: u64,
    next_stripe_seq: u64,
    repairs: VecDeque<StripeRepair>,
    repairs_dropped: u64,
}

impl<C: Clock, W: WallClock, N: Net, R: Rng> std::fmt::Debug for DataClient<C, W, N, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataClient")
            .field("meta", &self.meta)
            .field("io", &self.io)
            .field("config", &self.config)
            .field("writer_id", &self.writer_id)
            .field("repairs", &self.repairs.len())
            .finish_non_exhaustive()
    }
}

impl<C: Clock, W: WallClock, N: Net, R: Rng> DataClient<C, W, N, R> {
    /// A client over `meta` and the data endpoint `data_net`, placing stripes on `nodes` (the live,
    /// non-draining storage nodes). Draws its writer id and first request number from `rng`.
    pub fn new(
        meta: MetaClient<C, W, N, R>,
        data_net: N,
        clock: C,
        rng: &mut R,
        config: DataClientConfig,
        nodes: Vec<PlacementNode>,
    ) -> Result<DataClient<C, W, N, R>, DataClientConfigError> {
        config.validate()?;
        let io_config = IoConfig { request_timeout: config.request_timeout(), resend_max: config.resend_max };
        let writer_id = rng.next_u64();
        let io = StripeIo::new(clock, data_net, io_config, rng.next_u64());
        Ok(DataClient {
            meta,
            io,
            config,
            nodes,
            writer_id,
            next_stripe_seq: 0,
            repairs: VecDeque::new(),
            repairs_dropped: 0,
        })
    }

    pub fn config(&self) -> &DataClientConfig {
        &self.config
    }

    /// The storage nodes new stripes are placed on, and repairs may write to.
    pub fn nodes(&self) -> &[PlacementNode] {
        &self.nodes
    }

    pub fn set_nodes(&mut self, nodes: Vec<PlacementNode>) {
        self.nodes = nodes;
    }

    /// The metadata client (for namespace operations: create, lookup, ...).
    pub fn meta(&mut self) -> &mut MetaClient<C, W, N, R> {
        &mut self.meta
    }

    pub fn writer_id(&self) -> u64 {
        self.writer_id
    }

    /// Stripes waiting for [`DataClient::run_repairs`].
    pub fn repairs_pending(&self) -> usize {
        self.repairs.len()
    }

    /// Repairs dropped because the queue was full, since start.
    pub fn repairs_dropped(&self) -> u64 {
        self.repairs_dropped
    }

    /// An inode's attributes.
    pub async fn getattr(&mut self, ino: InodeId) -> Result<Attr, DataPathError> {
        let reply = self.meta_call(MetaOp::GetAttr { ino }, false).await?;
        attr_of("getattr", reply)
    }

    /// Sets a regular file's size (shrinking drops content; its stripes go to the garbage queue).
    pub async fn truncate(&mut self, ino: InodeId, size: u64, creds: &Credentials) -> Result<Attr, DataPathError> {
        let reply = self.meta_call(MetaOp::Truncate { ino, size, creds: creds.clone() }, true).await?;
        attr_of("truncate", reply)
    }

    /// Rebuild progress of `nodes`, summed (a `Status` to every node's data endpoint).
    pub async fn rebuild_status(&mut self, nodes: &[NodeId]) -> Result<RebuildStatus, DataPathError> {
        let mut status =
            RebuildStatus { progress: RebuildProgress { idle: true, ..Default::default() }, ..Default::default() };
        for answer in self.io.status(nodes).await {
            match answer {
                Ok(node) => {
                    status.progress.add_rebuild(&node.rebuild);
                    status.nodes_answered += 1;
                }
                Err(crate::stripe_io::ChunkError::Closed) => return Err(DataPathError::Closed),
                Err(_) => status.nodes_unreachable += 1,
            }
        }
        Ok(status)
    }

    /// Runs one metadata operation; `mutates` says whether a lost answer leaves it maybe applied.
    async fn meta_call(&mut self, op: MetaOp, mutates: bool) -> Result<MetaReply, DataPathError> {
        match self.meta.execute(op).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(errno)) | Err(ClientError::Posix(errno)) => Err(DataPathError::Posix(errno)),
            Err(e) if mutates && e.outcome_unknown() => Err(DataPathError::OutcomeUnknown(e)),
            Err(e) => Err(DataPathError::Meta(e)),
        }
    }

    fn next_stripe_id(&mut self) -> StripeId {
        let id = StripeId::new(self.writer_id, self.next_stripe_seq);
        self.next_stripe_seq += 1;
        id
    }

    fn layout(&self) -> tessera_meta::content::StripeLayout {
        layout_of(self.config.protection).expect("protection validated")
    }
}

fn attr_of(op: &'static str, reply: MetaReply) -> Result<Attr, DataPathError> {
    match reply {
        MetaReply::Attr(attr) => Ok(attr),
        other => Err(unexpected(op, other)),
    }
}

fn unexpected(op: &'static str, got: MetaReply) -> DataPathError {
    DataPathError::Meta(ClientError::UnexpectedReply { op, got: Box::new(got) })
}

/// The client's and the reclaimer's futures can be spawned (`tessera_env::Spawn` tasks are `Send`).
#[cfg(test)]
#[allow(dead_code)]
fn futures_are_send<C: Clock, W: WallClock, N: Net, R: Rng>(
    client: &mut DataClient<C, W, N, R>,
    reclaimer: &mut crate::reclaim::Reclaimer<C, W, N, R>,
    creds: &Credentials,
) {
    fn is_send<T: Send>(_: &T) {}
    is_send(&client.write(InodeId::ROOT, 0, &[], creds));
    is_send(&client.read(InodeId::ROOT, 0, 1));
    is_send(&client.run_repairs());
    is_send(&client.rebuild_status(&[]));
    is_send(&reclaimer.reclaim(&[0]));
}
