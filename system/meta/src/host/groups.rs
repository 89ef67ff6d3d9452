//! Keeping the hosted groups in step with the shard map: a new epoch is picked up from the shared
//! map; groups the map gives this node are created (empty joiners catch up from a snapshot); every
//! hosted group is reconciled towards its replicas (`MultiRaft::reconcile`: learner -> catch up ->
//! voter -> remove, one step at a time, on the leader); a replica the map no longer lists is dropped
//! once it applied its removal, or had no leader for `removal_grace_ms`.

use tessera_env::{Clock, Disk, MonoTime, Net, WallClock};
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
            let abandoned = status.role != RaftRole::Leader
                && self.shards[&shard].leaderless_since.is_some_and(|t| now.saturating_since(t) >= grace);
            if removed || abandoned {
                self.remove_group(shard);
            }
        }
        Ok(())
    }
}
