//! [`ChunkHost`]: a node's data endpoint task. Serves [`DataMessage`] requests from its
//! [`ChunkServer`] and scrubs the drives in the background.
//!
//! # Call order
//! [`ChunkHost::new`] with an opened server, then [`ChunkHost::run`] until the network closes. Each
//! round ([`ChunkHost::step`]): wait for a message or the next scrub deadline; take up to
//! `batch_max` messages already waiting; serve the batch's puts together (one group commit per drive,
//! [`ChunkServer::put_batch`]), then its gets, frees and status requests in arrival order, replying to
//! each sender with the request's `req`; when the scrub deadline has passed, run one scrub step of
//! `scrub_budget_blocks`. Undecodable messages and replies are dropped. Chunks the server drops (scrub
//! findings, corrupt reads, failed drives) go to the shared repair queue ([`SharedRepairQueue`]) that a rebuilder drains.
//!
//! Scrub runs every `scrub_interval_ms` whether or not requests keep arriving (a budget per interval),
//! so a busy node still scrubs, at a bounded cost.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tessera_env::{Clock, Disk, MonoTime, Net, NetError, NodeId, buggify, recv_or_sleep, try_recv};

use crate::DATA_ENDPOINT_BIT;
use crate::server::ChunkServer;
use crate::wire::{CHUNK_PAYLOAD_MAX_BYTES, ChunkMeta, DataError, DataMessage, FREE_KEYS_MAX, RebuildProgress};

/// Largest `HostConfig::batch_max`.
pub const BATCH_MAX_LIMIT: usize = 1024;
/// Largest `HostConfig::scrub_interval_ms` (an hour).
pub const SCRUB_INTERVAL_MS_LIMIT: u64 = 3_600_000;
/// Largest `HostConfig::scrub_budget_blocks` (4 GiB of 4 KiB blocks).
pub const SCRUB_BUDGET_BLOCKS_LIMIT: u64 = 1 << 20;
/// Largest `HostConfig::repair_queue_max`.
pub const REPAIR_QUEUE_MAX_LIMIT: usize = 1 << 20;

/// The data endpoint's knobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    /// Most messages served per round.
    pub batch_max: usize,
    /// Time between scrub steps.
    pub scrub_interval_ms: u64,
    /// Blocks one scrub step verifies.
    pub scrub_budget_blocks: u64,
    /// Capacity of the repair queue (the oldest entry is dropped, and counted, when full).
    pub repair_queue_max: usize,
}

impl Default for HostConfig {
    fn default() -> HostConfig {
        HostConfig { batch_max: 64, scrub_interval_ms: 1000, scrub_budget_blocks: 256, repair_queue_max: 4096 }
    }
}

/// A [`HostConfig`] value out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("data host config: {field} = {value} is outside 1..={max}")]
pub struct HostConfigError {
    pub field: &'static str,
    pub value: u64,
    pub max: u64,
}

impl HostConfig {
    pub fn validate(&self) -> Result<(), HostConfigError> {
        let fields = [
            ("batch_max", self.batch_max as u64, BATCH_MAX_LIMIT as u64),
            ("scrub_interval_ms", self.scrub_interval_ms, SCRUB_INTERVAL_MS_LIMIT),
            ("scrub_budget_blocks", self.scrub_budget_blocks, SCRUB_BUDGET_BLOCKS_LIMIT),
            ("repair_queue_max", self.repair_queue_max as u64, REPAIR_QUEUE_MAX_LIMIT as u64),
        ];
        for (field, value, max) in fields {
            if value == 0 || value > max {
                return Err(HostConfigError { field, value, max });
            }
        }
        Ok(())
    }
}

/// Why the host stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("network endpoint closed")]
    NetClosed,
}

/// Chunks waiting for repair, shared with the rebuilder that drains it (`crate::rebuild::RepairQueue` is
/// the same type). The host keeps it at most `repair_queue_max` long: each key once, the oldest entry
/// dropped (and counted, [`ChunkHost::repairs_overflowed`]) when full.
pub type SharedRepairQueue = Arc<Mutex<VecDeque<ChunkMeta>>>;
/// Rebuild progress as the rebuilder publishes it and the host reports it.
pub type SharedRebuildProgress = Arc<Mutex<RebuildProgress>>;

/// The host's config under the name the simulator uses.
pub type ChunkHostConfig = HostConfig;

/// Queues `meta` for repair unless its key is already queued; drops the oldest entries beyond
/// `capacity`. Returns how many entries were dropped.
pub fn push_repair(queue: &mut VecDeque<ChunkMeta>, meta: ChunkMeta, capacity: usize) -> u64 {
    assert!(capacity > 0, "a repair queue holds at least one chunk");
    if queue.iter().any(|m| m.key == meta.key) {
        return 0;
    }
    let mut dropped = 0;
    while queue.len() >= capacity {
        queue.pop_front();
        dropped += 1;
    }
    queue.push_back(meta);
    dropped
}

/// One node's data endpoint. See the module docs for the call order.
pub struct ChunkHost<C: Clock, N: Net, D: Disk> {
    clock: C,
    net: N,
    server: ChunkServer<D>,
    config: HostConfig,
    repair: SharedRepairQueue,
    rebuild: SharedRebuildProgress,
    next_scrub: MonoTime,
    repairs_overflowed: u64,
}

impl<C: Clock, N: Net, D: Disk> fmt::Debug for ChunkHost<C, N, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkHost")
            .field("endpoint", &self.net.local_id())
            .field("server", &self.server)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A request of a batch, with its sender.
type Request = (NodeId, DataMessage);

impl<C: Clock, N: Net, D: Disk> ChunkHost<C, N, D> {
    /// A host on `net`, whose id must be a data endpoint (`data_endpoint(node)`). It fills `repairs`
    /// (bounded by `config.repair_queue_max`) and reads `rebuild` when answering status requests.
    pub fn new(
        config: HostConfig,
        clock: C,
        net: N,
        server: ChunkServer<D>,
        repairs: SharedRepairQueue,
        rebuild: SharedRebuildProgress,
    ) -> Result<ChunkHost<C, N, D>, HostConfigError> {
        config.validate()?;
        let id = net.local_id();
        assert!(id.0 & DATA_ENDPOINT_BIT != 0, "a chunk host listens at a data endpoint, not {id}");
        let next_scrub = clock.now() + Duration::from_millis(config.scrub_interval_ms);
        Ok(ChunkHost { clock, net, server, config, repair: repairs, rebuild, next_scrub, repairs_overflowed: 0 })
    }

    /// Repair-queue entries this host pushed out by newer ones (the queue was full).
    pub fn repairs_overflowed(&self) -> u64 {
        self.repairs_overflowed
    }

    pub fn server(&self) -> &ChunkServer<D> {
        &self.server
    }

    /// Serves until the network endpoint closes (the node is stopping), then returns.
    pub async fn run(mut self) {
        while self.step().await.is_ok() {}
    }

    /// One round: see the module docs.
    pub async fn step(&mut self) -> Result<(), HostError> {
        let wait = self.next_scrub.saturating_since(self.clock.now());
        let mut event = recv_or_sleep(&self.net, &self.clock, wait).await;
        let mut batch: Vec<Request> = Vec::new();
        let mut received = 0;
        while let Some(result) = event {
            match result {
                Ok((from, bytes)) => {
                    if let Ok(message) = DataMessage::decode(&bytes) {
                        batch.push((from, message));
                    }
                }
                Err(NetError::Closed) => return Err(HostError::NetClosed),
                Err(_) => {}
            }
            received += 1;
            event = if received < self.config.batch_max { try_recv(&self.net) } else { None };
        }
        if !batch.is_empty() {
            self.serve(batch).await?;
        }
        let now = self.clock.now();
        // Fault hook: a scrub step before it is due (scrub only verifies and drops bad chunks).
        if now >= self.next_scrub || buggify!("data.scrub_early") {
            let found = self.server.scrub_step(self.config.scrub_budget_blocks).await;
            self.queue_repairs(found);
            self.next_scrub = now + Duration::from_millis(self.config.scrub_interval_ms);
        }
        let dropped = self.server.take_dropped();
        self.queue_repairs(dropped);
        Ok(())
    }

    async fn serve(&mut self, batch: Vec<Request>) -> Result<(), HostError> {
        let mut puts = Vec::new();
        let mut others = Vec::new();
        let mut replies: Vec<(NodeId, DataMessage)> = Vec::new();
        for (from, message) in batch {
            match message {
                DataMessage::Put { req, meta, payload } => {
                    if payload.len() > CHUNK_PAYLOAD_MAX_BYTES {
                        let result = Err(DataError::BadRequest(format!(
                            "payload of {} bytes exceeds {CHUNK_PAYLOAD_MAX_BYTES}",
                            payload.len()
                        )));
                        replies.push((from, DataMessage::PutDone { req, result }));
                    } else {
                        puts.push((from, req, meta, payload));
                    }
                }
                DataMessage::Get { .. } | DataMessage::Free { .. } | DataMessage::Status { .. } => {
                    others.push((from, message));
                }
                // Replies are not addressed to a data endpoint: drop them.
                DataMessage::PutDone { .. }
                | DataMessage::GetDone { .. }
                | DataMessage::FreeDone { .. }
                | DataMessage::StatusDone { .. } => {}
            }
        }
        if !puts.is_empty() {
            let senders: Vec<(NodeId, u64)> = puts.iter().map(|(from, req, _, _)| (*from, *req)).collect();
            let items = puts.into_iter().map(|(_, _, meta, payload)| (meta, payload)).collect();
            let results = self.server.put_batch(items).await;
            assert_eq!(results.len(), senders.len());
            for ((from, req), result) in senders.into_iter().zip(results) {
                replies.push((from, DataMessage::PutDone { req, result }));
            }
        }
        for (from, message) in others {
            let reply = self.answer(message).await;
            replies.push((from, reply));
        }
        if !replies.is_empty() && buggify!("data.reply_delay") {
            // Fault hook: a stalled node; its answers come late (senders may time out and re-send).
            self.clock.sleep(Duration::from_secs(1)).await;
        }
        for (to, reply) in replies {
            // Any other send error is a lost message: the sender re-sends after its timeout.
            if let Err(NetError::Closed) = self.net.send(to, reply.encode()).await {
                return Err(HostError::NetClosed);
            }
        }
        Ok(())
    }

    /// The reply to a get, free or status request.
    async fn answer(&mut self, message: DataMessage) -> DataMessage {
        match message {
            DataMessage::Get { req, key, offset_bytes, len_bytes } => {
                let result = if len_bytes as usize > CHUNK_PAYLOAD_MAX_BYTES {
                    Err(DataError::BadRequest(format!("read of {len_bytes} bytes exceeds {CHUNK_PAYLOAD_MAX_BYTES}")))
                } else {
                    self.server.get(&key, offset_bytes, len_bytes).await
                };
                DataMessage::GetDone { req, result }
            }
            DataMessage::Free { req, keys } => {
                let result = if keys.len() > FREE_KEYS_MAX {
                    Err(DataError::BadRequest(format!("free of {} keys exceeds {FREE_KEYS_MAX}", keys.len())))
                } else {
                    self.server.free(&keys).await
                };
                DataMessage::FreeDone { req, result }
            }
            DataMessage::Status { req } => {
                let mut status = self.server.status();
                status.rebuild = *self.rebuild.lock().expect("rebuild progress lock");
                DataMessage::StatusDone { req, status }
            }
            other => unreachable!("serve sorts requests: {other:?}"),
        }
    }

    fn queue_repairs(&mut self, chunks: Vec<ChunkMeta>) {
        if chunks.is_empty() {
            return;
        }
        let mut queue = self.repair.lock().expect("repair queue lock");
        for meta in chunks {
            self.repairs_overflowed += push_repair(&mut queue, meta, self.config.repair_queue_max);
        }
    }
}
