//! ChunkHost tests with an in-test network (a queue in, a list out) and a clock whose sleeps return at
//! once, moving time forward: batches, replies, bounds, background scrub, the repair queue.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use tessera_env::{Net, NetError, NodeId};
use tessera_meta::InodeId;
use tessera_meta::content::{StripeId, StripeLayout};
use tessera_store::StoreConfig;

use crate::data_endpoint;
use crate::host::{ChunkHost, HostConfig, HostConfigError, HostError, SharedRepairQueue, push_repair};
use crate::server::ChunkServer;
use crate::test_disk::{MemDisk, TestClock, run};
use crate::wire::{
    CHUNK_PAYLOAD_MAX_BYTES, ChunkKey, ChunkMeta, DataError, DataMessage, FREE_KEYS_MAX, RebuildProgress,
};

#[derive(Clone, Debug, Default)]
struct Wire {
    inbox: VecDeque<(NodeId, Vec<u8>)>,
    sent: Vec<(NodeId, Vec<u8>)>,
    closed: bool,
}

#[derive(Clone, Debug)]
struct TestNet {
    id: NodeId,
    wire: Arc<Mutex<Wire>>,
}

impl Net for TestNet {
    fn local_id(&self) -> NodeId {
        self.id
    }

    async fn send(&self, to: NodeId, payload: Vec<u8>) -> Result<(), NetError> {
        self.wire.lock().expect("wire").sent.push((to, payload));
        Ok(())
    }

    fn recv(&self) -> impl Future<Output = Result<(NodeId, Vec<u8>), NetError>> + Send {
        let wire = Arc::clone(&self.wire);
        poll_fn(move |_| {
            let mut w = wire.lock().expect("wire");
            match w.inbox.pop_front() {
                Some(message) => Poll::Ready(Ok(message)),
                None if w.closed => Poll::Ready(Err(NetError::Closed)),
                None => Poll::Pending,
            }
        })
    }
}

const CLIENT: NodeId = NodeId(40);

struct Harness {
    host: ChunkHost<TestClock, TestNet, MemDisk>,
    wire: Arc<Mutex<Wire>>,
    disks: Vec<MemDisk>,
    rebuild: Arc<Mutex<RebuildProgress>>,
    repairs: SharedRepairQueue,
}

impl Harness {
    fn new(config: HostConfig) -> Harness {
        let disks: Vec<MemDisk> = (0..2).map(|_| MemDisk::new(4 * 1024 * 1024)).collect();
        let store_config = StoreConfig { max_extent_bytes: 2 * 1024 * 1024, journal_bytes: Some(64 * 1024) };
        let server = run(ChunkServer::format(disks.clone(), 1, NodeId(2), store_config)).expect("format");
        let wire = Arc::new(Mutex::new(Wire::default()));
        let net = TestNet { id: data_endpoint(NodeId(2)), wire: Arc::clone(&wire) };
        let clock = TestClock { now_ns: Arc::new(Mutex::new(0)) };
        let rebuild = Arc::new(Mutex::new(RebuildProgress::default()));
        let repairs = SharedRepairQueue::default();
        let host =
            ChunkHost::new(config, clock, net, server, Arc::clone(&repairs), Arc::clone(&rebuild)).expect("config");
        Harness { host, wire, disks, rebuild, repairs }
    }

    fn send(&self, message: &DataMessage) {
        self.send_bytes(message.encode());
    }

    fn send_bytes(&self, bytes: Vec<u8>) {
        self.wire.lock().expect("wire").inbox.push_back((CLIENT, bytes));
    }

    fn step(&mut self) {
        run(self.host.step()).expect("step");
    }

    /// Replies sent since the last call, decoded.
    fn replies(&self) -> Vec<DataMessage> {
        let sent = std::mem::take(&mut self.wire.lock().expect("wire").sent);
        sent.into_iter()
            .map(|(to, bytes)| {
                assert_eq!(to, CLIENT, "replies go to the sender");
                DataMessage::decode(&bytes).expect("reply decodes")
            })
            .collect()
    }
}

fn meta(stripe: u128) -> ChunkMeta {
    ChunkMeta {
        key: ChunkKey { stripe: StripeId(stripe), index: 0 },
        owner: InodeId(5),
        layout: StripeLayout::Replicated { copies: 3 },
    }
}

#[test]
fn host_serves_a_batch_puts_first_then_in_order() {
    let mut h = Harness::new(HostConfig::default());
    let key = meta(1).key;
    h.send(&DataMessage::Get { req: 1, key, offset_bytes: 0, len_bytes: 3 });
    h.send(&DataMessage::Put { req: 2, meta: meta(1), payload: b"abc".to_vec() });
    h.send(&DataMessage::Put { req: 3, meta: meta(2), payload: b"defg".to_vec() });
    h.send(&DataMessage::Free { req: 4, keys: vec![meta(2).key, meta(77).key] });
    h.send(&DataMessage::Status { req: 5 });
    h.step();
    let replies = h.replies();
    assert_eq!(
        replies[..4],
        [
            DataMessage::PutDone { req: 2, result: Ok(()) },
            DataMessage::PutDone { req: 3, result: Ok(()) },
            DataMessage::GetDone { req: 1, result: Ok(b"abc".to_vec()) },
            DataMessage::FreeDone { req: 4, result: Ok(()) },
        ]
    );
    let DataMessage::StatusDone { req: 5, status } = &replies[4] else { panic!("{:?}", replies[4]) };
    assert_eq!(status.chunks, 1);
    assert_eq!(replies.len(), 5);
}

#[test]
fn host_bounds_its_batch() {
    let config = HostConfig { batch_max: 2, ..HostConfig::default() };
    let mut h = Harness::new(config);
    for req in 0..5 {
        h.send(&DataMessage::Status { req });
    }
    h.step();
    assert_eq!(h.replies().len(), 2);
    h.step();
    h.step();
    assert_eq!(h.replies().len(), 3);
}

#[test]
fn host_rejects_oversized_requests_and_drops_junk() {
    let mut h = Harness::new(HostConfig::default());
    h.send_bytes(vec![0xFF; 7]);
    h.send(&DataMessage::PutDone { req: 9, result: Ok(()) });
    h.send(&DataMessage::Put { req: 1, meta: meta(1), payload: vec![0; CHUNK_PAYLOAD_MAX_BYTES + 1] });
    h.send(&DataMessage::Free { req: 2, keys: vec![meta(1).key; FREE_KEYS_MAX + 1] });
    h.send(&DataMessage::Get { req: 3, key: meta(1).key, offset_bytes: 0, len_bytes: u32::MAX });
    h.step();
    let replies = h.replies();
    assert_eq!(replies.len(), 3);
    assert!(matches!(&replies[0], DataMessage::PutDone { req: 1, result: Err(DataError::BadRequest(_)) }));
    assert!(matches!(&replies[1], DataMessage::FreeDone { req: 2, result: Err(DataError::BadRequest(_)) }));
    assert!(matches!(&replies[2], DataMessage::GetDone { req: 3, result: Err(DataError::BadRequest(_)) }));
}

#[test]
fn host_scrubs_when_due_and_queues_repairs() {
    let config = HostConfig { scrub_interval_ms: 10, scrub_budget_blocks: 64, ..HostConfig::default() };
    let mut h = Harness::new(config);
    let payload: Vec<u8> = (0..6000u32).map(|i| (i * 7 % 251) as u8).collect();
    h.send(&DataMessage::Put { req: 1, meta: meta(3), payload: payload.clone() });
    h.step();
    assert_eq!(h.replies(), vec![DataMessage::PutDone { req: 1, result: Ok(()) }]);
    let disk = h.disks.iter().find(|d| d.find(&payload[..64]).is_some()).expect("on some disk");
    disk.corrupt_byte(disk.find(&payload[..64]).expect("found") + 5000, 2);
    for _ in 0..4 {
        h.step(); // idle: the sleep passes the deadline, one scrub step per drive in turn
    }
    assert_eq!(h.repairs.lock().expect("queue").drain(..).collect::<Vec<_>>(), vec![meta(3)]);
    *h.rebuild.lock().expect("rebuild") = RebuildProgress { stripes_found: 4, ..RebuildProgress::default() };
    h.send(&DataMessage::Status { req: 2 });
    h.step();
    let replies = h.replies();
    let DataMessage::StatusDone { req: 2, status } = &replies[0] else { panic!("{replies:?}") };
    assert_eq!(status.scrub_bad_chunks, 1);
    assert_eq!(status.chunks, 0);
    assert_eq!(status.rebuild.stripes_found, 4);
}

#[test]
fn host_queues_chunks_a_get_finds_corrupt() {
    let mut h = Harness::new(HostConfig::default());
    let payload = vec![0x5A; 300];
    h.send(&DataMessage::Put { req: 1, meta: meta(4), payload: payload.clone() });
    h.step();
    let disk = h.disks.iter().find(|d| d.find(&payload).is_some()).expect("on some disk");
    disk.corrupt_byte(disk.find(&payload).expect("found") + 10, 1);
    h.send(&DataMessage::Get { req: 2, key: meta(4).key, offset_bytes: 0, len_bytes: 300 });
    h.step();
    let replies = h.replies();
    assert_eq!(replies[1], DataMessage::GetDone { req: 2, result: Err(DataError::Corrupt(meta(4).key)) });
    assert_eq!(h.repairs.lock().expect("queue").drain(..).collect::<Vec<_>>(), vec![meta(4)]);
}

#[test]
fn host_stops_when_the_network_closes() {
    let mut h = Harness::new(HostConfig::default());
    h.wire.lock().expect("wire").closed = true;
    assert_eq!(run(h.host.step()), Err(HostError::NetClosed));
}

#[test]
fn host_config_is_validated() {
    assert_eq!(HostConfig::default().validate(), Ok(()));
    let zero = HostConfig { batch_max: 0, ..HostConfig::default() };
    assert_eq!(zero.validate(), Err(HostConfigError { field: "batch_max", value: 0, max: 1024 }));
    let huge = HostConfig { scrub_budget_blocks: u64::MAX, ..HostConfig::default() };
    assert!(matches!(huge.validate(), Err(HostConfigError { field: "scrub_budget_blocks", .. })));
    let no_queue = HostConfig { repair_queue_max: 0, ..HostConfig::default() };
    assert!(no_queue.validate().is_err());
    let never = HostConfig { scrub_interval_ms: 0, ..HostConfig::default() };
    assert!(never.validate().is_err());
}

#[test]
fn host_repair_queue_is_bounded_and_deduplicated() {
    let mut q = VecDeque::new();
    let dropped: u64 = [1, 2, 2, 3, 4, 5].into_iter().map(|stripe| push_repair(&mut q, meta(stripe), 3)).sum();
    assert_eq!(dropped, 2);
    assert_eq!(q, [meta(3), meta(4), meta(5)]);
}

#[test]
fn host_counts_repair_queue_overflow() {
    let config = HostConfig { repair_queue_max: 1, ..HostConfig::default() };
    let mut h = Harness::new(config);
    for stripe in 0..3 {
        let payload = vec![stripe as u8 + 1; 200];
        h.send(&DataMessage::Put { req: stripe as u64, meta: meta(stripe), payload: payload.clone() });
        h.step();
        let disk = h.disks.iter().find(|d| d.find(&payload).is_some()).expect("on some disk");
        disk.corrupt_byte(disk.find(&payload).expect("found"), 1);
        h.send(&DataMessage::Get { req: 10, key: meta(stripe).key, offset_bytes: 0, len_bytes: 200 });
        h.step();
    }
    assert_eq!(h.repairs.lock().expect("queue").len(), 1);
    assert_eq!(h.host.repairs_overflowed(), 2);
}
