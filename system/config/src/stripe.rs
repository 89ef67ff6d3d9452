//! Hash placement of a stripe's chunks (DESIGN.md section 5; issue 5, item 2): the `N + K` chunks of an
//! erasure-coded stripe, or the copies of a replicated extent, go to nodes of distinct failure domains
//! (racks), chosen by weighted rendezvous hashing of the stripe's key:
//!
//! 1. every rack gets a score from `hash(stripe, rack)` and the rack's weight (the sum of its nodes'
//!    weights); the `N + K` highest-scoring racks hold the stripe, chunk `i` in the `i`-th best rack;
//! 2. in each chosen rack, the node with the highest score from `hash(stripe, node)` and its weight
//!    holds the chunk.
//!
//! Weighted rendezvous hashing (score `= -weight / ln(u)`, `u` uniform in (0, 1) from the hash) gives
//! each node of a rack a share of the rack's chunks proportional to its weight; across racks, a rack
//! can hold at most one chunk of a stripe, so heavier racks get more stripes but not in exact
//! proportion once a stripe spans a large part of the racks. A node that leaves changes only stripes
//! with a chunk in its rack (its rack's weight, and so its rank, changed); every other stripe keeps its
//! targets exactly. Any `K` racks may be lost and every stripe keeps `N` chunks. (Chunk `i` goes to the
//! `i`-th ranked rack, so a rank change inside a stripe also renumbers chunks: a later placement may
//! pin positions to cut that movement.)
//!
//! Pure and deterministic: the same nodes, protection and key give the same targets on every node.

use tessera_env::NodeId;

use crate::model::Protection;
use crate::placement::{PlacementNode, hash2, mix64};

/// Why a stripe cannot be placed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StripePlacementError {
    #[error("invalid protection {0:?}")]
    InvalidProtection(Protection),
    #[error("a stripe needs {needed} failure domains; only {available} have eligible nodes")]
    TooFewDomains { needed: u32, available: u32 },
    #[error("node {0} has weight 0")]
    ZeroWeight(NodeId),
}

/// The nodes holding the chunks of stripe `stripe_key` (chunk `i` on element `i`; data chunks first,
/// then parity, or the copies of a replicated extent), one per failure domain, from the eligible
/// `nodes` (up and not draining).
pub fn place_stripe(
    nodes: &[PlacementNode],
    protection: Protection,
    stripe_key: u64,
) -> Result<Vec<NodeId>, StripePlacementError> {
    if !protection.is_valid() {
        return Err(StripePlacementError::InvalidProtection(protection));
    }
    if let Some(n) = nodes.iter().find(|n| n.weight == 0) {
        return Err(StripePlacementError::ZeroWeight(n.id));
    }
    let mut racks: Vec<(u32, u64)> = Vec::new();
    for n in nodes {
        match racks.iter_mut().find(|(rack, _)| *rack == n.rack) {
            Some((_, weight)) => *weight += u64::from(n.weight),
            None => racks.push((n.rack, u64::from(n.weight))),
        }
    }
    let needed = protection.failure_domains_needed();
    if (racks.len() as u32) < needed {
        return Err(StripePlacementError::TooFewDomains { needed, available: racks.len() as u32 });
    }
    let key = mix64(stripe_key);
    let mut ranked: Vec<(f64, u32)> =
        racks.iter().map(|&(rack, weight)| (score(hash2(key, u64::from(rack)), weight), rack)).collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let targets: Vec<NodeId> = ranked
        .iter()
        .take(needed as usize)
        .map(|&(_, rack)| {
            let in_rack = nodes.iter().filter(|n| n.rack == rack);
            let best = in_rack.max_by(|a, b| {
                let (sa, sb) = (node_score(key, a), node_score(key, b));
                sa.total_cmp(&sb).then(b.id.cmp(&a.id))
            });
            best.expect("a listed rack has a node").id
        })
        .collect();
    assert_eq!(targets.len(), needed as usize, "one target per chunk");
    Ok(targets)
}

fn node_score(key: u64, n: &PlacementNode) -> f64 {
    score(hash2(key ^ 0x6e6f_6465, n.id.0), u64::from(n.weight))
}

/// Weighted rendezvous score: `-weight / ln(u)` with `u` in (0, 1) from the hash's top 53 bits.
fn score(hash: u64, weight: u64) -> f64 {
    let u = ((hash >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    -(weight as f64) / u.ln()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn cluster(racks: u32, per_rack: u32) -> Vec<PlacementNode> {
        (0..racks)
            .flat_map(|r| {
                (0..per_rack).map(move |i| PlacementNode { id: NodeId(u64::from(r * 100 + i)), rack: r, weight: 1 })
            })
            .collect()
    }

    const EC: Protection = Protection::ErasureCoded { data: 8, parity: 2 };

    #[test]
    fn chunks_land_in_distinct_failure_domains() {
        let nodes = cluster(12, 3);
        for protection in [EC, Protection::ErasureCoded { data: 4, parity: 2 }, Protection::Replicated { copies: 3 }] {
            for key in 0..2_000 {
                let targets = place_stripe(&nodes, protection, key).unwrap();
                assert_eq!(targets.len() as u32, protection.failure_domains_needed());
                let mut racks: Vec<u32> = targets.iter().map(|id| (id.0 / 100) as u32).collect();
                racks.sort();
                racks.dedup();
                assert_eq!(racks.len(), targets.len(), "stripe {key}: two chunks in one rack: {targets:?}");
                assert_eq!(place_stripe(&nodes, protection, key).unwrap(), targets, "deterministic");
            }
        }
    }

    #[test]
    fn refuses_too_few_domains_and_bad_input() {
        let nodes = cluster(9, 4);
        assert_eq!(place_stripe(&nodes, EC, 1), Err(StripePlacementError::TooFewDomains { needed: 10, available: 9 }));
        let bad = Protection::ErasureCoded { data: 3, parity: 2 };
        assert_eq!(place_stripe(&nodes, bad, 1), Err(StripePlacementError::InvalidProtection(bad)));
        let mut zero = cluster(10, 1);
        zero[3].weight = 0;
        assert_eq!(place_stripe(&zero, EC, 1), Err(StripePlacementError::ZeroWeight(zero[3].id)));
    }

    /// Every node's share of chunks is within 10% of the even share (20 racks of 4), and inside a rack
    /// a node of weight 2 holds about twice the chunks of its rack-mates of weight 1.
    #[test]
    fn chunks_spread_evenly_and_by_weight_inside_a_rack() {
        let mut nodes = cluster(20, 4);
        nodes[28].weight = 2; // rack 7
        let stripes = 40_000u64;
        let mut count: BTreeMap<NodeId, u64> = BTreeMap::new();
        for key in 0..stripes {
            for id in place_stripe(&nodes, EC, key).unwrap() {
                *count.entry(id).or_default() += 1;
            }
        }
        let per_node = (stripes * 10) as f64 / nodes.len() as f64;
        for n in nodes.iter().filter(|n| n.rack != 7) {
            let got = count.get(&n.id).copied().unwrap_or(0) as f64;
            assert!((got - per_node).abs() <= 0.1 * per_node, "{:?}: {got} chunks, expected {per_node:.0}", n.id);
        }
        let heavy = count[&nodes[28].id] as f64;
        for light in &nodes[29..32] {
            let ratio = heavy / count[&light.id] as f64;
            assert!((1.8..=2.2).contains(&ratio), "weight 2 vs 1 in one rack: ratio {ratio:.2}");
        }
    }

    /// A node leaving: no stripe without a chunk in its rack changes at all; the stripes that had its
    /// chunks no longer use it; everything stays in distinct racks.
    #[test]
    fn a_leaving_node_only_moves_stripes_touching_its_rack() {
        let nodes = cluster(16, 4);
        let leaving = nodes[21].id;
        let rack_of = |id: &NodeId| id.0 / 100;
        let rest: Vec<PlacementNode> = nodes.iter().copied().filter(|n| n.id != leaving).collect();
        let (mut untouched, mut touched) = (0, 0);
        for key in 0..20_000u64 {
            let before = place_stripe(&nodes, EC, key).unwrap();
            let after = place_stripe(&rest, EC, key).unwrap();
            assert!(!after.contains(&leaving));
            if before.iter().all(|id| rack_of(id) != rack_of(&leaving)) {
                assert_eq!(before, after, "stripe {key} does not touch the rack, yet moved");
                untouched += 1;
            } else {
                touched += 1;
            }
        }
        assert!(untouched > 0 && touched > 0, "{untouched} untouched, {touched} touched");
    }
}
