//! Random clusters and random membership changes: invariants, balance, movement, determinism.

use proptest::prelude::*;
use tessera_env::NodeId;

use super::super::*;
use super::{assert_balanced, counts, float_ideals};

/// A random cluster: rack sizes, optionally random weights, and an id layout (base and stride, so that
/// hash tie-breaks vary).
fn cluster() -> impl Strategy<Value = Vec<PlacementNode>> {
    (
        prop::collection::vec(1usize..5, 1..9),
        any::<bool>(),
        prop::collection::vec(1u32..5, 40),
        0u64..1_000_000,
        1u64..1000,
    )
        .prop_map(|(sizes, weighted, weights, base, stride)| {
            let mut nodes = Vec::new();
            for (rack, &size) in (0u32..).zip(&sizes) {
                for _ in 0..size {
                    let i = nodes.len();
                    let weight = if weighted { weights[i % weights.len()] } else { 1 };
                    nodes.push(PlacementNode { id: NodeId(base + i as u64 * stride), rack: rack * 7, weight });
                }
            }
            nodes
        })
}

/// The fewest replicas any map with every node at the floor or ceiling of its share must place on
/// nodes that do not hold them now (`kept`: current replica counts).
fn min_additions(
    nodes: &[PlacementNode],
    shards: u32,
    replication: u32,
    kept: &std::collections::BTreeMap<NodeId, (u32, u32)>,
) -> u64 {
    let ideals = float_ideals(nodes, shards, replication);
    let mut below_floor = 0u64;
    let mut floors = 0u64;
    // Per rack: floors, and nodes that would keep a ceiling for free.
    let mut racks: std::collections::BTreeMap<u32, (u64, u64)> = std::collections::BTreeMap::new();
    for n in nodes {
        let ideal = ideals[&n.id];
        let floor = (ideal + 1e-9).floor() as u64;
        let has_remainder = ideal - floor as f64 > 1e-9;
        let kept = u64::from(kept.get(&n.id).map_or(0, |c| c.0));
        floors += floor;
        below_floor += floor.saturating_sub(kept);
        let rack = racks.entry(n.rack).or_default();
        rack.0 += floor;
        if has_remainder && kept > floor {
            rack.1 += 1;
        }
    }
    // A rack holds at most one replica per shard.
    let free_ceilings: u64 = racks.values().map(|&(f, free)| free.min(u64::from(shards).saturating_sub(f))).sum();
    let ceilings = u64::from(shards * replication) - floors;
    below_floor + ceilings.saturating_sub(free_ceilings)
}

fn even_shares(nodes: &[PlacementNode], replication: u32) -> bool {
    let total = nodes.len() as u64;
    nodes.iter().all(|n| n.weight == 1)
        && nodes.iter().all(|n| {
            let rack = nodes.iter().filter(|m| m.rack == n.rack).count() as u64;
            u64::from(replication) * rack <= total
        })
}

fn rack_count(nodes: &[PlacementNode]) -> u32 {
    nodes.iter().map(|n| n.rack).collect::<std::collections::BTreeSet<_>>().len() as u32
}

/// Places and checks everything that must hold for any input; returns the map and report if placement
/// is possible.
fn checked_place(
    nodes: &[PlacementNode],
    shards: u32,
    replication: u32,
    previous: Option<&ShardMap>,
) -> Option<(ShardMap, PlacementReport)> {
    let result = place_with_report(nodes, shards, replication, previous);
    if rack_count(nodes) < replication {
        assert_eq!(
            result,
            Err(PlacementError::NotEnoughFailureDomains { needed: replication, available: rack_count(nodes) })
        );
        return None;
    }
    let (map, report) = result.expect("enough racks");
    validate(&map, nodes, replication).expect("hard invariants");
    assert_eq!(report.fallbacks, 0, "balance fallback");
    assert_eq!(report.leader_misses, 0, "leader overflow");
    assert_balanced(&map, nodes, shards, replication);
    // Determinism, independent of input order; a second pass moves nothing.
    let mut reversed = nodes.to_vec();
    reversed.reverse();
    assert_eq!(place(&reversed, shards, replication, previous).as_ref(), Ok(&map));
    assert_eq!(place(nodes, shards, replication, Some(&map)).as_ref(), Ok(&map));
    Some((map, report))
}

#[derive(Clone, Debug)]
enum Change {
    Join { rack: u32, weight: u32 },
    Leave { pick: usize },
    RackLoss { pick: usize },
    Reweight { pick: usize, weight: u32 },
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        3 => (0u32..10, 1u32..4).prop_map(|(rack, weight)| Change::Join { rack: rack * 7, weight }),
        3 => any::<usize>().prop_map(|pick| Change::Leave { pick }),
        1 => any::<usize>().prop_map(|pick| Change::RackLoss { pick }),
        1 => (any::<usize>(), 1u32..4).prop_map(|(pick, weight)| Change::Reweight { pick, weight }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn fresh_placements_hold_every_guarantee(
        nodes in cluster(),
        shards in 1u32..300,
        replication in prop::sample::select(vec![1u32, 2, 3, 5]),
    ) {
        checked_place(&nodes, shards, replication, None);
    }

    #[test]
    fn equal_racks_and_weights_balance_within_one_of_the_mean(
        racks in 1u32..12,
        per_rack in 1u64..6,
        base in 0u64..1_000_000,
        shards in 1u32..600,
        replication in prop::sample::select(vec![1u32, 3, 5]),
    ) {
        let nodes: Vec<PlacementNode> = (0..u64::from(racks) * per_rack)
            .map(|i| PlacementNode { id: NodeId(base + i * 7919), rack: (i % u64::from(racks)) as u32, weight: 1 })
            .collect();
        if let Some((map, _)) = checked_place(&nodes, shards, replication, None) {
            let stats = balance(&map, &nodes);
            let n = nodes.len() as u32;
            let total = shards * replication;
            prop_assert!(stats.replicas_min >= total / n && stats.replicas_max <= total.div_ceil(n), "{:?}", stats);
            prop_assert!(stats.leaders_min >= shards / n && stats.leaders_max <= shards.div_ceil(n), "{:?}", stats);
        }
    }

    #[test]
    fn membership_changes_keep_invariants_and_move_little(
        mut nodes in cluster(),
        shards in 1u32..200,
        replication in prop::sample::select(vec![1u32, 3, 5]),
        changes in prop::collection::vec(change(), 1..8),
    ) {
        let mut map = checked_place(&nodes, shards, replication, None).map(|(m, _)| m);
        let mut next_id = 10_000_000u64;
        for change in changes {
            let before = nodes.clone();
            let mut lost: Vec<NodeId> = Vec::new();
            let mut joined = None;
            match change {
                Change::Join { rack, weight } => {
                    nodes.push(PlacementNode { id: NodeId(next_id), rack, weight });
                    joined = Some(NodeId(next_id));
                    next_id += 1;
                }
                Change::Leave { pick } if nodes.len() > 1 => {
                    lost.push(nodes.remove(pick % nodes.len()).id);
                }
                Change::RackLoss { pick } if !nodes.is_empty() => {
                    let rack = nodes[pick % nodes.len()].rack;
                    lost.extend(nodes.iter().filter(|n| n.rack == rack).map(|n| n.id));
                    nodes.retain(|n| n.rack != rack);
                }
                Change::Reweight { pick, weight } if !nodes.is_empty() => {
                    let i = pick % nodes.len();
                    nodes[i].weight = weight;
                }
                _ => continue,
            }
            let Some((after, report)) = checked_place(&nodes, shards, replication, map.as_ref()) else {
                continue;
            };
            // Movement is only measured from a map that was placed for the previous membership (not
            // from an older one kept while placement was impossible).
            if let Some(old) = map.as_ref().filter(|old| validate(old, &before, replication).is_ok()) {
                let moved = moved_replicas(old, &after);
                let held = old.shards.iter().flat_map(|s| &s.replicas).filter(|id| lost.contains(id)).count() as u64;
                // The fewest replicas any balanced map (every node at the floor or ceiling of its
                // share) must add: nodes below their floor, plus ceilings that cannot go to nodes
                // already holding them.
                let needed = min_additions(&nodes, shards, replication, &counts(old, &before));
                prop_assert!(moved >= held);
                prop_assert!(moved <= needed + report.repairs,
                    "moved {} needed {} held {} {:?}", moved, needed, held, report);
                // With equal weights and no rack at its cap (before and after), shares shift evenly:
                // that minimum is exactly the lost replicas, or the joiner's share.
                if even_shares(&before, replication) && even_shares(&nodes, replication) {
                    if let Some(id) = joined {
                        let share = float_ideals(&nodes, shards, replication)[&id];
                        prop_assert!(needed as f64 <= share.ceil(), "needed {} share {}", needed, share);
                    }
                    if !lost.is_empty() {
                        prop_assert_eq!(needed, held);
                    }
                }
            }
            map = Some(after);
        }
    }
}
