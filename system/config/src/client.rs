//! The config client: submits config changes to the service with retries across leader changes.
//!
//! Sans-IO. One request in flight at a time per client (so deduplication by sequence number is exact);
//! further submissions queue (bounded). Each attempt waits `attempt_timeout_ms`; a "not leader" answer
//! redirects at once; after `attempts_max` attempts the request fails with [`ClientError::Unavailable`].
//! A retried request keeps its id, so the service applies it at most once.

use std::collections::VecDeque;
use std::time::Duration;

use tessera_env::{MonoTime, NodeId};

use crate::command::{ConfigCommand, ConfigError};
use crate::wire::{ConfigMessage, RequestId};

/// Queued requests per client beyond the one in flight.
pub const CLIENT_QUEUE_MAX: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("the config service refused the change: {0}")]
    Rejected(ConfigError),
    #[error("no answer from the config service after {attempts} attempts")]
    Unavailable { attempts: u32 },
    #[error("too many queued config requests (at most {CLIENT_QUEUE_MAX})")]
    QueueFull,
}

#[derive(Debug)]
struct InFlight {
    id: RequestId,
    command: ConfigCommand,
    target: NodeId,
    sent_at: MonoTime,
    attempts: u32,
    /// Set after a "not leader" answer without a hint: retry then (elections take a while).
    retry_at: Option<MonoTime>,
}

/// Wait after a "not leader, leader unknown" answer before trying again.
pub const NO_LEADER_BACKOFF_MS: u64 = 100;

#[derive(Debug)]
pub struct ConfigClient {
    client_id: u64,
    next_seq: u64,
    members: Vec<NodeId>,
    leader: Option<NodeId>,
    probe: usize,
    attempt_timeout: Duration,
    attempts_max: u32,
    inflight: Option<InFlight>,
    queue: VecDeque<(u64, ConfigCommand)>,
    completed: Vec<(u64, Result<u64, ClientError>)>,
    outbox: Vec<(NodeId, ConfigMessage)>,
}

impl ConfigClient {
    /// `client_id` must be unique among the service's clients (a node id, or a random draw).
    pub fn new(client_id: u64, members: Vec<NodeId>, attempt_timeout_ms: u64, attempts_max: u32) -> ConfigClient {
        assert!(!members.is_empty() && attempts_max > 0 && attempt_timeout_ms > 0);
        ConfigClient {
            client_id,
            next_seq: 1,
            members,
            leader: None,
            probe: (client_id as usize) % 7,
            attempt_timeout: Duration::from_millis(attempt_timeout_ms),
            attempts_max,
            inflight: None,
            queue: VecDeque::new(),
            completed: Vec::new(),
            outbox: Vec::new(),
        }
    }

    /// Queue a change; returns its sequence number, under which [`ConfigClient::take_completed`]
    /// reports the outcome (`Ok(epoch)` of the change).
    pub fn submit(&mut self, command: ConfigCommand, now: MonoTime) -> Result<u64, ClientError> {
        if self.queue.len() >= CLIENT_QUEUE_MAX {
            return Err(ClientError::QueueFull);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push_back((seq, command));
        self.start_next(now);
        Ok(seq)
    }

    pub fn tick(&mut self, now: MonoTime) {
        let expired = self.inflight.as_ref().is_some_and(|f| {
            now.saturating_since(f.sent_at) >= self.attempt_timeout || f.retry_at.is_some_and(|at| now >= at)
        });
        if expired {
            self.leader = None;
            self.retry(now);
        }
    }

    pub fn handle(&mut self, _from: NodeId, msg: &ConfigMessage, now: MonoTime) {
        let Some(f) = &self.inflight else { return };
        match msg {
            ConfigMessage::Response { id, result } if *id == f.id => {
                let result = result.clone().map_err(ClientError::Rejected);
                self.completed.push((id.seq, result));
                self.inflight = None;
                self.start_next(now);
            }
            ConfigMessage::NotLeader { id: Some(id), leader } if *id == f.id => {
                self.leader = *leader;
                if leader.is_some() {
                    self.retry(now);
                } else if let Some(f) = &mut self.inflight {
                    let backoff = Duration::from_millis(NO_LEADER_BACKOFF_MS << f.attempts.min(4));
                    f.retry_at = Some(now + backoff.min(self.attempt_timeout));
                }
            }
            _ => {}
        }
    }

    pub fn take_completed(&mut self) -> Vec<(u64, Result<u64, ClientError>)> {
        std::mem::take(&mut self.completed)
    }

    pub fn take_outbox(&mut self) -> Vec<(NodeId, ConfigMessage)> {
        std::mem::take(&mut self.outbox)
    }

    pub fn is_idle(&self) -> bool {
        self.inflight.is_none() && self.queue.is_empty()
    }

    fn target(&mut self) -> NodeId {
        self.leader.unwrap_or_else(|| {
            self.probe = (self.probe + 1) % self.members.len();
            self.members[self.probe]
        })
    }

    fn start_next(&mut self, now: MonoTime) {
        if self.inflight.is_some() {
            return;
        }
        let Some((seq, command)) = self.queue.pop_front() else { return };
        let target = self.target();
        let id = RequestId { client: self.client_id, seq };
        self.outbox.push((target, ConfigMessage::Request { id, command: command.clone() }));
        self.inflight = Some(InFlight { id, command, target, sent_at: now, attempts: 1, retry_at: None });
    }

    fn retry(&mut self, now: MonoTime) {
        let Some(mut f) = self.inflight.take() else { return };
        if f.attempts >= self.attempts_max {
            self.completed.push((f.id.seq, Err(ClientError::Unavailable { attempts: f.attempts })));
            self.start_next(now);
            return;
        }
        f.target = self.target();
        f.attempts += 1;
        f.sent_at = now;
        f.retry_at = None;
        self.outbox.push((f.target, ConfigMessage::Request { id: f.id, command: f.command.clone() }));
        self.inflight = Some(f);
    }
}
