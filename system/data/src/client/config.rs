//! The data client's tunables and their checks.

use std::time::Duration;

use tessera_config::model::Protection;
use tessera_meta::content::INLINE_LEN_MAX_BYTES;

/// Most re-sends of one data request.
pub const RESEND_MAX_LIMIT: u32 = 16;
/// Most attempts to write one stripe (each on a fresh placement).
pub const WRITE_ATTEMPTS_MAX_LIMIT: u32 = 16;
/// Longest timeout of one data request.
pub const REQUEST_TIMEOUT_MS_MAX: u64 = 10 * 60 * 1000;
/// Largest repair queue.
pub const REPAIR_QUEUE_MAX_LIMIT: usize = 1 << 16;

/// How a [`super::DataClient`] writes and reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataClientConfig {
    /// How new stripes are protected.
    pub protection: Protection,
    /// A file whose bytes all lie below this stays inline in metadata (at most
    /// [`INLINE_LEN_MAX_BYTES`]; 0: never inline).
    pub inline_max_bytes: u64,
    /// How long one send of a data request waits for its answer.
    pub request_timeout_ms: u64,
    /// Re-sends of an unanswered data request before it counts as failed.
    pub resend_max: u32,
    /// Placements tried for one stripe before a write gives up.
    pub write_attempts_max: u32,
    /// Stripes waiting for repair at most (more are dropped: rebuild and scrub find them).
    pub repair_queue_max: usize,
}

impl Default for DataClientConfig {
    fn default() -> DataClientConfig {
        DataClientConfig {
            protection: Protection::ErasureCoded { data: 4, parity: 2 },
            inline_max_bytes: 16 * 1024,
            request_timeout_ms: 500,
            resend_max: 3,
            write_attempts_max: 3,
            repair_queue_max: 1024,
        }
    }
}

/// Why a [`DataClientConfig`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataClientConfigError {
    #[error("invalid protection {0:?}")]
    Protection(Protection),
    #[error("inline_max_bytes {0} above {INLINE_LEN_MAX_BYTES}")]
    InlineMax(u64),
    #[error("request_timeout_ms {0} outside 1..={REQUEST_TIMEOUT_MS_MAX}")]
    RequestTimeout(u64),
    #[error("resend_max {0} above {RESEND_MAX_LIMIT}")]
    ResendMax(u32),
    #[error("write_attempts_max {0} outside 1..={WRITE_ATTEMPTS_MAX_LIMIT}")]
    WriteAttempts(u32),
    #[error("repair_queue_max {0} above {REPAIR_QUEUE_MAX_LIMIT}")]
    RepairQueue(usize),
}

impl DataClientConfig {
    pub fn validate(&self) -> Result<(), DataClientConfigError> {
        if !self.protection.is_valid() {
            return Err(DataClientConfigError::Protection(self.protection));
        }
        if self.inline_max_bytes > INLINE_LEN_MAX_BYTES {
            return Err(DataClientConfigError::InlineMax(self.inline_max_bytes));
        }
        if !(1..=REQUEST_TIMEOUT_MS_MAX).contains(&self.request_timeout_ms) {
            return Err(DataClientConfigError::RequestTimeout(self.request_timeout_ms));
        }
        if self.resend_max > RESEND_MAX_LIMIT {
            return Err(DataClientConfigError::ResendMax(self.resend_max));
        }
        if !(1..=WRITE_ATTEMPTS_MAX_LIMIT).contains(&self.write_attempts_max) {
            return Err(DataClientConfigError::WriteAttempts(self.write_attempts_max));
        }
        if self.repair_queue_max > REPAIR_QUEUE_MAX_LIMIT {
            return Err(DataClientConfigError::RepairQueue(self.repair_queue_max));
        }
        Ok(())
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_each_bound_is_checked() {
        let ok = DataClientConfig::default();
        assert_eq!(ok.validate(), Ok(()));
        let bad = [
            (DataClientConfig { protection: Protection::ErasureCoded { data: 3, parity: 2 }, ..ok }, "protection"),
            (DataClientConfig { protection: Protection::Replicated { copies: 1 }, ..ok }, "protection"),
            (DataClientConfig { inline_max_bytes: INLINE_LEN_MAX_BYTES + 1, ..ok }, "inline"),
            (DataClientConfig { request_timeout_ms: 0, ..ok }, "timeout"),
            (DataClientConfig { resend_max: RESEND_MAX_LIMIT + 1, ..ok }, "resend"),
            (DataClientConfig { write_attempts_max: 0, ..ok }, "attempts"),
            (DataClientConfig { repair_queue_max: REPAIR_QUEUE_MAX_LIMIT + 1, ..ok }, "repair"),
        ];
        for (config, what) in bad {
            assert!(config.validate().is_err(), "{what} accepted");
        }
        let edge = DataClientConfig {
            inline_max_bytes: INLINE_LEN_MAX_BYTES,
            resend_max: 0,
            repair_queue_max: 0,
            protection: Protection::Replicated { copies: 2 },
            ..ok
        };
        assert_eq!(edge.validate(), Ok(()));
    }
}
