//! The router stepped by hand: which node each attempt goes to, what each answer does, the backoff
//! schedule, the bounds.

use core::time::Duration;

use tessera_env::{DetRng, MonoTime, NodeId};

use crate::client::{CallEvent, ClientConfig, DirectoryError, REDIRECTS_IMMEDIATE_MAX, Router, ShardDirectory};
use crate::exec::{ReqId, ShardAnswer, ShardCall};
use crate::wire::MetaMessage;
use crate::{InodeId, MetaOp, MetaReply};

const N1: NodeId = NodeId(1);
const N2: NodeId = NodeId(2);
const N3: NodeId = NodeId(3);
const N9: NodeId = NodeId(9);

fn config() -> ClientConfig {
    ClientConfig {
        request_timeout_ms: 100,
        attempts_max: 6,
        backoff_base_ms: 10,
        backoff_max_ms: 80,
        op_timeout_ms: 10_000,
        ..ClientConfig::default()
    }
}

fn directory(epoch: u64) -> ShardDirectory {
    ShardDirectory::from_replicas(vec![vec![N1, N2, N3], vec![N2, N3, N1]], epoch).unwrap()
}

fn router() -> Router<DetRng> {
    Router::new(42, directory(5), config(), DetRng::from_seed(1)).unwrap()
}

fn ms(n: u64) -> MonoTime {
    MonoTime::from_nanos(n * 1_000_000)
}

fn getattr() -> ShardCall {
    ShardCall::Apply { op: MetaOp::GetAttr { ino: InodeId::ROOT } }
}

fn done() -> ShardAnswer {
    ShardAnswer::Applied(Ok(Ok(MetaReply::Done)))
}

/// The one message due now: its destination and request id.
fn sent(r: &mut Router<DetRng>, now: MonoTime) -> (NodeId, ReqId) {
    let (to, msg) = r.poll_transmit(now).expect("a send is due");
    assert!(r.poll_transmit(now).is_none(), "one send at a time");
    match msg {
        MetaMessage::Request { req, shard: _, epoch, call } => {
            assert_eq!((epoch, call), (r.directory().epoch(), getattr()));
            (to, req)
        }
        other => panic!("sent {other:?}"),
    }
}

fn not_leader(req: ReqId, leader: Option<NodeId>, epoch: u64) -> MetaMessage {
    MetaMessage::NotLeader { req, shard: 0, leader, epoch }
}

/// Step time forward in 1 ms ticks until a send is due; returns when and where it went.
fn next_send(r: &mut Router<DetRng>, from: MonoTime) -> (MonoTime, NodeId, ReqId) {
    let mut now = from;
    loop {
        r.handle_timeout(now);
        if let Some((to, MetaMessage::Request { req, .. })) = r.poll_transmit(now) {
            return (now, to, req);
        }
        assert!(r.poll_event().is_none(), "the call ended while waiting for a send");
        now = now + Duration::from_millis(1);
        assert!(now < ms(100_000), "no send came");
    }
}

#[test]
fn a_call_goes_to_the_preferred_leader_and_each_call_gets_a_fresh_id() {
    let mut r = router();
    let req = r.begin(0, getattr(), ms(0), ms(10_000));
    assert_eq!(req, ReqId { client: 42, seq: 1 });
    assert_eq!(sent(&mut r, ms(0)), (N1, req));
    assert_eq!(r.poll_timeout(), Some(ms(100)));
    r.handle_message(N1, MetaMessage::Response { req, answer: done() }, ms(3));
    assert_eq!(r.poll_event(), Some(CallEvent::Answered(done())));
    assert!(!r.is_busy());
    let second = r.begin(1, getattr(), ms(4), ms(10_000));
    assert_eq!(second, ReqId { client: 42, seq: 2 });
    assert_eq!(sent(&mut r, ms(4)), (N2, second), "shard 1 prefers n2");
}

#[test]
fn a_hint_redirects_at_once_with_the_same_id_and_the_answerer_is_cached() {
    let mut r = router();
    let req = r.begin(0, getattr(), ms(0), ms(10_000));
    sent(&mut r, ms(0));
    r.handle_message(N1, not_leader(req, Some(N3), 5), ms(2));
    assert_eq!(sent(&mut r, ms(2)), (N3, req), "redirect at once, same request id");
    r.handle_message(N3, MetaMessage::Response { req, answer: done() }, ms(4));
    assert_eq!(r.poll_event(), Some(CallEvent::Answered(done())));
    assert_eq!(r.target(0), Some(N3));
    let next = r.begin(0, getattr(), ms(5), ms(10_000));
    assert_eq!(sent(&mut r, ms(5)).0, N3, "the cached leader is used first");
    assert_ne!(next, req);
    assert_eq!(r.take_refresh(), None, "same epoch: no refresh");
}

#[test]
fn no_hint_rotates_to_the_next_replica_after_a_backoff() {
    let mut r = router();
    let req = r.begin(0, getattr(), ms(0), ms(10_000));
    sent(&mut r, ms(0));
    r.handle_message(N1, not_leader(req, None, 5), ms(1));
    assert!(r.poll_transmit(ms(1)).is_none(), "no leader known: back off first");
    let (at, to, again) = next_send(&mut r, ms(1));
    assert_eq!((to, again), (N2, req));
    let waited = at.saturating_since(ms(1)).as_millis();
    assert!((5..=10).contains(&waited), "first backoff {waited} ms outside 5..=10");
    // A hint naming the sender itself is no hint.
    r.handle_message(N2, not_leader(req, Some(N2), 5), at);
    assert_eq!(next_send(&mut r, at).1, N3);
}

#[test]
fn busy_backs_off_exponentially_on_the_same_node_until_attempts_run_out() {
    let mut r = router();
    let req = r.begin(0, getattr(), ms(0), ms(10_000));
    let (mut now, mut to) = (ms(0), sent(&mut r, ms(0)).0);
    let mut waits = Vec::new();
    for _ in 1..config().attempts_max {
        r.handle_message(to, MetaMessage::Busy { req }, now);
        let (at, again, id) = next_send(&mut r, now);
        assert_eq!((again, id), (N1, req), "busy: same node, same id");
        waits.push(at.saturating_since(now).as_millis() as u64);
        (now, to) = (at, again);
    }
    for (k, w) in waits.iter().enumerate() {
        let ceiling = (10u64 << k).min(80);
        assert!(*w >= ceiling / 2 && *w <= ceiling, "backoff {k}: {w} ms, ceiling {ceiling}");
    }
    r.handle_message(to, MetaMessage::Busy { req }, now);
    let mut t = now;
    let event = loop {
        t = t + Duration::from_millis(1);
        r.handle_timeout(t);
        assert!(r.poll_transmit(t).is_none(), "no send beyond attempts_max");
        if let Some(event) = r.poll_event() {
            break event;
        }
    };
    assert_eq!(event, CallEvent::Exhausted { shard: 0, attempts: 6 });
    assert!(!r.is_busy());
}

#[test]
fn exhausted_after_attempts_max_unanswered_sends() {
    let mut r = router();
    let req = r.begin(0, getattr(), ms(0), ms(10_000));
    let mut now = ms(0);
    let mut targets = vec![sent(&mut r, now).0];
    let event = loop {
        now = now + Duration::from_millis(1);
        r.handle_timeout(now);
        if let Some((to, MetaMessage::Request { req: id, .. })) = r.poll_transmit(now) {
            assert_eq!(id, req);
            targets.push(to);
        }
        if let Some(event) = r.poll_event() {
            break event;
        }
    };
    assert_eq!(event, CallEvent::Exhausted { shard: 0, attempts: 6 });
    assert_eq!(targets, [N1, N2, N3, N1, N2, N3], "timeouts rotate through the replicas");
    assert!(now >= ms(600), "each attempt waited its timeout");
}

#[test]
fn the_deadline_ends_a_call_whatever_it_waits_for() {
    let mut r = router();
    r.begin(0, getattr(), ms(0), ms(50));
    sent(&mut r, ms(0));
    assert_eq!(r.poll_timeout(), Some(ms(50)), "the attempt's wait is cut to the deadline");
    r.handle_timeout(ms(50));
    assert_eq!(r.poll_event(), Some(CallEvent::DeadlineExceeded { shard: 0, attempts: 1 }));
    // Begun past its deadline: over before anything is sent.
    r.begin(0, getattr(), ms(60), ms(60));
    assert!(r.poll_transmit(ms(60)).is_none());
    assert_eq!(r.poll_event(), Some(CallEvent::DeadlineExceeded { shard: 0, attempts: 0 }));
}

#[test]
fn stale_duplicate_and_foreign_messages_are_ignored_but_a_late_answer_counts() {
    let mut r = router();
    let old = r.begin(0, getattr(), ms(0), ms(10_000));
    sent(&mut r, ms(0));
    r.handle_message(N1, MetaMessage::Response { req: old, answer: done() }, ms(1));
    assert!(r.poll_event().is_some());
    let req = r.begin(0, getattr(), ms(2), ms(10_000));
    assert_eq!(sent(&mut r, ms(2)).0, N1);
    // A duplicate of the previous call's answer, other clients' messages, another shard's refusal.
    r.handle_message(N1, MetaMessage::Response { req: old, answer: done() }, ms(3));
    r.handle_message(N1, MetaMessage::Busy { req: ReqId { client: 7, seq: req.seq } }, ms(3));
    r.handle_message(N1, MetaMessage::NotLeader { req, shard: 1, leader: Some(N2), epoch: 5 }, ms(3));
    // A refusal from a node the latest attempt did not go to answers an earlier attempt.
    r.handle_message(N2, not_leader(req, Some(N3), 5), ms(3));
    r.handle_message(N3, MetaMessage::Busy { req }, ms(3));
    assert!(r.poll_transmit(ms(3)).is_none() && r.poll_event().is_none());
    assert_eq!(r.poll_timeout(), Some(ms(102)), "still waiting for the same attempt");
    // Time out, back off, resend to n2; then n1's answer to the first attempt arrives late: it is the
    // request's recorded result, so it ends the call.
    let (at, to, _) = next_send(&mut r, ms(102));
    assert_eq!(to, N2);
    let answer = ShardAnswer::Applied(Ok(Err(crate::Errno::ENOENT)));
    r.handle_message(N1, MetaMessage::Response { req, answer: answer.clone() }, at);
    assert_eq!(r.poll_event(), Some(CallEvent::Answered(answer)));
    r.handle_message(N2, MetaMessage::Response { req, answer: done() }, at);
    assert_eq!(r.poll_event(), None, "a duplicate after the end is dropped");
}

#[test]
fn redirect_ping_pong_backs_off_after_a_few_immediate_hops() {
    let mut r = router();
    let req = r.begin(0, getattr(), ms(0), ms(10_000));
    let mut to = sent(&mut r, ms(0)).0;
    for _ in 0..REDIRECTS_IMMEDIATE_MAX {
        let hint = if to == N1 { N2 } else { N1 };
        r.handle_message(to, not_leader(req, Some(hint), 5), ms(1));
        to = sent(&mut r, ms(1)).0;
        assert_eq!(to, hint);
    }
    let hint = if to == N1 { N2 } else { N1 };
    r.handle_message(to, not_leader(req, Some(hint), 5), ms(1));
    assert!(r.poll_transmit(ms(1)).is_none(), "the third hop in a row waits");
    assert_eq!(next_send(&mut r, ms(1)).1, hint);
}

#[test]
fn a_newer_epoch_asks_for_a_refresh_and_a_new_directory_keeps_valid_leaders() {
    let mut r = router();
    let req = r.begin(0, getattr(), ms(0), ms(10_000));
    sent(&mut r, ms(0));
    r.handle_message(N1, not_leader(req, Some(N9), 8), ms(1));
    assert_eq!(r.take_refresh(), Some(8));
    assert_eq!(r.take_refresh(), None, "asked once");
    assert_eq!(sent(&mut r, ms(1)).0, N9, "a hint outside the old map is followed");
    r.handle_message(N9, MetaMessage::Response { req, answer: done() }, ms(2));
    r.poll_event();
    // Shard 1's leader n3 (cached) stays a replica; shard 0's n9 is not in the new map either.
    let req = r.begin(1, getattr(), ms(3), ms(10_000));
    sent(&mut r, ms(3));
    r.handle_message(N3, MetaMessage::Response { req, answer: done() }, ms(4));
    r.poll_event();
    assert_eq!(r.set_directory(directory(4)), Ok(false), "older maps are ignored");
    let newer = ShardDirectory::from_replicas(vec![vec![N2, N1], vec![N1, N3]], 8).unwrap();
    assert_eq!(r.set_directory(newer), Ok(true));
    assert_eq!((r.target(0), r.target(1)), (Some(N2), Some(N3)));
    let other = ShardDirectory::from_replicas(vec![vec![N1]], 9).unwrap();
    assert_eq!(r.set_directory(other), Err(DirectoryError::ShardCountChanged { from: 2, to: 1 }));
}

#[test]
fn a_shard_outside_the_map_ends_the_call_without_sending() {
    let mut r = router();
    r.begin(7, getattr(), ms(0), ms(10_000));
    assert!(r.poll_transmit(ms(0)).is_none());
    assert_eq!(r.poll_event(), Some(CallEvent::NoSuchShard { shard: 7 }));
}

#[test]
fn the_same_seed_gives_the_same_schedule() {
    let run = |seed: u64| {
        let mut r = Router::new(1, directory(5), config(), DetRng::from_seed(seed)).unwrap();
        let req = r.begin(0, getattr(), ms(0), ms(10_000));
        let mut now = ms(0);
        let mut sends = vec![(now, sent(&mut r, now).0)];
        for _ in 0..4 {
            r.handle_message(sends.last().unwrap().1, MetaMessage::Busy { req }, now);
            let (at, to, _) = next_send(&mut r, now);
            sends.push((at, to));
            now = at;
        }
        sends
    };
    assert_eq!(run(3), run(3));
    assert_ne!(run(3), run(4), "the jitter comes from the seed");
}

/// A shard that remembers newer requests from this client id answers `Stale`: the call ends at once
/// (it is never applied, so waiting would only run into the deadline); a `Stale` for another request is
/// ignored.
#[test]
fn stale_ends_the_call_at_once() {
    let mut r = router();
    let req = r.begin(0, getattr(), ms(0), ms(10_000));
    let to = sent(&mut r, ms(0)).0;
    r.handle_message(to, MetaMessage::Stale { req: ReqId { client: req.client, seq: req.seq + 1 } }, ms(1));
    assert_eq!(r.poll_event(), None, "a stale answer to another request is ignored");
    r.handle_message(to, MetaMessage::Stale { req }, ms(1));
    assert_eq!(r.poll_event(), Some(CallEvent::Stale { shard: 0 }));
    assert!(!r.is_busy());
}
