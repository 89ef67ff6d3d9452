//! [`SendQueue`]: the bounded queue of messages waiting for one connection's writer.
//!
//! `Net::send` pushes without waiting (or is refused when the bound is hit); the link's writer task pops.
//! One queue per outbound peer (it outlives connections: messages keep queueing while the peer task
//! reconnects) and one per inbound connection (replies to a dialler that has no listening address; it
//! dies with the connection).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tessera_env::NodeId;
use tokio::sync::Notify;

use super::frame::HEADER_BYTES;
use super::lock;
use super::stats::{Counters, add, sub};

/// One message waiting to be framed and written.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub from: NodeId,
    pub to: NodeId,
    pub payload: Vec<u8>,
}

impl Outgoing {
    /// What the message costs against a byte bound: its frame, header included.
    pub(crate) fn frame_bytes(&self) -> u64 {
        (HEADER_BYTES + self.payload.len()) as u64
    }
}

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    /// Over the message or byte bound.
    Full,
    /// The queue's connection is gone (inbound queues only).
    Closed,
}

#[derive(Debug, Default)]
struct State {
    messages: VecDeque<Outgoing>,
    bytes: u64,
    closed: bool,
}

/// A bounded multi-producer, single-consumer queue of [`Outgoing`] messages that keeps the transport's
/// queue gauges up to date.
#[derive(Debug)]
pub(crate) struct SendQueue {
    state: Mutex<State>,
    /// Woken on every push; holds a permit when the consumer is not waiting, so no wake-up is lost.
    pushed: Notify,
    messages_max: usize,
    bytes_max: u64,
    counters: Arc<Counters>,
}

impl SendQueue {
    pub(crate) fn new(messages_max: usize, bytes_max: u64, counters: Arc<Counters>) -> SendQueue {
        assert!(messages_max > 0 && bytes_max > 0, "send queue bounds must be positive");
        SendQueue { state: Mutex::new(State::default()), pushed: Notify::new(), messages_max, bytes_max, counters }
    }

    /// Queue `message` unless the queue is full or closed. Never waits.
    pub(crate) fn push(&self, message: Outgoing) -> Result<(), PushError> {
        let bytes = message.frame_bytes();
        {
            let mut state = lock(&self.state);
            if state.closed {
                return Err(PushError::Closed);
            }
            if state.messages.len() >= self.messages_max || state.bytes + bytes > self.bytes_max {
                return Err(PushError::Full);
            }
            state.messages.push_back(message);
            state.bytes += bytes;
            add(&self.counters.send_queue_messages, 1);
            add(&self.counters.send_queue_bytes, bytes);
        }
        self.pushed.notify_one();
        Ok(())
    }

    /// The oldest message, if any.
    pub(crate) fn try_pop(&self) -> Option<Outgoing> {
        let mut state = lock(&self.state);
        let message = state.messages.pop_front()?;
        let bytes = message.frame_bytes();
        assert!(state.bytes >= bytes, "send queue byte count out of step");
        state.bytes -= bytes;
        sub(&self.counters.send_queue_messages, 1);
        sub(&self.counters.send_queue_bytes, bytes);
        Some(message)
    }

    /// Wait until the queue holds a message. Cancel-safe. Only one task (the queue's writer) waits.
    pub(crate) async fn wait_nonempty(&self) {
        loop {
            if !lock(&self.state).messages.is_empty() {
                return;
            }
            self.pushed.notified().await;
        }
    }

    /// Drop every queued message, counting them as dropped; returns how many.
    pub(crate) fn clear(&self) -> u64 {
        let mut state = lock(&self.state);
        let count = state.messages.len() as u64;
        state.messages.clear();
        sub(&self.counters.send_queue_messages, count);
        sub(&self.counters.send_queue_bytes, state.bytes);
        state.bytes = 0;
        add(&self.counters.messages_dropped_total, count);
        count
    }

    /// Clear and refuse every later push.
    pub(crate) fn close(&self) -> u64 {
        lock(&self.state).closed = true;
        self.clear()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.state).messages.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(size_bytes: usize) -> Outgoing {
        Outgoing { from: NodeId(1), to: NodeId(2), payload: vec![7; size_bytes] }
    }

    #[test]
    fn bounds_by_messages_and_by_bytes_and_keeps_gauges() {
        let counters = Arc::new(Counters::default());
        let queue = SendQueue::new(2, 1000, counters.clone());
        queue.push(message(10)).expect("room");
        queue.push(message(10)).expect("room");
        assert_eq!(queue.push(message(10)), Err(PushError::Full), "message bound");
        assert_eq!(counters.snapshot().send_queue_messages, 2);
        assert_eq!(counters.snapshot().send_queue_bytes, 2 * (10 + HEADER_BYTES as u64));
        assert_eq!(queue.try_pop().map(|m| m.payload.len()), Some(10));
        assert_eq!(queue.push(message(1000)), Err(PushError::Full), "byte bound");
        assert_eq!(queue.clear(), 1);
        let stats = counters.snapshot();
        assert_eq!((stats.send_queue_messages, stats.send_queue_bytes, stats.messages_dropped_total), (0, 0, 1));
    }

    #[test]
    fn closed_queue_refuses_pushes() {
        let queue = SendQueue::new(10, 10_000, Arc::new(Counters::default()));
        queue.push(message(1)).expect("room");
        assert_eq!(queue.close(), 1);
        assert_eq!(queue.push(message(1)), Err(PushError::Closed));
        assert_eq!(queue.len(), 0);
    }
}
