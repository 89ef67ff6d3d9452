//! [`MeteredDisk`]: a [`Disk`] that records every call into a [`DiskMetrics`] and otherwise changes
//! nothing.

use std::time::Instant;

use tessera_env::{Disk, DiskError};

use super::metrics::{DiskMetrics, DiskOp};

/// Wraps a [`Disk`], forwarding every call unchanged (same arguments, same result, errors included) and
/// recording it: one op, its latency (measured with [`Instant`] around the inner call), the bytes of a
/// successful read or write, or the error's kind. A call whose future is dropped before it completes
/// records nothing. [`MeteredDisk::new`] also sets the drive's capacity gauge.
#[derive(Debug)]
pub struct MeteredDisk<D> {
    inner: D,
    metrics: DiskMetrics,
}

impl<D: Disk> MeteredDisk<D> {
    pub fn new(inner: D, metrics: DiskMetrics) -> MeteredDisk<D> {
        metrics.set_capacity_bytes(inner.capacity_bytes());
        MeteredDisk { inner, metrics }
    }

    pub fn inner(&self) -> &D {
        &self.inner
    }

    pub fn metrics(&self) -> &DiskMetrics {
        &self.metrics
    }

    pub fn into_inner(self) -> D {
        self.inner
    }

    fn record<T>(&self, op: DiskOp, started: Instant, result: &Result<T, DiskError>, bytes: u64) {
        let latency_ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        match result {
            Ok(_) => self.metrics.record_ok(op, bytes, latency_ns),
            Err(error) => self.metrics.record_err(op, error, latency_ns),
        }
    }
}

impl<D: Disk> Disk for MeteredDisk<D> {
    fn capacity_bytes(&self) -> u64 {
        self.inner.capacity_bytes()
    }

    async fn read(&self, offset_bytes: u64, len_bytes: usize) -> Result<Vec<u8>, DiskError> {
        let started = Instant::now();
        let result = self.inner.read(offset_bytes, len_bytes).await;
        let bytes = result.as_ref().map_or(0, |data| data.len() as u64);
        self.record(DiskOp::Read, started, &result, bytes);
        result
    }

    async fn write(&self, offset_bytes: u64, data: &[u8]) -> Result<(), DiskError> {
        let started = Instant::now();
        let result = self.inner.write(offset_bytes, data).await;
        self.record(DiskOp::Write, started, &result, data.len() as u64);
        result
    }

    async fn flush(&self) -> Result<(), DiskError> {
        let started = Instant::now();
        let result = self.inner.flush().await;
        self.record(DiskOp::Flush, started, &result, 0);
        result
    }
}
