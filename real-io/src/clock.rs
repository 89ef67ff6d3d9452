//! The OS clocks: [`RealClock`] (monotonic, `std::time::Instant`) and [`RealWallClock`] (`SystemTime`).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tessera_env::{Clock, MonoTime, WallClock};

/// The node's monotonic clock over [`Instant`]. `now()` counts nanoseconds from the moment the clock was
/// made (the node's boot); clones share that origin. `sleep` is `tokio::time::sleep`, so it must be awaited
/// inside a tokio runtime with the time driver enabled.
#[derive(Debug, Clone)]
pub struct RealClock {
    origin: Arc<Instant>,
}

impl RealClock {
    pub fn new() -> RealClock {
        RealClock { origin: Arc::new(Instant::now()) }
    }
}

impl Default for RealClock {
    fn default() -> RealClock {
        RealClock::new()
    }
}

impl Clock for RealClock {
    fn now(&self) -> MonoTime {
        // `Instant` never goes backwards; 2^64 ns is 584 years of uptime.
        let nanos = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        MonoTime::from_nanos(nanos)
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await
    }
}

/// The node's wall clock over [`SystemTime`]. May jump either way; a time before the epoch reads as 0.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealWallClock;

impl WallClock for RealWallClock {
    fn unix_time_ns(&self) -> u64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) => u64::try_from(since.as_nanos()).unwrap_or(u64::MAX),
            Err(_) => 0,
        }
    }
}
