//! The client: writes extents to two replicas in distinct racks during the safety phase and remembers
//! every acknowledgement; after healing, reads every acknowledged extent back and compares the bytes.
//!
//! The client node is never crashed, so its memory of acknowledgements is the ground truth.

use std::time::Duration;

use tessera_env::{Clock, DetRng, Net, NodeId, Rng};

use super::config::WorkloadConfig;
use super::wire::{ExtentRef, Message};
use crate::env::SimClock;
use crate::net::SimNet;
use crate::trace::{Trace, fnv64};

/// One acknowledged write: `node` promised that `at` holds `data`, durably.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    pub node: NodeId,
    pub at: ExtentRef,
    pub data: Vec<u8>,
}

/// What the safety phase did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PutReport {
    pub acks: Vec<Ack>,
    /// Replica writes that never got an acknowledgement (allowed under faults).
    pub unacked: u64,
}

#[derive(Debug)]
pub struct Client {
    net: SimNet,
    rng: DetRng,
    trace: Trace,
    next_req_id: u64,
}

impl Client {
    pub fn new(net: SimNet, rng: DetRng, trace: Trace) -> Client {
        Client { net, rng, trace, next_req_id: 1 }
    }

    fn record(&self, event: std::fmt::Arguments<'_>) {
        self.trace.record("client", event);
    }

    /// Send the request made by `make` to `to` up to `attempts` times, each with a fresh request id,
    /// and return the first reply to one of them. Stale and duplicate replies are skipped.
    async fn call(
        &mut self,
        to: NodeId,
        make: &(dyn Fn(u64) -> Message + Sync),
        timeout: Duration,
        attempts: u32,
    ) -> Option<Message> {
        let mut sent: Vec<u64> = Vec::new();
        for _ in 0..attempts {
            let req_id = self.next_req_id;
            self.next_req_id += 1;
            sent.push(req_id);
            if self.net.send(to, make(req_id).encode()).await.is_err() {
                return None;
            }
            let deadline = SimClock.now() + timeout;
            loop {
                let left = deadline.saturating_since(SimClock.now());
                if left.is_zero() {
                    break;
                }
                match madsim::time::timeout(left, self.net.recv()).await {
                    Err(_elapsed) => break,
                    Ok(Err(_closed)) => return None,
                    Ok(Ok((from, bytes))) => match Message::decode(&bytes) {
                        Some(reply) if from == to && sent.contains(&reply.req_id()) => return Some(reply),
                        _ => continue,
                    },
                }
            }
        }
        None
    }

    /// The safety-phase workload: `puts` extents of seed-chosen sizes, each to two servers in distinct
    /// racks. `servers` lists (node, rack) and must span at least two racks.
    pub async fn put_workload(&mut self, servers: &[(NodeId, u32)], cfg: &WorkloadConfig) -> PutReport {
        let mut report = PutReport::default();
        for i in 0..cfg.puts {
            let len = self.rng.range_inclusive(1, cfg.max_put_bytes) as usize;
            let mut data = vec![0u8; len];
            self.rng.fill_bytes(&mut data);
            let (first, first_rack) = servers[self.rng.below(servers.len() as u64) as usize];
            let others: Vec<NodeId> = servers.iter().filter(|&&(_, r)| r != first_rack).map(|&(n, _)| n).collect();
            let second = others[self.rng.below(others.len() as u64) as usize];
            self.record(format_args!("put {i}: {len} bytes fp={:016x} to {first} and {second}", fnv64(&data)));
            for node in [first, second] {
                let payload = data.clone();
                let make = move |req_id| Message::Put { req_id, data: payload.clone() };
                match self.call(node, &make, cfg.put_timeout, cfg.put_attempts).await {
                    Some(Message::PutOk { at, .. }) => {
                        self.record(format_args!("put {i}: acked by {node} at {at}"));
                        report.acks.push(Ack { node, at, data: data.clone() });
                    }
                    other => {
                        self.record(format_args!("put {i}: not acked by {node}: {:?}", other.map(|m| short(&m))));
                        report.unacked += 1;
                    }
                }
            }
        }
        report
    }

    /// The liveness check: every acknowledged extent reads back with its exact bytes. Returns how many
    /// were verified, or the first failure and the count of failures.
    pub async fn check_acks(&mut self, acks: &[Ack], cfg: &WorkloadConfig) -> Result<usize, String> {
        let mut failures: Vec<String> = Vec::new();
        for ack in acks {
            let at = ack.at;
            let make = move |req_id| Message::Get { req_id, at };
            let verdict = match self.call(ack.node, &make, cfg.get_timeout, cfg.get_attempts).await {
                Some(Message::GetOk { data, .. }) if data == ack.data => None,
                Some(Message::GetOk { data, .. }) => Some(format!(
                    "{} returned different bytes for acked {at}: {} bytes fp={:016x}, acked {} bytes fp={:016x}",
                    ack.node,
                    data.len(),
                    fnv64(&data),
                    ack.data.len(),
                    fnv64(&ack.data)
                )),
                Some(Message::GetErr { reason, .. }) => Some(format!("{} lost acked {at}: {reason}", ack.node)),
                Some(other) => Some(format!("{} answered a Get with {}", ack.node, short(&other))),
                None => Some(format!("{} never answered a Get for acked {at} after healing", ack.node)),
            };
            match verdict {
                None => self.record(format_args!("verified {} {at}", ack.node)),
                Some(failure) => {
                    self.record(format_args!("FAILED: {failure}"));
                    failures.push(failure);
                }
            }
        }
        match failures.first() {
            None => Ok(acks.len()),
            Some(first) if failures.len() == 1 => Err(first.clone()),
            Some(first) => Err(format!("{first} (and {} more acked extents failed)", failures.len() - 1)),
        }
    }
}

fn short(m: &Message) -> String {
    match m {
        Message::Put { req_id, data } => format!("Put #{req_id} {} bytes", data.len()),
        Message::GetOk { req_id, data } => format!("GetOk #{req_id} {} bytes", data.len()),
        other => format!("{other:?}"),
    }
}
