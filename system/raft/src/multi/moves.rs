//! Shard moves: the reconciler that walks a group from its current voters to the shard map's target,
//! one replica at a time, and the "ready to lead" test shared with leadership balancing.

use std::collections::BTreeSet;

use tessera_env::NodeId;

use super::{MultiRaft, MultiRaftError};
use crate::node::{ConfChangeRequest, RaftNode, RaftRole};

/// What [`MultiRaft::reconcile`] did (or why it did nothing) this call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReconcileStep {
    /// The voters are the target and there are no learners.
    Done,
    /// Not the leader; run it on the leader (`leader` if known).
    NotLeader { leader: Option<NodeId> },
    /// A membership change is not applied yet, or a leadership transfer is in flight.
    Waiting,
    /// A new replica (learner) is not within `catch_up_lag_entries` of the leader yet (or not active).
    CatchingUp(NodeId),
    /// Proposed: add this target node as a learner.
    AddLearner(NodeId),
    /// Proposed: promote this caught-up learner to voter.
    Promote(NodeId),
    /// Proposed: remove a learner that is not in the target.
    RemoveLearner(NodeId),
    /// Proposed: remove a voter that is not in the target.
    RemoveVoter(NodeId),
    /// This leader must leave the group: leadership is being handed to this caught-up target voter
    /// first; the new leader continues the move.
    TransferLeader(NodeId),
}

impl MultiRaft {
    /// Moves `group` one step towards `target_voters` (the shard map's replicas). Run on every node
    /// for every group whose target differs from its voters, e.g. every tick (non-leaders answer
    /// [`ReconcileStep::NotLeader`]); each call proposes at most one membership change, and only when
    /// none is pending. The next step is derived from the current configuration alone, so a new leader
    /// continues where the old one stopped:
    /// 1. a learner not in the target is removed;
    /// 2. a learner in the target is promoted once its matched index is within `catch_up_lag_entries`
    ///    of the leader's last index and it is active;
    /// 3. while there are more voters than targets, a voter not in the target is removed; if that is
    ///    this leader, leadership goes first to a caught-up target voter;
    /// 4. a missing target node is added as a learner (one at a time).
    ///
    /// So a move is: AddLearner(new) -> catch up -> AddVoter(new) -> [transfer] -> RemoveVoter(old),
    /// never leaving fewer than the target's number of voters. The caller must create the group, empty
    /// (`add_group(group, &[], None, rng)`), on a target node that does not host it yet, and remove it
    /// from a node that left (once that node applied its removal or the leader reports `Done`); the
    /// learner catches up from the leader's snapshot (`snapshot_requested` -> `compact`).
    pub fn reconcile(&mut self, group: u64, target_voters: &[NodeId]) -> Result<ReconcileStep, MultiRaftError> {
        self.assert_no_pending("reconcile");
        assert!(!target_voters.is_empty(), "reconcile of group {group} to an empty replica set");
        let (me, lag) = (self.id, self.config.catch_up_lag_entries);
        let node = self.groups.get_mut(&group).ok_or(MultiRaftError::UnknownGroup(group))?;
        let status = node.status();
        if status.role != RaftRole::Leader {
            return Ok(ReconcileStep::NotLeader { leader: status.leader });
        }
        if node.has_pending_conf_change() || node.transfer_target().is_some() {
            return Ok(ReconcileStep::Waiting);
        }
        let target: BTreeSet<NodeId> = target_voters.iter().copied().collect();
        let voters: BTreeSet<NodeId> = status.voters.iter().copied().collect();
        let (step, change) = next_step(node, me, &target, &voters, &status.learners, lag);
        if let Some(change) = change {
            node.propose_conf_change(change).map_err(|error| MultiRaftError::Raft { group, error })?;
        }
        if let ReconcileStep::TransferLeader(to) = step {
            node.transfer_leader(to);
        }
        Ok(step)
    }
}

fn next_step(
    node: &RaftNode,
    me: NodeId,
    target: &BTreeSet<NodeId>,
    voters: &BTreeSet<NodeId>,
    learners: &[NodeId],
    lag: u64,
) -> (ReconcileStep, Option<ConfChangeRequest>) {
    if let Some(&l) = learners.iter().find(|l| !target.contains(l)) {
        return (ReconcileStep::RemoveLearner(l), Some(ConfChangeRequest::RemoveVoter(l)));
    }
    if let Some(&l) = learners.first() {
        if caught_up(node, l, lag) {
            return (ReconcileStep::Promote(l), Some(ConfChangeRequest::AddVoter(l)));
        }
        return (ReconcileStep::CatchingUp(l), None);
    }
    let extra: Vec<NodeId> = voters.difference(target).copied().collect();
    if !extra.is_empty() && voters.len() > target.len() {
        if let Some(&victim) = extra.iter().find(|&&v| v != me) {
            return (ReconcileStep::RemoveVoter(victim), Some(ConfChangeRequest::RemoveVoter(victim)));
        }
        // Only this leader is extra: hand over to the most caught-up target voter first.
        let successor = node
            .progress()
            .into_iter()
            .filter(|p| p.id != me && target.contains(&p.id) && !p.learner)
            .max_by_key(|p| (p.matched, std::cmp::Reverse(p.id)))
            .map(|p| p.id);
        return match successor {
            Some(to) if ready_to_lead(node, to, lag) => (ReconcileStep::TransferLeader(to), None),
            Some(to) => (ReconcileStep::CatchingUp(to), None),
            None => (ReconcileStep::Waiting, None),
        };
    }
    if let Some(&new) = target.difference(voters).next() {
        return (ReconcileStep::AddLearner(new), Some(ConfChangeRequest::AddLearner(new)));
    }
    (ReconcileStep::Done, None)
}

/// `who` acknowledged part of the log (or a snapshot), is within `lag` entries of this leader's last
/// index, and was heard from recently.
fn caught_up(node: &RaftNode, who: NodeId, lag: u64) -> bool {
    let last = node.status().last_index;
    node.progress()
        .iter()
        .any(|p| p.id == who && p.recent_active && p.matched > 0 && p.matched.saturating_add(lag) >= last)
}

/// This node leads, `to` is another voter (not a learner), active and caught up: a transfer to it
/// completes within a round trip and an election, without a pause longer than one election timeout.
pub(super) fn ready_to_lead(node: &RaftNode, to: NodeId, lag: u64) -> bool {
    let status = node.status();
    status.role == RaftRole::Leader
        && to != status.id
        && status.voters.contains(&to)
        && !node.has_pending_conf_change()
        && caught_up(node, to, lag)
}
