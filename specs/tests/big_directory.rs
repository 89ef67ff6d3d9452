//! One directory of a million entries on an in-process cluster of 64 shards
//! (`tessera_meta::local::LocalCluster`, the default split threshold of 8192 entries), listed page by
//! page while it grows and while other names come and go in it: GIGA+ splits move its partitions over
//! the shards under the listing, and readdir cookies (positions in hash space) keep the listing exact.
//!
//! Checked: every name present for the whole listing is listed exactly once, no name twice, nothing
//! that never existed; the listing crossed splits; the directory ends with at least 1,000,000 entries
//! spread over nearly every shard; the cluster's cross-shard invariants hold at the end.

use std::collections::{BTreeSet, VecDeque};
use std::time::Instant;

use tessera_meta::local::LocalCluster;
use tessera_meta::{Credentials, InodeId, MetaOp, MetaReply, READDIR_START};

const SHARDS: u16 = 64;
/// Names created before the listing starts (and never removed): each must be listed exactly once.
const STABLE: usize = 400_000;
/// The size the directory must reach.
const ENTRIES_MIN: usize = 1_000_000;
const PAGE_ENTRIES: u32 = 1_000;
/// Per page read: names added for good, and short-lived names added and removed.
const GROWTH_PER_PAGE: usize = 1_000;
const CHURN_PER_PAGE: usize = 20;
/// Shards the directory's entries must span at the end (of 64; about 250 partitions placed by hash).
const SHARDS_SPANNED_MIN: usize = 58;

struct Run {
    c: LocalCluster,
    dir: InodeId,
    now: u64,
}

impl Run {
    fn op(&mut self, op: MetaOp) -> MetaReply {
        self.now += 1;
        self.c.execute(&op, self.now).unwrap_or_else(|e| panic!("{op:?}: {e:?}"))
    }

    fn create(&mut self, name: &str) {
        let op = MetaOp::Create { parent: self.dir, name: name.to_string(), mode: 0o644, creds: Credentials::root() };
        assert!(matches!(self.op(op), MetaReply::Entry(_)));
    }

    fn unlink(&mut self, name: &str) {
        let op = MetaOp::Unlink { parent: self.dir, name: name.to_string(), creds: Credentials::root() };
        assert_eq!(self.op(op), MetaReply::Done);
    }

    /// One page after `cookie`: the names and cookies, and whether it is the last.
    fn page(&mut self, cookie: u64) -> (Vec<(String, u64)>, bool) {
        let op = MetaOp::Readdir { dir: self.dir, cookie, max_entries: PAGE_ENTRIES, creds: Credentials::root() };
        let MetaReply::DirEntries { entries, eof } = self.op(op) else { panic!("readdir reply") };
        (entries.into_iter().map(|e| (e.name, e.cookie)).collect(), eof)
    }

    fn size(&mut self) -> u64 {
        let MetaReply::Attr(attr) = self.op(MetaOp::GetAttr { ino: self.dir }) else { panic!("getattr reply") };
        attr.size
    }
}

#[test]
fn a_million_entry_directory_is_listed_exactly_once_while_it_changes() {
    let started = Instant::now();
    let mut run = Run { c: LocalCluster::new(SHARDS), dir: InodeId::ROOT, now: 1_000 };
    let mkdir = MetaOp::Mkdir { parent: InodeId::ROOT, name: "big".into(), mode: 0o755, creds: Credentials::root() };
    let MetaReply::Entry(attr) = run.op(mkdir) else { panic!("mkdir") };
    run.dir = attr.ino;

    let stable: Vec<String> = (0..STABLE).map(|i| format!("stable-{i}")).collect();
    for name in &stable {
        run.create(name);
    }
    let grown_at = started.elapsed();
    let splits_before = run.c.stats().splits;
    assert!(run.c.partitions(run.dir).len() > 32, "{} partitions", run.c.partitions(run.dir).len());

    // The listing, interleaved with growth and churn.
    let mut ever: BTreeSet<String> = stable.iter().cloned().collect();
    let mut listed: Vec<String> = Vec::new();
    let (mut cookie, mut pages, mut grown, mut churned) = (READDIR_START, 0, 0, 0);
    let mut churn: VecDeque<String> = VecDeque::new();
    loop {
        let (entries, eof) = run.page(cookie);
        pages += 1;
        assert!(eof || entries.len() == PAGE_ENTRIES as usize, "page {pages}: {} entries", entries.len());
        for (name, c) in entries {
            assert!(c > cookie, "page {pages}: cookie {c:#x} after {cookie:#x}");
            cookie = c;
            listed.push(name);
        }
        if eof {
            break;
        }
        for _ in 0..GROWTH_PER_PAGE {
            let name = format!("grown-{grown}");
            grown += 1;
            run.create(&name);
            ever.insert(name);
        }
        for _ in 0..CHURN_PER_PAGE {
            let name = format!("churn-{churned}");
            churned += 1;
            run.create(&name);
            ever.insert(name.clone());
            churn.push_back(name);
        }
        while churn.len() > 5 * CHURN_PER_PAGE {
            let name = churn.pop_front().expect("churn names");
            run.unlink(&name);
        }
    }
    let listed_at = started.elapsed();
    let splits_during = run.c.stats().splits - splits_before;
    while (run.size() as usize) < ENTRIES_MIN {
        for _ in 0..GROWTH_PER_PAGE {
            run.create(&format!("grown-{grown}"));
            grown += 1;
        }
    }

    // Exactly once, never twice, nothing invented.
    let unique: BTreeSet<&String> = listed.iter().collect();
    assert_eq!(unique.len(), listed.len(), "a name was listed twice");
    for name in &stable {
        assert!(unique.contains(name), "{name} present throughout was not listed");
    }
    assert!(listed.iter().all(|n| ever.contains(n)), "a listed name never existed");
    assert!(splits_during > 50, "{splits_during} splits during the listing");

    // Size and spread.
    let size = run.size() as usize;
    assert!(size >= ENTRIES_MIN, "{size} entries");
    let parts = run.c.partitions(run.dir);
    let spanned: BTreeSet<u16> =
        run.c.shards().iter().filter(|s| s.entries().any(|(&(dir, _), _)| dir == run.dir)).map(|s| s.shard()).collect();
    assert!(spanned.len() >= SHARDS_SPANNED_MIN, "spread over {} shards", spanned.len());
    let stats = run.c.stats();
    let checked = Instant::now();
    run.c.check().expect("cross-shard invariants");
    eprintln!(
        "big directory: {size} entries in {} partitions over {} shards; listing of {pages} pages ({} names, {splits_during} \
         splits during it); {} ops, {} planned, {} splits moving {} entries; grown to {STABLE} in {grown_at:?}, listed \
         by {listed_at:?}, total {:?} (check {:?})",
        parts.len(),
        spanned.len(),
        listed.len(),
        stats.ops,
        stats.planned,
        stats.splits,
        stats.entries_moved,
        started.elapsed(),
        checked.elapsed(),
    );
}
