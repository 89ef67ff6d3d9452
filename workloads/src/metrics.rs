//! What a run measures: per-operation latency histograms, counts and bytes, a time series of completions,
//! and the reports built from them.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::op::OpKind;
use crate::workload::{PhaseRole, Score};

/// Sub-buckets per power of two: latencies are kept to within 1/32 (about 3%).
const SUB_BUCKET_BITS: u32 = 5;
/// Failures kept word for word per process (the rest are counted).
pub const FAILURES_KEPT: usize = 8;
/// Intervals of the time series kept per phase (a longer phase keeps its first ones).
pub const INTERVALS_MAX: usize = 100_000;

/// A latency histogram with log-linear buckets, kept sparse (only buckets that were hit).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    buckets: BTreeMap<u16, u64>,
    count: u64,
    sum_ns: u128,
    max_ns: u64,
}

fn bucket_of(ns: u64) -> u16 {
    let sub = 1u64 << SUB_BUCKET_BITS;
    if ns < sub {
        return ns as u16;
    }
    let exp = 63 - ns.leading_zeros(); // >= SUB_BUCKET_BITS
    let shift = exp - SUB_BUCKET_BITS;
    let mantissa = (ns >> shift) & (sub - 1);
    ((u64::from(shift + 1) << SUB_BUCKET_BITS) + mantissa) as u16
}

/// The middle of a bucket's range.
fn bucket_value(bucket: u16) -> u64 {
    let sub = 1u64 << SUB_BUCKET_BITS;
    let bucket = u64::from(bucket);
    if bucket < sub {
        return bucket;
    }
    let shift = (bucket >> SUB_BUCKET_BITS) - 1;
    let mantissa = bucket & (sub - 1);
    let low = (sub + mantissa) << shift;
    low + ((1u64 << shift) >> 1)
}

impl Histogram {
    pub fn record(&mut self, ns: u64) {
        *self.buckets.entry(bucket_of(ns)).or_default() += 1;
        self.count += 1;
        self.sum_ns += u128::from(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (bucket, n) in &other.buckets {
            *self.buckets.entry(*bucket).or_default() += n;
        }
        self.count += other.count;
        self.sum_ns += other.sum_ns;
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn mean_ns(&self) -> u64 {
        if self.count == 0 { 0 } else { (self.sum_ns / u128::from(self.count)) as u64 }
    }

    pub fn max_ns(&self) -> u64 {
        self.max_ns
    }

    /// The latency below which a fraction `q` (0..=1) of the samples fall (within the bucket precision).
    pub fn quantile_ns(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                return bucket_value(*bucket).min(self.max_ns);
            }
        }
        self.max_ns
    }
}

/// Counts of one kind of operation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KindStats {
    pub latency: Histogram,
    pub errors: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
}

/// One interval of the time series.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Interval {
    pub latency: Histogram,
    pub bytes: u64,
}

/// What one process measured in one phase.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorder {
    pub interval_ns: u64,
    pub kinds: BTreeMap<OpKind, KindStats>,
    pub series: Vec<Interval>,
    /// Results the process found wrong (first [`FAILURES_KEPT`] word for word).
    pub failures: Vec<String>,
    pub failures_total: u64,
    /// When the last operation completed, from the phase's start.
    pub last_done_ns: u64,
    /// The op rate asked of this process (of all merged processes, summed); `None`: closed loop.
    pub requested_ops_per_sec: Option<f64>,
}

impl Recorder {
    pub fn new(interval_ns: u64) -> Recorder {
        assert!(interval_ns > 0, "time-series interval must be positive");
        Recorder {
            interval_ns,
            kinds: BTreeMap::new(),
            series: Vec::new(),
            failures: Vec::new(),
            failures_total: 0,
            last_done_ns: 0,
            requested_ops_per_sec: None,
        }
    }

    /// One operation of `kind` that took `latency_ns` and completed `done_ns` after the phase began.
    pub fn record(
        &mut self,
        kind: OpKind,
        latency_ns: u64,
        done_ns: u64,
        bytes_read: u64,
        bytes_written: u64,
        failed: bool,
    ) {
        let stats = self.kinds.entry(kind).or_default();
        stats.latency.record(latency_ns);
        stats.errors += u64::from(failed);
        stats.bytes_read += bytes_read;
        stats.bytes_written += bytes_written;
        let slot = (done_ns / self.interval_ns) as usize;
        if slot < INTERVALS_MAX {
            if self.series.len() <= slot {
                self.series.resize_with(slot + 1, Interval::default);
            }
            self.series[slot].latency.record(latency_ns);
            self.series[slot].bytes += bytes_read + bytes_written;
        }
        self.last_done_ns = self.last_done_ns.max(done_ns);
    }

    pub fn fail(&mut self, what: String) {
        self.failures_total += 1;
        if self.failures.len() < FAILURES_KEPT {
            self.failures.push(what);
        }
    }

    pub fn merge(&mut self, other: &Recorder) {
        assert_eq!(self.interval_ns, other.interval_ns, "merging recorders of different intervals");
        for (kind, stats) in &other.kinds {
            let mine = self.kinds.entry(*kind).or_default();
            mine.latency.merge(&stats.latency);
            mine.errors += stats.errors;
            mine.bytes_read += stats.bytes_read;
            mine.bytes_written += stats.bytes_written;
        }
        if self.series.len() < other.series.len() {
            self.series.resize_with(other.series.len(), Interval::default);
        }
        for (mine, theirs) in self.series.iter_mut().zip(&other.series) {
            mine.latency.merge(&theirs.latency);
            mine.bytes += theirs.bytes;
        }
        for failure in &other.failures {
            if self.failures.len() < FAILURES_KEPT {
                self.failures.push(failure.clone());
            }
        }
        self.failures_total += other.failures_total;
        self.last_done_ns = self.last_done_ns.max(other.last_done_ns);
        self.requested_ops_per_sec = match (self.requested_ops_per_sec, other.requested_ops_per_sec) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
    }
}

/// Latency figures of one kind of operation, microseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KindReport {
    pub op: OpKind,
    pub ops: u64,
    pub errors: u64,
    pub ops_per_sec: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

/// One interval of a phase's time series.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IntervalReport {
    pub start_sec: f64,
    pub ops: u64,
    pub ops_per_sec: f64,
    pub mb_per_sec: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// What one phase measured, over all processes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PhaseReport {
    pub name: String,
    pub role: PhaseRole,
    pub score: Score,
    pub procs: usize,
    /// From the phase's start until its last operation completed.
    pub elapsed_sec: f64,
    /// Requested op rate over all processes (`None`: closed loop).
    pub requested_ops_per_sec: Option<f64>,
    pub ops: u64,
    pub ops_per_sec: f64,
    pub errors: u64,
    /// Results found wrong (wrong bytes, names or sizes; errors the workload did not expect).
    pub failures: u64,
    pub first_failures: Vec<String>,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// (bytes read + written) / elapsed, MiB/s.
    pub mib_per_sec: f64,
    pub kinds: Vec<KindReport>,
    pub series: Vec<IntervalReport>,
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1_000.0
}

impl PhaseReport {
    /// The report of a phase from its processes' merged recorder; `elapsed_ns` is the phase's length.
    pub fn new(phase: &crate::workload::Phase, procs: usize, merged: &Recorder, elapsed_ns: u64) -> PhaseReport {
        let elapsed_sec = (elapsed_ns.max(1)) as f64 / 1e9;
        let kinds: Vec<KindReport> = merged
            .kinds
            .iter()
            .map(|(op, s)| KindReport {
                op: *op,
                ops: s.latency.count(),
                errors: s.errors,
                ops_per_sec: s.latency.count() as f64 / elapsed_sec,
                mean_us: us(s.latency.mean_ns()),
                p50_us: us(s.latency.quantile_ns(0.50)),
                p90_us: us(s.latency.quantile_ns(0.90)),
                p99_us: us(s.latency.quantile_ns(0.99)),
                p999_us: us(s.latency.quantile_ns(0.999)),
                max_us: us(s.latency.max_ns()),
            })
            .collect();
        let interval_sec = merged.interval_ns as f64 / 1e9;
        let series = merged
            .series
            .iter()
            .enumerate()
            .map(|(i, slot)| IntervalReport {
                start_sec: i as f64 * interval_sec,
                ops: slot.latency.count(),
                ops_per_sec: slot.latency.count() as f64 / interval_sec,
                mb_per_sec: slot.bytes as f64 / (1024.0 * 1024.0) / interval_sec,
                mean_us: us(slot.latency.mean_ns()),
                p50_us: us(slot.latency.quantile_ns(0.50)),
                p99_us: us(slot.latency.quantile_ns(0.99)),
            })
            .collect();
        let ops: u64 = kinds.iter().map(|k| k.ops).sum();
        let bytes_read: u64 = merged.kinds.values().map(|s| s.bytes_read).sum();
        let bytes_written: u64 = merged.kinds.values().map(|s| s.bytes_written).sum();
        PhaseReport {
            name: phase.name.clone(),
            role: phase.role,
            score: phase.score,
            procs,
            elapsed_sec,
            requested_ops_per_sec: match phase.rate_per_proc {
                Some(rate) => merged.requested_ops_per_sec.or(Some(rate * procs as f64)),
                None => None,
            },
            ops,
            ops_per_sec: ops as f64 / elapsed_sec,
            errors: kinds.iter().map(|k| k.errors).sum(),
            failures: merged.failures_total,
            first_failures: merged.failures.clone(),
            bytes_read,
            bytes_written,
            mib_per_sec: (bytes_read + bytes_written) as f64 / (1024.0 * 1024.0) / elapsed_sec,
            kinds,
            series,
        }
    }
}

/// A workload's own figure (an IO500 score, the achieved fraction of the requested rate).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metric {
    pub name: String,
    pub value: f64,
    pub unit: String,
}

impl Metric {
    pub fn new(name: &str, value: f64, unit: &str) -> Metric {
        Metric { name: name.to_string(), value, unit: unit.to_string() }
    }
}

/// One run of a workload at one load against one target.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunReport {
    pub workload: String,
    pub target: String,
    pub load: u64,
    pub procs: usize,
    pub seed: u64,
    pub verify: bool,
    pub phases: Vec<PhaseReport>,
    pub metrics: Vec<Metric>,
}

impl RunReport {
    /// Operations that returned an error, over every phase.
    pub fn errors(&self) -> u64 {
        self.phases.iter().map(|p| p.errors).sum()
    }

    /// Results found wrong, over every phase.
    pub fn failures(&self) -> u64 {
        self.phases.iter().map(|p| p.failures).sum()
    }

    /// The measured phases.
    pub fn measured(&self) -> impl Iterator<Item = &PhaseReport> {
        self.phases.iter().filter(|p| p.role == PhaseRole::Run)
    }

    /// Achieved and requested op rate over the measured phases (requested `None` if any is closed-loop).
    pub fn rates(&self) -> (f64, Option<f64>) {
        let (mut ops, mut secs, mut requested) = (0u64, 0f64, Some(0f64));
        for phase in self.measured() {
            ops += phase.ops;
            secs += phase.elapsed_sec;
            requested = requested.zip(phase.requested_ops_per_sec).map(|(a, b)| a + b * phase.elapsed_sec);
        }
        let secs = secs.max(1e-9);
        (ops as f64 / secs, requested.map(|r| r / secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_the_bucket_precision() {
        let mut h = Histogram::default();
        for ns in 1..=100_000u64 {
            h.record(ns * 10);
        }
        for (q, want) in [(0.5, 500_000.0), (0.9, 900_000.0), (0.99, 990_000.0)] {
            let got = h.quantile_ns(q) as f64;
            assert!((got - want).abs() / want < 0.04, "q{q}: {got} vs {want}");
        }
        assert_eq!(h.max_ns(), 1_000_000);
        assert_eq!(h.mean_ns(), 500_005);
        for ns in [0u64, 1, 31, 32, 33, 1000, 1 << 40, u64::MAX / 3] {
            let value = bucket_value(bucket_of(ns));
            assert!(value.abs_diff(ns) as f64 <= ns as f64 / 32.0 + 1.0, "{ns} -> {value}");
        }
    }

    #[test]
    fn merged_recorders_add_up() {
        let mut a = Recorder::new(1_000_000_000);
        let mut b = Recorder::new(1_000_000_000);
        a.record(OpKind::Stat, 100, 10, 0, 0, false);
        b.record(OpKind::Stat, 300, 1_500_000_000, 0, 0, true);
        b.record(OpKind::WriteFile, 1_000, 2_500_000_000, 0, 4096, false);
        b.fail("x".into());
        a.merge(&b);
        assert_eq!(a.kinds[&OpKind::Stat].latency.count(), 2);
        assert_eq!(a.kinds[&OpKind::Stat].errors, 1);
        assert_eq!(a.series.len(), 3);
        assert_eq!(a.series[2].bytes, 4096);
        assert_eq!(a.failures_total, 1);
        assert_eq!(a.last_done_ns, 2_500_000_000);
    }
}
