use core::fmt;
use core::future::Future;
use core::ops::{Add, Sub};
use core::time::Duration;

/// A point on a node's monotonic clock, in nanoseconds since an arbitrary origin fixed when the node
/// booted. Comparable only with other `MonoTime`s from the same clock.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MonoTime(u64);

impl MonoTime {
    pub const ZERO: MonoTime = MonoTime(0);

    pub const fn from_nanos(nanos: u64) -> MonoTime {
        MonoTime(nanos)
    }

    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time elapsed from `earlier` to `self`; zero if `earlier` is later (never panics).
    pub fn saturating_since(self, earlier: MonoTime) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for MonoTime {
    type Output = MonoTime;
    fn add(self, rhs: Duration) -> MonoTime {
        let nanos = u64::try_from(rhs.as_nanos()).unwrap_or(u64::MAX);
        MonoTime(self.0.saturating_add(nanos))
    }
}

impl Sub<MonoTime> for MonoTime {
    type Output = Duration;
    fn sub(self, rhs: MonoTime) -> Duration {
        self.saturating_since(rhs)
    }
}

impl fmt::Debug for MonoTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:09}s", self.0 / 1_000_000_000, self.0 % 1_000_000_000)
    }
}

/// A node's monotonic clock.
///
/// Semantics every implementation honours:
/// - `now()` never goes backwards on one node, across any number of calls.
/// - `sleep(d)` completes no earlier than `now() + d` as seen when it was called; it may complete later
///   (scheduling delay, a paused or slow node). A sleep is cancelled by dropping its future.
/// - The clock says nothing about wall time and is not comparable across nodes.
pub trait Clock: Clone + Send + Sync + 'static {
    fn now(&self) -> MonoTime;
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send;
}

/// A node's wall clock, used only for user-visible timestamps (mtime, ctime, atime) and for logs.
///
/// It may jump backwards or forwards (NTP, operator, a simulated skew) and differ between nodes:
/// nothing may depend on it for ordering, timeouts or safety.
pub trait WallClock: Clone + Send + Sync + 'static {
    /// Nanoseconds since the Unix epoch.
    fn unix_time_ns(&self) -> u64;
}
