//! stripe_io tests: shapes, encode/decode, range mapping (pure); and the request engine and degraded
//! read against in-test nodes (a network that answers on send, with loss, duplicates, stale replies,
//! missing and corrupt chunks) and a clock whose sleeps return at once, moving time forward.

use std::collections::{BTreeMap, BTreeSet};
use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use tessera_config::model::Protection;
use tessera_env::hooks::{self, HookConfig};
use tessera_env::{DetRng, Net, NetError, NodeId, Rng};
use tessera_meta::InodeId;
use tessera_meta::content::{StripeId, StripeLayout, StripeRef};

use super::*;
use crate::node_of_endpoint;
use crate::test_disk::{TestClock, run};
use crate::wire::{CHUNK_PAYLOAD_MAX_BYTES, ChunkKey, DataError, DataMessage};

fn ec(data: u8, parity: u8) -> StripeLayout {
    layout_of(Protection::ErasureCoded { data, parity }).unwrap()
}

fn bytes(rng: &mut DetRng, len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    rng.fill_bytes(&mut out);
    out
}

fn all_layouts() -> Vec<StripeLayout> {
    let mut layouts: Vec<StripeLayout> = (4..=16).flat_map(|n| (2..=4).map(move |k| ec(n, k))).collect();
    layouts.extend((2..=5).map(|copies| StripeLayout::Replicated { copies }));
    layouts
}

#[test]
fn shapes_for_every_protection() {
    for layout in all_layouts() {
        let n = layout.data_chunks();
        let capacity = StripeShape::capacity_bytes(layout);
        assert_eq!(capacity, n * CHUNK_PAYLOAD_MAX_BYTES);
        let multiple = codec_of(layout).unwrap().map_or(1, |c| c.shard_len_multiple());
        for len in [1, 2, n - 1, n, n + 1, 4096, 100_003, capacity - 1, capacity] {
            let len = len.max(1);
            let shape = StripeShape::new(layout, len).unwrap();
            let chunk = shape.chunk_len_bytes as usize;
            assert_eq!(shape.data_len_bytes as usize, len);
            assert!(chunk * n >= len, "{layout:?} {len}: chunks too short");
            assert!(chunk <= CHUNK_PAYLOAD_MAX_BYTES);
            assert_eq!(chunk % multiple, 0);
            assert!(chunk - len.div_ceil(n) < multiple, "{layout:?} {len}: chunk {chunk} longer than needed");
        }
        assert_eq!(StripeShape::new(layout, 0), Err(ShapeError::Empty));
        assert_eq!(
            StripeShape::new(layout, capacity + 1),
            Err(ShapeError::TooLarge { len_bytes: capacity + 1, capacity_bytes: capacity })
        );
    }
    assert!(layout_of(Protection::ErasureCoded { data: 2, parity: 2 }).is_err());
    assert!(layout_of(Protection::Replicated { copies: 1 }).is_err());
    let unknown = StripeLayout::ErasureCoded { data: 4, parity: 2, codec: 9 };
    assert_eq!(StripeShape::new(unknown, 10), Err(ShapeError::UnknownCodec(9)));
}

#[test]
fn codec_ids_round_trip() {
    for kind in tessera_ec::CodecKind::ALL {
        assert_eq!(codec_kind(codec_id(kind)), Some(kind));
    }
    assert_eq!(codec_kind(3), None);
    assert_eq!(codec_id(tessera_ec::CodecKind::DEFAULT), 0);
}

#[test]
fn writes_cut_into_full_stripes_then_the_rest() {
    let layout = ec(4, 2);
    let cap = StripeShape::capacity_bytes(layout);
    assert_eq!(cut_into_stripes(layout, 0), vec![]);
    assert_eq!(cut_into_stripes(layout, 10), vec![(0, 10)]);
    assert_eq!(cut_into_stripes(layout, cap), vec![(0, cap)]);
    assert_eq!(cut_into_stripes(layout, 2 * cap + 1), vec![(0, cap), (cap, cap), (2 * cap, 1)]);
    let replicated = StripeLayout::Replicated { copies: 3 };
    assert_eq!(cut_into_stripes(replicated, CHUNK_PAYLOAD_MAX_BYTES + 5).len(), 2);
}

/// Every subset of `total` indexes with exactly `size` members.
fn subsets(total: usize, size: usize) -> Vec<Vec<usize>> {
    (0u32..1 << total)
        .filter(|m| m.count_ones() as usize == size)
        .map(|m| (0..total).filter(|i| m & (1 << i) != 0).collect())
        .collect()
}

#[test]
fn any_tolerated_losses_reconstruct_and_one_more_is_too_few() {
    let mut rng = DetRng::from_seed(5);
    let mut layouts = vec![ec(4, 2), ec(6, 3), ec(8, 4), ec(5, 2)];
    layouts.extend((2..=5).map(|copies| StripeLayout::Replicated { copies }));
    for layout in layouts {
        let len = 1 + rng.below(10_000) as usize;
        let data = bytes(&mut rng, len);
        let shape = StripeShape::new(layout, len).unwrap();
        let chunks = encode_stripe(&shape, &data).unwrap();
        assert_eq!(chunks.len(), layout.total_chunks());
        assert!(chunks.iter().all(|c| c.len() == shape.chunk_len_bytes as usize));
        assert_eq!(stripe_bytes(layout, &chunks, 0, len as u32), data, "data chunks are the data, padded");
        let (total, k) = (layout.total_chunks(), layout.tolerated_losses());
        for losses in 0..=k {
            for lost in subsets(total, losses) {
                let mut partial: Vec<Option<Vec<u8>>> = chunks.iter().cloned().map(Some).collect();
                for &i in &lost {
                    partial[i] = None;
                }
                let decoded = decode_stripe(layout, shape.chunk_len_bytes, partial).unwrap();
                assert_eq!(decoded, chunks, "{layout:?} lost {lost:?}");
            }
        }
        for lost in subsets(total, k + 1).into_iter().take(50) {
            let mut partial: Vec<Option<Vec<u8>>> = chunks.iter().cloned().map(Some).collect();
            for &i in &lost {
                partial[i] = None;
            }
            let needed = layout.data_chunks();
            assert_eq!(
                decode_stripe(layout, shape.chunk_len_bytes, partial),
                Err(DecodeError::TooFewChunks { available: needed - 1, needed })
            );
        }
    }
}

#[test]
fn decode_refuses_bad_inputs() {
    let layout = ec(4, 2);
    let shape = StripeShape::new(layout, 100).unwrap();
    let chunks = encode_stripe(&shape, &[7; 100]).unwrap();
    let mut partial: Vec<Option<Vec<u8>>> = chunks.iter().cloned().map(Some).collect();
    partial[3] = Some(vec![0; 3]);
    assert!(matches!(
        decode_stripe(layout, shape.chunk_len_bytes, partial),
        Err(DecodeError::ChunkLength { index: 3, len: 3, .. })
    ));
    let short: Vec<Option<Vec<u8>>> = chunks.iter().take(5).cloned().map(Some).collect();
    assert_eq!(
        decode_stripe(layout, shape.chunk_len_bytes, short),
        Err(DecodeError::ChunkCount { expected: 6, got: 5 })
    );
}

#[test]
fn ranges_map_onto_data_chunks() {
    let mut rng = DetRng::from_seed(9);
    for layout in [ec(4, 2), ec(7, 3), ec(16, 4), StripeLayout::Replicated { copies: 3 }] {
        let len = 1 + rng.below(5_000) as usize;
        let data = bytes(&mut rng, len);
        let shape = StripeShape::new(layout, len).unwrap();
        let chunks = encode_stripe(&shape, &data).unwrap();
        for _ in 0..300 {
            let offset = rng.below(len as u64 + 1) as usize;
            let take = rng.below((len - offset) as u64 + 1) as usize;
            let ranges = data_chunk_ranges(layout, shape.chunk_len_bytes, offset as u32, take as u32);
            assert_eq!(ranges.iter().map(|r| r.len_bytes as usize).sum::<usize>(), take);
            assert!(ranges.iter().all(|r| r.len_bytes > 0 && usize::from(r.index) < layout.data_chunks()));
            assert!(ranges.windows(2).all(|w| w[1].index == w[0].index + 1 && w[1].offset_bytes == 0));
            let got: Vec<u8> = ranges
                .iter()
                .flat_map(|r| {
                    let start = r.offset_bytes as usize;
                    chunks[usize::from(r.index)][start..start + r.len_bytes as usize].to_vec()
                })
                .collect();
            assert_eq!(got, data[offset..offset + take]);
        }
    }
    let r = data_chunk_ranges(ec(4, 2), 10, 5, 20);
    let expect = [(0, 5, 5), (1, 0, 10), (2, 0, 5)];
    assert_eq!(r.iter().map(|r| (r.index, r.offset_bytes, r.len_bytes)).collect::<Vec<_>>(), expect);
}

#[test]
fn stripe_keys_spread() {
    let keys: BTreeSet<u64> = (0..1000).map(|s| stripe_key(StripeId::new(7, s))).collect();
    assert_eq!(keys.len(), 1000);
    assert_ne!(stripe_key(StripeId::new(1, 0)), stripe_key(StripeId::new(2, 0)));
}

// ---- I/O against in-test nodes ----

/// The nodes behind the network: their chunks and faults.
#[derive(Debug, Default)]
struct Nodes {
    chunks: BTreeMap<(NodeId, ChunkKey), Vec<u8>>,
    /// Nodes that never answer.
    down: BTreeSet<NodeId>,
    /// Requests to drop before answering, per node.
    drop_next: BTreeMap<NodeId, u32>,
    /// Chunks that read as corrupt.
    corrupt: BTreeSet<(NodeId, ChunkKey)>,
    /// Answer every request twice, and send a stale reply first.
    noisy: bool,
    inbox: std::collections::VecDeque<(NodeId, Vec<u8>)>,
    requests: u64,
}

impl Nodes {
    fn answer(&mut self, node: NodeId, request: DataMessage) -> DataMessage {
        match request {
            DataMessage::Put { req, meta, payload } => {
                self.chunks.insert((node, meta.key), payload);
                DataMessage::PutDone { req, result: Ok(()) }
            }
            DataMessage::Get { req, key, offset_bytes, len_bytes } => {
                let result = match self.chunks.get(&(node, key)) {
                    _ if self.corrupt.contains(&(node, key)) => Err(DataError::Corrupt(key)),
                    None => Err(DataError::NotFound(key)),
                    Some(c) => Ok(c[offset_bytes as usize..(offset_bytes + len_bytes) as usize].to_vec()),
                };
                DataMessage::GetDone { req, result }
            }
            DataMessage::Free { req, keys } => {
                for key in keys {
                    self.chunks.remove(&(node, key));
                }
                DataMessage::FreeDone { req, result: Ok(()) }
            }
            DataMessage::Status { req } => DataMessage::StatusDone { req, status: Default::default() },
            other => panic!("not a request {other:?}"),
        }
    }
}

#[derive(Clone, Debug)]
struct TestNet {
    nodes: Arc<Mutex<Nodes>>,
}

impl Net for TestNet {
    fn local_id(&self) -> NodeId {
        crate::data_endpoint(NodeId(1000))
    }

    async fn send(&self, to: NodeId, payload: Vec<u8>) -> Result<(), NetError> {
        let mut nodes = self.nodes.lock().expect("nodes");
        nodes.requests += 1;
        let node = node_of_endpoint(to);
        if nodes.down.contains(&node) {
            return Ok(());
        }
        if let Some(n) = nodes.drop_next.get_mut(&node).filter(|n| **n > 0) {
            *n -= 1;
            return Ok(());
        }
        let request = DataMessage::decode(&payload).expect("a request");
        let reply = nodes.answer(node, request).encode();
        if nodes.noisy {
            let stale = DataMessage::PutDone { req: 12345, result: Ok(()) }.encode();
            nodes.inbox.push_back((to, stale));
            nodes.inbox.push_back((crate::data_endpoint(NodeId(999)), reply.clone()));
            nodes.inbox.push_back((to, reply.clone()));
        }
        nodes.inbox.push_back((to, reply));
        Ok(())
    }

    fn recv(&self) -> impl Future<Output = Result<(NodeId, Vec<u8>), NetError>> + Send {
        let nodes = Arc::clone(&self.nodes);
        poll_fn(move |_| match nodes.lock().expect("nodes").inbox.pop_front() {
            Some(message) => Poll::Ready(Ok(message)),
            None => Poll::Pending,
        })
    }
}

fn harness() -> (StripeIo<TestClock, TestNet>, Arc<Mutex<Nodes>>) {
    let nodes = Arc::new(Mutex::new(Nodes::default()));
    let clock = TestClock { now_ns: Arc::new(Mutex::new(0)) };
    let config = IoConfig { request_timeout: Duration::from_millis(100), resend_max: 2 };
    (StripeIo::new(clock, TestNet { nodes: Arc::clone(&nodes) }, config, 77), nodes)
}

/// Writes a stripe of `data` on nodes 0.. through `io`; returns its record.
fn put_stripe(io: &mut StripeIo<TestClock, TestNet>, layout: StripeLayout, data: &[u8]) -> StripeRef {
    let shape = StripeShape::new(layout, data.len()).unwrap();
    let id = StripeId::new(1, 1);
    let stripe = shape.stripe_ref(id, (0..layout.total_chunks() as u64).map(NodeId).collect());
    let puts = encode_stripe(&shape, data)
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(i, payload)| ChunkPut { node: stripe.nodes[i], key: ChunkKey { stripe: id, index: i as u8 }, payload })
        .collect();
    let results = run(io.put_chunks(InodeId::ROOT, layout, puts));
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    stripe
}

#[test]
fn reads_are_exact_without_faults_and_ignore_noise() {
    let (mut io, nodes) = harness();
    nodes.lock().unwrap().noisy = true;
    let mut rng = DetRng::from_seed(3);
    let data = bytes(&mut rng, 10_000);
    let stripe = put_stripe(&mut io, ec(4, 2), &data);
    for (offset, len) in [(0, 10_000), (1, 1), (2_499, 2), (2_500, 5_000), (9_999, 1), (0, 0)] {
        let read = run(io.read_stripe_range(&stripe, offset, len)).unwrap();
        assert_eq!(read.bytes, data[offset as usize..(offset + len) as usize]);
        assert!(read.failures.is_empty());
    }
    assert!(matches!(run(io.read_stripe_range(&stripe, 9_999, 2)), Err(StripeIoError::BadStripe { .. })));
}

#[test]
fn lost_replies_are_resent_and_silent_nodes_time_out() {
    let (mut io, nodes) = harness();
    let statuses = {
        nodes.lock().unwrap().drop_next.insert(NodeId(1), 2);
        nodes.lock().unwrap().down.insert(NodeId(2));
        run(io.status(&[NodeId(0), NodeId(1), NodeId(2)]))
    };
    assert!(statuses[0].is_ok());
    assert!(statuses[1].is_ok(), "answered on the third send");
    assert_eq!(statuses[2], Err(ChunkError::Timeout { sends: 3 }));
    assert_eq!(nodes.lock().unwrap().requests, 1 + 3 + 3);
}

#[test]
fn degraded_reads_decode_and_report_failures() {
    let mut rng = DetRng::from_seed(4);
    let data = bytes(&mut rng, 40_000);
    let layout = ec(4, 2);
    let (mut io, nodes) = harness();
    let stripe = put_stripe(&mut io, layout, &data);
    let key = |i: u8| ChunkKey { stripe: stripe.id, index: i };
    {
        let mut n = nodes.lock().unwrap();
        n.chunks.remove(&(NodeId(1), key(1)));
        n.corrupt.insert((NodeId(2), key(2)));
    }
    let read = run(io.read_stripe_range(&stripe, 5_000, 30_000)).unwrap();
    assert_eq!(read.bytes, data[5_000..35_000]);
    assert_eq!(read.lost_indexes(), vec![1, 2]);
    let (chunks, _) = run(io.read_stripe_chunks(&stripe, &BTreeSet::from([1, 2]))).unwrap();
    assert_eq!(chunks, encode_stripe(&StripeShape::new(layout, data.len()).unwrap(), &data).unwrap());

    nodes.lock().unwrap().down.insert(NodeId(4));
    let err = run(io.read_stripe_range(&stripe, 10_000, 10)).unwrap_err();
    assert!(matches!(err, StripeIoError::Unrecoverable { available: 3, needed: 4, .. }), "{err:?}");
}

#[test]
fn replicated_reads_fall_back_to_other_copies() {
    let mut rng = DetRng::from_seed(6);
    let data = bytes(&mut rng, 3_000);
    let layout = StripeLayout::Replicated { copies: 3 };
    let (mut io, nodes) = harness();
    let stripe = put_stripe(&mut io, layout, &data);
    nodes.lock().unwrap().down.insert(NodeId(0));
    nodes.lock().unwrap().chunks.remove(&(NodeId(1), ChunkKey { stripe: stripe.id, index: 1 }));
    let read = run(io.read_stripe_range(&stripe, 100, 200)).unwrap();
    assert_eq!(read.bytes, data[100..300]);
    assert_eq!(read.failures.len(), 2);
    assert_eq!(read.lost_indexes(), vec![1], "a timeout is not a lost chunk");
    nodes.lock().unwrap().down.insert(NodeId(2));
    let err = run(io.read_stripe_range(&stripe, 0, 1)).unwrap_err();
    assert!(matches!(err, StripeIoError::Unrecoverable { available: 0, needed: 1, .. }));
}

#[test]
fn frees_split_into_bounded_messages() {
    let (mut io, nodes) = harness();
    let keys: Vec<ChunkKey> = (0..crate::wire::FREE_KEYS_MAX as u64 + 1)
        .map(|s| ChunkKey { stripe: StripeId::new(2, s), index: 0 })
        .collect();
    nodes.lock().unwrap().down.insert(NodeId(8));
    let results = run(io.free_chunks(vec![(NodeId(7), keys.clone()), (NodeId(8), keys)]));
    assert!(results[0].is_ok());
    assert!(matches!(results[1], Err(ChunkError::Timeout { .. })));
}

/// With the data path's fault hooks firing at every chance (when they are compiled in, feature
/// `sim-hooks` of tessera-env): a put whose answer is ignored is re-sent and succeeds; a read that
/// pretends a chunk is corrupt returns the exact bytes, degraded, or the verified bytes when the other
/// chunks cannot make up for the pretended loss.
#[test]
fn fault_hooks_never_change_what_is_stored_or_read() {
    let always =
        HookConfig { seed: 1, buggify: true, site_enabled_per_million: 1_000_000, fire_per_million: 1_000_000 };
    let installed = hooks::install(always);
    let mut rng = DetRng::from_seed(8);
    let data = bytes(&mut rng, 40_000);
    let (mut io, nodes) = harness();
    let stripe = put_stripe(&mut io, ec(4, 2), &data);
    let expected_puts = if hooks::ENABLED { 6 * 3 } else { 6 };
    assert_eq!(nodes.lock().unwrap().requests, expected_puts, "each put answered on its last send");
    let read = run(io.read_stripe_range(&stripe, 5_000, 30_000)).unwrap();
    assert_eq!(read.bytes, data[5_000..35_000]);
    if hooks::ENABLED {
        assert_eq!(read.lost_indexes(), vec![0], "the pretended loss is reported for repair");
    }
    // Two chunks gone and one pretended: too few to decode, so the verified bytes stand.
    nodes.lock().unwrap().down.extend([NodeId(4), NodeId(5)]);
    let read = run(io.read_stripe_range(&stripe, 100, 200)).unwrap();
    assert_eq!(read.bytes, data[100..300]);
    assert!(read.failures.is_empty());
    let report = installed.finish();
    assert_eq!(report.mark_count("data.degraded_read"), u64::from(hooks::ENABLED));
}
