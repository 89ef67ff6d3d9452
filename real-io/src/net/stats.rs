//! Counters and gauges of one transport, updated lock-free by its tasks and read as a
//! [`TransportStats`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a transport's counters (`*_total`, monotonic) and gauges (the present value).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Frame bytes (headers and payloads) handed to sockets, handshake and keepalive frames included.
    pub bytes_sent: u64,
    /// Frame bytes read from sockets.
    pub bytes_received: u64,
    pub frames_sent: u64,
    pub frames_received: u64,
    /// Frames refused for a bad magic, version, kind, flags, length, checksum or addressing; each closed
    /// its connection.
    pub frames_rejected: u64,
    /// Connections past their hello, both directions (gauge).
    pub connections_open: u64,
    /// Successful outbound connections (hello answered).
    pub connects_total: u64,
    /// Outbound connection attempts that failed (refused, timed out, bad or refused hello).
    pub connect_failures_total: u64,
    /// Hellos refused, in either direction, for a cluster or node id mismatch or a malformed hello.
    pub hello_rejected_total: u64,
    /// Messages the transport discarded after `send` accepted them: dropped queues (write timeout,
    /// closed inbound connection, shutdown), a connection that failed mid-frame, a local endpoint that
    /// does not exist or is full. Bytes already in kernel buffers when a connection dies are not seen.
    pub messages_dropped_total: u64,
    /// Messages waiting in all send queues now (gauge).
    pub send_queue_messages: u64,
    /// Bytes (headers included) waiting in all send queues now (gauge).
    pub send_queue_bytes: u64,
}

/// The live counters behind [`TransportStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub bytes_sent: AtomicU64,
    pub bytes_received: AtomicU64,
    pub frames_sent: AtomicU64,
    pub frames_received: AtomicU64,
    pub frames_rejected: AtomicU64,
    pub connections_open: AtomicU64,
    pub connects_total: AtomicU64,
    pub connect_failures_total: AtomicU64,
    pub hello_rejected_total: AtomicU64,
    pub messages_dropped_total: AtomicU64,
    pub send_queue_messages: AtomicU64,
    pub send_queue_bytes: AtomicU64,
}

/// Add `value` to a counter.
pub(crate) fn add(counter: &AtomicU64, value: u64) {
    counter.fetch_add(value, Ordering::Relaxed);
}

/// Subtract `value` from a gauge; a gauge never goes below zero (that would be an accounting bug).
pub(crate) fn sub(gauge: &AtomicU64, value: u64) {
    let before = gauge.fetch_sub(value, Ordering::Relaxed);
    assert!(before >= value, "transport gauge went negative ({before} - {value})");
}

impl Counters {
    pub(crate) fn snapshot(&self) -> TransportStats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        TransportStats {
            bytes_sent: get(&self.bytes_sent),
            bytes_received: get(&self.bytes_received),
            frames_sent: get(&self.frames_sent),
            frames_received: get(&self.frames_received),
            frames_rejected: get(&self.frames_rejected),
            connections_open: get(&self.connections_open),
            connects_total: get(&self.connects_total),
            connect_failures_total: get(&self.connect_failures_total),
            hello_rejected_total: get(&self.hello_rejected_total),
            messages_dropped_total: get(&self.messages_dropped_total),
            send_queue_messages: get(&self.send_queue_messages),
            send_queue_bytes: get(&self.send_queue_bytes),
        }
    }
}
