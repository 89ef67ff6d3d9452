//! The simulated network: loss, duplication, reordering, partitions, node down/up, queue bound.

use std::collections::BTreeMap;
use std::time::Duration;

use madsim::runtime::Runtime;
use tessera_env::{DetRng, Net, NetError, NodeId};
use tessera_sim::{LinkConfig, NetConfig, SimNet, SimNetwork, Trace};

fn run<F: std::future::Future>(seed: u64, f: F) -> F::Output {
    Runtime::with_seed_and_config(seed, madsim::Config::default()).block_on(f)
}

fn fabric(seed: u64, config: NetConfig) -> SimNetwork {
    SimNetwork::new(DetRng::from_seed(seed), Trace::new(false), config)
}

/// Receive everything that arrives within `window`.
async fn drain(net: &SimNet, window: Duration) -> Vec<(NodeId, Vec<u8>)> {
    let mut got = Vec::new();
    while let Ok(Ok(m)) = madsim::time::timeout(window, net.recv()).await {
        got.push(m);
    }
    got
}

async fn send_n(from: &SimNet, to: NodeId, n: u32) {
    for i in 0..n {
        from.send(to, i.to_le_bytes().to_vec()).await.unwrap();
    }
}

fn n(id: u64) -> NodeId {
    NodeId(id)
}

#[test]
fn reliable_delivers_everything_exactly_once_but_reorders() {
    run(1, async {
        let net = fabric(1, NetConfig { latency_us_min: 1_000, latency_us_max: 50_000, ..NetConfig::default() });
        let a = net.endpoint(n(1), 0);
        let b = net.endpoint(n(2), 0);
        send_n(&a, n(2), 200).await;
        let got = drain(&b, Duration::from_millis(200)).await;
        let values: Vec<u32> = got
            .iter()
            .map(|(from, p)| {
                assert_eq!(*from, n(1));
                u32::from_le_bytes(p[..].try_into().unwrap())
            })
            .collect();
        let mut sorted = values.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..200).collect::<Vec<_>>());
        assert_ne!(values, sorted, "random delays should reorder");
    });
}

#[test]
fn loss_and_duplication_rates_are_honoured() {
    run(2, async {
        let config = NetConfig { loss_per_million: 200_000, duplicate_per_million: 200_000, ..NetConfig::default() };
        let net = fabric(2, config);
        let a = net.endpoint(n(1), 0);
        let b = net.endpoint(n(2), 0);
        send_n(&a, n(2), 1000).await;
        let got = drain(&b, Duration::from_millis(100)).await;
        let mut counts: BTreeMap<Vec<u8>, u32> = BTreeMap::new();
        for (_, p) in got {
            *counts.entry(p).or_default() += 1;
        }
        let lost = 1000 - counts.len();
        let dups = counts.values().filter(|&&c| c == 2).count();
        assert!((120..=280).contains(&lost), "lost {lost}");
        assert!((100..=260).contains(&dups), "duplicated {dups}");
        assert!(counts.values().all(|&c| c <= 2));
        let stats = net.stats();
        assert_eq!(stats.dropped_loss as usize, lost);
    });
}

#[test]
fn asymmetric_cut_and_heal() {
    run(3, async {
        let net = fabric(3, NetConfig::default());
        let a = net.endpoint(n(1), 0);
        let b = net.endpoint(n(2), 1);
        net.cut(n(1), n(2));
        send_n(&a, n(2), 10).await;
        send_n(&b, n(1), 10).await;
        assert!(drain(&b, Duration::from_millis(50)).await.is_empty(), "cut direction delivered");
        assert_eq!(drain(&a, Duration::from_millis(50)).await.len(), 10, "other direction lost");
        net.heal();
        send_n(&a, n(2), 10).await;
        assert_eq!(drain(&b, Duration::from_millis(50)).await.len(), 10);
    });
}

#[test]
fn cut_while_in_flight_drops() {
    run(4, async {
        let net = fabric(4, NetConfig { latency_us_min: 10_000, latency_us_max: 10_000, ..NetConfig::default() });
        let a = net.endpoint(n(1), 0);
        let b = net.endpoint(n(2), 0);
        send_n(&a, n(2), 5).await;
        net.cut_both(n(1), n(2));
        assert!(drain(&b, Duration::from_millis(50)).await.is_empty());
        assert_eq!(net.stats().dropped_cut, 5);
    });
}

#[test]
fn rack_isolation_and_partition() {
    run(5, async {
        let net = fabric(5, NetConfig::default());
        let eps: Vec<SimNet> = (0..6).map(|i| net.endpoint(n(i), (i % 3) as u32)).collect();
        net.isolate_rack(0); // nodes 0 and 3
        for from in &eps {
            for to in 0..6u64 {
                from.send(n(to), vec![from.local_id().0 as u8]).await.unwrap();
            }
        }
        for ep in &eps {
            let me = ep.local_id().0;
            let senders: Vec<u64> = drain(ep, Duration::from_millis(50)).await.iter().map(|(f, _)| f.0).collect();
            for from in 0..6u64 {
                let same_side = (from % 3 == 0) == (me % 3 == 0);
                assert_eq!(senders.contains(&from), same_side, "{from}->{me}");
            }
        }
        net.heal();
        net.partition(&[vec![n(0), n(1)], vec![n(2)]]);
        assert!(net.is_cut(n(0), n(2)) && net.is_cut(n(2), n(1)));
        assert!(!net.is_cut(n(0), n(1)) && !net.is_cut(n(0), n(4)) && !net.is_cut(n(2), n(5)));
    });
}

#[test]
fn node_down_loses_and_blocks_recv_until_up() {
    run(6, async {
        let net = fabric(6, NetConfig::default());
        let a = net.endpoint(n(1), 0);
        let b = net.endpoint(n(2), 0);
        send_n(&a, n(2), 3).await;
        madsim::time::sleep(Duration::from_millis(20)).await;
        net.node_down(n(2));
        assert_eq!(net.queued_messages(n(2)), 0);
        send_n(&a, n(2), 3).await;
        assert!(madsim::time::timeout(Duration::from_millis(50), b.recv()).await.is_err(), "recv while down");
        assert_eq!(b.send(n(1), vec![1]).await, Err(NetError::Closed));
        net.node_up(n(2));
        assert!(drain(&b, Duration::from_millis(50)).await.is_empty(), "messages to a down node must be lost");
        send_n(&a, n(2), 2).await;
        assert_eq!(drain(&b, Duration::from_millis(50)).await.len(), 2);
    });
}

#[test]
fn mailbox_bound_drops_overflow_and_errors_are_reported() {
    run(7, async {
        let net = fabric(7, NetConfig { queue_limit_messages: 8, ..NetConfig::default() });
        let a = net.endpoint(n(1), 0);
        let b = net.endpoint(n(2), 0);
        send_n(&a, n(2), 20).await;
        madsim::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(net.queued_messages(n(2)), 8);
        assert_eq!(net.stats().dropped_overflow, 12);
        assert_eq!(drain(&b, Duration::from_millis(10)).await.len(), 8);
        assert_eq!(a.send(n(9), vec![]).await, Err(NetError::UnknownNode(n(9))));
        let too_big = vec![0; tessera_env::MAX_MESSAGE_BYTES + 1];
        assert!(matches!(a.send(n(2), too_big).await, Err(NetError::MessageTooLarge { .. })));
        // Self-send works like any other.
        a.send(n(1), vec![42]).await.unwrap();
        assert_eq!(drain(&a, Duration::from_millis(10)).await, vec![(n(1), vec![42])]);
    });
}

#[test]
fn link_override_applies_to_one_direction() {
    run(8, async {
        let net = fabric(8, NetConfig::default());
        let a = net.endpoint(n(1), 0);
        let b = net.endpoint(n(2), 0);
        let lossy = LinkConfig {
            latency_us_min: 1_000,
            latency_us_max: 1_000,
            loss_per_million: 1_000_000,
            duplicate_per_million: 0,
        };
        net.set_link(n(1), n(2), lossy);
        send_n(&a, n(2), 10).await;
        send_n(&b, n(1), 10).await;
        assert!(drain(&b, Duration::from_millis(20)).await.is_empty());
        assert_eq!(drain(&a, Duration::from_millis(20)).await.len(), 10);
    });
}

#[test]
fn same_seed_same_trace_hash() {
    let hash = |seed: u64| {
        run(seed, async move {
            let trace = Trace::new(false);
            let config = NetConfig {
                loss_per_million: 100_000,
                duplicate_per_million: 100_000,
                latency_us_max: 20_000,
                ..NetConfig::default()
            };
            let net = SimNetwork::new(DetRng::from_seed(seed), trace.clone(), config);
            let a = net.endpoint(n(1), 0);
            let b = net.endpoint(n(2), 0);
            send_n(&a, n(2), 100).await;
            drain(&b, Duration::from_millis(50)).await;
            trace.hash()
        })
    };
    assert_eq!(hash(9), hash(9));
    assert_ne!(hash(9), hash(10));
}
