//! The client's tunables, checked once when the client is built.

use core::time::Duration;

/// Largest `readdir_page_entries` a client asks for in one `Readdir`.
pub const READDIR_PAGE_ENTRIES_MAX: u32 = 4096;
/// Largest `attempts_max`: more would only hide a broken cluster behind minutes of retries.
pub const ATTEMPTS_MAX_LIMIT: u32 = 1000;

/// How patiently a [`crate::client::MetaClient`] retries. All times in milliseconds of the client's
/// monotonic clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// How long one attempt of a shard call waits for an answer before it is retried elsewhere.
    pub request_timeout_ms: u64,
    /// Attempts (sends) of one shard call, redirects included, before the operation times out.
    pub attempts_max: u32,
    /// First backoff after `Busy`, a timeout or a leaderless shard; doubles per attempt.
    pub backoff_base_ms: u64,
    /// Cap of the backoff.
    pub backoff_max_ms: u64,
    /// Deadline of one whole operation (every shard call and backoff it takes).
    pub op_timeout_ms: u64,
    /// Entries asked for per `Readdir` page by [`crate::client::MetaClient::readdir_all`].
    pub readdir_page_entries: u32,
    /// Most entries [`crate::client::MetaClient::readdir_all`] collects before it fails with
    /// [`crate::client::ClientError::TooManyEntries`].
    pub readdir_all_entries_max: usize,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            request_timeout_ms: 500,
            attempts_max: 20,
            backoff_base_ms: 10,
            backoff_max_ms: 1_000,
            op_timeout_ms: 30_000,
            readdir_page_entries: 256,
            readdir_all_entries_max: 1 << 20,
        }
    }
}

/// A [`ClientConfig`] that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientConfigError {
    #[error("{field} must be positive")]
    Zero { field: &'static str },
    #[error("attempts_max {attempts_max} exceeds {ATTEMPTS_MAX_LIMIT}")]
    TooManyAttempts { attempts_max: u32 },
    #[error("backoff_base_ms {base_ms} exceeds backoff_max_ms {max_ms}")]
    BackoffInverted { base_ms: u64, max_ms: u64 },
    #[error("op_timeout_ms {op_ms} is shorter than request_timeout_ms {request_ms}")]
    OpShorterThanRequest { op_ms: u64, request_ms: u64 },
    #[error("readdir_page_entries {entries} is not in 1..={READDIR_PAGE_ENTRIES_MAX}")]
    ReaddirPage { entries: u32 },
    #[error("{field} of {ms} ms is beyond a day")]
    TooLong { field: &'static str, ms: u64 },
}

/// A day: no client timeout or backoff is longer (it would only hide a unit mistake).
const DAY_MS: u64 = 24 * 3600 * 1000;

impl ClientConfig {
    pub fn validate(&self) -> Result<(), ClientConfigError> {
        let times = [
            ("request_timeout_ms", self.request_timeout_ms),
            ("backoff_base_ms", self.backoff_base_ms),
            ("backoff_max_ms", self.backoff_max_ms),
            ("op_timeout_ms", self.op_timeout_ms),
        ];
        for (field, ms) in times {
            if ms == 0 {
                return Err(ClientConfigError::Zero { field });
            }
            if ms > DAY_MS {
                return Err(ClientConfigError::TooLong { field, ms });
            }
        }
        if self.attempts_max == 0 {
            return Err(ClientConfigError::Zero { field: "attempts_max" });
        }
        if self.attempts_max > ATTEMPTS_MAX_LIMIT {
            return Err(ClientConfigError::TooManyAttempts { attempts_max: self.attempts_max });
        }
        if self.readdir_all_entries_max == 0 {
            return Err(ClientConfigError::Zero { field: "readdir_all_entries_max" });
        }
        if self.backoff_base_ms > self.backoff_max_ms {
            return Err(ClientConfigError::BackoffInverted {
                base_ms: self.backoff_base_ms,
                max_ms: self.backoff_max_ms,
            });
        }
        if self.op_timeout_ms < self.request_timeout_ms {
            return Err(ClientConfigError::OpShorterThanRequest {
                op_ms: self.op_timeout_ms,
                request_ms: self.request_timeout_ms,
            });
        }
        if !(1..=READDIR_PAGE_ENTRIES_MAX).contains(&self.readdir_page_entries) {
            return Err(ClientConfigError::ReaddirPage { entries: self.readdir_page_entries });
        }
        Ok(())
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn op_timeout(&self) -> Duration {
        Duration::from_millis(self.op_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_bad_values_are_named() {
        assert_eq!(ClientConfig::default().validate(), Ok(()));
        let bad = |f: fn(&mut ClientConfig)| {
            let mut c = ClientConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert_eq!(bad(|c| c.request_timeout_ms = 0), ClientConfigError::Zero { field: "request_timeout_ms" });
        assert_eq!(bad(|c| c.attempts_max = 0), ClientConfigError::Zero { field: "attempts_max" });
        assert_eq!(bad(|c| c.attempts_max = 5000), ClientConfigError::TooManyAttempts { attempts_max: 5000 });
        assert_eq!(
            bad(|c| c.backoff_base_ms = 2_000),
            ClientConfigError::BackoffInverted { base_ms: 2_000, max_ms: 1_000 }
        );
        assert_eq!(
            bad(|c| c.op_timeout_ms = 100),
            ClientConfigError::OpShorterThanRequest { op_ms: 100, request_ms: 500 }
        );
        assert_eq!(bad(|c| c.readdir_page_entries = 0), ClientConfigError::ReaddirPage { entries: 0 });
        assert!(matches!(bad(|c| c.op_timeout_ms = DAY_MS + 1), ClientConfigError::TooLong { .. }));
    }
}
