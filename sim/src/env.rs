//! Simulated clock, wall clock and task spawning, on madsim's virtual time and scheduler.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tessera_env::{BoxTask, Clock, DetRng, MonoTime, Rng, Spawn, WallClock};

use crate::trace::{Trace, virtual_now_ns};

/// A node's monotonic clock: madsim's virtual time since the runtime started (shared by all nodes,
/// which the `Clock` contract allows: clocks are not comparable across nodes, but may agree).
#[derive(Clone, Copy, Debug, Default)]
pub struct SimClock;

impl Clock for SimClock {
    fn now(&self) -> MonoTime {
        MonoTime::from_nanos(virtual_now_ns())
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        // madsim rounds every sleep up to 1 ms; a zero sleep still yields.
        madsim::time::sleep(duration)
    }
}

/// A node's wall clock: a base Unix time picked from the seed, plus virtual elapsed time, plus this
/// node's skew (settable at any time, also negative, to simulate NTP steps and drifting nodes).
#[derive(Clone)]
pub struct SimWallClock {
    base_unix_ns: u64,
    skew_ns: Arc<AtomicI64>,
}

impl fmt::Debug for SimWallClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimWallClock")
            .field("base_unix_ns", &self.base_unix_ns)
            .field("skew_ns", &self.skew_ns())
            .finish()
    }
}

impl SimWallClock {
    /// Base time drawn from `rng`: somewhere in 2024-2034.
    pub fn new(rng: &mut DetRng) -> SimWallClock {
        const Y2024_UNIX_S: u64 = 1_704_067_200;
        const TEN_YEARS_S: u64 = 10 * 365 * 24 * 3600;
        let base_s = Y2024_UNIX_S + rng.below(TEN_YEARS_S);
        SimWallClock::with_base(base_s * 1_000_000_000 + rng.below(1_000_000_000))
    }

    pub fn with_base(base_unix_ns: u64) -> SimWallClock {
        SimWallClock { base_unix_ns, skew_ns: Arc::new(AtomicI64::new(0)) }
    }

    /// Set this clock's offset from the true (virtual) time. Shared by clones.
    pub fn set_skew_ns(&self, skew_ns: i64) {
        self.skew_ns.store(skew_ns, Ordering::Relaxed);
    }

    pub fn skew_ns(&self) -> i64 {
        self.skew_ns.load(Ordering::Relaxed)
    }

    /// Another clock on the same base with its own skew (one per node).
    pub fn for_node(&self) -> SimWallClock {
        SimWallClock::with_base(self.base_unix_ns)
    }
}

impl WallClock for SimWallClock {
    fn unix_time_ns(&self) -> u64 {
        self.base_unix_ns.saturating_add(virtual_now_ns()).saturating_add_signed(self.skew_ns())
    }
}

/// Starts tasks on the madsim node that calls `spawn`: a task spawned from a node's task lands on that
/// node, so killing the node (madsim `Handle::kill`) drops it at its current await point, and a restart
/// starts from the node's `init` with no task left over.
#[derive(Clone)]
pub struct SimSpawn {
    trace: Trace,
    source: Arc<str>,
}

impl fmt::Debug for SimSpawn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimSpawn").field("source", &self.source).finish()
    }
}

impl SimSpawn {
    /// `source` names the node in the trace.
    pub fn new(trace: Trace, source: String) -> SimSpawn {
        SimSpawn { trace, source: source.into() }
    }
}

impl Spawn for SimSpawn {
    fn spawn(&self, name: &'static str, task: BoxTask) {
        self.trace.record(&self.source, format_args!("spawn task {name}"));
        drop(madsim::task::spawn(task));
    }
}
