//! Stripes as bytes and as requests: the core the data client, the rebuilder and scrub share
//! (docs/design/data-path.md).
//!
//! - Pure: [`layout_of`] (a protection as a stripe layout), [`StripeShape`] (chunk length of a stripe of
//!   so many bytes), [`encode_stripe`] / [`decode_stripe`], [`data_chunk_ranges`] (which bytes of which
//!   data chunks hold a range of the stripe's data), [`stripe_key`] (the placement key of a stripe id).
//! - I/O: [`StripeIo`], one data endpoint sending [`DataMessage`] requests to many nodes at once and
//!   collecting their replies by request number, with a per-request timeout and bounded re-sends
//!   ([`StripeIo::exchange`]); typed wrappers for puts, gets, frees and status; and
//!   [`StripeIo::read_stripe_range`], the read with degraded decode.
//!
//! A stripe's data bytes are cut into `data_chunks` pieces of `chunk_len` bytes (the last zero-padded):
//! data byte `b` lives in data chunk `b / chunk_len` at `b % chunk_len`. A replicated stripe has
//! `copies` chunks, each the whole data.

use std::collections::BTreeSet;
use std::time::Duration;

use tessera_config::model::Protection;
use tessera_ec::{Codec, CodecError, CodecKind, Geometry};
use tessera_env::{Clock, MonoTime, Net, NetError, NodeId, buggify, mark, recv_or_sleep};
use tessera_meta::InodeId;
use tessera_meta::content::{STRIPE_CHUNKS_MAX, StripeId, StripeLayout, StripeRef};

use crate::data_endpoint;
use crate::wire::{CHUNK_PAYLOAD_MAX_BYTES, ChunkKey, ChunkMeta, DataError, DataMessage, DataStatus, FREE_KEYS_MAX};

const _: () = assert!(CHUNK_PAYLOAD_MAX_BYTES <= u32::MAX as usize);
const _: () = assert!(STRIPE_CHUNKS_MAX <= u8::MAX as usize);

/// The stored id of a codec (`StripeLayout::ErasureCoded::codec`). Part of the stored format: never
/// renumber.
pub const fn codec_id(kind: CodecKind) -> u8 {
    match kind {
        CodecKind::ReedSolomonErasure => 0,
        CodecKind::ReedSolomonSimd => 1,
        CodecKind::IsaL => 2,
    }
}

/// The codec a stored id names, if any.
pub const fn codec_kind(id: u8) -> Option<CodecKind> {
    match id {
        0 => Some(CodecKind::ReedSolomonErasure),
        1 => Some(CodecKind::ReedSolomonSimd),
        2 => Some(CodecKind::IsaL),
        _ => None,
    }
}

/// Why a stripe shape or a codec cannot be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error("invalid protection {0:?}")]
    InvalidProtection(Protection),
    #[error("invalid stripe layout {0:?}")]
    InvalidLayout(StripeLayout),
    #[error("codec {0} is not in this build")]
    UnknownCodec(u8),
    #[error("a stripe holds at least one byte")]
    Empty,
    #[error("{len_bytes} bytes exceed a stripe's {capacity_bytes}")]
    TooLarge { len_bytes: usize, capacity_bytes: usize },
}

/// The layout new stripes of `protection` get (erasure-coded ones with [`CodecKind::DEFAULT`]).
pub fn layout_of(protection: Protection) -> Result<StripeLayout, ShapeError> {
    if !protection.is_valid() {
        return Err(ShapeError::InvalidProtection(protection));
    }
    Ok(match protection {
        Protection::ErasureCoded { data, parity } => {
            StripeLayout::ErasureCoded { data, parity, codec: codec_id(CodecKind::DEFAULT) }
        }
        Protection::Replicated { copies } => StripeLayout::Replicated { copies },
    })
}

/// The codec of an erasure-coded layout; `None` for a replicated one.
pub fn codec_of(layout: StripeLayout) -> Result<Option<Box<dyn Codec>>, ShapeError> {
    match layout {
        StripeLayout::ErasureCoded { data, parity, codec } => {
            let geometry = Geometry::new(data, parity).map_err(|_| ShapeError::InvalidLayout(layout))?;
            let kind = codec_kind(codec).ok_or(ShapeError::UnknownCodec(codec))?;
            kind.build(geometry).map(Some).ok_or(ShapeError::UnknownCodec(codec))
        }
        StripeLayout::Replicated { copies } if copies >= 1 && usize::from(copies) <= STRIPE_CHUNKS_MAX => Ok(None),
        StripeLayout::Replicated { .. } => Err(ShapeError::InvalidLayout(layout)),
    }
}

/// The shape of one stripe: its layout, chunk length and data length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StripeShape {
    pub layout: StripeLayout,
    pub chunk_len_bytes: u32,
    pub data_len_bytes: u32,
}

impl StripeShape {
    /// The most data bytes one stripe of `layout` holds: `data_chunks` chunks of
    /// [`CHUNK_PAYLOAD_MAX_BYTES`].
    pub fn capacity_bytes(layout: StripeLayout) -> usize {
        layout.data_chunks() * CHUNK_PAYLOAD_MAX_BYTES
    }

    /// The shape of a stripe of `data_len_bytes` (1..=capacity) bytes: chunk length `ceil(len /
    /// data_chunks)` rounded up to the codec's shard length multiple.
    pub fn new(layout: StripeLayout, data_len_bytes: usize) -> Result<StripeShape, ShapeError> {
        let multiple = codec_of(layout)?.map_or(1, |codec| codec.shard_len_multiple());
        if data_len_bytes == 0 {
            return Err(ShapeError::Empty);
        }
        let capacity_bytes = StripeShape::capacity_bytes(layout);
        if data_len_bytes > capacity_bytes {
            return Err(ShapeError::TooLarge { len_bytes: data_len_bytes, capacity_bytes });
        }
        let chunk_len = data_len_bytes.div_ceil(layout.data_chunks()).next_multiple_of(multiple).max(multiple);
        assert!(chunk_len <= CHUNK_PAYLOAD_MAX_BYTES, "multiple {multiple} does not divide the chunk maximum");
        assert!(chunk_len * layout.data_chunks() >= data_len_bytes);
        Ok(StripeShape {
            layout,
            chunk_len_bytes: u32::try_from(chunk_len).expect("checked"),
            data_len_bytes: u32::try_from(data_len_bytes).expect("capacity fits u32"),
        })
    }

    /// The metadata record of a stripe of this shape named `id` on `nodes`.
    pub fn stripe_ref(&self, id: StripeId, nodes: Vec<NodeId>) -> StripeRef {
        assert_eq!(nodes.len(), self.layout.total_chunks(), "one node per chunk");
        StripeRef {
            id,
            layout: self.layout,
            chunk_len_bytes: self.chunk_len_bytes,
            data_len_bytes: self.data_len_bytes,
            nodes,
        }
    }
}

/// `(offset, len)` of each stripe a write of `len_bytes` is cut into: full stripes, then the rest.
pub fn cut_into_stripes(layout: StripeLayout, len_bytes: usize) -> Vec<(usize, usize)> {
    let capacity = StripeShape::capacity_bytes(layout);
    (0..len_bytes).step_by(capacity).map(|start| (start, capacity.min(len_bytes - start))).collect()
}

/// The placement key of a stripe (the key `tessera_config::stripe::place_stripe` hashes).
pub fn stripe_key(id: StripeId) -> u64 {
    let (high, low) = ((id.0 >> 64) as u64, id.0 as u64);
    splitmix64(splitmix64(high) ^ low)
}

pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Every chunk of a stripe of `shape` holding `data`: the data chunks then the parity chunks, or the
/// copies; each `shape.chunk_len_bytes` long.
pub fn encode_stripe(shape: &StripeShape, data: &[u8]) -> Result<Vec<Vec<u8>>, ShapeError> {
    assert_eq!(data.len(), shape.data_len_bytes as usize, "data does not match the shape");
    let chunk_len = shape.chunk_len_bytes as usize;
    let Some(mut codec) = codec_of(shape.layout)? else {
        assert_eq!(chunk_len, data.len(), "a replica is the whole data");
        return Ok(vec![data.to_vec(); shape.layout.total_chunks()]);
    };
    let n = shape.layout.data_chunks();
    let mut chunks: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let start = (i * chunk_len).min(data.len());
            let end = ((i + 1) * chunk_len).min(data.len());
            let mut chunk = data[start..end].to_vec();
            chunk.resize(chunk_len, 0);
            chunk
        })
        .collect();
    let mut parity = vec![vec![0u8; chunk_len]; shape.layout.tolerated_losses()];
    let data_refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
    let mut parity_refs: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
    codec.encode(&data_refs, &mut parity_refs).expect("shape made for this codec");
    chunks.append(&mut parity);
    Ok(chunks)
}

/// Why a stripe's chunks could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{available} chunks present, {needed} needed")]
    TooFewChunks { available: usize, needed: usize },
    #[error("expected {expected} chunks, got {got}")]
    ChunkCount { expected: usize, got: usize },
    #[error("chunk {index} is {len} bytes, expected {expected}")]
    ChunkLength { index: usize, len: usize, expected: usize },
    #[error(transparent)]
    Shape(#[from] ShapeError),
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// All chunks of a stripe from those present (`None` = missing), each `chunk_len_bytes` long.
pub fn decode_stripe(
    layout: StripeLayout,
    chunk_len_bytes: u32,
    mut chunks: Vec<Option<Vec<u8>>>,
) -> Result<Vec<Vec<u8>>, DecodeError> {
    let codec = codec_of(layout)?;
    let (total, needed) = (layout.total_chunks(), layout.data_chunks());
    if chunks.len() != total {
        return Err(DecodeError::ChunkCount { expected: total, got: chunks.len() });
    }
    let expected = chunk_len_bytes as usize;
    for (index, chunk) in chunks.iter().enumerate() {
        if let Some(chunk) = chunk.as_ref().filter(|c| c.len() != expected) {
            return Err(DecodeError::ChunkLength { index, len: chunk.len(), expected });
        }
    }
    let available = chunks.iter().flatten().count();
    if available < needed {
        return Err(DecodeError::TooFewChunks { available, needed });
    }
    match codec {
        None => {
            let copy = chunks.iter().flatten().next().expect("one present").clone();
            Ok(vec![copy; total])
        }
        Some(mut codec) => {
            codec.reconstruct_vecs(&mut chunks)?;
            Ok(chunks.into_iter().map(|c| c.expect("reconstructed")).collect())
        }
    }
}

/// A byte range of one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRange {
    pub index: u8,
    pub offset_bytes: u32,
    pub len_bytes: u32,
}

/// The parts of the data chunks holding the stripe's data bytes `[offset, offset + len)`, in order
/// (a replicated stripe: copy 0). Empty for `len == 0`.
pub fn data_chunk_ranges(layout: StripeLayout, chunk_len_bytes: u32, offset: u32, len: u32) -> Vec<ChunkRange> {
    assert!(chunk_len_bytes > 0, "chunks are never empty");
    let end = u64::from(offset) + u64::from(len);
    if let StripeLayout::Replicated { .. } = layout {
        assert!(end <= u64::from(chunk_len_bytes), "range beyond the replica");
        return if len == 0 { Vec::new() } else { vec![ChunkRange { index: 0, offset_bytes: offset, len_bytes: len }] };
    }
    let chunk = u64::from(chunk_len_bytes);
    assert!(end <= chunk * layout.data_chunks() as u64, "range beyond the stripe's data chunks");
    let mut ranges = Vec::new();
    let mut at = u64::from(offset);
    while at < end {
        let index = at / chunk;
        let in_chunk = at % chunk;
        let take = (chunk - in_chunk).min(end - at);
        ranges.push(ChunkRange {
            index: u8::try_from(index).expect("index below data chunks"),
            offset_bytes: in_chunk as u32,
            len_bytes: take as u32,
        });
        at += take;
    }
    ranges
}

/// The stripe's data bytes `[offset, offset + len)` from all its chunks.
pub fn stripe_bytes(layout: StripeLayout, chunks: &[Vec<u8>], offset: u32, len: u32) -> Vec<u8> {
    let chunk_len = u32::try_from(chunks[0].len()).expect("chunk fits u32");
    let mut out = Vec::with_capacity(len as usize);
    for r in data_chunk_ranges(layout, chunk_len, offset, len) {
        let start = r.offset_bytes as usize;
        out.extend_from_slice(&chunks[usize::from(r.index)][start..start + r.len_bytes as usize]);
    }
    assert_eq!(out.len(), len as usize);
    out
}

/// How a request to a data endpoint failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// The node answered with this error.
    #[error(transparent)]
    Data(DataError),
    /// No answer after `sends` sends.
    #[error("no answer after {sends} sends")]
    Timeout { sends: u32 },
    /// The network refused the destination.
    #[error("unreachable: {0}")]
    Unreachable(NetError),
    /// The node answered with a reply that does not fit the request (wrong length).
    #[error("bad reply: {0}")]
    BadReply(String),
    /// This endpoint is closed.
    #[error("network endpoint closed")]
    Closed,
}

impl ChunkError {
    /// Whether the node says the chunk is gone (never written, freed, corrupt, lost with a drive): a
    /// repair should put it back. A timeout is not (the node may just be down: rebuild's business).
    pub fn chunk_lost(&self) -> bool {
        matches!(self, ChunkError::Data(DataError::NotFound(_) | DataError::Corrupt(_) | DataError::DriveFailed(_)))
    }
}

/// Tunables of a [`StripeIo`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoConfig {
    /// How long one send of a request waits for its answer.
    pub request_timeout: Duration,
    /// Sends of a request after the first before it times out.
    pub resend_max: u32,
}

/// A chunk to store on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkPut {
    pub node: NodeId,
    pub key: ChunkKey,
    pub payload: Vec<u8>,
}

/// A part of a chunk to read from a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkGet {
    pub node: NodeId,
    pub key: ChunkKey,
    pub offset_bytes: u32,
    pub len_bytes: u32,
}

/// One chunk a read could not get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkFailure {
    pub index: u8,
    pub node: NodeId,
    pub error: ChunkError,
}

/// The bytes of a stripe range and the chunks that failed on the way (for repair).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeRead {
    pub bytes: Vec<u8>,
    pub failures: Vec<ChunkFailure>,
}

impl RangeRead {
    /// The chunks the nodes said are gone (see [`ChunkError::chunk_lost`]), ascending.
    pub fn lost_indexes(&self) -> Vec<u8> {
        failures_lost(&self.failures)
    }
}

fn failures_lost(failures: &[ChunkFailure]) -> Vec<u8> {
    let lost: BTreeSet<u8> = failures.iter().filter(|f| f.error.chunk_lost()).map(|f| f.index).collect();
    lost.into_iter().collect()
}

/// Why a stripe could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StripeIoError {
    /// Fewer chunks answered than the stripe needs.
    #[error("stripe {stripe:?}: {available} chunks readable, {needed} needed")]
    Unrecoverable { stripe: StripeId, available: usize, needed: usize, failures: Vec<ChunkFailure> },
    /// The stripe record does not describe a readable stripe, or the range is outside it.
    #[error("bad stripe {stripe:?}: {reason}")]
    BadStripe { stripe: StripeId, reason: String },
    #[error("stripe {stripe:?}: {error}")]
    Decode { stripe: StripeId, error: DecodeError },
    #[error("network endpoint closed")]
    Closed,
}

/// Checks a stripe record before reading it.
pub fn check_stripe(stripe: &StripeRef) -> Result<(), StripeIoError> {
    let bad = |reason: String| Err(StripeIoError::BadStripe { stripe: stripe.id, reason });
    if let Err(e) = codec_of(stripe.layout) {
        return bad(e.to_string());
    }
    if stripe.nodes.len() != stripe.layout.total_chunks() {
        return bad(format!("{} nodes for {} chunks", stripe.nodes.len(), stripe.layout.total_chunks()));
    }
    let capacity = u64::from(stripe.chunk_len_bytes) * stripe.layout.data_chunks() as u64;
    if stripe.chunk_len_bytes == 0 || stripe.chunk_len_bytes as usize > CHUNK_PAYLOAD_MAX_BYTES {
        return bad(format!("chunk length {}", stripe.chunk_len_bytes));
    }
    if u64::from(stripe.data_len_bytes) > capacity {
        return bad(format!("{} data bytes in {capacity}", stripe.data_len_bytes));
    }
    Ok(())
}

/// One request in flight in [`StripeIo::exchange`].
struct Pending {
    to: NodeId,
    kind: Kind,
    bytes: Vec<u8>,
    sends: u32,
    deadline: MonoTime,
    busy: bool,
    outcome: Option<Result<DataMessage, ChunkError>>,
}

/// The I/O half: one data endpoint (its own: every message it receives is taken to be for it), the
/// clock for timeouts. One exchange at a time (`&mut self`).
pub struct StripeIo<C: Clock, N: Net> {
    clock: C,
    net: N,
    config: IoConfig,
    next_req: u64,
}

impl<C: Clock, N: Net> std::fmt::Debug for StripeIo<C, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeIo")
            .field("local", &self.net.local_id())
            .field("config", &self.config)
            .field("next_req", &self.next_req)
            .finish()
    }
}

impl<C: Clock, N: Net> StripeIo<C, N> {
    /// `first_req` should be random (from the caller's `Rng`), so that late replies to an earlier
    /// incarnation of this endpoint do not match new requests.
    pub fn new(clock: C, net: N, config: IoConfig, first_req: u64) -> StripeIo<C, N> {
        assert!(!config.request_timeout.is_zero(), "a request timeout of zero");
        StripeIo { clock, net, config, next_req: first_req }
    }

    pub fn config(&self) -> IoConfig {
        self.config
    }

    pub fn clock(&self) -> &C {
        &self.clock
    }

    pub fn local_id(&self) -> NodeId {
        self.net.local_id()
    }

    /// Sends every request (its `req` is replaced) to its node's data endpoint and waits for all the
    /// answers: result `i` is the answer to request `i`, or why there is none. A request unanswered
    /// within the timeout is sent again, up to `resend_max` times (requests are idempotent); a `Busy`
    /// answer waits for the timeout and re-sends too. Stale, duplicate and foreign messages are dropped.
    pub async fn exchange(&mut self, requests: Vec<(NodeId, DataMessage)>) -> Vec<Result<DataMessage, ChunkError>> {
        let base = self.next_req;
        self.next_req = self.next_req.wrapping_add(requests.len() as u64);
        let mut pending: Vec<Pending> = requests
            .into_iter()
            .enumerate()
            .map(|(i, (node, request))| {
                let kind = Kind::of_request(&request);
                let bytes = with_req(request, base.wrapping_add(i as u64)).encode();
                let to = data_endpoint(node);
                Pending { to, kind, bytes, sends: 0, deadline: MonoTime::ZERO, busy: false, outcome: None }
            })
            .collect();
        let mut open = pending.len();
        while open > 0 {
            let now = self.clock.now();
            for p in pending.iter_mut().filter(|p| p.outcome.is_none() && p.deadline <= now) {
                if p.sends > self.config.resend_max {
                    let error =
                        if p.busy { ChunkError::Data(DataError::Busy) } else { ChunkError::Timeout { sends: p.sends } };
                    p.outcome = Some(Err(error));
                    open -= 1;
                    continue;
                }
                p.sends += 1;
                p.deadline = now + self.config.request_timeout;
                match self.net.send(p.to, p.bytes.clone()).await {
                    Ok(()) | Err(NetError::QueueFull(_)) => {}
                    Err(NetError::Closed) => {
                        p.outcome = Some(Err(ChunkError::Closed));
                        open -= 1;
                    }
                    Err(e) => {
                        p.outcome = Some(Err(ChunkError::Unreachable(e)));
                        open -= 1;
                    }
                }
            }
            let Some(next) = pending.iter().filter(|p| p.outcome.is_none()).map(|p| p.deadline).min() else {
                break;
            };
            let wait = next.saturating_since(self.clock.now());
            match recv_or_sleep(&self.net, &self.clock, wait).await {
                None => {}
                Some(Err(_)) => {
                    for p in pending.iter_mut().filter(|p| p.outcome.is_none()) {
                        p.outcome = Some(Err(ChunkError::Closed));
                    }
                    open = 0;
                }
                Some(Ok((from, bytes))) => {
                    let Ok(reply) = DataMessage::decode(&bytes) else { continue };
                    let Some(p) = usize::try_from(reply.req().wrapping_sub(base)).ok().and_then(|i| pending.get_mut(i))
                    else {
                        continue;
                    };
                    if p.outcome.is_some() || from != p.to || Kind::of_reply(&reply) != Some(p.kind) {
                        continue;
                    }
                    if is_busy(&reply) {
                        p.busy = true;
                        continue;
                    }
                    if p.kind == Kind::Put && p.sends <= self.config.resend_max && buggify!("data.put_timeout") {
                        // Fault hook: as if the answer came too late: the put is re-sent at the deadline
                        // (puts are idempotent), with a re-send left for it.
                        continue;
                    }
                    p.outcome = Some(Ok(reply));
                    open -= 1;
                }
            }
        }
        pending.into_iter().map(|p| p.outcome.expect("every request settled")).collect()
    }

    /// Stores chunks (each on its node, owned by `owner`, of a stripe of `layout`); result `i` is put `i`'s.
    pub async fn put_chunks(
        &mut self,
        owner: InodeId,
        layout: StripeLayout,
        puts: Vec<ChunkPut>,
    ) -> Vec<Result<(), ChunkError>> {
        let requests = puts
            .into_iter()
            .map(|put| {
                assert!(put.payload.len() <= CHUNK_PAYLOAD_MAX_BYTES, "chunk of {} bytes", put.payload.len());
                let meta = ChunkMeta { key: put.key, owner, layout };
                (put.node, DataMessage::Put { req: 0, meta, payload: put.payload })
            })
            .collect();
        let replies = self.exchange(requests).await;
        replies
            .into_iter()
            .map(|reply| match reply? {
                DataMessage::PutDone { result, .. } => result.map_err(ChunkError::Data),
                other => unreachable!("exchange matched {other:?} to a put"),
            })
            .collect()
    }

    /// Reads parts of chunks; result `i` is get `i`'s bytes (exactly `len_bytes`, verified by the node).
    pub async fn get_chunks(&mut self, gets: &[ChunkGet]) -> Vec<Result<Vec<u8>, ChunkError>> {
        let requests = gets
            .iter()
            .map(|g| {
                let message =
                    DataMessage::Get { req: 0, key: g.key, offset_bytes: g.offset_bytes, len_bytes: g.len_bytes };
                (g.node, message)
            })
            .collect();
        let replies = self.exchange(requests).await;
        replies
            .into_iter()
            .zip(gets)
            .map(|(reply, get)| match reply? {
                DataMessage::GetDone { result: Ok(bytes), .. } if bytes.len() == get.len_bytes as usize => Ok(bytes),
                DataMessage::GetDone { result: Ok(bytes), .. } => {
                    Err(ChunkError::BadReply(format!("{} bytes for a get of {}", bytes.len(), get.len_bytes)))
                }
                DataMessage::GetDone { result: Err(e), .. } => Err(ChunkError::Data(e)),
                other => unreachable!("exchange matched {other:?} to a get"),
            })
            .collect()
    }

    /// Frees chunks, node by node (split into messages of at most [`FREE_KEYS_MAX`] keys); result `i`
    /// is node `i`'s (an error if any of its messages failed).
    pub async fn free_chunks(&mut self, frees: Vec<(NodeId, Vec<ChunkKey>)>) -> Vec<Result<(), ChunkError>> {
        let mut owners = Vec::new();
        let mut requests = Vec::new();
        for (i, (node, keys)) in frees.iter().enumerate() {
            for batch in keys.chunks(FREE_KEYS_MAX) {
                owners.push(i);
                requests.push((*node, DataMessage::Free { req: 0, keys: batch.to_vec() }));
            }
        }
        let mut results: Vec<Result<(), ChunkError>> = vec![Ok(()); frees.len()];
        for (owner, reply) in owners.into_iter().zip(self.exchange(requests).await) {
            let outcome = match reply {
                Ok(DataMessage::FreeDone { result, .. }) => result.map_err(ChunkError::Data),
                Ok(other) => unreachable!("exchange matched {other:?} to a free"),
                Err(e) => Err(e),
            };
            if results[owner].is_ok() {
                results[owner] = outcome;
            }
        }
        results
    }

    /// Every node's status.
    pub async fn status(&mut self, nodes: &[NodeId]) -> Vec<Result<DataStatus, ChunkError>> {
        let requests = nodes.iter().map(|&node| (node, DataMessage::Status { req: 0 })).collect();
        let replies = self.exchange(requests).await;
        replies
            .into_iter()
            .map(|reply| match reply? {
                DataMessage::StatusDone { status, .. } => Ok(status),
                other => unreachable!("exchange matched {other:?} to a status"),
            })
            .collect()
    }

    /// The stripe's data bytes `[offset, offset + len)`: reads only the parts of the data chunks
    /// holding them; if any fails (gone, corrupt, no answer), reads whole chunks from enough others and
    /// decodes (a degraded read). Returns the bytes and every chunk that failed. Bytes come only from
    /// chunks the nodes verified, or from decoding such chunks.
    pub async fn read_stripe_range(
        &mut self,
        stripe: &StripeRef,
        offset: u32,
        len: u32,
    ) -> Result<RangeRead, StripeIoError> {
        check_stripe(stripe)?;
        if u64::from(offset) + u64::from(len) > u64::from(stripe.data_len_bytes) {
            let reason = format!("range {offset}+{len} beyond {} data bytes", stripe.data_len_bytes);
            return Err(StripeIoError::BadStripe { stripe: stripe.id, reason });
        }
        if len == 0 {
            return Ok(RangeRead { bytes: Vec::new(), failures: Vec::new() });
        }
        if let StripeLayout::Replicated { .. } = stripe.layout {
            return self.read_replicated_range(stripe, offset, len).await;
        }
        let ranges = data_chunk_ranges(stripe.layout, stripe.chunk_len_bytes, offset, len);
        let gets: Vec<ChunkGet> =
            ranges.iter().map(|r| chunk_get(stripe, r.index, r.offset_bytes, r.len_bytes)).collect();
        let mut results = self.get_chunks(&gets).await;
        if results.iter().all(Result::is_ok) {
            if buggify!("data.read_pretend_corrupt") {
                // Fault hook: take the first chunk as failing its checksum and read degraded. If the
                // others cannot make up for it, the verified bytes stand (the hook never makes a range unreadable).
                let verified: Vec<u8> = results.iter().flat_map(|r| r.clone().expect("all ok")).collect();
                let key = ChunkKey { stripe: stripe.id, index: ranges[0].index };
                results[0] = Err(ChunkError::Data(DataError::Corrupt(key)));
                return match self.degraded_range(stripe, offset, len, &ranges, results).await {
                    Err(StripeIoError::Unrecoverable { .. }) => Ok(RangeRead { bytes: verified, failures: Vec::new() }),
                    read => read,
                };
            }
            let bytes: Vec<u8> = results.into_iter().flat_map(|r| r.expect("all ok")).collect();
            assert_eq!(bytes.len(), len as usize);
            return Ok(RangeRead { bytes, failures: Vec::new() });
        }
        self.degraded_range(stripe, offset, len, &ranges, results).await
    }

    /// The stripe's data bytes `[offset, offset + len)` when some of the reads of `ranges` failed:
    /// decoded from whole chunks (the ranges read whole, then others).
    async fn degraded_range(
        &mut self,
        stripe: &StripeRef,
        offset: u32,
        len: u32,
        ranges: &[ChunkRange],
        results: Vec<Result<Vec<u8>, ChunkError>>,
    ) -> Result<RangeRead, StripeIoError> {
        let mut have: Vec<Option<Vec<u8>>> = vec![None; stripe.layout.total_chunks()];
        let mut failures = Vec::new();
        for (r, result) in ranges.iter().zip(results) {
            match result {
                Ok(bytes) if r.len_bytes == stripe.chunk_len_bytes => have[usize::from(r.index)] = Some(bytes),
                Ok(_) => {}
                Err(error) => failures.push(failure(stripe, r.index, error)),
            }
        }
        let chunks = self.gather(stripe, have, &BTreeSet::new(), &mut failures).await?;
        mark!("data.degraded_read");
        let bytes = stripe_bytes(stripe.layout, &chunks, offset, len);
        Ok(RangeRead { bytes, failures })
    }

    /// Every chunk of the stripe, reading whole chunks (never those in `skip`, known lost) and decoding
    /// the rest: what repair and rebuild put back. Also returns the chunks that failed on the way.
    pub async fn read_stripe_chunks(
        &mut self,
        stripe: &StripeRef,
        skip: &BTreeSet<u8>,
    ) -> Result<(Vec<Vec<u8>>, Vec<ChunkFailure>), StripeIoError> {
        check_stripe(stripe)?;
        let mut failures = Vec::new();
        let have = vec![None; stripe.layout.total_chunks()];
        let chunks = self.gather(stripe, have, skip, &mut failures).await?;
        Ok((chunks, failures))
    }

    /// Reads whole chunks until `data_chunks` are present (data chunks first, then parity), then decodes.
    async fn gather(
        &mut self,
        stripe: &StripeRef,
        mut have: Vec<Option<Vec<u8>>>,
        skip: &BTreeSet<u8>,
        failures: &mut Vec<ChunkFailure>,
    ) -> Result<Vec<Vec<u8>>, StripeIoError> {
        let needed = stripe.layout.data_chunks();
        loop {
            let available = have.iter().flatten().count();
            if available >= needed {
                break;
            }
            let wanted: Vec<u8> = (0..stripe.layout.total_chunks() as u8)
                .filter(|&i| have[usize::from(i)].is_none() && !skip.contains(&i))
                .filter(|&i| !failures.iter().any(|f| f.index == i))
                .take(needed - available)
                .collect();
            if wanted.is_empty() {
                let failures = failures.clone();
                return Err(StripeIoError::Unrecoverable { stripe: stripe.id, available, needed, failures });
            }
            let gets: Vec<ChunkGet> = wanted.iter().map(|&i| chunk_get(stripe, i, 0, stripe.chunk_len_bytes)).collect();
            for (&index, result) in wanted.iter().zip(self.get_chunks(&gets).await) {
                match result {
                    Ok(bytes) => have[usize::from(index)] = Some(bytes),
                    Err(ChunkError::Closed) => return Err(StripeIoError::Closed),
                    Err(error) => failures.push(failure(stripe, index, error)),
                }
            }
        }
        decode_stripe(stripe.layout, stripe.chunk_len_bytes, have)
            .map_err(|error| StripeIoError::Decode { stripe: stripe.id, error })
    }

    async fn read_replicated_range(
        &mut self,
        stripe: &StripeRef,
        offset: u32,
        len: u32,
    ) -> Result<RangeRead, StripeIoError> {
        let mut failures = Vec::new();
        for index in 0..stripe.layout.total_chunks() as u8 {
            let get = chunk_get(stripe, index, offset, len);
            match self.get_chunks(&[get]).await.pop().expect("one get, one result") {
                Ok(bytes) => {
                    if !failures.is_empty() {
                        mark!("data.degraded_read");
                    }
                    return Ok(RangeRead { bytes, failures });
                }
                Err(ChunkError::Closed) => return Err(StripeIoError::Closed),
                Err(error) => failures.push(failure(stripe, index, error)),
            }
        }
        Err(StripeIoError::Unrecoverable { stripe: stripe.id, available: 0, needed: 1, failures })
    }
}

/// A get of every chunk of `stripe`, whole, from the node the stripe names for it (scrub, checkers).
pub fn whole_chunk_gets(stripe: &StripeRef) -> Vec<ChunkGet> {
    (0..stripe.nodes.len() as u8).map(|i| chunk_get(stripe, i, 0, stripe.chunk_len_bytes)).collect()
}

fn chunk_get(stripe: &StripeRef, index: u8, offset_bytes: u32, len_bytes: u32) -> ChunkGet {
    let key = ChunkKey { stripe: stripe.id, index };
    ChunkGet { node: stripe.nodes[usize::from(index)], key, offset_bytes, len_bytes }
}

fn failure(stripe: &StripeRef, index: u8, error: ChunkError) -> ChunkFailure {
    ChunkFailure { index, node: stripe.nodes[usize::from(index)], error }
}

/// The kind of a request, and of the reply that answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Put,
    Get,
    Free,
    Status,
}

impl Kind {
    fn of_request(message: &DataMessage) -> Kind {
        match message {
            DataMessage::Put { .. } => Kind::Put,
            DataMessage::Get { .. } => Kind::Get,
            DataMessage::Free { .. } => Kind::Free,
            DataMessage::Status { .. } => Kind::Status,
            other => panic!("not a request: {other:?}"),
        }
    }

    fn of_reply(message: &DataMessage) -> Option<Kind> {
        match message {
            DataMessage::PutDone { .. } => Some(Kind::Put),
            DataMessage::GetDone { .. } => Some(Kind::Get),
            DataMessage::FreeDone { .. } => Some(Kind::Free),
            DataMessage::StatusDone { .. } => Some(Kind::Status),
            _ => None,
        }
    }
}

fn with_req(message: DataMessage, req: u64) -> DataMessage {
    match message {
        DataMessage::Put { meta, payload, .. } => DataMessage::Put { req, meta, payload },
        DataMessage::Get { key, offset_bytes, len_bytes, .. } => DataMessage::Get { req, key, offset_bytes, len_bytes },
        DataMessage::Free { keys, .. } => DataMessage::Free { req, keys },
        DataMessage::Status { .. } => DataMessage::Status { req },
        other => panic!("not a request: {other:?}"),
    }
}

fn is_busy(reply: &DataMessage) -> bool {
    matches!(
        reply,
        DataMessage::PutDone { result: Err(DataError::Busy), .. }
            | DataMessage::GetDone { result: Err(DataError::Busy), .. }
            | DataMessage::FreeDone { result: Err(DataError::Busy), .. }
    )
}

#[cfg(test)]
#[path = "tests_stripe_io.rs"]
mod tests;
