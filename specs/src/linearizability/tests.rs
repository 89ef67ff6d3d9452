//! The checker on registers, counters and logs: classic histories, pending operations, the budget, and
//! random histories checked against brute force.

use proptest::prelude::*;

use super::{Event, History, Outcome, SequentialModel, check};

/// A read/write register holding a u64, initially 0.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Register(u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RegOp {
    Read,
    Write(u64),
}

impl SequentialModel for Register {
    type Op = RegOp;
    /// A read's value; a write answers `None`.
    type Ret = Option<u64>;
    fn step(&mut self, op: &RegOp) -> Option<u64> {
        match *op {
            RegOp::Read => Some(self.0),
            RegOp::Write(v) => {
                self.0 = v;
                None
            }
        }
    }
}

/// A counter: `true` increments and answers the new value, `false` reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Counter(u64);

impl SequentialModel for Counter {
    type Op = bool;
    type Ret = u64;
    fn step(&mut self, increment: &bool) -> u64 {
        self.0 += u64::from(*increment);
        self.0
    }
}

/// An append-only log: `Some(v)` appends v (answering nothing), `None` reads the whole log. Every
/// order of appends gives a distinct state, so memoisation cannot help: the budget test's worst case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Log(Vec<u64>);

impl SequentialModel for Log {
    type Op = Option<u64>;
    type Ret = Vec<u64>;
    fn step(&mut self, op: &Option<u64>) -> Vec<u64> {
        match op {
            Some(v) => {
                self.0.push(*v);
                Vec::new()
            }
            None => self.0.clone(),
        }
    }
}

fn ev<Op, Ret>(client: u64, op: Op, ret: Option<Ret>, invoke_ns: u64, complete_ns: u64) -> Event<Op, Ret> {
    Event { client, op, ret, invoke_ns, complete_ns }
}

fn reg(events: Vec<Event<RegOp, Option<u64>>>) -> Outcome {
    check(&Register(0), &History { events }, 100_000)
}

const W: fn(u64) -> RegOp = RegOp::Write;
const R: RegOp = RegOp::Read;

#[test]
fn empty_history_is_linearizable() {
    assert_eq!(reg(vec![]), Outcome::Linearizable { order: vec![] });
}

#[test]
fn concurrent_read_may_see_either_value() {
    for seen in [0, 1] {
        let out = reg(vec![ev(1, W(1), Some(None), 0, 10), ev(2, R, Some(Some(seen)), 5, 15)]);
        assert!(out.is_linearizable(), "read {seen}: {out:?}");
    }
    let out = reg(vec![ev(1, W(1), Some(None), 0, 10), ev(2, R, Some(Some(0)), 5, 15)]);
    assert_eq!(out, Outcome::Linearizable { order: vec![1, 0] }, "the read goes first");
}

#[test]
fn stale_read_after_the_write_completed_is_not_linearizable() {
    let out = reg(vec![ev(1, W(1), Some(None), 0, 10), ev(2, R, Some(Some(0)), 20, 30)]);
    let Outcome::NotLinearizable { prefix, stuck, reason } = out else { panic!("{out:?}") };
    assert_eq!((prefix, stuck), (vec![0], 1));
    assert!(reason.contains("#1 client 2 Read -> Some(0)") && reason.contains("model answers Some(1)"), "{reason}");
}

#[test]
fn reads_cannot_go_back_in_time() {
    // W(1) is concurrent with both reads, but once a read returned 1, a later read cannot return 0.
    let events =
        vec![ev(1, W(1), Some(None), 0, 100), ev(2, R, Some(Some(1)), 10, 20), ev(3, R, Some(Some(0)), 30, 40)];
    assert!(!reg(events).is_linearizable());
    let events =
        vec![ev(1, W(1), Some(None), 0, 100), ev(2, R, Some(Some(0)), 10, 20), ev(3, R, Some(Some(1)), 30, 40)];
    assert!(reg(events).is_linearizable());
}

#[test]
fn a_value_never_written_is_not_linearizable() {
    let out = reg(vec![ev(1, W(1), Some(None), 0, 10), ev(2, R, Some(Some(2)), 5, 15)]);
    assert!(matches!(out, Outcome::NotLinearizable { stuck: 1, .. }), "{out:?}");
}

#[test]
fn touching_intervals_count_as_concurrent() {
    // The write completes at 10, the read starts at 10: either order is allowed.
    let out = reg(vec![ev(1, W(1), Some(None), 0, 10), ev(2, R, Some(Some(0)), 10, 20)]);
    assert!(out.is_linearizable());
}

#[test]
fn counter_increments() {
    let c = |events| check(&Counter(0), &History { events }, 100_000);
    let both = |a, b| vec![ev(1, true, Some(a), 0, 10), ev(2, true, Some(b), 5, 15)];
    assert!(c(both(1, 2)).is_linearizable());
    assert!(c(both(2, 1)).is_linearizable());
    assert!(!c(both(1, 1)).is_linearizable(), "a lost update");
    // A read between two completed increments must see 2 ... unless it overlaps one of them.
    let mut events = vec![ev(1, true, Some(1), 0, 10), ev(2, true, Some(2), 20, 30), ev(3, false, Some(1), 40, 50)];
    assert!(!c(events.clone()).is_linearizable());
    events[2].invoke_ns = 25;
    assert!(c(events).is_linearizable());
}

#[test]
fn pending_operations_may_take_effect_or_not() {
    let pending_write = ev(1, W(1), None, 0, 0);
    // Never observed: it need not have happened.
    assert!(reg(vec![pending_write.clone(), ev(2, R, Some(Some(0)), 50, 60)]).is_linearizable());
    // Observed: it must have happened, even long after the client gave up.
    let out = reg(vec![pending_write.clone(), ev(2, R, Some(Some(1)), 1_000, 1_010)]);
    assert_eq!(out, Outcome::Linearizable { order: vec![0, 1] });
    // Not before it was invoked.
    let out = reg(vec![ev(2, R, Some(Some(1)), 0, 10), ev(1, W(1), None, 20, 0)]);
    assert!(matches!(out, Outcome::NotLinearizable { stuck: 0, .. }), "{out:?}");
    // Once observed, it cannot be undone.
    let events = vec![pending_write.clone(), ev(2, R, Some(Some(1)), 10, 20), ev(3, R, Some(Some(0)), 30, 40)];
    assert!(!reg(events).is_linearizable());
    // Late: 0 then 1 is fine.
    let events = vec![pending_write, ev(2, R, Some(Some(0)), 10, 20), ev(3, R, Some(Some(1)), 30, 40)];
    assert!(reg(events).is_linearizable());
}

#[test]
fn pending_increment_explains_a_jump() {
    let c = |events| check(&Counter(0), &History { events }, 100_000);
    let events = vec![ev(1, true, None, 0, 0), ev(2, true, Some(2), 10, 20)];
    assert!(c(events).is_linearizable());
    let events = vec![ev(1, true, None, 0, 0), ev(2, true, Some(3), 10, 20)];
    assert!(!c(events).is_linearizable(), "one pending increment cannot explain two");
}

#[test]
fn the_budget_gives_too_large_never_a_pass() {
    // 12 concurrent appends without responses, then a read that saw them in the reverse order: the
    // depth-first search tries the ascending orders first and runs out of budget.
    let mut events: Vec<Event<Option<u64>, Vec<u64>>> = (0..12).map(|v| ev(v, Some(v), None, 0, 0)).collect();
    events.push(ev(99, None, Some((0..12).rev().collect()), 1, 2));
    let history = History { events };
    assert_eq!(check(&Log(vec![]), &history, 1_000), Outcome::TooLarge { explored: 1_000 });
    // Not linearizable (7 was never appended): a tiny budget must give TooLarge, not a verdict.
    let mut events: Vec<Event<Option<u64>, Vec<u64>>> = (0..6).map(|v| ev(v, Some(v), Some(vec![]), 0, 100)).collect();
    events.push(ev(99, None, Some(vec![7]), 200, 300));
    let history = History { events };
    assert_eq!(check(&Log(vec![]), &history, 10), Outcome::TooLarge { explored: 10 });
    assert!(matches!(check(&Log(vec![]), &history, 1_000_000), Outcome::NotLinearizable { stuck: 6, .. }));
}

#[test]
fn recorder_api() {
    let mut h = History::new();
    let w = h.invoke(1, W(7), 0);
    let r = h.invoke(2, R, 1);
    h.complete(r, Some(7), 5);
    let lost = h.invoke(3, W(9), 6);
    assert_eq!(h.events[lost].ret, None);
    h.complete(w, None, 10);
    assert_eq!(check(&Register(0), &h, 1_000), Outcome::Linearizable { order: vec![0, 1] });
}

#[test]
#[should_panic(expected = "completes before its invocation")]
fn a_response_before_its_invocation_is_a_recorder_bug() {
    reg(vec![ev(1, R, Some(Some(0)), 10, 5)]);
}

/// Brute force: some permutation of the completed events and a subset of the pending ones, respecting
/// real time, reproduces every response.
fn brute_force(events: &[Event<RegOp, Option<u64>>]) -> bool {
    fn go(events: &[Event<RegOp, Option<u64>>], used: &mut Vec<bool>, state: Register) -> bool {
        let all_done = events.iter().zip(used.iter()).all(|(e, &u)| u || e.ret.is_none());
        if all_done {
            return true;
        }
        for i in 0..events.len() {
            if used[i] {
                continue;
            }
            // `i` may go next only if no unused completed event finished before it was invoked.
            let blocked = (0..events.len())
                .any(|j| !used[j] && j != i && events[j].ret.is_some() && events[j].complete_ns < events[i].invoke_ns);
            if blocked {
                continue;
            }
            let mut next = state.clone();
            let ret = next.step(&events[i].op);
            if events[i].ret.as_ref().is_none_or(|r| *r == ret) {
                used[i] = true;
                if go(events, used, next) {
                    return true;
                }
                used[i] = false;
            }
        }
        false
    }
    go(events, &mut vec![false; events.len()], Register(0))
}

fn random_event() -> impl Strategy<Value = Event<RegOp, Option<u64>>> {
    (0..3u64, any::<bool>(), 0..3u64, 0..40u64, 0..20u64, 0..5u8).prop_map(|(client, write, v, start, len, pend)| {
        let op = if write { RegOp::Write(v) } else { RegOp::Read };
        let ret = match (pend, op) {
            (0, _) => None,
            (_, RegOp::Write(_)) => Some(None),
            (_, RegOp::Read) => Some(Some(v)),
        };
        ev(client, op, ret, start, start + len)
    })
}

/// A history generated from a real execution: each event takes effect at a point inside its interval.
fn linearizable_history() -> impl Strategy<Value = Vec<Event<RegOp, Option<u64>>>> {
    proptest::collection::vec((any::<bool>(), 0..5u64, 0..100u64, 0..30u64, 0..30u64), 0..12).prop_map(|specs| {
        let mut events: Vec<(u64, Event<RegOp, Option<u64>>)> = specs
            .into_iter()
            .enumerate()
            .map(|(i, (write, v, point, before, after))| {
                let op = if write { RegOp::Write(v) } else { RegOp::Read };
                let pending = after == 0 && i % 2 == 0;
                (
                    point,
                    ev(
                        i as u64,
                        op,
                        if pending { None } else { Some(None) },
                        point.saturating_sub(before),
                        point + after,
                    ),
                )
            })
            .collect();
        events.sort_by_key(|(point, _)| *point);
        let mut model = Register(0);
        for (_, e) in &mut events {
            let ret = model.step(&e.op);
            if e.ret.is_some() {
                e.ret = Some(ret);
            }
        }
        events.into_iter().map(|(_, e)| e).collect()
    })
}

proptest! {
    #[test]
    fn agrees_with_brute_force(events in proptest::collection::vec(random_event(), 0..7)) {
        let out = reg(events.clone());
        prop_assert!(!matches!(out, Outcome::TooLarge { .. }), "budget exhausted: {:?}", out);
        prop_assert_eq!(out.is_linearizable(), brute_force(&events), "{:?}", out);
        if let Outcome::Linearizable { order } = out {
            // The order is valid: replay it.
            let mut model = Register(0);
            for (k, &i) in order.iter().enumerate() {
                let ret = model.step(&events[i].op);
                prop_assert!(events[i].ret.as_ref().is_none_or(|r| *r == ret));
                for &j in &order[k + 1..] {
                    prop_assert!(events[j].ret.is_none() || events[j].complete_ns >= events[i].invoke_ns);
                }
            }
        }
    }

    #[test]
    fn executions_are_linearizable(events in linearizable_history()) {
        let out = reg(events);
        prop_assert!(out.is_linearizable(), "{:?}", out);
    }

    #[test]
    fn sequential_histories_are_linearizable_and_a_changed_read_is_not(
        ops in proptest::collection::vec((any::<bool>(), 0..4u64), 1..40),
        pick in any::<prop::sample::Index>(),
        delta in 1..4u64,
    ) {
        let mut model = Register(0);
        let mut events: Vec<_> = ops.iter().enumerate().map(|(i, &(write, v))| {
            let op = if write { RegOp::Write(v) } else { RegOp::Read };
            let t = 10 * i as u64;
            ev(i as u64 % 3, op, Some(model.step(&op)), t, t + 5)
        }).collect();
        let out = reg(events.clone());
        prop_assert_eq!(out, Outcome::Linearizable { order: (0..events.len()).collect() });
        let reads: Vec<usize> = (0..events.len()).filter(|&i| events[i].op == RegOp::Read).collect();
        if !reads.is_empty() {
            let i = reads[pick.index(reads.len())];
            let Some(Some(v)) = events[i].ret else { unreachable!() };
            events[i].ret = Some(Some(v + delta));
            let out = reg(events);
            prop_assert!(matches!(out, Outcome::NotLinearizable { stuck, .. } if stuck == i), "{:?}", out);
        }
    }
}
