//! The nemesis: composable injectors driven as a plain state machine (STYLE.md rule 1).
//!
//! Call order: the caller owns time. It calls [`Nemesis::pause_ms`] and sleeps that long, then
//! [`Nemesis::step`] with the current time, again and again during the safety phase; then
//! [`Nemesis::finish_rack_losses`] (the planned losses not made yet), optionally
//! [`Nemesis::lose_racks_now`] (the over-budget mode) and finally [`Nemesis::heal`], which undoes every
//! temporary fault before the liveness phase. Each `step` first ends the faults whose time is up, then
//! injects at most one new fault of a kind drawn from the [`FaultMix`].
//!
//! The fault budget of the safety phase: a stripe of protection `N+K` survives the loss of any `K` of
//! its chunks. Lost racks take one chunk each of the stripes they held; every other fault that can
//! destroy or hide a chunk (a failed drive, a rotten block, a failing read) takes one more from the
//! budget, whatever stripe it hits, so no stripe ever loses more than `K` chunks. Crashes, slow devices,
//! network faults and clock skew destroy nothing that was acknowledged and are not budgeted.

use std::collections::{BTreeMap, BTreeSet};

use tessera_env::{DetRng, NodeId, Rng};

use crate::kind::FaultKind;
use crate::target::{FaultTarget, LinkFault};

/// Which faults a run injects, and how often each relative to the others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultMix {
    /// Kinds with a weight above zero, in `FaultKind` order.
    pub weights: Vec<(FaultKind, u32)>,
}

impl FaultMix {
    /// Swarm testing: the seed switches each kind on (three in four) or off and weighs it 1..=5. Rack
    /// losses are planned separately ([`NemesisConfig::rack_losses`]) and are not part of the mix.
    pub fn swarm(rng: &mut DetRng) -> FaultMix {
        let weights = FaultKind::ALL
            .into_iter()
            .filter(|k| k.in_swarm_mix())
            .filter_map(|k| if rng.chance(3, 4) { Some((k, rng.range_inclusive(1, 5) as u32)) } else { None })
            .collect();
        FaultMix { weights }
    }

    /// Exactly `kinds` with their weights (a weight of `None` is chosen by the seed, 1..=5).
    pub fn of(kinds: &[(FaultKind, Option<u32>)], rng: &mut DetRng) -> FaultMix {
        let mut weights: Vec<(FaultKind, u32)> = kinds
            .iter()
            .filter(|(k, _)| *k != FaultKind::RackLoss)
            .map(|(k, w)| (*k, w.unwrap_or_else(|| rng.range_inclusive(1, 5) as u32)))
            .collect();
        weights.sort();
        assert!(weights.iter().all(|(_, w)| *w > 0), "fault weights must be positive");
        FaultMix { weights }
    }

    pub fn none() -> FaultMix {
        FaultMix { weights: Vec::new() }
    }

    pub fn contains(&self, kind: FaultKind) -> bool {
        self.weights.iter().any(|(k, _)| *k == kind)
    }

    fn pick(&self, rng: &mut DetRng) -> Option<FaultKind> {
        let total: u64 = self.weights.iter().map(|(_, w)| u64::from(*w)).sum();
        if total == 0 {
            return None;
        }
        let mut x = rng.below(total);
        for (kind, w) in &self.weights {
            if x < u64::from(*w) {
                return Some(*kind);
            }
            x -= u64::from(*w);
        }
        unreachable!("the draw is below the total weight")
    }

    /// `crash:3,partition:1,...` for reports.
    pub fn describe(&self) -> String {
        if self.weights.is_empty() {
            return "none".into();
        }
        self.weights.iter().map(|(k, w)| format!("{}:{w}", k.name())).collect::<Vec<_>>().join(",")
    }
}

/// How a nemesis behaves during one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NemesisConfig {
    pub mix: FaultMix,
    /// Longest pause between two faults (the shortest is 100 ms).
    pub interval_ms_max: u64,
    /// Chunks a stripe may lose and still be read (`K`).
    pub tolerated_chunks: u64,
    /// Racks to lose for good during the safety phase (at most `K`).
    pub rack_losses: u64,
    /// Servers down at the same time at most (crashes; lost racks not counted).
    pub down_max: usize,
    /// How long after a rack is lost its nodes are declared dead.
    pub detection_delay_ms: u64,
    /// Longest episode of a temporary fault (slow drives, slow or lossy links, failing reads); noisy
    /// neighbours last minutes.
    pub episode_ms_max: u64,
}

/// A fault to undo at a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Undo {
    /// The power cut reaches the node (its drives may have lost power a moment before, mid-write).
    Kill(NodeId, u64),
    Restart(NodeId),
    Resume(NodeId),
    HealCuts,
    Links(NodeId),
    Reads(NodeId, usize, u64),
    Declare(u32),
}

/// The nemesis of one run (see the module documentation for the call order).
#[derive(Debug)]
pub struct Nemesis {
    rng: DetRng,
    config: NemesisConfig,
    /// Chunk-destroying faults still allowed.
    budget_left: u64,
    /// Temporary faults and when each ends (ms).
    pending: BTreeSet<(u64, Undo)>,
    down: BTreeSet<NodeId>,
    paused: BTreeSet<NodeId>,
    degraded: BTreeSet<NodeId>,
    skewed: BTreeSet<NodeId>,
    failed_drives: BTreeSet<NodeId>,
    slowed: BTreeSet<NodeId>,
    lost: BTreeSet<u32>,
    counts: BTreeMap<FaultKind, u64>,
}

impl Nemesis {
    pub fn new(config: NemesisConfig, rng: DetRng) -> Nemesis {
        assert!(config.rack_losses <= config.tolerated_chunks, "the safety phase loses at most K racks");
        assert!(config.interval_ms_max >= 100, "faults at most every 100 ms");
        let budget_left = config.tolerated_chunks - config.rack_losses;
        Nemesis {
            rng,
            config,
            budget_left,
            pending: BTreeSet::new(),
            down: BTreeSet::new(),
            paused: BTreeSet::new(),
            degraded: BTreeSet::new(),
            skewed: BTreeSet::new(),
            failed_drives: BTreeSet::new(),
            slowed: BTreeSet::new(),
            lost: BTreeSet::new(),
            counts: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &NemesisConfig {
        &self.config
    }

    /// Faults injected so far, by kind.
    pub fn counts(&self) -> &BTreeMap<FaultKind, u64> {
        &self.counts
    }

    pub fn lost_racks(&self) -> Vec<u32> {
        self.lost.iter().copied().collect()
    }

    /// Chunk-destroying faults the budget still allows.
    pub fn budget_left(&self) -> u64 {
        self.budget_left
    }

    /// How long to wait before the next [`Nemesis::step`].
    pub fn pause_ms(&mut self) -> u64 {
        self.rng.range_inclusive(100, self.config.interval_ms_max)
    }

    /// End what is due at `now_ms`, then inject at most one fault.
    pub fn step(&mut self, target: &mut dyn FaultTarget, now_ms: u64) {
        self.undo_due(target, now_ms);
        if (self.lost.len() as u64) < self.config.rack_losses && self.rng.chance(1, 6) {
            self.lose_rack(target, now_ms);
            return;
        }
        if let Some(kind) = self.config.mix.pick(&mut self.rng)
            && self.inject(target, kind, now_ms)
        {
            *self.counts.entry(kind).or_default() += 1;
        }
    }

    /// Lose the planned racks not lost yet (at the end of the safety phase).
    pub fn finish_rack_losses(&mut self, target: &mut dyn FaultTarget, now_ms: u64) {
        while (self.lost.len() as u64) < self.config.rack_losses {
            self.lose_rack(target, now_ms);
        }
    }

    /// Lose `n` more racks at once, beyond the budget (the over-budget mode).
    pub fn lose_racks_now(&mut self, target: &mut dyn FaultTarget, n: u64, now_ms: u64) {
        for _ in 0..n {
            self.lose_rack(target, now_ms);
        }
    }

    /// Undo every temporary fault now: restart crashed nodes (and those with a failed drive: the operator
    /// replaced it), heal the network, give links, drives and clocks back, declare lost racks dead.
    pub fn heal(&mut self, target: &mut dyn FaultTarget) {
        self.undo_due(target, u64::MAX);
        target.heal_cuts();
        for node in std::mem::take(&mut self.failed_drives) {
            if !self.is_lost(target, node) {
                target.restart(node);
            }
        }
        for node in std::mem::take(&mut self.skewed) {
            target.skew_clock(node, 0);
        }
        for node in std::mem::take(&mut self.slowed) {
            target.clear_drive_faults(node);
        }
        target.note("nemesis: healed");
    }

    fn undo_due(&mut self, target: &mut dyn FaultTarget, now_ms: u64) {
        while let Some(&(at, undo)) = self.pending.first() {
            if at > now_ms {
                break;
            }
            self.pending.pop_first();
            match undo {
                Undo::Kill(node, downtime_ms) => {
                    if !self.is_lost(target, node) && target.is_alive(node) {
                        target.kill(node);
                    }
                    target.clear_drive_faults(node);
                    self.pending.insert((at + downtime_ms, Undo::Restart(node)));
                }
                Undo::Restart(node) => {
                    self.down.remove(&node);
                    if !self.is_lost(target, node) {
                        target.restart(node);
                    }
                }
                Undo::Resume(node) => {
                    self.paused.remove(&node);
                    if !self.is_lost(target, node) {
                        target.resume(node);
                    }
                }
                Undo::HealCuts => target.heal_cuts(),
                Undo::Links(node) => {
                    self.degraded.remove(&node);
                    target.degrade_links(node, None);
                }
                Undo::Reads(node, drive, block) => target.clear_failing_reads(node, drive, block),
                Undo::Declare(rack) => {
                    let nodes: Vec<NodeId> =
                        target.servers().into_iter().filter(|n| target.rack_of(*n) == rack).collect();
                    target.declare_dead(&nodes);
                    target.note(&format!("nemesis: rack {rack} declared dead"));
                }
            }
        }
    }

    fn is_lost(&self, target: &dyn FaultTarget, node: NodeId) -> bool {
        self.lost.contains(&target.rack_of(node))
    }

    /// Servers not in a lost rack.
    fn standing(&self, target: &dyn FaultTarget) -> Vec<NodeId> {
        target.servers().into_iter().filter(|n| !self.is_lost(target, *n)).collect()
    }

    fn any(&mut self, nodes: &[NodeId]) -> Option<NodeId> {
        (!nodes.is_empty()).then(|| nodes[self.rng.below(nodes.len() as u64) as usize])
    }

    fn episode_ms(&mut self) -> u64 {
        let max = self.config.episode_ms_max.max(1_000);
        self.rng.range_inclusive(max / 10, max)
    }

    /// Inject one fault of `kind`; false if none could be injected now.
    fn inject(&mut self, target: &mut dyn FaultTarget, kind: FaultKind, now_ms: u64) -> bool {
        match kind {
            FaultKind::Crash => self.crash(target, now_ms, false),
            FaultKind::CrashInCommit => self.crash(target, now_ms, true),
            FaultKind::Pause => {
                let running: Vec<NodeId> = self
                    .standing(target)
                    .into_iter()
                    .filter(|n| target.is_alive(*n) && !self.down.contains(n) && !self.paused.contains(n))
                    .collect();
                let Some(node) = self.any(&running) else { return false };
                let ms = self.rng.range_inclusive(200, 8_000);
                target.pause(node);
                self.paused.insert(node);
                self.pending.insert((now_ms + ms, Undo::Resume(node)));
                target.note(&format!("nemesis: pause {node} for {ms} ms"));
                true
            }
            FaultKind::DriveLoss | FaultKind::CorruptRead | FaultKind::FailingRead => {
                self.drive_fault(target, kind, now_ms)
            }
            FaultKind::SlowDisk => {
                let Some(node) = self.any(&self.standing(target)) else { return false };
                let factor = self.rng.range_inclusive(4, 50) as u32;
                let ms = self.episode_ms();
                target.slow_drives(node, factor, ms);
                self.slowed.insert(node);
                target.note(&format!("nemesis: drives of {node} x{factor} slower for {ms} ms"));
                true
            }
            FaultKind::SlowNode | FaultKind::MessageLoss | FaultKind::Delay | FaultKind::Duplicate => {
                self.link_fault(target, kind, now_ms)
            }
            FaultKind::Partition | FaultKind::OneWay | FaultKind::Bridge => self.cut(target, kind, now_ms),
            FaultKind::ClockSkew => {
                let Some(node) = self.any(&self.standing(target)) else { return false };
                let magnitude_ms = self.rng.range_inclusive(1, 120_000) as i64;
                let skew_ns = if self.rng.chance(1, 2) { magnitude_ms } else { -magnitude_ms } * 1_000_000;
                target.skew_clock(node, skew_ns);
                self.skewed.insert(node);
                target.note(&format!("nemesis: clock of {node} skewed by {skew_ns} ns"));
                true
            }
            FaultKind::RackLoss => false,
        }
    }

    /// A power cut of one node; `in_commit`: timed to its metadata drive's next multi-block journal write.
    fn crash(&mut self, target: &mut dyn FaultTarget, now_ms: u64, in_commit: bool) -> bool {
        if self.down.len() >= self.config.down_max {
            return false;
        }
        let alive: Vec<NodeId> =
            self.standing(target).into_iter().filter(|n| target.is_alive(*n) && !self.paused.contains(n)).collect();
        if alive.len() < 3 {
            return false;
        }
        let Some(node) = self.any(&alive) else { return false };
        let downtime_ms = self.rng.range_inclusive(300, 5_000);
        self.down.insert(node);
        if in_commit {
            // The metadata drive loses power when it next writes a large journal entry (if it writes one
            // within the wait); the node goes down at the end of the wait either way.
            let wait_ms = self.rng.range_inclusive(1_000, 15_000);
            target.crash_in_journal_commit(node);
            self.slowed.insert(node);
            self.pending.insert((now_ms + wait_ms, Undo::Kill(node, downtime_ms)));
            target.note(&format!(
                "nemesis: crash {node} during its next large journal commit, down in {wait_ms} ms for {downtime_ms} ms"
            ));
        } else if self.rng.chance(1, 2) {
            // The drives lose power during one of their next writes (torn), the node right after.
            let ios = self.rng.range_inclusive(1, 24);
            let delay_ms = self.rng.range_inclusive(5, 400);
            target.crash_drives_after_io(node, ios);
            self.slowed.insert(node);
            self.pending.insert((now_ms + delay_ms, Undo::Kill(node, downtime_ms)));
            target.note(&format!(
                "nemesis: crash {node} in {delay_ms} ms (drives at their IO {ios}) for {downtime_ms} ms"
            ));
        } else {
            target.kill(node);
            self.pending.insert((now_ms + downtime_ms, Undo::Restart(node)));
            target.note(&format!("nemesis: crash {node} for {downtime_ms} ms"));
        }
        true
    }

    fn drive_fault(&mut self, target: &mut dyn FaultTarget, kind: FaultKind, now_ms: u64) -> bool {
        if self.budget_left == 0 {
            return false;
        }
        let Some(node) = self.any(&self.standing(target)) else { return false };
        let drives = target.data_drives(node);
        if drives == 0 {
            return false;
        }
        let drive = self.rng.below(drives as u64) as usize;
        let pick = self.rng.next_u64();
        let done = match kind {
            FaultKind::DriveLoss => {
                if !self.failed_drives.insert(node) {
                    return false;
                }
                target.fail_next_data_write(node, drive);
                true
            }
            FaultKind::CorruptRead => target.corrupt_data_block(node, drive, pick),
            FaultKind::FailingRead => match target.fail_data_reads(node, drive, pick) {
                Some(block) => {
                    let ms = self.episode_ms();
                    self.pending.insert((now_ms + ms, Undo::Reads(node, drive, block)));
                    self.slowed.insert(node);
                    true
                }
                None => false,
            },
            _ => unreachable!("not a drive fault: {kind:?}"),
        };
        if done {
            self.budget_left -= 1;
            target.note(&format!(
                "nemesis: {} on {node} drive {drive} (budget left {})",
                kind.name(),
                self.budget_left
            ));
        }
        done
    }

    fn link_fault(&mut self, target: &mut dyn FaultTarget, kind: FaultKind, now_ms: u64) -> bool {
        let candidates: Vec<NodeId> =
            self.standing(target).into_iter().chain(target.clients()).filter(|n| !self.degraded.contains(n)).collect();
        let Some(node) = self.any(&candidates) else { return false };
        let r = &mut self.rng;
        let fault = match kind {
            FaultKind::SlowNode => {
                let max = r.range_inclusive(5_000, 100_000);
                LinkFault {
                    latency_us_min: max / 2,
                    latency_us_max: max,
                    loss_per_million: 0,
                    duplicate_per_million: 0,
                }
            }
            FaultKind::MessageLoss => LinkFault {
                latency_us_min: 100,
                latency_us_max: 2_000,
                loss_per_million: r.range_inclusive(20_000, 300_000),
                duplicate_per_million: 0,
            },
            FaultKind::Delay => LinkFault {
                latency_us_min: 100,
                latency_us_max: r.range_inclusive(20_000, 500_000),
                loss_per_million: 0,
                duplicate_per_million: 0,
            },
            FaultKind::Duplicate => LinkFault {
                latency_us_min: 100,
                latency_us_max: 3_000,
                loss_per_million: 0,
                duplicate_per_million: r.range_inclusive(10_000, 200_000),
            },
            _ => unreachable!("not a link fault: {kind:?}"),
        };
        let ms = self.episode_ms();
        target.degrade_links(node, Some(fault));
        self.degraded.insert(node);
        self.pending.insert((now_ms + ms, Undo::Links(node)));
        target.note(&format!("nemesis: {} on links of {node} for {ms} ms: {fault:?}", kind.name()));
        true
    }

    fn cut(&mut self, target: &mut dyn FaultTarget, kind: FaultKind, now_ms: u64) -> bool {
        let mut servers = self.standing(target);
        if servers.len() < 2 {
            return false;
        }
        shuffle(&mut self.rng, &mut servers);
        let clients = target.clients();
        match kind {
            FaultKind::Partition => {
                // Half the time, a leader alone with some of the clients: it may still believe it leads
                // while the others elect a new leader.
                let leaders: Vec<NodeId> =
                    target.leaders().into_iter().filter(|l| servers.contains(l) && target.is_alive(*l)).collect();
                if !leaders.is_empty() && self.rng.chance(1, 2) {
                    let leader = leaders[self.rng.below(leaders.len() as u64) as usize];
                    let pos = servers.iter().position(|s| *s == leader).expect("a standing server");
                    servers.swap(0, pos);
                    let (mut a, mut b) = (vec![leader], servers[1..].to_vec());
                    for c in clients {
                        if self.rng.chance(1, 2) { a.push(c) } else { b.push(c) }
                    }
                    target.partition(&[a, b]);
                    target.note(&format!("nemesis: leader {leader} cut off from the other servers"));
                } else {
                    let small = self.rng.range_inclusive(1, (servers.len() / 2) as u64) as usize;
                    let (mut a, mut b) = (servers[..small].to_vec(), servers[small..].to_vec());
                    for c in clients {
                        if self.rng.chance(1, 4) { a.push(c) } else { b.push(c) }
                    }
                    target.partition(&[a, b]);
                }
            }
            FaultKind::OneWay => {
                let mut ends: Vec<NodeId> = servers.iter().copied().chain(clients).collect();
                shuffle(&mut self.rng, &mut ends);
                target.cut(ends[0], ends[1]);
            }
            FaultKind::Bridge => {
                if servers.len() < 3 {
                    return false;
                }
                let bridge = servers[0];
                let split = 1 + self.rng.range_inclusive(1, (servers.len() - 2) as u64) as usize;
                let (mut a, mut b) = (servers[1..split].to_vec(), servers[split..].to_vec());
                for c in clients {
                    if self.rng.chance(1, 2) { a.push(c) } else { b.push(c) }
                }
                target.partition(&[a, b]);
                target.note(&format!("nemesis: bridge {bridge}"));
            }
            _ => unreachable!("not a cut: {kind:?}"),
        }
        let ms = self.rng.range_inclusive(300, 4_000);
        self.pending.insert((now_ms + ms, Undo::HealCuts));
        target.note(&format!("nemesis: {} for {ms} ms", kind.name()));
        true
    }

    fn lose_rack(&mut self, target: &mut dyn FaultTarget, now_ms: u64) {
        let racks: BTreeSet<u32> = target.servers().into_iter().map(|n| target.rack_of(n)).collect();
        let standing: Vec<u32> = racks.into_iter().filter(|r| !self.lost.contains(r)).collect();
        assert!(!standing.is_empty(), "no rack left to lose");
        let rack = standing[self.rng.below(standing.len() as u64) as usize];
        let nodes: Vec<NodeId> = target.servers().into_iter().filter(|n| target.rack_of(*n) == rack).collect();
        for node in nodes {
            if self.paused.remove(&node) {
                target.resume(node);
            }
            self.down.remove(&node);
            self.failed_drives.remove(&node);
            if target.is_alive(node) {
                target.kill(node);
            }
        }
        self.lost.insert(rack);
        *self.counts.entry(FaultKind::RackLoss).or_default() += 1;
        self.pending.insert((now_ms + self.config.detection_delay_ms, Undo::Declare(rack)));
        target.note(&format!("nemesis: rack {rack} lost for good"));
    }
}

/// Fisher-Yates, from the run's generator.
fn shuffle<T>(rng: &mut DetRng, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}
