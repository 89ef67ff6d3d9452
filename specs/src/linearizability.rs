//! A linearizability checker for concurrent histories against a sequential model.
//!
//! A history is linearizable if every operation can be given a point in time between its invocation
//! and its response at which it takes effect atomically, such that applying the operations to the
//! sequential model in that order gives every response that was observed. An operation without a
//! response (the client timed out or crashed) may take effect at any point after its invocation, or
//! never.
//!
//! The search is Wing & Gong's, with Lowe's just-in-time linearization and memoisation (as in
//! Porcupine): walk the invocations and responses in time order; at an invocation, try to linearize
//! that operation now (step the model, compare the response) and restart from the earliest event left;
//! at a response whose operation has not been linearized yet, backtrack. A (set of linearized
//! operations, model state) pair already explored is not explored again. The search is bounded by a
//! budget of model steps; when it runs out the answer is [`Outcome::TooLarge`], never a pass.
//!
//! Timing: operation A precedes B only if A's response came strictly before B's invocation
//! (`A.complete_ns < B.invoke_ns`); equal times count as concurrent, the lenient reading of two
//! clocks that cannot tell the order.

use std::collections::HashSet;
use std::collections::hash_map::DefaultHasher;
use std::fmt::Debug;
use std::hash::{BuildHasherDefault, Hash};

/// A deterministic sequential specification. Equal states must behave the same from then on: the
/// checker memoises on `Eq + Hash` of the whole state.
pub trait SequentialModel: Clone + Eq + Hash {
    type Op: Debug;
    type Ret: PartialEq + Debug;
    /// Apply one operation and return its response.
    fn step(&mut self, op: &Self::Op) -> Self::Ret;
}

/// One operation in a concurrent history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event<Op, Ret> {
    /// Who issued it (for reports; the checker does not assume a client's operations are sequential).
    pub client: u64,
    pub op: Op,
    /// The response; `None` if none came (timed out, crashed): the operation may have taken effect
    /// at any point after its invocation, or never.
    pub ret: Option<Ret>,
    pub invoke_ns: u64,
    /// When the response arrived; ignored when `ret` is `None`.
    pub complete_ns: u64,
}

/// A concurrent history: operations with their invocation and response times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History<Op, Ret> {
    pub events: Vec<Event<Op, Ret>>,
}

impl<Op, Ret> Default for History<Op, Ret> {
    fn default() -> Self {
        History { events: Vec::new() }
    }
}

impl<Op, Ret> History<Op, Ret> {
    pub fn new() -> Self {
        History::default()
    }

    /// Record an invocation; returns its index for [`History::complete`]. Until completed it has no
    /// response.
    pub fn invoke(&mut self, client: u64, op: Op, invoke_ns: u64) -> usize {
        self.events.push(Event { client, op, ret: None, invoke_ns, complete_ns: u64::MAX });
        self.events.len() - 1
    }

    /// Record the response of invocation `index`.
    pub fn complete(&mut self, index: usize, ret: Ret, complete_ns: u64) {
        let event = &mut self.events[index];
        assert!(event.ret.is_none(), "event {index} completed twice");
        assert!(complete_ns >= event.invoke_ns, "event {index} completes before its invocation");
        event.ret = Some(ret);
        event.complete_ns = complete_ns;
    }
}

/// The checker's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A valid order: event indices in linearization order. It holds every completed event and the
    /// pending events that had to (or could) take effect; pending events left out never took effect.
    Linearizable { order: Vec<usize> },
    /// No valid order exists. `prefix` is the longest order of events the search could build, and
    /// `stuck` the event that had to come next (its response is due) but could not be placed after it
    /// nor after any other order; `reason` says so in words, with the model's answer at that point.
    NotLinearizable { prefix: Vec<usize>, stuck: usize, reason: String },
    /// The budget of model steps ran out before a verdict: nothing is known.
    TooLarge { explored: u64 },
}

impl Outcome {
    /// Only [`Outcome::Linearizable`] is a pass.
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Outcome::Linearizable { .. })
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    event: usize,
    is_call: bool,
}

/// Which events are linearized, as a bitset.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// A linearized event and what to restore when it is taken back.
struct Frame<M> {
    event: usize,
    /// Where its invocation is in the entry list: the search resumes after it.
    pos: usize,
    before: M,
}

type Seen<M> = HashSet<(Bits, M), BuildHasherDefault<DefaultHasher>>;

/// Check `history` against the model starting in state `init`, exploring at most `budget_states` model
/// steps. Panics if a completed event's response precedes its invocation (a broken recorder).
pub fn check<M: SequentialModel>(init: &M, history: &History<M::Op, M::Ret>, budget_states: u64) -> Outcome {
    let events = &history.events;
    let entries = entries(events);
    let mut remaining = events.iter().filter(|e| e.ret.is_some()).count();
    let mut lifted = vec![false; events.len()];
    let mut bits = Bits::new(events.len());
    let mut seen: Seen<M> = HashSet::default();
    let mut stack: Vec<Frame<M>> = Vec::new();
    let mut state = init.clone();
    let mut explored = 0u64;
    let mut deepest: Option<(Vec<usize>, usize)> = None;
    let mut i = 0;
    loop {
        if remaining == 0 {
            return Outcome::Linearizable { order: stack.iter().map(|f| f.event).collect() };
        }
        // Some completed event is not linearized, so an unlifted response lies ahead.
        while lifted[entries[i].event] {
            i += 1;
        }
        let Entry { event, is_call } = entries[i];
        if is_call {
            if explored >= budget_states {
                return Outcome::TooLarge { explored };
            }
            explored += 1;
            let mut next = state.clone();
            let ret = next.step(&events[event].op);
            if events[event].ret.as_ref().is_none_or(|observed| *observed == ret) {
                bits.set(event);
                if seen.insert((bits.clone(), next.clone())) {
                    let before = std::mem::replace(&mut state, next);
                    stack.push(Frame { event, pos: i, before });
                    lifted[event] = true;
                    remaining -= usize::from(events[event].ret.is_some());
                    i = 0;
                    continue;
                }
                bits.clear(event);
            }
            i += 1;
        } else {
            // `event`'s response is due and it is not linearized: take back the last choice.
            if deepest.as_ref().is_none_or(|(prefix, _)| stack.len() > prefix.len()) {
                deepest = Some((stack.iter().map(|f| f.event).collect(), event));
            }
            let Some(frame) = stack.pop() else {
                let (prefix, stuck) = deepest.expect("recorded above");
                let reason = explain(init, events, &prefix, stuck);
                return Outcome::NotLinearizable { prefix, stuck, reason };
            };
            state = frame.before;
            lifted[frame.event] = false;
            bits.clear(frame.event);
            remaining += usize::from(events[frame.event].ret.is_some());
            i = frame.pos + 1;
        }
    }
}

/// Invocations and responses in time order; at equal times invocations first (so such operations
/// count as concurrent). Pending events have no response entry.
fn entries<Op, Ret>(events: &[Event<Op, Ret>]) -> Vec<Entry> {
    let mut timed: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * events.len());
    for (index, e) in events.iter().enumerate() {
        timed.push((e.invoke_ns, false, index));
        if e.ret.is_some() {
            assert!(e.complete_ns >= e.invoke_ns, "event {index} completes before its invocation");
            timed.push((e.complete_ns, true, index));
        }
    }
    timed.sort_unstable();
    timed.into_iter().map(|(_, is_return, event)| Entry { event, is_call: !is_return }).collect()
}

/// Words for a failed check: the longest order found and why the next event does not fit.
fn explain<M: SequentialModel>(init: &M, events: &[Event<M::Op, M::Ret>], prefix: &[usize], stuck: usize) -> String {
    let mut state = init.clone();
    for &e in prefix {
        state.step(&events[e].op);
    }
    let model_says = state.step(&events[stuck].op);
    let completed = events.iter().filter(|e| e.ret.is_some()).count();
    let describe = |e: usize| {
        let ev = &events[e];
        match &ev.ret {
            Some(ret) => {
                format!("#{e} client {} {:?} -> {ret:?} [{}..{} ns]", ev.client, ev.op, ev.invoke_ns, ev.complete_ns)
            }
            None => format!("#{e} client {} {:?} -> (no response) [{}.. ns]", ev.client, ev.op, ev.invoke_ns),
        }
    };
    const SHOWN: usize = 12;
    let skipped = prefix.len().saturating_sub(SHOWN);
    let mut shown: Vec<String> = prefix[skipped..].iter().map(|&e| describe(e)).collect();
    if skipped > 0 {
        shown.insert(0, format!("... {skipped} earlier"));
    }
    format!(
        "not linearizable: the longest valid order covers {} of {} events ({} completed); after [{}], {} must take \
         effect before its response, but there the model answers {:?}, and no other order of the concurrent \
         operations gets further",
        prefix.len(),
        events.len(),
        completed,
        shown.join("; "),
        describe(stuck),
        model_says
    )
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_posix;
