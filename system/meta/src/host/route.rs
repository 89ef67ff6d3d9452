//! [`TxnRouter`]: which node a two-phase-commit envelope for a shard this node does not lead goes to.
//!
//! Only a shard's leader sends envelopes, so the node an envelope from shard `s` arrived from is the
//! best guess for `s`'s leader. Without a guess, the shard map's replicas are tried in order from
//! `replicas[0]` (the preferred leader); when a retransmission round finds that nothing came back from
//! `s` since the previous round, the next replica is tried.

use std::collections::BTreeMap;

use tessera_config::placement::ShardMap;
use tessera_env::NodeId;

#[derive(Debug, Default)]
struct Route {
    /// The node an envelope from the shard last came from.
    heard_from: Option<NodeId>,
    /// Index into the shard's replicas when there is no guess.
    cursor: usize,
    /// Something came from the shard since the last retransmission round.
    progress: bool,
}

/// Leader guesses per destination shard (at most one entry per shard of the map).
#[derive(Debug, Default)]
pub(super) struct TxnRouter {
    routes: BTreeMap<u16, Route>,
}

impl TxnRouter {
    /// An envelope from `shard` arrived from `node` (its leader when it sent it).
    pub(super) fn heard(&mut self, shard: u16, node: NodeId) {
        let route = self.routes.entry(shard).or_default();
        route.heard_from = Some(node);
        route.progress = true;
    }

    /// A retransmission round re-sends to `shard`: move on if nothing came back since the last one.
    pub(super) fn retransmitting(&mut self, shard: u16) {
        let route = self.routes.entry(shard).or_default();
        if !route.progress && route.heard_from.take().is_none() {
            route.cursor = route.cursor.wrapping_add(1);
        }
        route.progress = false;
    }

    /// The node to send an envelope for `shard` to (`None`: the map does not know the shard).
    pub(super) fn target(&self, shard: u16, map: &ShardMap) -> Option<NodeId> {
        let route = self.routes.get(&shard);
        if let Some(node) = route.and_then(|r| r.heard_from) {
            return Some(node);
        }
        let replicas = &map.shards.get(usize::from(shard))?.replicas;
        let cursor = route.map_or(0, |r| r.cursor);
        (!replicas.is_empty()).then(|| replicas[cursor % replicas.len()])
    }
}

#[cfg(test)]
mod tests {
    use tessera_config::placement::ShardReplicas;

    use super::*;

    #[test]
    fn rotates_through_replicas_without_progress_and_follows_senders() {
        let map = ShardMap { shards: vec![ShardReplicas { replicas: vec![NodeId(1), NodeId(2), NodeId(3)] }] };
        let mut r = TxnRouter::default();
        assert_eq!(r.target(0, &map), Some(NodeId(1)));
        r.retransmitting(0);
        assert_eq!(r.target(0, &map), Some(NodeId(2)));
        r.heard(0, NodeId(3));
        assert_eq!(r.target(0, &map), Some(NodeId(3)));
        r.retransmitting(0);
        assert_eq!(r.target(0, &map), Some(NodeId(3)), "progress keeps the guess");
        r.retransmitting(0);
        assert_eq!(r.target(0, &map), Some(NodeId(2)), "no progress drops the guess");
        assert_eq!(r.target(1, &map), None);
    }
}
