//! Shard placement balance and movement at scale: 4096 shards of 3 over 100, 1,000 and 4,000 nodes in
//! 100 racks, then one node joining, one leaving and one rack failing.
//!
//! `cargo run --release -p tessera-sim --example placement_balance`

// A measuring tool (it lives in sim/, not system/) reads the wall clock to report timings.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::time::Instant;

use tessera_config::placement::{
    PlacementNode, PlacementReport, ShardMap, balance, moved_replicas, place_with_report, validate,
};
use tessera_env::NodeId;

const SHARDS: u32 = 4096;
const REPLICATION: u32 = 3;
const RACKS: u32 = 100;

fn nodes(count: u64) -> Vec<PlacementNode> {
    (0..count).map(|i| PlacementNode { id: NodeId(i + 1), rack: (i % u64::from(RACKS)) as u32, weight: 1 }).collect()
}

fn timed_place(nodes: &[PlacementNode], previous: Option<&ShardMap>) -> (ShardMap, PlacementReport, f64) {
    let start = Instant::now();
    let (map, report) = place_with_report(nodes, SHARDS, REPLICATION, previous).expect("placement");
    let ms = start.elapsed().as_secs_f64() * 1e3;
    validate(&map, nodes, REPLICATION).expect("valid map");
    (map, report, ms)
}

fn held_by(map: &ShardMap, pred: impl Fn(NodeId) -> bool) -> u64 {
    map.shards.iter().flat_map(|s| &s.replicas).filter(|&&id| pred(id)).count() as u64
}

fn main() {
    println!("{SHARDS} shards x {REPLICATION} replicas, {RACKS} racks, equal weights\n");
    println!(
        "{:>6} | {:>22} | {:>20} | {:>9}",
        "nodes", "replicas max (min) mean", "leaders max (min) mean", "place ms"
    );
    let mut maps = Vec::new();
    for count in [100u64, 1_000, 4_000] {
        let nodes = nodes(count);
        let (map, report, ms) = timed_place(&nodes, None);
        let b = balance(&map, &nodes);
        println!(
            "{:>6} | {:>5} ({:>4}) {:>11.2} | {:>4} ({:>3}) {:>10.2} | {:>9.2}{}",
            count,
            b.replicas_max,
            b.replicas_min,
            b.replicas_mean,
            b.leaders_max,
            b.leaders_min,
            b.leaders_mean,
            ms,
            if report == PlacementReport::default() { String::new() } else { format!("  {report:?}") }
        );
        maps.push((nodes, map));
    }

    println!("\nmovement (moved replicas / ideal; ideal = the joiner's share S*R/(N+1), or the replicas lost)");
    println!("{:>6} | {:>30} | {:>30} | {:>30}", "nodes", "one node joins", "one node leaves", "one rack fails");
    for (nodes, map) in &maps {
        let n = nodes.len() as u64;
        let mut cells = Vec::new();

        let mut joined = nodes.clone();
        joined.push(PlacementNode { id: NodeId(1_000_000), rack: 17, weight: 1 });
        let (after, report, ms) = timed_place(&joined, Some(map));
        let ideal = f64::from(SHARDS * REPLICATION) / (n + 1) as f64;
        cells.push((moved_replicas(map, &after), ideal, report.repairs, ms));

        let gone = NodeId(n / 2);
        let left: Vec<_> = nodes.iter().copied().filter(|x| x.id != gone).collect();
        let (after, report, ms) = timed_place(&left, Some(map));
        cells.push((moved_replicas(map, &after), held_by(map, |id| id == gone) as f64, report.repairs, ms));

        let rack_nodes: Vec<NodeId> = nodes.iter().filter(|x| x.rack == 42).map(|x| x.id).collect();
        let survivors: Vec<_> = nodes.iter().copied().filter(|x| x.rack != 42).collect();
        let (after, report, ms) = timed_place(&survivors, Some(map));
        let lost = held_by(map, |id| rack_nodes.contains(&id)) as f64;
        cells.push((moved_replicas(map, &after), lost, report.repairs, ms));

        let cell = |(moved, ideal, repairs, ms): (u64, f64, u64, f64)| {
            format!("{moved:>5}/{ideal:>7.1} = {:.3} {ms:>4.1}ms", moved as f64 / ideal)
                + &if repairs > 0 { format!(" r{repairs}") } else { String::new() }
        };
        println!("{:>6} | {:>30} | {:>30} | {:>30}", n, cell(cells[0]), cell(cells[1]), cell(cells[2]));
    }
    println!("\n(rN: N repair swaps, one extra moved replica each; times include validation)");

    let big = nodes(4_000);
    let start = Instant::now();
    let (map, _) = place_with_report(&big, 16_384, REPLICATION, None).expect("placement");
    let b = balance(&map, &big);
    println!(
        "\n16384 shards x 3 over 4000 nodes: {:.2} ms, replicas max {} mean {:.2}, leaders max {} mean {:.2}",
        start.elapsed().as_secs_f64() * 1e3,
        b.replicas_max,
        b.replicas_mean,
        b.leaders_max,
        b.leaders_mean
    );
}
