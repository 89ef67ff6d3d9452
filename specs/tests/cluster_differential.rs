//! Differential test of the in-process cluster (`tessera_meta::local::LocalCluster`: shard state
//! machines, the operation driver, optimistic planning and two-phase commit) against the reference
//! model: random operation sequences (every `MetaOp` kind, from the generator shared with
//! `shard_differential.rs` in `common`, with more root credentials) run on clusters of 1, 3 and 8 shards
//! and on `specs::posix::Namespace` must give equal replies after every step, attributes and times
//! included, and the cluster must keep its cross-shard invariants (`LocalCluster::check`). Most seeds
//! use a tiny directory split threshold (1 to 3 entries), so directories split into GIGA+ partitions
//! spread over the shards all the time: entries move between shards under the sequence, and lookups,
//! creations, removals, renames, permission changes and paged listings cross partitions.
//!
//! Inode ids differ: the model allocates every inode in shard 0, the cluster where the placement
//! rules put it. A bijection cluster id <-> model id is built from the `Entry` replies of creating
//! operations; operations are generated in cluster ids and translated, replies translated back. An id
//! the cluster never allocated maps to one the model never allocates. At the end every id ever
//! allocated has the same attributes (or is missing in both) and every directory the same listing.

mod common;

use std::collections::BTreeMap;

use common::{Draw, Gen, Outcomes};
use tessera_env::DetRng;
use tessera_meta::local::LocalCluster;
use tessera_meta::{Credentials, FileType, InodeId, MetaOp, MetaReply, MetaResult, READDIR_START};
use tessera_specs::posix::Namespace;

/// Cluster ids <-> model ids.
#[derive(Default)]
struct Ids {
    to_model: BTreeMap<InodeId, InodeId>,
    to_cluster: BTreeMap<InodeId, InodeId>,
}

/// A model id the model never allocates (it counts up from 1 in shard 0).
const NEVER: InodeId = InodeId::new(0, InodeId::COUNTER_MAX);

impl Ids {
    fn new() -> Ids {
        let mut ids = Ids::default();
        ids.add(InodeId::ROOT, InodeId::ROOT);
        ids
    }

    fn add(&mut self, cluster: InodeId, model: InodeId) {
        assert!(self.to_model.insert(cluster, model).is_none(), "{cluster:?} mapped twice");
        assert!(self.to_cluster.insert(model, cluster).is_none(), "{model:?} mapped twice");
    }

    fn model(&self, ino: InodeId) -> InodeId {
        self.to_model.get(&ino).copied().unwrap_or(NEVER)
    }

    fn cluster(&self, ino: InodeId) -> InodeId {
        *self.to_cluster.get(&ino).unwrap_or_else(|| panic!("model id {ino:?} has no cluster id"))
    }
}

/// `result` with every inode id passed through `f`.
fn map_result(result: &MetaResult, f: impl Fn(InodeId) -> InodeId) -> MetaResult {
    let mut result = result.clone();
    match &mut result {
        Ok(MetaReply::Attr(attr) | MetaReply::Entry(attr)) => attr.ino = f(attr.ino),
        Ok(MetaReply::Child { ino, .. }) => *ino = f(*ino),
        Ok(MetaReply::DirEntries { entries, .. }) => entries.iter_mut().for_each(|e| e.ino = f(e.ino)),
        _ => {}
    }
    result
}

/// How often each reply kind (or errno) was seen: evidence of coverage.
#[derive(Default)]
struct Tally {
    outcomes: Outcomes,
    planned: u64,
    planned_errors: u64,
    /// Planned operations naming no inode beyond the cluster.
    planned_in_cluster: u64,
    /// Partition splits, and the entries they moved to another shard.
    splits: u64,
    entries_moved: u64,
}

impl Tally {
    /// Count `op`'s outcome, again as "planned ..." when it ran as a cross-shard transaction, and as
    /// "split ..." when the directory it works in (the inode it names first; a link's new parent) was
    /// split into partitions.
    fn note(&mut self, op: &MetaOp, reply: &MetaResult, planned: bool, split: bool) {
        let key = self.outcomes.note(op, reply);
        if planned {
            self.outcomes.add(format!("planned {key}"));
        }
        if split {
            self.outcomes.add(format!("split {key}"));
        }
    }
}

/// Run `ops` generated operations from `d` on a cluster of `shards` splitting partitions of more than
/// `split_threshold` entries and on the model; panic with the step on the first divergence.
fn run(d: &mut DetRng, shards: u16, split_threshold: u32, ops: usize, tally: &mut Tally) {
    let mut now = 1_000;
    let mut cluster = LocalCluster::with_root_time(shards, now).with_split_threshold(split_threshold);
    let mut model = Namespace::new(now);
    let mut ids = Ids::new();
    let mut cookies = Vec::new();
    for step in 0..ops {
        now += 1 + d.pick(1000);
        let inodes: Vec<InodeId> = cluster.shards().iter().flat_map(|s| s.inodes().map(|(ino, _)| *ino)).collect();
        let dirs: Vec<InodeId> =
            cluster.shards().iter().flat_map(|s| s.inodes().filter(|(_, r)| r.is_dir()).map(|(ino, _)| *ino)).collect();
        let next_counters = cluster.shards().iter().map(|s| s.next_counter()).collect();
        let op = Gen {
            d: &mut *d,
            inodes,
            dirs,
            next_counters,
            cookies: &cookies,
            stale_in_any_shard: true,
            root_half_the_time: true,
            content_ops: false,
            stripe_seq: 0,
        }
        .op();
        let expected = model.apply(&op.map_inodes(|ino| ids.model(ino)), now);
        let planned_before = cluster.stats().planned;
        let first = std::cell::Cell::new(None);
        op.map_inodes(|ino| {
            first.set(first.get().or(Some(ino)));
            ino
        });
        let dir = match &op {
            MetaOp::Link { new_parent, .. } => Some(*new_parent),
            _ => first.get(),
        };
        let split = dir.is_some_and(|dir| dir.shard() < shards && cluster.partitions(dir).len() > 1);
        let got = cluster.execute(&op, now);
        if let (Ok(MetaReply::Entry(c)), Ok(MetaReply::Entry(m))) = (&got, &expected)
            && !ids.to_model.contains_key(&c.ino)
        {
            ids.add(c.ino, m.ino);
        }
        assert_eq!(map_result(&got, |ino| ids.model(ino)), expected, "step {step}: {op:?}");
        if let Ok(MetaReply::DirEntries { entries, .. }) = &got {
            cookies.extend(entries.iter().map(|e| e.cookie));
        }
        let planned = cluster.stats().planned > planned_before;
        tally.note(&op, &got, planned, split);
        let beyond = std::cell::Cell::new(false);
        op.map_inodes(|ino| {
            beyond.set(beyond.get() || ino.shard() >= shards);
            ino
        });
        tally.planned_in_cluster += u64::from(planned && !beyond.get());
        cluster.check().unwrap_or_else(|e| panic!("step {step}: {op:?}: cluster: {e}"));
    }
    compare_final(&mut cluster, &mut model, &ids, now);
    teardown(&mut cluster, &mut model, &ids, now, tally);
    let stats = cluster.stats();
    tally.planned += stats.planned;
    tally.planned_errors += stats.planned_errors;
    tally.splits += stats.splits;
    tally.entries_moved += stats.entries_moved;
    assert_eq!(stats.backoffs, 0, "nothing runs concurrently: no plan is ever stale");
}

/// Remove everything but the root, as root, compared with the model step by step: every file, then
/// the directories from the leaves up (so directories that were split are removed too, their
/// partitions with them). At the end only the root's partitions may remain.
fn teardown(cluster: &mut LocalCluster, model: &mut Namespace, ids: &Ids, mut now: u64, tally: &mut Tally) {
    let entries = |cluster: &LocalCluster| -> Vec<(InodeId, String, FileType, InodeId)> {
        let all = cluster.shards().iter().flat_map(|s| s.entries());
        all.map(|(&(dir, _), e)| (dir, e.name.clone(), e.kind, e.ino)).collect()
    };
    let mut step = |cluster: &mut LocalCluster, op: MetaOp, split_child: bool| {
        now += 1;
        let expected = model.apply(&op.map_inodes(|ino| ids.model(ino)), now);
        let got = cluster.execute(&op, now);
        assert_eq!(map_result(&got, |ino| ids.model(ino)), expected, "teardown: {op:?}");
        assert_eq!(got, Ok(MetaReply::Done), "teardown: {op:?}");
        cluster.check().unwrap_or_else(|e| panic!("teardown: {op:?}: cluster: {e}"));
        if split_child {
            tally.outcomes.add("teardown Rmdir of a split directory".into());
        }
    };
    for (parent, name, kind, _) in entries(cluster) {
        if kind != FileType::Directory {
            step(cluster, MetaOp::Unlink { parent, name, creds: Credentials::root() }, false);
        }
    }
    loop {
        let left = entries(cluster);
        if left.is_empty() {
            break;
        }
        let parents: std::collections::BTreeSet<InodeId> = left.iter().map(|(dir, ..)| *dir).collect();
        for (parent, name, _, child) in left.into_iter().filter(|(.., child)| !parents.contains(child)) {
            let split = cluster.partitions(child).len() > 1;
            step(cluster, MetaOp::Rmdir { parent, name, creds: Credentials::root() }, split);
        }
    }
    for s in cluster.shards() {
        let left: Vec<_> = s.owned_partitions().into_iter().filter(|(dir, _)| *dir != InodeId::ROOT).collect();
        assert!(left.is_empty(), "shard {} keeps partitions of removed directories: {left:?}", s.shard());
    }
}

/// Every id ever allocated has the same attributes (or is missing in both), every directory the same
/// listing, and both hold as many inodes.
fn compare_final(cluster: &mut LocalCluster, model: &mut Namespace, ids: &Ids, now: u64) {
    let count: usize = cluster.shards().iter().map(|s| s.inodes().count()).sum();
    assert_eq!(count, model.inode_count());
    for (&c, &m) in &ids.to_model {
        let getattr = MetaOp::GetAttr { ino: c };
        let got = cluster.execute(&getattr, now);
        assert_eq!(map_result(&got, |ino| ids.model(ino)), model.apply(&MetaOp::GetAttr { ino: m }, now), "{c:?}");
        let listing =
            |dir| MetaOp::Readdir { dir, cookie: READDIR_START, max_entries: u32::MAX, creds: Credentials::root() };
        let got = cluster.execute(&listing(c), now);
        let expected = model.apply(&listing(m), now);
        assert_eq!(map_result(&got, |ino| ids.model(ino)), expected, "listing of {c:?}");
        if let Ok(MetaReply::DirEntries { entries, .. }) = &expected {
            entries.iter().for_each(|e| assert_eq!(ids.model(ids.cluster(e.ino)), e.ino));
        }
    }
}

const SEEDS: u64 = 300;
const OPS_PER_SEED: usize = 400;
/// Split thresholds by seed: mostly tiny (directories hold a handful of names), sometimes the
/// default (directories never split).
const SPLIT_THRESHOLDS: [u32; 4] = [1, 2, 3, tessera_meta::shard::SPLIT_THRESHOLD_DEFAULT];

fn seeded_runs(shards: u16) -> Tally {
    let mut tally = Tally::default();
    let threshold = |seed: u64| SPLIT_THRESHOLDS[(seed % 4) as usize];
    common::for_each_seed(
        SEEDS,
        |seed| run(&mut DetRng::from_seed(seed), shards, threshold(seed), OPS_PER_SEED, &mut tally),
        |seed| {
            let replay =
                format!("run(&mut DetRng::from_seed({seed}), {shards}, {}, {OPS_PER_SEED}, ..)", threshold(seed));
            format!("cluster differential: {shards} shards, seed {seed} failed (replay: {replay})")
        },
    );
    eprintln!(
        "cluster differential, {shards} shards: {} planned ({} errors), {} splits moving {} entries; outcomes: {:?}",
        tally.planned, tally.planned_errors, tally.splits, tally.entries_moved, tally.outcomes
    );
    assert!(tally.splits > 1000, "{} splits", tally.splits);
    let outcomes = &tally.outcomes;
    let ops = ["Create", "Mkdir", "Link", "Unlink", "Rmdir", "Rename", "Readdir", "SetAttr", "SetXattr"];
    outcomes.assert_succeeded(&ops);
    // Operations in (or on) split directories, successes and errors.
    outcomes.assert_reached(&[
        "split Lookup ok",
        "split Lookup ENOENT",
        "split Lookup EACCES",
        "split Create ok",
        "split Create EEXIST",
        "split Mkdir ok",
        "split Unlink ok",
        "split Rmdir ok",
        "split Rmdir ENOTEMPTY",
        "split Rename ok",
        "split Readdir ok",
        "split SetAttr ok",
        "split Link ok",
        "teardown Rmdir of a split directory",
    ]);
    outcomes.assert_reached(&[
        "Rename EINVAL",
        "Rename ENOTEMPTY",
        "Rename EISDIR",
        "Rmdir ENOTEMPTY",
        "Unlink EISDIR",
        "Link EPERM",
    ]);
    tally
}

#[test]
fn one_shard_matches_the_model() {
    let tally = seeded_runs(1);
    assert_eq!(tally.planned_in_cluster, 0, "a single shard plans only ops naming inodes beyond it");
    assert_eq!(tally.entries_moved, 0, "a single shard's splits only relabel");
}

/// Evidence that the cross-shard paths were exercised, errors included.
fn check_planned(tally: &Tally) {
    assert!(tally.entries_moved > 1000, "{} entries moved by splits", tally.entries_moved);
    assert!(
        tally.planned > 1000 && tally.planned_errors > 100,
        "{} planned, {} errors",
        tally.planned,
        tally.planned_errors
    );
    tally.outcomes.assert_reached(&[
        "planned Mkdir ok",
        "planned Rmdir ok",
        "planned Link ok",
        "planned Unlink ok",
        "planned Rename ok",
        "planned Rename EINVAL",
        "planned Rename ENOTEMPTY",
        "planned Rmdir ENOTEMPTY",
        "planned Unlink EISDIR",
    ]);
}

#[test]
fn three_shards_match_the_model() {
    check_planned(&seeded_runs(3));
}

#[test]
fn eight_shards_match_the_model() {
    check_planned(&seeded_runs(8));
}
