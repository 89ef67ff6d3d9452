//! Server-side request metrics: a [`Net`] wrapper around a service's endpoint (the metadata shard host,
//! the chunk host) that notes each request it receives and, when the service sends the answer, records
//! the operation and the time between the two in [`Metrics::record_op`] (`tessera_ops_total`,
//! `tessera_op_duration_seconds`).
//!
//! Requests and answers are recognised without decoding bulk payloads: `tessera_proto` encodes an enum
//! as its variant index (a varint, one byte below 251) followed by its fields, so the first byte names
//! the message kind and the next varint is a data request's number. Metadata requests and answers,
//! which are small, are decoded in full to name the operation. The test `tags_match_the_codec` pins the
//! variant indexes this relies on.
//!
//! Memory is bounded: at most [`PENDING_MAX`] unanswered requests are remembered (the oldest are
//! forgotten first; a request answered after that is not recorded).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tessera_env::{Net, NetError, NodeId};
use tessera_meta::MetaOp;
use tessera_meta::exec::{ShardAnswer, ShardCall};
use tessera_meta::wire::MetaMessage;

use crate::observe::Metrics;

/// Unanswered requests remembered per endpoint.
pub const PENDING_MAX: usize = 65_536;

/// Variant indexes of `MetaMessage`.
const META_REQUEST: u8 = 2;
const META_RESPONSE: u8 = 3;
const META_NOT_LEADER: u8 = 4;
const META_BUSY: u8 = 5;
const META_STALE: u8 = 6;
/// Variant indexes of `DataMessage`: requests are even, their answers the next odd index.
const DATA_PUT: u8 = 0;
const DATA_GET: u8 = 2;
const DATA_FREE: u8 = 4;
const DATA_STATUS: u8 = 6;

/// Which service's messages an endpoint carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Meta,
    Data,
}

impl Service {
    fn label(self) -> &'static str {
        match self {
            Service::Meta => "meta",
            Service::Data => "data",
        }
    }
}

/// A request's identity within its sender: (client, sequence) for metadata, (request number, 0) for data.
type Key = (NodeId, u64, u64);

#[derive(Debug, Default)]
struct Pending {
    started: BTreeMap<Key, (&'static str, Instant)>,
    order: VecDeque<Key>,
}

impl Pending {
    fn insert(&mut self, key: Key, op: &'static str) {
        if self.started.insert(key, (op, Instant::now())).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > PENDING_MAX {
            if let Some(old) = self.order.pop_front() {
                self.started.remove(&old);
            }
        }
    }

    fn take(&mut self, key: &Key) -> Option<(&'static str, Instant)> {
        // `order` keeps the key until it reaches the front; removing it here would be O(n).
        self.started.remove(key)
    }
}

/// A service endpoint that records the requests it serves.
#[derive(Debug, Clone)]
pub struct MeteredNet<N> {
    inner: N,
    service: Service,
    metrics: Metrics,
    pending: Arc<Mutex<Pending>>,
}

impl<N: Net> MeteredNet<N> {
    pub fn new(inner: N, service: Service, metrics: Metrics) -> MeteredNet<N> {
        MeteredNet { inner, service, metrics, pending: Arc::default() }
    }

    fn received(&self, from: NodeId, bytes: &[u8]) {
        let request = match self.service {
            Service::Meta => meta_request(bytes),
            Service::Data => data_request(bytes),
        };
        if let Some((key, op)) = request {
            self.pending.lock().expect("pending lock").insert((from, key.0, key.1), op);
        }
    }

    fn sending(&self, to: NodeId, bytes: &[u8]) {
        let answer = match self.service {
            Service::Meta => meta_answer(bytes),
            Service::Data => data_answer(bytes),
        };
        let Some((key, outcome)) = answer else { return };
        let Some((op, started)) = self.pending.lock().expect("pending lock").take(&(to, key.0, key.1)) else {
            return;
        };
        if let Some(ok) = outcome {
            let latency_ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.metrics.record_op(self.service.label(), op, ok, latency_ns);
        }
    }
}

impl<N: Net> Net for MeteredNet<N> {
    fn local_id(&self) -> NodeId {
        self.inner.local_id()
    }

    async fn send(&self, to: NodeId, payload: Vec<u8>) -> Result<(), NetError> {
        self.sending(to, &payload);
        self.inner.send(to, payload).await
    }

    async fn recv(&self) -> Result<(NodeId, Vec<u8>), NetError> {
        let (from, bytes) = self.inner.recv().await?;
        self.received(from, &bytes);
        Ok((from, bytes))
    }
}

/// A metadata request: its (client, seq) and the operation's name.
fn meta_request(bytes: &[u8]) -> Option<((u64, u64), &'static str)> {
    if bytes.first() != Some(&META_REQUEST) {
        return None;
    }
    match MetaMessage::decode(bytes).ok()? {
        MetaMessage::Request { req, call, .. } => {
            let op = match call {
                ShardCall::Apply { op } => op_name(&op),
                ShardCall::Read { .. } => "read_keys",
                ShardCall::Begin { .. } => "transaction",
            };
            Some(((req.client, req.seq), op))
        }
        _ => None,
    }
}

/// A metadata answer: the request it answers and whether to record it (`Some(ok)`) or only forget it
/// (`None`: the node does not lead the shard; the client asks another node).
fn meta_answer(bytes: &[u8]) -> Option<((u64, u64), Option<bool>)> {
    if !matches!(bytes.first(), Some(&(META_RESPONSE | META_NOT_LEADER | META_BUSY | META_STALE))) {
        return None;
    }
    match MetaMessage::decode(bytes).ok()? {
        MetaMessage::Response { req, answer } => {
            // An errno is a served operation; only a refusal to serve (`NotLocal`) is not.
            let ok = !matches!(answer, ShardAnswer::Applied(Err(_)));
            Some(((req.client, req.seq), Some(ok)))
        }
        MetaMessage::NotLeader { req, .. } => Some(((req.client, req.seq), None)),
        MetaMessage::Busy { req } | MetaMessage::Stale { req } => Some(((req.client, req.seq), Some(false))),
        _ => None,
    }
}

/// A data request: its number and the operation's name.
fn data_request(bytes: &[u8]) -> Option<((u64, u64), &'static str)> {
    let op = match *bytes.first()? {
        DATA_PUT => "put",
        DATA_GET => "get",
        DATA_FREE => "free",
        DATA_STATUS => "status",
        _ => return None,
    };
    let (req, _) = varint(&bytes[1..])?;
    Some(((req, 0), op))
}

/// A data answer: its request number and whether it succeeded (the `Result` tag after the number; a
/// status answer always did).
fn data_answer(bytes: &[u8]) -> Option<((u64, u64), Option<bool>)> {
    let tag = *bytes.first()?;
    if tag % 2 == 0 || tag > DATA_STATUS + 1 {
        return None;
    }
    let (req, used) = varint(&bytes[1..])?;
    let ok = tag == DATA_STATUS + 1 || bytes.get(1 + used) == Some(&0);
    Some(((req, 0), Some(ok)))
}

/// A `tessera_proto` (bincode varint) unsigned integer: its value and the bytes it took.
fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let first = *bytes.first()?;
    let le = |n: usize| -> Option<u64> {
        let raw = bytes.get(1..1 + n)?;
        let mut buf = [0u8; 8];
        buf[..n].copy_from_slice(raw);
        Some(u64::from_le_bytes(buf))
    };
    match first {
        0..=250 => Some((u64::from(first), 1)),
        251 => Some((le(2)?, 3)),
        252 => Some((le(4)?, 5)),
        253 => Some((le(8)?, 9)),
        _ => None,
    }
}

/// The metric label of a metadata operation.
pub fn op_name(op: &MetaOp) -> &'static str {
    match op {
        MetaOp::Lookup { .. } => "lookup",
        MetaOp::GetAttr { .. } => "getattr",
        MetaOp::SetAttr { .. } => "setattr",
        MetaOp::Create { .. } => "create",
        MetaOp::Mkdir { .. } => "mkdir",
        MetaOp::Mknod { .. } => "mknod",
        MetaOp::Symlink { .. } => "symlink",
        MetaOp::Readlink { .. } => "readlink",
        MetaOp::Link { .. } => "link",
        MetaOp::Unlink { .. } => "unlink",
        MetaOp::Rmdir { .. } => "rmdir",
        MetaOp::Rename { .. } => "rename",
        MetaOp::Readdir { .. } => "readdir",
        MetaOp::SetXattr { .. } => "setxattr",
        MetaOp::GetXattr { .. } => "getxattr",
        MetaOp::ListXattr { .. } => "listxattr",
        MetaOp::RemoveXattr { .. } => "removexattr",
        MetaOp::Truncate { .. } => "truncate",
        MetaOp::Write { .. } => "write",
        MetaOp::ReadMap { .. } => "readmap",
        MetaOp::GetStripe { .. } => "getstripe",
        MetaOp::MoveChunk { .. } => "movechunk",
        MetaOp::ScanStripes { .. } => "scanstripes",
        MetaOp::TakeGarbage { .. } => "takegarbage",
        MetaOp::ReleaseGarbage { .. } => "releasegarbage",
    }
}

#[cfg(test)]
mod tests {
    use tessera_data::wire::{ChunkKey, DataError, DataMessage, DataStatus};
    use tessera_meta::exec::ReqId;
    use tessera_meta::{InodeId, MetaReply};

    use super::*;

    fn req(seq: u64) -> ReqId {
        ReqId { client: 7, seq }
    }

    #[test]
    fn tags_match_the_codec() {
        let call = ShardCall::Apply { op: MetaOp::GetAttr { ino: InodeId::ROOT } };
        let request = MetaMessage::Request { req: req(300), shard: 1, epoch: 1, call };
        assert_eq!(meta_request(&request.encode()), Some(((7, 300), "getattr")));
        let answer = MetaMessage::Response { req: req(300), answer: ShardAnswer::Applied(Ok(Ok(MetaReply::Done))) };
        assert_eq!(meta_answer(&answer.encode()), Some(((7, 300), Some(true))));
        let moved = MetaMessage::NotLeader { req: req(300), shard: 1, leader: None, epoch: 1 };
        assert_eq!(meta_answer(&moved.encode()), Some(((7, 300), None)));
        assert_eq!(meta_answer(&MetaMessage::Busy { req: req(1) }.encode()), Some(((7, 1), Some(false))));
        assert_eq!(meta_answer(&MetaMessage::Stale { req: req(1) }.encode()), Some(((7, 1), Some(false))));
        assert_eq!(meta_request(&answer.encode()), None);

        let key = ChunkKey { stripe: tessera_meta::content::StripeId(1), index: 0 };
        for (message, op) in [
            (DataMessage::Get { req: 1 << 40, key, offset_bytes: 0, len_bytes: 4096 }, "get"),
            (DataMessage::Free { req: 70_000, keys: vec![key] }, "free"),
            (DataMessage::Status { req: 3 }, "status"),
        ] {
            let got = data_request(&message.encode()).expect("a data request");
            assert_eq!(got.1, op);
        }
        assert_eq!(data_request(&DataMessage::Status { req: 1 << 40 }.encode()), Some(((1 << 40, 0), "status")));
        let done = DataMessage::GetDone { req: 70_000, result: Ok(vec![1, 2, 3]) };
        assert_eq!(data_answer(&done.encode()), Some(((70_000, 0), Some(true))));
        let failed = DataMessage::PutDone { req: 9, result: Err(DataError::NoSpace { needed_bytes: 1 }) };
        assert_eq!(data_answer(&failed.encode()), Some(((9, 0), Some(false))));
        let status = DataMessage::StatusDone { req: 251, status: DataStatus::default() };
        assert_eq!(data_answer(&status.encode()), Some(((251, 0), Some(true))));
        assert_eq!(data_answer(&DataMessage::Status { req: 3 }.encode()), None);
    }

    #[test]
    fn a_served_request_is_recorded_once_and_memory_stays_bounded() {
        let metrics = Metrics::new("n1");
        let net = MeteredNet::new(NoNet, Service::Data, metrics.clone());
        net.received(NodeId(5), &DataMessage::Status { req: 1 }.encode());
        let done = DataMessage::StatusDone { req: 1, status: DataStatus::default() }.encode();
        net.sending(NodeId(5), &done);
        net.sending(NodeId(5), &done);
        let text = metrics.render();
        let line = text
            .lines()
            .find(|l| l.starts_with("tessera_ops_total") && l.contains("op=\"status\"") && l.contains("result=\"ok\""));
        assert!(line.is_some_and(|l| l.ends_with(" 1")), "{text}");
        for i in 0..(PENDING_MAX as u64 + 10) {
            net.received(NodeId(6), &DataMessage::Status { req: i }.encode());
        }
        let pending = net.pending.lock().expect("lock");
        assert!(pending.started.len() <= PENDING_MAX && pending.order.len() <= PENDING_MAX);
    }

    /// A `Net` that is never used (the test calls the bookkeeping directly).
    #[derive(Debug, Clone)]
    struct NoNet;

    impl Net for NoNet {
        fn local_id(&self) -> NodeId {
            NodeId(1)
        }
        async fn send(&self, _to: NodeId, _payload: Vec<u8>) -> Result<(), NetError> {
            Ok(())
        }
        async fn recv(&self) -> Result<(NodeId, Vec<u8>), NetError> {
            Err(NetError::Closed)
        }
    }
}
