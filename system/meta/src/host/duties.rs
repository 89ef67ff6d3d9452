//! What a host does on its tick: Raft's clock, leadership bookkeeping, the leaders' transaction duties
//! (retransmission, prepare timeouts, queries for in-doubt intents, directory splits) and leader
//! balancing.

use std::collections::{BTreeMap, BTreeSet};

use tessera_env::{Clock, Disk, MonoTime, Net, WallClock, buggify, mark};
use tessera_raft::RaftRole;

use super::HostError;
use super::command::ShardCommand;
use super::node::{MetaHost, ms};
use crate::shard::{Envelope, TxnMsg};

impl<C: Clock, W: WallClock, N: Net, D: Disk> MetaHost<C, W, N, D> {
    pub(super) async fn on_tick(&mut self, now: MonoTime) -> Result<(), HostError> {
        self.multi.tick();
        self.refresh_map(now).await?;
        if now >= self.next_reconcile {
            self.reconcile_groups(now).await?;
        }
        if now >= self.next_balance {
            self.balance(now);
        }
        self.track_leadership(now);
        self.leader_duties(now);
        Ok(())
    }

    /// Notice leadership changes: a new leader runs its duties at once (once it applied its log); a
    /// replica that stopped leading forgets its waiters (their clients retry and are redirected).
    fn track_leadership(&mut self, now: MonoTime) {
        let mut dropped = 0;
        for (&shard, hosted) in &mut self.shards {
            let Some(status) = self.multi.status(u64::from(shard)) else { continue };
            if status.leader.is_none() {
                hosted.leaderless_since.get_or_insert(now);
            } else {
                hosted.leaderless_since = None;
            }
            if status.role == RaftRole::Leader {
                if hosted.leading_term != Some(status.term) {
                    hosted.leading_term = Some(status.term);
                    hosted.next_duty = now;
                    hosted.first_duty_of_term = true;
                    let before = hosted.waiting.len();
                    hosted.waiting.retain(|_, w| w.term == status.term);
                    dropped += before - hosted.waiting.len();
                }
            } else {
                hosted.leading_term = None;
                dropped += hosted.waiting.len();
                hosted.waiting.clear();
            }
        }
        self.waiting_total -= dropped;
    }

    /// For each group led here whose duties are due and whose log is applied: re-send what its
    /// transactions owe, propose the abort of expired prepares, query coordinators of in-doubt intents.
    fn leader_duties(&mut self, now: MonoTime) {
        let interval = ms(self.config.txn_retransmit_interval_ms);
        let due: Vec<u16> = self
            .shards
            .iter()
            .filter(|(shard, h)| {
                // Fault hook: duties early, so what is owed goes out twice (every message is idempotent).
                h.leading_term.is_some()
                    && (now >= h.next_duty || buggify!("txn.retransmit_early"))
                    && self.multi.status(u64::from(**shard)).is_some_and(|s| s.applied >= s.commit)
            })
            .map(|(&shard, _)| shard)
            .collect();
        for shard in due {
            let now_ns = self.now_ns(shard);
            let hosted = self.shards.get_mut(&shard).expect("due shard hosted");
            let first_of_term = std::mem::take(&mut hosted.first_duty_of_term);
            hosted.next_duty = now + interval;
            let state = hosted.replica.state();
            let mut send = state.recover();
            if first_of_term && !send.is_empty() {
                mark!("txn.new_leader_resends");
            }
            let expired = state.expired_prepares(now_ns);
            let queries = state.in_doubt(now_ns).into_iter().map(|(id, coordinator)| Envelope {
                from: shard,
                to: coordinator,
                msg: TxnMsg::Query { id },
            });
            send.extend(queries);
            let destinations: BTreeSet<u16> = send.iter().map(|e| e.to).collect();
            for to in destinations {
                self.router.retransmitting(to);
            }
            for envelope in send {
                self.route(envelope);
            }
            let splits = self.shards[&shard].replica.state().due_splits();
            for id in expired {
                let command = ShardCommand::PrepareTimeout { id, now_ns };
                let _ = self.multi.propose(u64::from(shard), command.encode());
            }
            for (dir, part) in splits {
                let command = ShardCommand::Split { dir, part, now_ns };
                let _ = self.multi.propose(u64::from(shard), command.encode());
            }
        }
    }

    /// Move leadership towards each shard's preferred replica (`replicas[0]`).
    fn balance(&mut self, now: MonoTime) {
        self.next_balance = now + ms(self.config.balance_interval_ms);
        let preferred: BTreeMap<u64, tessera_env::NodeId> = self
            .shards
            .keys()
            .filter_map(|&shard| {
                let first = self.map.map.shards.get(usize::from(shard))?.replicas.first()?;
                Some((u64::from(shard), *first))
            })
            .collect();
        self.multi.balance_leaders(&preferred);
    }
}
