//! Observability of one Tessera process: Prometheus metrics, an HTTP endpoint that serves them, disks that
//! meter themselves, and structured logs.
//!
//! - [`Metrics`]: every series one process exports, recorded from many tasks (cheap clones, atomics inside).
//! - [`MeteredDisk`]: a [`tessera_env::Disk`] wrapper that records each call into a [`DiskMetrics`].
//! - [`serve_metrics`]: `GET /metrics` and `GET /healthz` on a TCP address, on the current tokio runtime.
//! - [`init_logging`]: a process-wide `tracing` subscriber with an env-filter directive, to stderr or a file.
//!
//! # Exposition format
//!
//! `GET /metrics` answers the **OpenMetrics 1.0 text format** that `prometheus-client` emits, with
//! content type [`OPENMETRICS_CONTENT_TYPE`] (`application/openmetrics-text; version=1.0.0;
//! charset=utf-8`); Prometheus scrapes it natively. The body ends with `# EOF`. Counter families carry
//! `# TYPE x counter` and samples named `x_total`; families with a unit carry a `# UNIT` line.
//!
//! # Labels
//!
//! Every series carries a constant label `node` (the `node` given to [`Metrics::new`]: `n3`, or `client`
//! for the CLI), so series from many processes can be merged without relabelling. Label values that come
//! from configuration (`node`, `drive`) are escaped (`\`, `"` and newlines), so any name is safe. Label
//! values that come from code (`service`, `op`) are `&'static str`: the set of series is fixed by the code,
//! which keeps memory bounded.
//!
//! # Metrics
//!
//! | name | type | labels (besides `node`) | meaning |
//! |---|---|---|---|
//! | `tessera_disk_ops_total` | counter | `drive`, `op` | disk calls completed (success or error); `op` is `read`, `write` or `flush` |
//! | `tessera_disk_io_bytes_total` | counter | `drive`, `op` | bytes moved by successful reads and writes (`op` is `read` or `write`) |
//! | `tessera_disk_errors_total` | counter | `drive`, `op`, `kind` | disk calls that failed, by kind: `unaligned`, `out_of_range`, `read_failed`, `write_failed`, `fenced`, `offline` |
//! | `tessera_disk_op_duration_seconds` | histogram | `drive`, `op` | latency of every completed disk call, 10 us to 30 s |
//! | `tessera_disk_capacity_bytes` | gauge | `drive` | usable size of the drive |
//! | `tessera_ops_total` | counter | `service`, `op`, `result` | operations served or issued (client CLI, gateways, node request handling); `result` is `ok` or `error` |
//! | `tessera_op_duration_seconds` | histogram | `service`, `op` | latency of those operations, 50 us to 30 s |
//! | `tessera_net_sent_bytes_total` | counter | | bytes the transport wrote to peers |
//! | `tessera_net_received_bytes_total` | counter | | bytes the transport read from peers |
//! | `tessera_net_frames_sent_total` | counter | | frames written to peers |
//! | `tessera_net_frames_received_total` | counter | | frames read from peers and accepted |
//! | `tessera_net_frames_rejected_total` | counter | | frames read and rejected (bad length, checksum or header) |
//! | `tessera_net_connections_open` | gauge | | TCP connections to peers open now |
//! | `tessera_net_connects_total` | counter | | outgoing connections established |
//! | `tessera_net_connect_failures_total` | counter | | outgoing connection attempts that failed |
//! | `tessera_net_messages_dropped_total` | counter | | messages dropped (send queue full, peer unreachable) |
//! | `tessera_net_send_queue_messages` | gauge | | messages waiting in the send queues now |
//! | `tessera_net_send_queue_bytes` | gauge | | bytes waiting in the send queues now |
//! | `tessera_shards_hosted` | gauge | | metadata shard replicas this node hosts |
//! | `tessera_shards_led` | gauge | | of those, the shards this node leads |
//! | `tessera_chunks_stored` | gauge | | data chunks stored on this node |
//! | `tessera_data_used_bytes` | gauge | | data drive bytes in use |
//! | `tessera_data_capacity_bytes` | gauge | | data drive bytes in total |
//! | `tessera_drives_failed` | gauge | | drives fenced after a failure, awaiting repair |
//! | `tessera_repair_queue_depth` | gauge | | repair work queued |
//! | `tessera_rebuild_stripes_total` | counter | | stripes rebuilt since the node started |
//! | `tessera_rebuild_bytes_total` | counter | | chunk bytes written by rebuild since the node started |
//! | `tessera_rebuild_idle` | gauge | | 1 if the last full rebuild pass found nothing to do, else 0 |
//! | `tessera_rebuild_passes_total` | counter | | rebuild passes completed since the node started |
//! | `tessera_peers_up` | gauge | | peers this node currently considers up |
//! | `tessera_peers_down` | gauge | | peers this node currently considers down |
//!
//! The `net` and node series are copies of samples the node takes every second ([`NetSample`],
//! [`NodeSample`] through [`Metrics::update_net`] / [`Metrics::update_node`]); they read 0 until the first
//! sample. Counters copied from a sample are set to the sampled value, not added to.

mod http;
mod logging;
mod metered_disk;
mod metrics;

use std::io;
use std::path::PathBuf;

pub use http::{
    MAX_METRICS_CONNECTIONS, METRICS_CONNECTION_LIFETIME_MS, MetricsServer, OPENMETRICS_CONTENT_TYPE, serve_metrics,
};
pub use logging::init_logging;
pub use metered_disk::MeteredDisk;
pub use metrics::{DISK_LATENCY_BUCKETS_S, DiskMetrics, DiskOp, Metrics, NetSample, NodeSample, OP_LATENCY_BUCKETS_S};

/// Why the metrics endpoint or logging could not be set up. Every variant says what to change.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    /// Another socket already listens on the metrics address.
    #[error(
        "metrics endpoint: cannot listen on {listen}: address already in use (another process holds this port; \
         stop it or choose another metrics listen address)"
    )]
    AddressInUse { listen: String },
    /// The metrics address could not be bound for another reason (bad address, no permission, ...).
    #[error("metrics endpoint: cannot listen on {listen}: {source}")]
    Bind {
        listen: String,
        #[source]
        source: io::Error,
    },
    /// The log level is not a valid env-filter directive.
    #[error(
        "invalid log level {directive:?}: {reason} (expected an env-filter directive such as `info` or \
         `tessera=debug,warn`)"
    )]
    BadLogFilter { directive: String, reason: String },
    /// The log file could not be opened for appending.
    #[error("cannot open log file {}: {source}", path.display())]
    LogFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Logging was set up already in this process (by an earlier call or by other code).
    #[error("logging is already initialised in this process ({reason}); call init_logging once, at startup")]
    LoggingAlreadyInitialized { reason: String },
}
