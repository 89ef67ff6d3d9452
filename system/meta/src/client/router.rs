//! The sans-IO core of the client: carries one shard call at a time to the shard's leader and back,
//! through leader changes, lost messages, `Busy` shards and stale shard maps.
//!
//! Call order (the [`crate::client::MetaClient`] loop; a test steps it by hand):
//! 1. [`Router::begin`] a call: it gets a fresh [`ReqId`], which every retry of the call reuses, so the
//!    shard applies it at most once.
//! 2. Send everything [`Router::poll_transmit`] yields.
//! 3. If [`Router::poll_event`] yields an event, the call is over (answered, or timed out).
//! 4. Otherwise wait for a message until [`Router::poll_timeout`]; hand a message to
//!    [`Router::handle_message`], then call [`Router::handle_timeout`] with the current time either
//!    way, and go to 2.
//!
//! Between calls, [`Router::take_refresh`] says when a shard reported a newer shard map than the
//! client routes with; [`Router::set_directory`] installs one.
//!
//! Policy: a call goes to the shard's cached leader (at first `replicas[0]`). A `NotLeader` with a
//! hint redirects at once (at most [`REDIRECTS_IMMEDIATE_MAX`] times in a row, then with backoff:
//! two deposed leaders may point at each other during an election); one without a hint moves to the
//! next replica after a backoff. `Busy` backs off and retries the same node; a timeout moves to the
//! next replica and backs off. `NotLeader` and `Busy` count only when they come from the node the
//! latest attempt went to (anything else answers an earlier attempt); a `Response` to the call counts
//! whoever sends it and whenever it comes (the shard answers every attempt of a request with the one
//! recorded result). Messages about other requests are ignored. The call fails after
//! `attempts_max` sends or at the operation's deadline, whichever comes first.

use std::collections::BTreeMap;

use tessera_env::{MonoTime, NodeId, Rng, buggify, mark};

use crate::client::backoff::Backoff;
use crate::client::config::{ClientConfig, ClientConfigError};
use crate::client::directory::{DirectoryError, ShardDirectory};
use crate::exec::{ReqId, ShardAnswer, ShardCall};
use crate::wire::MetaMessage;

/// Hinted redirects a call follows at once in a row before it backs off between them.
pub const REDIRECTS_IMMEDIATE_MAX: u32 = 2;

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// The shard's answer.
    Answered(ShardAnswer),
    /// `attempts_max` sends went unanswered or refused; whether the call took effect is unknown.
    Exhausted { shard: u16, attempts: u32 },
    /// The operation's deadline passed first; whether the call took effect is unknown.
    DeadlineExceeded { shard: u16, attempts: u32 },
    /// The shard is not in the shard map (nothing was sent).
    NoSuchShard { shard: u16 },
    /// The shard remembers a newer request of this client id: the call is never applied.
    Stale { shard: u16 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Send (again) at the next `poll_transmit`.
    Send,
    /// Sent to the call's target; wait for an answer until `until`.
    Awaiting { until: MonoTime },
    /// Wait before sending again.
    Backoff { until: MonoTime },
}

#[derive(Debug)]
struct Call {
    req: ReqId,
    shard: u16,
    call: ShardCall,
    deadline: MonoTime,
    phase: Phase,
    /// The node the latest attempt went to.
    target: Option<NodeId>,
    sends: u32,
    backoffs: u32,
    redirects_in_row: u32,
}

/// One client's routing state: leader cache, request ids, the call in flight. See the module docs.
#[derive(Debug)]
pub struct Router<R: Rng> {
    client_id: u64,
    next_seq: u64,
    directory: ShardDirectory,
    /// The node each shard's calls go to next: the last node that answered, a hinted leader, or a
    /// replica rotated to. At most one entry per shard of the directory.
    leaders: BTreeMap<u16, NodeId>,
    config: ClientConfig,
    backoff: Backoff,
    rng: R,
    call: Option<Call>,
    event: Option<CallEvent>,
    /// The newest shard-map epoch a shard reported, when newer than the directory's.
    refresh_epoch: Option<u64>,
}

impl<R: Rng> Router<R> {
    /// `client_id` must be unique among the clients of the cluster *and* across restarts of this
    /// client (sequence numbers start again at 1): draw it from the node's generator at boot.
    pub fn new(
        client_id: u64,
        directory: ShardDirectory,
        config: ClientConfig,
        rng: R,
    ) -> Result<Router<R>, ClientConfigError> {
        config.validate()?;
        let backoff = Backoff::new(config.backoff_base_ms, config.backoff_max_ms);
        Ok(Router {
            client_id,
            next_seq: 1,
            directory,
            leaders: BTreeMap::new(),
            config,
            backoff,
            rng,
            call: None,
            event: None,
            refresh_epoch: None,
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    pub fn directory(&self) -> &ShardDirectory {
        &self.directory
    }

    /// The node `shard`'s next call goes to.
    pub fn target(&self, shard: u16) -> Option<NodeId> {
        let replicas = self.directory.replicas(shard)?;
        Some(self.leaders.get(&shard).copied().unwrap_or(replicas[0]))
    }

    /// Whether a call is in flight.
    pub fn is_busy(&self) -> bool {
        self.call.is_some() || self.event.is_some()
    }

    /// Start a call to `shard`, to be answered before `deadline`. Returns its request id, fresh and
    /// never reused by this client. Panics if a call is still in flight or its event not taken.
    pub fn begin(&mut self, shard: u16, call: ShardCall, now: MonoTime, deadline: MonoTime) -> ReqId {
        assert!(!self.is_busy(), "Router::begin with a call in flight");
        let seq = self.next_seq;
        self.next_seq = seq.checked_add(1).expect("request sequence numbers exhausted");
        let req = ReqId { client: self.client_id, seq };
        if self.directory.replicas(shard).is_none() {
            self.event = Some(CallEvent::NoSuchShard { shard });
            return req;
        }
        let phase = if now >= deadline { Phase::Backoff { until: deadline } } else { Phase::Send };
        self.call =
            Some(Call { req, shard, call, deadline, phase, target: None, sends: 0, backoffs: 0, redirects_in_row: 0 });
        self.check_deadline(now);
        req
    }

    /// The next message to send, if the call is due to be sent (again).
    pub fn poll_transmit(&mut self, now: MonoTime) -> Option<(NodeId, MetaMessage)> {
        self.check_deadline(now);
        let call = self.call.as_ref()?;
        if call.phase != Phase::Send {
            return None;
        }
        if call.sends >= self.config.attempts_max {
            let event = CallEvent::Exhausted { shard: call.shard, attempts: call.sends };
            self.finish(event);
            return None;
        }
        let to = self.target(call.shard).expect("the call's shard is in the directory");
        let epoch = self.directory.epoch();
        let timeout = self.config.request_timeout();
        let call = self.call.as_mut().expect("checked above");
        call.sends += 1;
        call.target = Some(to);
        call.phase = Phase::Awaiting { until: (now + timeout).min(call.deadline) };
        let msg = MetaMessage::Request { req: call.req, shard: call.shard, epoch, call: call.call.clone() };
        Some((to, msg))
    }

    /// When [`Router::handle_timeout`] has something to do; `None` when no call waits (the call is
    /// over, or it is due to be sent: see [`Router::poll_transmit`]).
    pub fn poll_timeout(&self) -> Option<MonoTime> {
        match self.call.as_ref()?.phase {
            Phase::Send => None,
            Phase::Awaiting { until } | Phase::Backoff { until } => Some(until),
        }
    }

    /// Advance timers: an unanswered attempt is given up on, a backoff ends, the deadline passes.
    pub fn handle_timeout(&mut self, now: MonoTime) {
        if self.check_deadline(now) {
            return;
        }
        let Some(call) = &mut self.call else { return };
        match call.phase {
            // Fault hook: give up on the attempt early (the shard may still answer it; it answers every
            // attempt of the request with the one result).
            Phase::Awaiting { until } if now >= until || buggify!("meta.spurious_timeout") => {
                let from = call.target.expect("an awaited call was sent");
                self.rotate(from);
                self.back_off(now);
            }
            Phase::Backoff { until } if now >= until => call.phase = Phase::Send,
            _ => {}
        }
    }

    /// Take in a message received from `from`. Anything not about the call in flight is ignored.
    pub fn handle_message(&mut self, from: NodeId, msg: MetaMessage, now: MonoTime) {
        let Some(call) = &mut self.call else { return };
        match msg {
            MetaMessage::Response { req, answer } if req == call.req => {
                let shard = call.shard;
                self.leaders.insert(shard, from);
                self.finish(CallEvent::Answered(answer));
            }
            MetaMessage::NotLeader { req, shard, leader, epoch } if req == call.req && shard == call.shard => {
                let stale = epoch > self.directory.epoch();
                if stale {
                    self.refresh_epoch = Some(self.refresh_epoch.map_or(epoch, |e| e.max(epoch)));
                }
                if !is_current_attempt(call, from) {
                    return;
                }
                if stale {
                    // Our shard map is older than the node's: the call is retried (redirected or rotated)
                    // while the caller fetches the newer map.
                    mark!("meta.stale_epoch_retry");
                }
                match leader {
                    Some(leader) if leader != from => {
                        self.leaders.insert(shard, leader);
                        if call.redirects_in_row < REDIRECTS_IMMEDIATE_MAX {
                            call.redirects_in_row += 1;
                            call.phase = Phase::Send;
                        } else {
                            call.redirects_in_row = 0;
                            self.back_off(now);
                        }
                    }
                    _ => {
                        self.rotate(from);
                        self.back_off(now);
                    }
                }
            }
            MetaMessage::Busy { req } if req == call.req && is_current_attempt(call, from) => self.back_off(now),
            MetaMessage::Stale { req } if req == call.req => {
                let shard = call.shard;
                self.finish(CallEvent::Stale { shard });
            }
            _ => {}
        }
    }

    /// How the call in flight ended, once it has.
    pub fn poll_event(&mut self) -> Option<CallEvent> {
        self.event.take()
    }

    /// The newer shard-map epoch a shard reported since the last [`Router::set_directory`], once.
    pub fn take_refresh(&mut self) -> Option<u64> {
        self.refresh_epoch.take()
    }

    /// Route with `directory` from now on, if it is not older than the current one (an older one is
    /// ignored: `Ok(false)`). Cached leaders that are no longer replicas of their shard are dropped.
    /// The shard count never changes: a different one is refused.
    pub fn set_directory(&mut self, directory: ShardDirectory) -> Result<bool, DirectoryError> {
        if directory.shard_count() != self.directory.shard_count() {
            return Err(DirectoryError::ShardCountChanged {
                from: self.directory.shard_count(),
                to: directory.shard_count(),
            });
        }
        if directory.epoch() < self.directory.epoch() {
            return Ok(false);
        }
        self.leaders.retain(|shard, node| directory.replicas(*shard).is_some_and(|r| r.contains(node)));
        self.directory = directory;
        Ok(true)
    }

    /// A jittered wait for the `attempt`-th (from 0) retry of a whole operation (the driver's
    /// `Backoff`), from the same schedule and generator as the calls' backoffs.
    pub fn op_backoff(&mut self, attempt: u32) -> core::time::Duration {
        self.backoff.delay(attempt, &mut self.rng)
    }

    /// Forget the call in flight and its event, if any (the caller gives up on it; its outcome stays
    /// unknown). Its request id is never reused.
    pub fn abandon(&mut self) {
        self.call = None;
        self.event = None;
    }

    /// Ends the call if its deadline has passed; true if it did.
    fn check_deadline(&mut self, now: MonoTime) -> bool {
        match &self.call {
            Some(call) if now >= call.deadline => {
                let event = CallEvent::DeadlineExceeded { shard: call.shard, attempts: call.sends };
                self.finish(event);
                true
            }
            _ => false,
        }
    }

    fn finish(&mut self, event: CallEvent) {
        assert!(self.event.is_none(), "a call ended twice");
        self.call = None;
        self.event = Some(event);
    }

    fn back_off(&mut self, now: MonoTime) {
        let call = self.call.as_mut().expect("backing off a call in flight");
        let wait = self.backoff.delay(call.backoffs, &mut self.rng);
        call.backoffs = call.backoffs.saturating_add(1);
        call.phase = Phase::Backoff { until: (now + wait).min(call.deadline) };
    }

    /// `from` did not serve the call's shard: the next call goes to the replica after it.
    fn rotate(&mut self, from: NodeId) {
        let shard = self.call.as_ref().expect("rotating for a call in flight").shard;
        let replicas = self.directory.replicas(shard).expect("the call's shard is in the directory");
        let next = match replicas.iter().position(|&n| n == from) {
            Some(i) => replicas[(i + 1) % replicas.len()],
            None => replicas[0],
        };
        self.leaders.insert(shard, next);
    }
}

/// Whether a `NotLeader` or `Busy` from `from` answers the call's latest attempt.
fn is_current_attempt(call: &Call, from: NodeId) -> bool {
    matches!(call.phase, Phase::Awaiting { .. }) && call.target == Some(from)
}
