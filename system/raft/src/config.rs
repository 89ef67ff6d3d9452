//! Configuration of one Raft replica, validated before raft-rs ever sees it.

use tessera_proto::MAX_MESSAGE_BYTES;

/// Tunables of one replica. All members of a group should use the same values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftConfig {
    /// A follower that hears no leader for a randomized `election_ticks..2 * election_ticks` ticks
    /// starts an election (the jitter comes from the node's `DetRng`, see the crate docs).
    pub election_ticks: usize,
    /// A leader sends heartbeats every `heartbeat_ticks`; must be smaller than `election_ticks`.
    pub heartbeat_ticks: usize,
    /// Entries per append message are limited to about this many bytes (at least one entry is sent).
    pub max_size_per_msg_bytes: u64,
    /// Append messages in flight per follower.
    pub max_inflight_msgs: usize,
    /// A leader that has not heard from a quorum for an election timeout steps down.
    pub check_quorum: bool,
    /// Candidates run a pre-vote round first, so a partitioned node does not disrupt the group.
    pub pre_vote: bool,
    /// Largest payload (`data`) of one proposal.
    pub max_entry_bytes: u64,
    /// A leader drops proposals once this many bytes are uncommitted (bounds the log tail and the
    /// size of a persist batch on the leader).
    pub max_uncommitted_bytes: u64,
    /// Committed entries handed out by one `ready` are limited to about this many bytes.
    pub max_committed_bytes_per_ready: u64,
}

impl Default for RaftConfig {
    fn default() -> RaftConfig {
        RaftConfig {
            election_ticks: 10,
            heartbeat_ticks: 2,
            max_size_per_msg_bytes: 1024 * 1024,
            max_inflight_msgs: 256,
            check_quorum: true,
            pre_vote: true,
            max_entry_bytes: 1024 * 1024,
            max_uncommitted_bytes: 16 * 1024 * 1024,
            max_committed_bytes_per_ready: 4 * 1024 * 1024,
        }
    }
}

/// A [`RaftConfig`] value out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("heartbeat_ticks must be at least 1")]
    ZeroHeartbeat,
    #[error("election_ticks ({election_ticks}) must be greater than heartbeat_ticks ({heartbeat_ticks})")]
    ElectionNotAfterHeartbeat { election_ticks: usize, heartbeat_ticks: usize },
    #[error("election_ticks ({0}) is too large (at most 1_000_000)")]
    ElectionTooLong(usize),
    #[error("{field} must be at least 1")]
    Zero { field: &'static str },
    #[error(
        "max_size_per_msg_bytes ({max_size_per_msg_bytes}) + max_entry_bytes ({max_entry_bytes}) must be at most {limit} (half the message limit, for encoding overhead)"
    )]
    MessageTooLarge { max_size_per_msg_bytes: u64, max_entry_bytes: u64, limit: u64 },
}

impl RaftConfig {
    /// Checks every field. One append message holds at most `max_size_per_msg_bytes` plus one entry of
    /// at most `max_entry_bytes`, and must fit the network's message limit with room to spare.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.heartbeat_ticks == 0 {
            return Err(ConfigError::ZeroHeartbeat);
        }
        if self.election_ticks <= self.heartbeat_ticks {
            return Err(ConfigError::ElectionNotAfterHeartbeat {
                election_ticks: self.election_ticks,
                heartbeat_ticks: self.heartbeat_ticks,
            });
        }
        if self.election_ticks > 1_000_000 {
            return Err(ConfigError::ElectionTooLong(self.election_ticks));
        }
        for (field, value) in [
            ("max_size_per_msg_bytes", self.max_size_per_msg_bytes),
            ("max_inflight_msgs", self.max_inflight_msgs as u64),
            ("max_entry_bytes", self.max_entry_bytes),
            ("max_uncommitted_bytes", self.max_uncommitted_bytes),
            ("max_committed_bytes_per_ready", self.max_committed_bytes_per_ready),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero { field });
            }
        }
        let limit = (MAX_MESSAGE_BYTES / 2) as u64;
        if self.max_size_per_msg_bytes.saturating_add(self.max_entry_bytes) > limit {
            return Err(ConfigError::MessageTooLarge {
                max_size_per_msg_bytes: self.max_size_per_msg_bytes,
                max_entry_bytes: self.max_entry_bytes,
                limit,
            });
        }
        Ok(())
    }

    /// The raft-rs configuration for replica `id` whose state machine has applied up to `applied`.
    pub(crate) fn to_raft(&self, id: u64, applied: u64) -> raft::Config {
        raft::Config {
            id,
            election_tick: self.election_ticks,
            heartbeat_tick: self.heartbeat_ticks,
            applied,
            max_size_per_msg: self.max_size_per_msg_bytes,
            max_inflight_msgs: self.max_inflight_msgs,
            check_quorum: self.check_quorum,
            pre_vote: self.pre_vote,
            // The randomized timeout's range [election, 2 * election): raft-rs draws from it with
            // thread_rng, we overwrite every draw from our DetRng (see crate docs).
            min_election_tick: self.election_ticks,
            max_election_tick: 2 * self.election_ticks,
            max_uncommitted_size: self.max_uncommitted_bytes,
            max_committed_size_per_ready: self.max_committed_bytes_per_ready,
            ..raft::Config::default()
        }
    }
}
