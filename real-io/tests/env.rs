//! The clocks, the spawner and OS seeding.

use std::time::Duration;

use tessera_env::{Clock, Rng, Spawn, WallClock};
use tessera_real_io::{RealClock, RealWallClock, TokioSpawn, os_seed, os_seeded_rng};

#[tokio::test]
async fn real_clock_is_monotonic_and_sleeps_at_least_the_duration() {
    let clock = RealClock::new();
    let twin = clock.clone();
    let t0 = clock.now();
    let mut last = t0;
    for _ in 0..1000 {
        let t = twin.now();
        assert!(t >= last);
        last = t;
    }
    let before = clock.now();
    clock.sleep(Duration::from_millis(20)).await;
    assert!(clock.now() - before >= Duration::from_millis(20));
}

#[test]
fn wall_clock_is_after_2024() {
    let ns = RealWallClock.unix_time_ns();
    assert!(ns > 1_704_067_200 * 1_000_000_000, "{ns}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_spawn_runs_tasks() {
    let spawn = TokioSpawn::current();
    let (tx, rx) = futures::channel::oneshot::channel();
    spawn.spawn(
        "answer",
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            let _ = tx.send(42u32);
        }),
    );
    assert_eq!(rx.await.unwrap(), 42);
}

#[test]
fn tokio_spawn_onto_an_explicit_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let spawn = TokioSpawn::new(rt.handle().clone());
    let (tx, rx) = std::sync::mpsc::channel();
    spawn.spawn("ping", Box::pin(async move { tx.send(7u8).unwrap() }));
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), 7);
}

#[test]
fn os_seeds_differ_and_seeded_rngs_differ() {
    assert_ne!(os_seed(), os_seed());
    let mut a = os_seeded_rng();
    let mut b = os_seeded_rng();
    assert_ne!((a.next_u64(), a.next_u64()), (b.next_u64(), b.next_u64()));
}
