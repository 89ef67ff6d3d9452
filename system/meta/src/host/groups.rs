//! Keeping the hosted groups in step with the shard map: a new epoch is picked up from the shared
//! map; groups the map gives this node are created (empty joiners catch up from a snapshot); every
//! hosted group is reconciled towards its replicas (`MultiRaft::reconcile`: learner -> catch up ->
//! voter -> remove, one step at a time, on the leader); a replica the map no longer lists is dropped
//! once it applied its removal, or had no leader for `removal_grace_ms`.

use tessera_env::{Clock, Disk, MonoTime, Net, NodeId, WallClock};
use tessera_raft::RaftRole;

use super::HostError;
use super::node::{MetaHost, ms};

impl<C: Clock, W: WallClock, N: Net, D: Disk> MetaHost<C, W, N, D> {
    /// Adopt a newer map from the shared source, and reconcile at once.
    pub(super) async fn refresh_map(&mut self, now: MonoTime) -> Result<(), HostError> {
        let newer = {
            let shared = self.maps.lock().expect("shard map lock");
            (shared.epoch > self.map.epoch).then(|| shared.clone())
        };
        if let Some(map) = newer {
            self.map = map;
            self.reconcile_groups(now).await?;
        }
        Ok(())
    }

    pub(super) async fn reconcile_groups(&mut self, now: MonoTime) -> Result<(), HostError> {
        self.next_reconcile = now + ms(self.config.reconcile_interval_ms);
        for shard in self.shards_listing_me() {
            if !self.shards.contains_key(&shard) {
                let persisted = self.log.load(u64::from(shard)).await?;
                self.add_group(shard, persisted, now)?;
            }
        }
        let grace = ms(self.config.removal_grace_ms);
        let hosted: Vec<u16> = self.shards.keys().copied().collect();
        for shard in hosted {
            let group = u64::from(shard);
            let target = self.map.map.shards.get(usize::from(shard)).map(|r| r.replicas.clone()).unwrap_or_default();
            if !target.is_empty() {
                // Errors (a proposal dropped mid-transfer) are retried on the next round.
                let _ = self.multi.reconcile(group, &target);
            }
            if target.contains(&self.id) {
                continue;
            }
            let status = self.multi.status(group).expect("hosted group");
            let removed = !status.voters.contains(&self.id) && !status.learners.contains(&self.id);
            // Leaderless for the grace: most likely removed in a configuration this replica never
            // learned. But a voter may leave only if its configuration's members the map keeps can
            // still form a quorum without it: dropping a voter the group still needs loses the group.
            let abandoned = status.role != RaftRole::Leader
                && self.shards[&shard].leaderless_since.is_some_and(|t| now.saturating_since(t) >= grace)
                && quorum_without(&status.voters, &target, self.id);
            if removed || abandoned {
                self.remove_group(shard);
            }
        }
        Ok(())
    }
}

/// Whether the `voters` the map still lists in `target`, leaving `me` out, are a quorum of `voters`.
fn quorum_without(voters: &[NodeId], target: &[NodeId], me: NodeId) -> bool {
    let staying = voters.iter().filter(|v| **v != me && target.contains(v)).count();
    staying > voters.len() / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(raw: &[u64]) -> Vec<NodeId> {
        raw.iter().copied().map(NodeId).collect()
    }

    /// Seed 4427 of the swarm campaign: a group with voters {1, 2, 4, 5} (node 2 dead, the map moving the
    /// shard to 1, 3 and 4) lost its leader; node 5, no longer in the map, dropped its replica after the
    /// grace, and the group never had a quorum again.
    #[test]
    fn a_voter_the_group_still_needs_stays() {
        assert!(!quorum_without(&ids(&[1, 2, 4, 5]), &ids(&[1, 3, 4]), NodeId(5)));
        // Removed in a configuration it never learned: the others carry on without it.
        assert!(quorum_without(&ids(&[1, 4, 5]), &ids(&[1, 3, 4]), NodeId(5)));
        assert!(quorum_without(&ids(&[1, 2, 3, 4, 5]), &ids(&[1, 2, 3, 6]), NodeId(5)));
        assert!(!quorum_without(&ids(&[1, 2, 3]), &ids(&[1, 4, 6]), NodeId(3)));
    }
}
