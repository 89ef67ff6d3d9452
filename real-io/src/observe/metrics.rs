//! [`Metrics`]: the registry of every series one process exports, and the handles that record into it.
//!
//! The registry is built once in [`Metrics::new`] and never changes shape afterwards (families gain label
//! sets, but no family is added), so rendering needs no lock of its own. Recording is atomics, plus a
//! read-locked map lookup for labelled families; [`DiskMetrics`] resolves its series once, when it is
//! made, so a disk call records without any lookup.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use tessera_env::DiskError;

/// Upper bounds (seconds) of the latency buckets of `tessera_op_duration_seconds`: 50 us to 30 s in 1-2.5-5
/// steps. Operations cross the network at least once, so nothing useful happens below 50 us.
pub const OP_LATENCY_BUCKETS_S: [f64; 18] = [
    50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1.0, 2.5, 5.0,
    10.0, 30.0,
];

/// Upper bounds (seconds) of the latency buckets of `tessera_disk_op_duration_seconds`: 10 us (an NVMe read)
/// to 30 s (a drive that is failing slowly).
pub const DISK_LATENCY_BUCKETS_S: [f64; 20] = [
    10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1.0,
    2.5, 5.0, 10.0, 30.0,
];

const fn strictly_ascending(buckets: &[f64]) -> bool {
    let mut i = 1;
    while i < buckets.len() {
        if buckets[i - 1] >= buckets[i] {
            return false;
        }
        i += 1;
    }
    true
}
const _: () = assert!(strictly_ascending(&OP_LATENCY_BUCKETS_S));
const _: () = assert!(strictly_ascending(&DISK_LATENCY_BUCKETS_S));

type U64Counter = Counter<u64, AtomicU64>;
type U64Gauge = Gauge<u64, AtomicU64>;
type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The transport's counters, copied into the `tessera_net_*` series (`*_total`, `bytes_*` and `frames_*`
/// are cumulative; `connections_open` and `send_queue_*` are levels).
pub type NetSample = crate::net::TransportStats;

/// What the node reports about itself every second. `rebuild_stripes_done`, `rebuild_bytes_done` and
/// `rebuild_passes` are cumulative since the node started; the rest are current levels.
#[derive(Clone, Debug, Default)]
pub struct NodeSample {
    pub shards_hosted: u64,
    pub shards_led: u64,
    pub chunks_stored: u64,
    pub data_bytes_used: u64,
    pub data_bytes_capacity: u64,
    pub drives_failed: u64,
    pub repair_queue_depth: u64,
    pub rebuild_stripes_done: u64,
    pub rebuild_bytes_done: u64,
    pub rebuild_idle: bool,
    pub rebuild_passes: u64,
    pub peers_up: u64,
    pub peers_down: u64,
}

/// The three calls of a [`tessera_env::Disk`], as the `op` label of the disk series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DiskOp {
    Read,
    Write,
    Flush,
}

impl DiskOp {
    const ALL: [DiskOp; 3] = [DiskOp::Read, DiskOp::Write, DiskOp::Flush];

    /// The label value: `read`, `write` or `flush`.
    pub fn as_str(self) -> &'static str {
        match self {
            DiskOp::Read => "read",
            DiskOp::Write => "write",
            DiskOp::Flush => "flush",
        }
    }

    fn index(self) -> usize {
        match self {
            DiskOp::Read => 0,
            DiskOp::Write => 1,
            DiskOp::Flush => 2,
        }
    }
}

/// Every [`DiskError`] kind, in the order of [`error_kind_index`].
const DISK_ERROR_KINDS: [&str; 6] = ["unaligned", "out_of_range", "read_failed", "write_failed", "fenced", "offline"];

/// Position of `error`'s kind in [`DISK_ERROR_KINDS`]. Exhaustive on purpose: a new [`DiskError`] variant
/// must get a label here.
fn error_kind_index(error: &DiskError) -> usize {
    match error {
        DiskError::Unaligned { .. } => 0,
        DiskError::OutOfRange { .. } => 1,
        DiskError::ReadFailed { .. } => 2,
        DiskError::WriteFailed { .. } => 3,
        DiskError::Fenced => 4,
        DiskError::Offline => 5,
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DriveLabels {
    drive: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DriveOpLabels {
    drive: String,
    op: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DriveErrorLabels {
    drive: String,
    op: &'static str,
    kind: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OpResultLabels {
    service: &'static str,
    op: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OpLabels {
    service: &'static str,
    op: &'static str,
}

/// The disk families; [`Metrics::disk`] resolves one drive's series from them.
#[derive(Debug)]
struct DiskFamilies {
    ops: Family<DriveOpLabels, U64Counter>,
    io_bytes: Family<DriveOpLabels, U64Counter>,
    errors: Family<DriveErrorLabels, U64Counter>,
    latency: HistogramFamily<DriveOpLabels>,
    capacity: Family<DriveLabels, U64Gauge>,
}

/// Series copied from a [`NetSample`].
#[derive(Debug, Default)]
struct NetSeries {
    sent_bytes: U64Counter,
    received_bytes: U64Counter,
    frames_sent: U64Counter,
    frames_received: U64Counter,
    frames_rejected: U64Counter,
    connections_open: U64Gauge,
    connects: U64Counter,
    connect_failures: U64Counter,
    messages_dropped: U64Counter,
    send_queue_messages: U64Gauge,
    send_queue_bytes: U64Gauge,
}

/// Series copied from a [`NodeSample`].
#[derive(Debug, Default)]
struct NodeSeries {
    shards_hosted: U64Gauge,
    shards_led: U64Gauge,
    chunks_stored: U64Gauge,
    data_used_bytes: U64Gauge,
    data_capacity_bytes: U64Gauge,
    drives_failed: U64Gauge,
    repair_queue_depth: U64Gauge,
    rebuild_stripes: U64Counter,
    rebuild_bytes: U64Counter,
    rebuild_idle: U64Gauge,
    rebuild_passes: U64Counter,
    peers_up: U64Gauge,
    peers_down: U64Gauge,
}

struct Inner {
    node: String,
    registry: Registry,
    disk: DiskFamilies,
    ops: Family<OpResultLabels, U64Counter>,
    op_latency: HistogramFamily<OpLabels>,
    net: NetSeries,
    node_series: NodeSeries,
}

/// Everything one process exports (see the table in the [module docs](super)). Clones share the same
/// series; recording from many tasks at once is safe and cheap.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").field("node", &self.inner.node).finish_non_exhaustive()
    }
}

fn disk_histogram() -> Histogram {
    Histogram::new(DISK_LATENCY_BUCKETS_S)
}

fn op_histogram() -> Histogram {
    Histogram::new(OP_LATENCY_BUCKETS_S)
}

/// Set a counter to a value copied from a sample (the source counts; we only mirror it).
fn copy_counter(counter: &U64Counter, value: u64) {
    counter.inner().store(value, Ordering::Relaxed);
}

/// Escape a label value from configuration for the text exposition, which writes label values verbatim
/// between double quotes (prometheus-client 0.23 does not escape them).
pub(super) fn escape_label_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// A label value fixed by the code (`service`, `op`) must need no escaping: a violation is a bug here.
fn assert_static_label(what: &str, value: &'static str) {
    assert!(
        !value.is_empty() && !value.contains(['\\', '"', '\n']),
        "{what} label {value:?} must be non-empty and free of backslashes, quotes and newlines"
    );
}

impl Metrics {
    /// A fresh set of series, every one labelled `node=<node>` (a constant label; see the module docs).
    pub fn new(node: &str) -> Metrics {
        let node_label = escape_label_value(node);
        let mut registry =
            Registry::with_prefix_and_labels("tessera", [(Cow::Borrowed("node"), Cow::Owned(node_label))].into_iter());

        let disk = DiskFamilies {
            ops: Family::default(),
            io_bytes: Family::default(),
            errors: Family::default(),
            latency: Family::new_with_constructor(disk_histogram),
            capacity: Family::default(),
        };
        registry.register("disk_ops", "Disk calls completed, successful or not", disk.ops.clone());
        registry.register_with_unit(
            "disk_io",
            "Bytes moved by successful disk reads and writes",
            Unit::Bytes,
            disk.io_bytes.clone(),
        );
        registry.register("disk_errors", "Disk calls that failed, by error kind", disk.errors.clone());
        registry.register_with_unit("disk_op_duration", "Latency of disk calls", Unit::Seconds, disk.latency.clone());
        registry.register_with_unit("disk_capacity", "Usable size of the drive", Unit::Bytes, disk.capacity.clone());

        let ops = Family::<OpResultLabels, U64Counter>::default();
        let op_latency: HistogramFamily<OpLabels> = Family::new_with_constructor(op_histogram);
        registry.register("ops", "Operations served or issued, by result", ops.clone());
        registry.register_with_unit("op_duration", "Latency of operations", Unit::Seconds, op_latency.clone());

        let net = NetSeries::default();
        register_net(&mut registry, &net);
        let node_series = NodeSeries::default();
        register_node(&mut registry, &node_series);

        Metrics { inner: Arc::new(Inner { node: node.to_string(), registry, disk, ops, op_latency, net, node_series }) }
    }

    /// The `node` this process reports as (unescaped).
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// The series of one drive (`drive` is its name, e.g. `meta` or `data0`). Every series of the drive
    /// exists from this call on (at zero), so dashboards and alerts see it before the first IO. Calling
    /// this twice with one name gives handles to the same series.
    pub fn disk(&self, drive: &str) -> DiskMetrics {
        let families = &self.inner.disk;
        let drive_label = escape_label_value(drive);
        let per_op = DiskOp::ALL.map(|op| {
            let labels = DriveOpLabels { drive: drive_label.clone(), op: op.as_str() };
            let errors = DISK_ERROR_KINDS.map(|kind| {
                let labels = DriveErrorLabels { drive: drive_label.clone(), op: op.as_str(), kind };
                families.errors.get_or_create(&labels).clone()
            });
            // Flush moves no bytes of its own: it gets no bytes series.
            let io_bytes = (op != DiskOp::Flush).then(|| families.io_bytes.get_or_create(&labels).clone());
            OpSeries {
                ops: families.ops.get_or_create(&labels).clone(),
                io_bytes,
                errors,
                latency: families.latency.get_or_create(&labels).clone(),
            }
        });
        let capacity_bytes = families.capacity.get_or_create(&DriveLabels { drive: drive_label }).clone();
        DiskMetrics { drive: Arc::from(drive), per_op: Arc::new(per_op), capacity_bytes }
    }

    /// Record one operation served or issued by `service` (e.g. `client`, `s3`, `nfs`, `meta`): it counts
    /// into `tessera_ops_total{service,op,result}` (`result` is `ok` or `error`) and its latency into
    /// `tessera_op_duration_seconds{service,op}`. `service` and `op` must be label-safe names (no quotes,
    /// backslashes or newlines; checked).
    pub fn record_op(&self, service: &'static str, op: &'static str, ok: bool, latency_ns: u64) {
        assert_static_label("service", service);
        assert_static_label("op", op);
        let result = if ok { "ok" } else { "error" };
        self.inner.ops.get_or_create(&OpResultLabels { service, op, result }).inc();
        self.inner.op_latency.get_or_create(&OpLabels { service, op }).observe(ns_to_s(latency_ns));
    }

    /// Copy a transport sample into the `tessera_net_*` series.
    pub fn update_net(&self, s: &NetSample) {
        let n = &self.inner.net;
        copy_counter(&n.sent_bytes, s.bytes_sent);
        copy_counter(&n.received_bytes, s.bytes_received);
        copy_counter(&n.frames_sent, s.frames_sent);
        copy_counter(&n.frames_received, s.frames_received);
        copy_counter(&n.frames_rejected, s.frames_rejected);
        n.connections_open.set(s.connections_open);
        copy_counter(&n.connects, s.connects_total);
        copy_counter(&n.connect_failures, s.connect_failures_total);
        copy_counter(&n.messages_dropped, s.messages_dropped_total);
        n.send_queue_messages.set(s.send_queue_messages);
        n.send_queue_bytes.set(s.send_queue_bytes);
    }

    /// Copy a node sample into the node series.
    pub fn update_node(&self, s: &NodeSample) {
        let n = &self.inner.node_series;
        n.shards_hosted.set(s.shards_hosted);
        n.shards_led.set(s.shards_led);
        n.chunks_stored.set(s.chunks_stored);
        n.data_used_bytes.set(s.data_bytes_used);
        n.data_capacity_bytes.set(s.data_bytes_capacity);
        n.drives_failed.set(s.drives_failed);
        n.repair_queue_depth.set(s.repair_queue_depth);
        copy_counter(&n.rebuild_stripes, s.rebuild_stripes_done);
        copy_counter(&n.rebuild_bytes, s.rebuild_bytes_done);
        n.rebuild_idle.set(u64::from(s.rebuild_idle));
        copy_counter(&n.rebuild_passes, s.rebuild_passes);
        n.peers_up.set(s.peers_up);
        n.peers_down.set(s.peers_down);
    }

    /// The OpenMetrics text exposition of every series (what `GET /metrics` answers), ending in `# EOF`.
    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.inner.registry)
            .expect("encoding metrics into a String cannot fail");
        text
    }
}

fn register_net(registry: &mut Registry, n: &NetSeries) {
    registry.register_with_unit("net_sent", "Bytes the transport wrote to peers", Unit::Bytes, n.sent_bytes.clone());
    registry.register_with_unit(
        "net_received",
        "Bytes the transport read from peers",
        Unit::Bytes,
        n.received_bytes.clone(),
    );
    registry.register("net_frames_sent", "Frames written to peers", n.frames_sent.clone());
    registry.register("net_frames_received", "Frames read from peers and accepted", n.frames_received.clone());
    registry.register("net_frames_rejected", "Frames read from peers and rejected", n.frames_rejected.clone());
    registry.register("net_connections_open", "TCP connections to peers open now", n.connections_open.clone());
    registry.register("net_connects", "Outgoing connections established", n.connects.clone());
    registry.register("net_connect_failures", "Outgoing connection attempts that failed", n.connect_failures.clone());
    registry.register("net_messages_dropped", "Messages the transport dropped", n.messages_dropped.clone());
    registry.register("net_send_queue_messages", "Messages waiting in send queues", n.send_queue_messages.clone());
    registry.register_with_unit(
        "net_send_queue",
        "Bytes waiting in send queues",
        Unit::Bytes,
        n.send_queue_bytes.clone(),
    );
}

fn register_node(registry: &mut Registry, n: &NodeSeries) {
    registry.register("shards_hosted", "Metadata shard replicas hosted by this node", n.shards_hosted.clone());
    registry.register("shards_led", "Metadata shards this node leads", n.shards_led.clone());
    registry.register("chunks_stored", "Data chunks stored on this node", n.chunks_stored.clone());
    registry.register_with_unit("data_used", "Data drive bytes in use", Unit::Bytes, n.data_used_bytes.clone());
    registry.register_with_unit(
        "data_capacity",
        "Data drive bytes in total",
        Unit::Bytes,
        n.data_capacity_bytes.clone(),
    );
    registry.register("drives_failed", "Drives fenced after a failure, awaiting repair", n.drives_failed.clone());
    registry.register("repair_queue_depth", "Repair work queued", n.repair_queue_depth.clone());
    registry.register("rebuild_stripes", "Stripes rebuilt since the node started", n.rebuild_stripes.clone());
    registry.register_with_unit(
        "rebuild",
        "Chunk bytes written by rebuild since the node started",
        Unit::Bytes,
        n.rebuild_bytes.clone(),
    );
    registry.register("rebuild_idle", "1 if the last rebuild pass found nothing to do", n.rebuild_idle.clone());
    registry.register("rebuild_passes", "Rebuild passes completed since the node started", n.rebuild_passes.clone());
    registry.register("peers_up", "Peers this node considers up", n.peers_up.clone());
    registry.register("peers_down", "Peers this node considers down", n.peers_down.clone());
}

fn ns_to_s(latency_ns: u64) -> f64 {
    latency_ns as f64 / 1e9
}

/// The resolved series of one disk call kind of one drive.
#[derive(Debug)]
struct OpSeries {
    ops: U64Counter,
    /// `None` for flush.
    io_bytes: Option<U64Counter>,
    /// Indexed like [`DISK_ERROR_KINDS`].
    errors: [U64Counter; 6],
    latency: Histogram,
}

/// The series of one drive (made by [`Metrics::disk`]). Clones share the series. [`crate::observe::MeteredDisk`]
/// records into it; another `Disk` implementation can call [`DiskMetrics::record_ok`] /
/// [`DiskMetrics::record_err`] itself.
#[derive(Clone, Debug)]
pub struct DiskMetrics {
    drive: Arc<str>,
    /// Indexed by [`DiskOp::index`].
    per_op: Arc<[OpSeries; 3]>,
    capacity_bytes: U64Gauge,
}

impl DiskMetrics {
    /// The drive's name, as given to [`Metrics::disk`].
    pub fn drive(&self) -> &str {
        &self.drive
    }

    /// Record a successful call that moved `bytes` (0 for a flush).
    pub fn record_ok(&self, op: DiskOp, bytes: u64, latency_ns: u64) {
        let series = &self.per_op[op.index()];
        series.ops.inc();
        match &series.io_bytes {
            Some(io_bytes) => {
                io_bytes.inc_by(bytes);
            }
            None => assert_eq!(bytes, 0, "a {} moves no bytes", op.as_str()),
        }
        series.latency.observe(ns_to_s(latency_ns));
    }

    /// Record a call that failed with `error`.
    pub fn record_err(&self, op: DiskOp, error: &DiskError, latency_ns: u64) {
        let series = &self.per_op[op.index()];
        series.ops.inc();
        series.errors[error_kind_index(error)].inc();
        series.latency.observe(ns_to_s(latency_ns));
    }

    /// Set `tessera_disk_capacity_bytes` of this drive.
    pub fn set_capacity_bytes(&self, capacity_bytes: u64) {
        self.capacity_bytes.set(capacity_bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_from_configuration_are_escaped() {
        assert_eq!(escape_label_value("data0"), "data0");
        assert_eq!(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let metrics = Metrics::new("n\"1");
        metrics.disk("dr\"ive\n");
        let text = metrics.render();
        assert!(text.contains(r#"tessera_disk_capacity_bytes{node="n\"1",drive="dr\"ive\n"} 0"#), "{text}");
        // Every sample line still has balanced, escaped quotes: no raw newline ended a line early.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("tessera_"), "broken line {line:?} in\n{text}");
        }
    }

    #[test]
    fn every_disk_error_kind_has_its_own_series() {
        let errors = [
            DiskError::Unaligned { offset_bytes: 1, len_bytes: 1 },
            DiskError::OutOfRange { offset_bytes: 0, len_bytes: 1, capacity_bytes: 0 },
            DiskError::ReadFailed { offset_bytes: 0 },
            DiskError::WriteFailed { offset_bytes: 0 },
            DiskError::Fenced,
            DiskError::Offline,
        ];
        let kinds: Vec<&str> = errors.iter().map(|e| DISK_ERROR_KINDS[error_kind_index(e)]).collect();
        assert_eq!(kinds, DISK_ERROR_KINDS);
    }

    #[test]
    #[should_panic(expected = "must be non-empty")]
    fn a_static_label_with_a_quote_is_a_bug() {
        Metrics::new("n1").record_op("s3", "get\"", true, 1);
    }
}
