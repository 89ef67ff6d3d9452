//! The cluster harness and the simulated clocks and spawner: kills stop a node's tasks and crash its
//! disks, restarts re-run the boot function on the durable disks, wall clocks skew per node.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use madsim::runtime::Runtime;
use tessera_env::{Clock, DetRng, Disk, MonoTime, NodeId, Spawn, WallClock};
use tessera_sim::{Cluster, DiskModel, NetConfig, NodeSpec, SimClock, SimWallClock, Trace};

fn run<F: std::future::Future>(seed: u64, f: F) -> F::Output {
    Runtime::with_seed_and_config(seed, madsim::Config::default()).block_on(f)
}

const SECTOR: usize = tessera_env::SECTOR_SIZE_BYTES;

#[test]
fn kill_stops_tasks_crashes_disks_and_restart_reboots_from_durable_state() {
    run(1, async {
        let mut cluster =
            Cluster::new(DetRng::from_seed(1), Trace::new(false), NetConfig::default(), DiskModel::nvme(1 << 20));
        // Every boot records (boot number, what sector 0 held); a spawned task ticks forever.
        let log: Arc<Mutex<Vec<(u64, u8)>>> = Arc::default();
        let ticks: Arc<Mutex<u64>> = Arc::default();
        let (log2, ticks2) = (log.clone(), ticks.clone());
        cluster.add_node(NodeSpec { id: NodeId(1), rack: 0, disks: 1 }, move |env| {
            let (log, ticks) = (log2.clone(), ticks2.clone());
            async move {
                let disk = env.disks[0].clone();
                let first = disk.read(0, SECTOR).await.unwrap()[0];
                log.lock().unwrap().push((env.boot, first));
                env.spawn.spawn(
                    "ticker",
                    Box::pin(async move {
                        loop {
                            madsim::time::sleep(Duration::from_millis(10)).await;
                            *ticks.lock().unwrap() += 1;
                        }
                    }),
                );
                // Flushed 1, then unflushed 2.
                disk.write(0, &vec![env.boot as u8 + 1; SECTOR]).await.unwrap();
                disk.flush().await.unwrap();
                disk.write(SECTOR as u64, &vec![9; SECTOR]).await.unwrap();
                std::future::pending::<()>().await;
            }
        });
        madsim::time::sleep(Duration::from_millis(100)).await;
        assert!(*ticks.lock().unwrap() > 0);
        cluster.kill(NodeId(1));
        assert!(cluster.disks(NodeId(1))[0].is_offline());
        assert!(!cluster.network().is_up(NodeId(1)));
        let frozen = *ticks.lock().unwrap();
        madsim::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(*ticks.lock().unwrap(), frozen, "a killed node's task kept running");
        cluster.restart(NodeId(1));
        madsim::time::sleep(Duration::from_millis(100)).await;
        assert!(*ticks.lock().unwrap() > frozen, "restart did not re-run the boot");
        assert_eq!(*log.lock().unwrap(), vec![(0, 0), (1, 1)], "boot did not see the flushed write");
        assert_eq!((cluster.kills(), cluster.restarts()), (1, 1));
    });
}

#[test]
fn clocks_follow_virtual_time_and_skew_per_node() {
    run(2, async {
        let t0 = SimClock.now();
        SimClock.sleep(Duration::from_secs(5)).await;
        assert!(SimClock.now().saturating_since(t0) >= Duration::from_secs(5));
        assert!(SimClock.now() > MonoTime::ZERO);
        let base = SimWallClock::new(&mut DetRng::from_seed(2));
        let (a, b) = (base.for_node(), base.for_node());
        b.set_skew_ns(-3_000_000_000);
        let (ta, tb) = (a.unix_time_ns(), b.unix_time_ns());
        assert_eq!(ta - tb, 3_000_000_000);
        assert!(ta > 1_704_067_200 * 1_000_000_000, "wall clock before 2024");
        SimClock.sleep(Duration::from_secs(1)).await;
        assert!(a.unix_time_ns() - ta >= 1_000_000_000);
    });
}

#[test]
fn wall_clock_base_comes_from_the_seed() {
    let at = |seed| SimWallClock::new(&mut DetRng::from_seed(seed)).unix_time_ns();
    assert_eq!(at(5), at(5));
    assert_ne!(at(5), at(6));
}
