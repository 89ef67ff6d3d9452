//! Integer replica targets: how many replicas each node should hold.

use std::cmp::Ordering;

use super::{Cluster, mix64};

/// An exact ideal share `num / den` (`den > 0`).
#[derive(Clone, Copy, Debug)]
pub(super) struct Ideal {
    pub num: u128,
    pub den: u128,
}

impl Ideal {
    fn floor(self) -> u128 {
        self.num / self.den
    }

    fn frac_num(self) -> u128 {
        self.num % self.den
    }

    /// Compares the fractional parts of two ideals exactly.
    fn cmp_frac(self, other: Ideal) -> Ordering {
        (self.frac_num() * other.den).cmp(&(other.frac_num() * self.den))
    }
}

/// Replica targets per node index: the floor or ceiling of each node's rack-capped weighted share,
/// summing to `shard_count * replication`, no rack above `shard_count`. `loads` (the replicas each node
/// holds now) only breaks ties, in favour of keeping replicas where they are.
///
/// Rounding is per node, not per rack first: rack totals are then not held within one of the rack's
/// share (nothing needs them to be), which spares the moves that rack-level rounding would force.
pub(super) fn replica_targets(cluster: &Cluster, loads: &[u32]) -> Vec<u32> {
    let ideals = replica_ideals(cluster);
    let total = u128::from(cluster.shard_count) * u128::from(cluster.replication);
    let racks = RackCap { rack_of: &cluster.rack_of, cap: u128::from(cluster.shard_count) };
    let tiebreak: Vec<u64> = cluster.ids.iter().map(|id| mix64(id.0)).collect();
    round(&ideals, total, loads, Some(racks), &tiebreak)
}

/// The rack-capped weighted share of each node (water-filling over racks).
fn replica_ideals(cluster: &Cluster) -> Vec<Ideal> {
    let shards = u128::from(cluster.shard_count);
    let total = shards * u128::from(cluster.replication);
    let rack_weights: Vec<u128> = cluster
        .rack_nodes
        .iter()
        .map(|nodes| nodes.iter().map(|&n| u128::from(cluster.weights[n as usize])).sum())
        .collect();
    let mut capped = vec![false; rack_weights.len()];
    let (remaining, remaining_weight) = loop {
        let capped_count = capped.iter().filter(|&&c| c).count() as u128;
        let remaining = total - capped_count * shards;
        let remaining_weight: u128 = rack_weights.iter().zip(&capped).filter(|(_, c)| !**c).map(|(w, _)| *w).sum();
        assert!(remaining_weight > 0, "at least `replication` racks always leave one uncapped");
        let mut changed = false;
        for (rack, weight) in rack_weights.iter().enumerate() {
            // The rack's share remaining * weight / remaining_weight exceeds one replica per shard.
            if !capped[rack] && remaining * weight > shards * remaining_weight {
                capped[rack] = true;
                changed = true;
            }
        }
        if !changed {
            break (remaining, remaining_weight);
        }
    };
    (0..cluster.node_count())
        .map(|n| {
            let rack = cluster.rack_of[n] as usize;
            let weight = u128::from(cluster.weights[n]);
            if capped[rack] {
                Ideal { num: shards * weight, den: rack_weights[rack] }
            } else {
                Ideal { num: remaining * weight, den: remaining_weight }
            }
        })
        .collect()
}

/// Caps each rack's total at one replica per shard.
#[derive(Clone, Copy, Debug)]
struct RackCap<'a> {
    rack_of: &'a [u32],
    cap: u128,
}

/// Largest-remainder rounding of `ideals` to integers summing to `total`, each the floor or ceiling of
/// its ideal. Ceilings go first to entries whose `current` is already at least the ceiling, then to
/// larger remainders, then by `tiebreak`, then by index; an entry is skipped while its rack is full.
///
/// Never short: the ideals sum to `total`, and a rack's ideals sum to at most its cap, so the units
/// left after the floors (the sum of the remainders) fit within both the racks' spare room and their
/// entries with a remainder.
fn round(ideals: &[Ideal], total: u128, current: &[u32], racks: Option<RackCap<'_>>, tiebreak: &[u64]) -> Vec<u32> {
    let mut targets: Vec<u128> = ideals.iter().map(|i| i.floor()).collect();
    let floor_sum: u128 = targets.iter().sum();
    assert!(floor_sum <= total, "floors exceed the total");
    let mut extra = total - floor_sum;
    let mut rack_sums = Vec::new();
    if let Some(racks) = racks {
        rack_sums = vec![0u128; racks.rack_of.iter().max().map_or(0, |&r| r as usize + 1)];
        for (n, &t) in targets.iter().enumerate() {
            rack_sums[racks.rack_of[n] as usize] += t;
        }
    }
    let mut candidates: Vec<usize> = (0..ideals.len()).filter(|&n| ideals[n].frac_num() > 0).collect();
    let keeps = |n: usize| u128::from(current[n]) > targets[n];
    candidates.sort_by(|&a, &b| {
        keeps(b)
            .cmp(&keeps(a))
            .then_with(|| ideals[b].cmp_frac(ideals[a]))
            .then_with(|| tiebreak[a].cmp(&tiebreak[b]))
            .then_with(|| a.cmp(&b))
    });
    for n in candidates {
        if extra == 0 {
            break;
        }
        if let Some(racks) = racks {
            let rack = racks.rack_of[n] as usize;
            if rack_sums[rack] >= racks.cap {
                continue;
            }
            rack_sums[rack] += 1;
        }
        targets[n] += 1;
        extra -= 1;
    }
    assert_eq!(extra, 0, "rounding could not hand out every unit");
    targets.into_iter().map(|t| u32::try_from(t).expect("a target is at most the shard count")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ideal(num: u128, den: u128) -> Ideal {
        Ideal { num, den }
    }

    #[test]
    fn rounding_sums_to_total_and_stays_within_one() {
        let ideals = [ideal(10, 3), ideal(10, 3), ideal(10, 3)];
        let targets = round(&ideals, 10, &[0, 0, 0], None, &[3, 2, 1]);
        assert_eq!(targets.iter().sum::<u32>(), 10);
        assert_eq!(targets, vec![3, 3, 4], "equal remainders: the smallest tiebreak gets the unit");
    }

    #[test]
    fn rounding_prefers_current_holders() {
        let ideals = [ideal(10, 3), ideal(10, 3), ideal(10, 3)];
        let targets = round(&ideals, 10, &[4, 3, 3], None, &[3, 2, 1]);
        assert_eq!(targets, vec![4, 3, 3]);
    }

    #[test]
    fn rounding_respects_rack_caps() {
        // Rack 0 (cap 2) holds three entries of 2/3: the largest remainders, but only two fit.
        let ideals = [ideal(2, 3), ideal(2, 3), ideal(2, 3), ideal(1, 2), ideal(1, 2)];
        let racks = RackCap { rack_of: &[0, 0, 0, 1, 1], cap: 2 };
        let targets = round(&ideals, 3, &[0; 5], Some(racks), &[0, 1, 2, 3, 4]);
        assert_eq!(targets, vec![1, 1, 0, 1, 0]);
    }
}
