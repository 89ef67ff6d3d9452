//! The run's trace: every simulated event folded into one running hash, optionally printed.
//!
//! Two runs of the same seed must produce the same sequence of events at the same virtual times, so
//! they end with the same [`Trace::hash`]. That is the determinism check (STYLE.md rule 10): a hash
//! that differs between two runs of one seed means something outside the seed leaked into the run.

use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex, MutexGuard};

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// FNV-1a, 64 bit: tiny, stable across platforms and Rust versions (unlike `DefaultHasher`).
#[derive(Debug, Clone, Copy)]
pub struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(FNV_OFFSET_BASIS)
    }
}

impl Fnv64 {
    /// Continue hashing from a previous value.
    pub fn resume(state: u64) -> Self {
        Fnv64(state)
    }

    pub fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }

    pub fn u64(&mut self, value: u64) {
        self.bytes(&value.to_le_bytes());
    }

    pub fn finish(self) -> u64 {
        self.0
    }
}

impl fmt::Write for Fnv64 {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.bytes(s.as_bytes());
        Ok(())
    }
}

/// FNV-1a 64 of a byte string: a cheap content fingerprint for traces and checkers.
pub fn fnv64(bytes: &[u8]) -> u64 {
    let mut h = Fnv64::default();
    h.bytes(bytes);
    h.finish()
}

/// Virtual nanoseconds since the current madsim runtime started; 0 outside a runtime.
pub fn virtual_now_ns() -> u64 {
    madsim::time::TimeHandle::try_current()
        .map(|t| u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[derive(Debug)]
struct TraceState {
    verbose: bool,
    hash: u64,
    events: u64,
}

/// The shared trace of one run. Cloning shares the same trace.
#[derive(Clone)]
pub struct Trace {
    state: Arc<Mutex<TraceState>>,
}

impl fmt::Debug for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("Trace").field("hash", &format_args!("{:016x}", s.hash)).field("events", &s.events).finish()
    }
}

impl Trace {
    pub fn new(verbose: bool) -> Trace {
        Trace { state: Arc::new(Mutex::new(TraceState { verbose, hash: FNV_OFFSET_BASIS, events: 0 })) }
    }

    fn lock(&self) -> MutexGuard<'_, TraceState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True if events are printed to stderr.
    pub fn is_verbose(&self) -> bool {
        self.lock().verbose
    }

    /// Fold one event into the hash: the virtual time, the source and the formatted event. When verbose,
    /// print it as `[   12.345678s] source: event`.
    pub fn record(&self, source: &str, event: fmt::Arguments<'_>) {
        let now_ns = virtual_now_ns();
        let mut s = self.lock();
        let mut h = Fnv64::resume(s.hash);
        h.u64(now_ns);
        h.bytes(source.as_bytes());
        h.bytes(&[0]);
        // Hashing through fmt::Write avoids building a String for every event when not verbose.
        let _ = h.write_fmt(event);
        h.bytes(&[0xff]);
        s.hash = h.finish();
        s.events += 1;
        if s.verbose {
            eprintln!("[{:>4}.{:06}s] {source}: {event}", now_ns / 1_000_000_000, (now_ns % 1_000_000_000) / 1_000);
        }
    }

    /// The running hash of every event recorded so far.
    pub fn hash(&self) -> u64 {
        self.lock().hash
    }

    /// How many events were recorded.
    pub fn events(&self) -> u64 {
        self.lock().events
    }
}

/// `trace_event!(trace, source, "format {}", args)`: shorthand for [`Trace::record`].
#[macro_export]
macro_rules! trace_event {
    ($trace:expr, $source:expr, $($arg:tt)+) => {
        $trace.record($source, format_args!($($arg)+))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_events_same_hash_and_order_matters() {
        let a = Trace::new(false);
        let b = Trace::new(false);
        let c = Trace::new(false);
        a.record("x", format_args!("one {}", 1));
        a.record("y", format_args!("two"));
        b.record("x", format_args!("one 1"));
        b.record("y", format_args!("two"));
        c.record("y", format_args!("two"));
        c.record("x", format_args!("one 1"));
        assert_eq!(a.hash(), b.hash());
        assert_ne!(a.hash(), c.hash());
        assert_eq!(a.events(), 2);
    }

    #[test]
    fn source_and_event_boundary_is_hashed() {
        let a = Trace::new(false);
        let b = Trace::new(false);
        a.record("ab", format_args!("c"));
        b.record("a", format_args!("bc"));
        assert_ne!(a.hash(), b.hash());
    }
}
