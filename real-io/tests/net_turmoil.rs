//! The TCP transport over turmoil's simulated network: three hosts exchange numbered messages while the
//! test cuts, holds and crashes links and hosts from outside the simulation.
//!
//! Every host sends one message to each other host every [`SEND_EVERY`], stamped with the test's current
//! phase, and records what it sent and what it received. The test then checks per phase and per pair.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tessera_env::{Net, NodeId};
use tessera_real_io::{SocketIo, Transport, TransportConfig};
use turmoil::Sim;

const PORT: u16 = 7101;
const SEND_EVERY: Duration = Duration::from_millis(100);
const BODY_BYTES: usize = 300;
const HOSTS: [u64; 3] = [1, 2, 3];

/// [`SocketIo`] over turmoil's simulated TCP.
#[derive(Debug, Clone, Copy, Default)]
struct TurmoilIo;

impl SocketIo for TurmoilIo {
    type Stream = turmoil::net::TcpStream;
    type Listener = turmoil::net::TcpListener;

    fn bind(&self, address: &str) -> impl Future<Output = io::Result<(Self::Listener, SocketAddr)>> + Send {
        let address = address.to_string();
        async move {
            let listener = turmoil::net::TcpListener::bind(address.as_str()).await?;
            let bound = listener.local_addr()?;
            Ok((listener, bound))
        }
    }

    async fn accept(&self, listener: &Self::Listener) -> io::Result<(Self::Stream, SocketAddr)> {
        let (stream, remote) = listener.accept().await?;
        stream.set_nodelay(true)?;
        Ok((stream, remote))
    }

    fn connect(&self, address: &str) -> impl Future<Output = io::Result<Self::Stream>> + Send {
        let address = address.to_string();
        async move {
            let stream = turmoil::net::TcpStream::connect(address.as_str()).await?;
            stream.set_nodelay(true)?;
            Ok(stream)
        }
    }
}

fn data(n: u64) -> NodeId {
    NodeId(n | 1 << 62)
}

fn host_name(n: u64) -> String {
    format!("n{n}")
}

/// Timings scaled to the simulation: a dead link is noticed within `idle_timeout_ms`.
fn config(id: u64) -> TransportConfig {
    TransportConfig {
        cluster_id: Some(0x7E55),
        connect_timeout_ms: 500,
        write_timeout_ms: 2_000,
        backoff_ms_min: 20,
        backoff_ms_max: 400,
        keepalive_interval_ms: 200,
        idle_timeout_ms: 2_000,
        jitter_seed: Some(id),
        ..TransportConfig::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Stamp {
    from: u64,
    from_incarnation: u32,
    seq: u64,
    phase: u32,
}

#[derive(Debug, Default)]
struct Log {
    /// Times each host's software has started.
    incarnations: [u32; 4],
    /// (to, stamp) of every message `send` accepted.
    sent: Vec<(u64, Stamp)>,
    /// (to, to_incarnation, stamp) of every message received.
    received: Vec<(u64, u32, Stamp)>,
    /// Payloads that did not match what their stamp says was sent.
    damaged: u64,
}

#[derive(Debug, Default)]
struct World {
    phase: AtomicU32,
    log: Mutex<Log>,
}

fn body(stamp: &Stamp) -> impl Iterator<Item = u8> {
    let seed = stamp.from * 7 + stamp.seq * 13 + u64::from(stamp.from_incarnation);
    (0..BODY_BYTES as u64).map(move |i| ((seed + i * 31) % 251) as u8)
}

fn encode(stamp: &Stamp) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + BODY_BYTES);
    out.extend_from_slice(&stamp.from.to_be_bytes());
    out.extend_from_slice(&stamp.from_incarnation.to_be_bytes());
    out.extend_from_slice(&stamp.seq.to_be_bytes());
    out.extend_from_slice(&stamp.phase.to_be_bytes());
    out.extend(body(stamp));
    out
}

fn decode(payload: &[u8]) -> Option<Stamp> {
    let u64_at = |at: usize| Some(u64::from_be_bytes(payload.get(at..at + 8)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_be_bytes(payload.get(at..at + 4)?.try_into().ok()?));
    let stamp = Stamp { from: u64_at(0)?, from_incarnation: u32_at(8)?, seq: u64_at(12)?, phase: u32_at(20)? };
    (payload.len() == 24 + BODY_BYTES && payload[24..].iter().copied().eq(body(&stamp))).then_some(stamp)
}

/// One host's software: a transport, a sender task, and a receive loop that logs.
async fn node_main(id: u64, world: Arc<World>) -> turmoil::Result {
    let incarnation = {
        let mut log = world.log.lock().expect("log");
        log.incarnations[id as usize] += 1;
        log.incarnations[id as usize]
    };
    let transport = Transport::start_with(TurmoilIo, NodeId(id), Some(&format!("0.0.0.0:{PORT}")), config(id)).await?;
    for peer in HOSTS.into_iter().filter(|&peer| peer != id) {
        transport.set_peer_address(NodeId(peer), &format!("{}:{PORT}", host_name(peer)))?;
    }
    let endpoint = transport.endpoint(data(id))?;

    let sender = endpoint.clone();
    let sender_world = world.clone();
    tokio::spawn(async move {
        for seq in 0.. {
            let phase = sender_world.phase.load(Ordering::SeqCst);
            for peer in HOSTS.into_iter().filter(|&peer| peer != id) {
                let stamp = Stamp { from: id, from_incarnation: incarnation, seq, phase };
                if sender.send(data(peer), encode(&stamp)).await.is_ok() {
                    sender_world.log.lock().expect("log").sent.push((peer, stamp));
                }
            }
            tokio::time::sleep(SEND_EVERY).await;
        }
    });

    loop {
        let (from, payload) = endpoint.recv().await?;
        let mut log = world.log.lock().expect("log");
        match decode(&payload) {
            Some(stamp) if data(stamp.from) == from => log.received.push((id, incarnation, stamp)),
            _ => log.damaged += 1,
        }
    }
}

fn simulation(world: &Arc<World>) -> Sim<'static> {
    let mut sim = turmoil::Builder::new().simulation_duration(Duration::from_secs(120)).tcp_capacity(4096).build();
    for id in HOSTS {
        let world = world.clone();
        sim.host(host_name(id), move || node_main(id, world.clone()));
    }
    sim
}

fn run_for(sim: &mut Sim<'_>, duration: Duration) {
    let end = sim.elapsed() + duration;
    while sim.elapsed() < end {
        sim.step().expect("simulation step");
    }
}

fn set_phase(world: &World, phase: u32) {
    world.phase.store(phase, Ordering::SeqCst);
}

/// (messages `from` sent to `to` in `phase`, how many of them `to` never received). `to_incarnation`
/// restricts both to messages sent while `to` ran that incarnation's software (None: any).
fn delivery(world: &World, from: u64, to: u64, phase: u32) -> (usize, usize) {
    let log = world.log.lock().expect("log");
    let sent: Vec<&Stamp> =
        log.sent.iter().filter(|(dest, s)| *dest == to && s.from == from && s.phase == phase).map(|(_, s)| s).collect();
    let missing = sent.iter().filter(|s| !log.received.iter().any(|(dest, _, r)| *dest == to && r == **s)).count();
    (sent.len(), missing)
}

/// Every message sent in `phases` between every pair in `pairs` arrived.
fn assert_all_delivered(world: &World, pairs: &[(u64, u64)], phases: &[u32]) {
    for &(from, to) in pairs {
        for &phase in phases {
            let (sent, missing) = delivery(world, from, to, phase);
            assert!(sent > 0, "n{from} sent nothing to n{to} in phase {phase}");
            assert_eq!(missing, 0, "n{from} -> n{to}, phase {phase}: {missing} of {sent} messages lost");
        }
    }
}

fn all_pairs() -> Vec<(u64, u64)> {
    HOSTS.iter().flat_map(|&a| HOSTS.iter().filter(move |&&b| b != a).map(move |&b| (a, b))).collect()
}

fn assert_nothing_damaged(world: &World) {
    assert_eq!(world.log.lock().expect("log").damaged, 0, "a payload arrived altered");
}

#[test]
fn messages_flow_between_three_hosts() {
    let world = Arc::new(World::default());
    let mut sim = simulation(&world);
    run_for(&mut sim, Duration::from_secs(4));
    set_phase(&world, 1); // tail: may still be in flight when the run stops
    run_for(&mut sim, Duration::from_secs(1));
    assert_all_delivered(&world, &all_pairs(), &[0]);
    assert_nothing_damaged(&world);
}

/// Phase 1 is a healthy margin before a fault: messages sent just before it may legitimately be in
/// flight when it strikes, so the checks skip them.
const MARGIN: Duration = Duration::from_millis(300);

#[test]
fn a_partition_loses_messages_and_traffic_resumes_after_repair() {
    let world = Arc::new(World::default());
    let mut sim = simulation(&world);
    run_for(&mut sim, Duration::from_secs(2));
    set_phase(&world, 1);
    run_for(&mut sim, MARGIN);

    set_phase(&world, 2);
    sim.partition("n1", "n2");
    run_for(&mut sim, Duration::from_secs(5));

    set_phase(&world, 3); // settling: the dead connections time out and the peers redial
    sim.repair("n1", "n2");
    run_for(&mut sim, Duration::from_secs(4));
    set_phase(&world, 4);
    run_for(&mut sim, Duration::from_secs(3));
    set_phase(&world, 5); // tail: may still be in flight when the run stops
    run_for(&mut sim, Duration::from_secs(1));

    for (from, to) in [(1, 2), (2, 1)] {
        let (sent, missing) = delivery(&world, from, to, 2);
        assert!(sent > 0 && missing > 0, "n{from} -> n{to} across the cut: {missing} of {sent} lost");
    }
    // The cut link works again, without restarting anything; the other links never stopped.
    assert_all_delivered(&world, &[(1, 2), (2, 1)], &[0, 4]);
    assert_all_delivered(&world, &[(1, 3), (3, 1), (2, 3), (3, 2)], &[0, 1, 2, 3, 4]);
    assert_eq!(world.log.lock().expect("log").incarnations, [0, 1, 1, 1], "no host restarted");
    assert_nothing_damaged(&world);
}

#[test]
fn held_messages_arrive_after_release() {
    let world = Arc::new(World::default());
    let mut sim = simulation(&world);
    run_for(&mut sim, Duration::from_secs(2));
    set_phase(&world, 1);
    run_for(&mut sim, MARGIN);

    // Held for less than the idle timeout: the connections survive and nothing is lost.
    set_phase(&world, 2);
    sim.hold("n1", "n3");
    run_for(&mut sim, Duration::from_millis(800));
    for (from, to) in [(1, 3), (3, 1)] {
        let (sent, missing) = delivery(&world, from, to, 2);
        assert!(sent > 0 && missing == sent, "n{from} -> n{to} while held: {} of {sent} delivered", sent - missing);
    }

    set_phase(&world, 3);
    sim.release("n1", "n3");
    run_for(&mut sim, Duration::from_secs(2));
    set_phase(&world, 4);
    run_for(&mut sim, Duration::from_secs(1));
    assert_all_delivered(&world, &all_pairs(), &[0, 1, 2, 3]);
    assert_nothing_damaged(&world);
}

#[test]
fn the_others_reconnect_to_a_crashed_and_restarted_host() {
    let world = Arc::new(World::default());
    let mut sim = simulation(&world);
    run_for(&mut sim, Duration::from_secs(2));
    set_phase(&world, 1);
    run_for(&mut sim, MARGIN);

    set_phase(&world, 2);
    sim.crash("n2");
    run_for(&mut sim, Duration::from_secs(3));

    set_phase(&world, 3); // settling: n2 boots, the others notice their dead connections and redial
    sim.bounce("n2");
    run_for(&mut sim, Duration::from_secs(4));
    set_phase(&world, 4);
    run_for(&mut sim, Duration::from_secs(3));
    set_phase(&world, 5);
    run_for(&mut sim, Duration::from_secs(1));

    let log = world.log.lock().expect("log");
    assert_eq!(log.incarnations, [0, 1, 2, 1], "n2 restarted once");
    let restarted_got = |from: u64| {
        log.received.iter().filter(|(to, inc, s)| *to == 2 && *inc == 2 && s.from == from && s.phase == 4).count()
    };
    assert!(restarted_got(1) > 0 && restarted_got(3) > 0, "the restarted n2 receives from both others");
    drop(log);
    assert_all_delivered(&world, &all_pairs(), &[0, 4]);
    assert_all_delivered(&world, &[(1, 3), (3, 1)], &[1, 2, 3]);
    assert_nothing_damaged(&world);
}
