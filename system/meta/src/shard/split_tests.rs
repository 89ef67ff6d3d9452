//! GIGA+ splits with a small threshold: entries survive, lookups route to the partition's shard,
//! stale routes are corrected, cookies stay valid across a split between two pages, a split
//! directory's access attributes and removal reach every partition, the host's call order stepped by
//! hand, a stale split plan is refused, and a split too big to move only relabels.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::exec::{Next, OpDriver, ShardCall};
use crate::local::{LocalCluster, check_shards};
use crate::{Credentials, Errno, FileType, InodeId, MetaOp, MetaReply, MetaResult, READDIR_START, SetAttr};

use super::partition::{ENTRY_CHANGE_BYTES_MAX, MESSAGE_BYTES_MAX};
use super::{
    Decision, EntryRecord, Envelope, NotLocal, PartitionId, ReadKey, ReadValue, SPLIT_MOVE_ENTRIES_MAX, ShardState,
    TxnChange, TxnMsg, dir_shard,
};

const ROOT: InodeId = InodeId::ROOT;
const SHARDS: u16 = 8;
const THRESHOLD: u32 = 16;

fn root() -> Credentials {
    Credentials::root()
}

struct Fs {
    c: LocalCluster,
    now: u64,
}

impl Fs {
    fn new() -> Fs {
        Fs { c: LocalCluster::new(SHARDS).with_split_threshold(THRESHOLD), now: 10 }
    }

    fn run(&mut self, op: MetaOp) -> MetaResult {
        self.now += 1;
        let result = self.c.execute(&op, self.now);
        self.c.check().unwrap_or_else(|e| panic!("after {op:?}: {e}"));
        result
    }

    fn mkdir(&mut self, parent: InodeId, name: &str, mode: u32) -> InodeId {
        match self.run(MetaOp::Mkdir { parent, name: name.into(), mode, creds: root() }) {
            Ok(MetaReply::Entry(attr)) => attr.ino,
            other => panic!("mkdir {name}: {other:?}"),
        }
    }

    fn create(&mut self, parent: InodeId, name: &str) -> InodeId {
        match self.run(MetaOp::Create { parent, name: name.into(), mode: 0o644, creds: root() }) {
            Ok(MetaReply::Entry(attr)) => attr.ino,
            other => panic!("create {name}: {other:?}"),
        }
    }

    fn lookup(&mut self, parent: InodeId, name: &str, creds: Credentials) -> MetaResult {
        self.run(MetaOp::Lookup { parent, name: name.into(), creds })
    }

    fn unlink(&mut self, parent: InodeId, name: &str) {
        assert_eq!(self.run(MetaOp::Unlink { parent, name: name.into(), creds: root() }), Ok(MetaReply::Done));
    }

    fn page(&mut self, dir: InodeId, cookie: u64, max_entries: u32) -> (Vec<crate::DirEntry>, bool) {
        match self.run(MetaOp::Readdir { dir, cookie, max_entries, creds: root() }) {
            Ok(MetaReply::DirEntries { entries, eof }) => (entries, eof),
            other => panic!("readdir: {other:?}"),
        }
    }

    /// Every name of `dir`, listed `per_page` at a time.
    fn list(&mut self, dir: InodeId, per_page: u32) -> Vec<String> {
        let (mut names, mut cookie) = (Vec::new(), READDIR_START);
        loop {
            let (entries, eof) = self.page(dir, cookie, per_page);
            names.extend(entries.iter().map(|e| e.name.clone()));
            if eof {
                return names;
            }
            cookie = entries.last().expect("a page before the end holds entries").cookie;
        }
    }

    /// A directory `/big` (placed in shard 0) of `n` files `f0..`.
    fn big_dir(&mut self, n: usize) -> InodeId {
        let name = (0..).map(|i| format!("big{i}")).find(|n| dir_shard(ROOT, n, SHARDS) == 0).unwrap();
        let dir = self.mkdir(ROOT, &name, 0o755);
        for i in 0..n {
            self.create(dir, &format!("f{i}"));
        }
        dir
    }
}

#[test]
fn a_growing_directory_splits_and_every_entry_stays_reachable() {
    let mut fs = Fs::new();
    let dir = fs.big_dir(300);
    let parts = fs.c.partitions(dir);
    let shards: BTreeSet<u16> = parts.iter().map(|&(_, s)| s).collect();
    assert!(parts.len() >= 300 / THRESHOLD as usize, "{} partitions", parts.len());
    assert!(shards.len() >= 6, "spread over {shards:?}");
    assert!(fs.c.stats().splits as usize >= parts.len() - 1 && fs.c.stats().entries_moved > 150);
    // The map tiles the hash space.
    assert_eq!(parts[0].0.first(), 0);
    assert!(parts.windows(2).all(|w| w[0].0.last() + 1 == w[1].0.first()));
    assert_eq!(parts.last().unwrap().0.last(), u64::MAX);
    for i in 0..300 {
        let name = format!("f{i}");
        let owner = fs.c.entry_shard(dir, &name);
        let Ok(MetaReply::Child { kind: FileType::Regular, .. }) = fs.lookup(dir, &name, root()) else {
            panic!("{name}")
        };
        let held = fs.c.shards()[owner as usize].read(&[ReadKey::Entry { parent: dir, name: name.clone() }]);
        assert!(matches!(&held[0].value, ReadValue::Entries(e) if e.len() == 1), "{name} not in shard {owner}");
    }
    let Ok(MetaReply::Attr(attr)) = fs.run(MetaOp::GetAttr { ino: dir }) else { panic!() };
    assert_eq!((attr.size, attr.nlink), (300, 2));
    let mut names = fs.list(dir, 7);
    assert_eq!(names.len(), 300);
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 300);
    // Every partition's shard is settled: no intent, lock or pending split is left.
    assert!(fs.c.shards().iter().all(ShardState::is_settled));
}

#[test]
fn a_file_created_in_a_split_directory_lives_in_the_partitions_shard() {
    let mut fs = Fs::new();
    let dir = fs.big_dir(100);
    let Ok(MetaReply::Attr(before)) = fs.run(MetaOp::GetAttr { ino: dir }) else { panic!() };
    // A name whose partition is not in the home: entry and inode go there, the directory's inode is
    // updated in its home.
    let name = (0..).map(|i| format!("g{i}")).find(|n| fs.c.entry_shard(dir, n) != dir.shard()).unwrap();
    let planned = fs.c.stats().planned;
    fs.now += 1_000;
    let ino = fs.create(dir, &name);
    assert_eq!(ino.shard(), fs.c.entry_shard(dir, &name));
    assert_eq!(fs.c.stats().planned, planned + 1, "one cross-shard transaction");
    let Ok(MetaReply::Attr(after)) = fs.run(MetaOp::GetAttr { ino: dir }) else { panic!() };
    assert_eq!(after.size, before.size + 1);
    assert!(after.mtime_ns > before.mtime_ns && after.ctime_ns == after.mtime_ns);
    // A subdirectory there counts in the directory's link count.
    let sub = (0..).map(|i| format!("s{i}")).find(|n| fs.c.entry_shard(dir, n) != dir.shard()).unwrap();
    fs.mkdir(dir, &sub, 0o755);
    let Ok(MetaReply::Attr(after)) = fs.run(MetaOp::GetAttr { ino: dir }) else { panic!() };
    assert_eq!((after.size, after.nlink), (before.size + 2, 3));
}

#[test]
fn stale_routes_are_corrected_by_the_shards() {
    let mut fs = Fs::new();
    let dir = fs.big_dir(200);
    let name = (0..200).map(|i| format!("f{i}")).find(|n| fs.c.entry_shard(dir, n) != dir.shard()).unwrap();
    let owner = fs.c.entry_shard(dir, &name);
    let key = ReadKey::Entry { parent: dir, name: name.clone() };
    // The home names the partition's shard.
    let home = &fs.c.shards()[dir.shard() as usize];
    assert_eq!(home.read(std::slice::from_ref(&key))[0].value, ReadValue::Moved(owner));
    let lookup = MetaOp::Lookup { parent: dir, name: name.clone(), creds: root() };
    let mut state = home.clone();
    assert_eq!(state.apply(&lookup, 1), Err(NotLocal { shards: vec![owner] }));
    // The partition's shard answers the lookup alone, from its copy of the directory's attributes.
    let mut state = fs.c.shards()[owner as usize].clone();
    assert!(matches!(state.apply(&lookup, 1), Ok(Ok(MetaReply::Child { .. }))));
    let missing = MetaOp::Lookup { parent: dir, name: format!("{name}-not"), creds: root() };
    let missing_owner = fs.c.entry_shard(dir, &format!("{name}-not"));
    if missing_owner == owner {
        assert_eq!(state.apply(&missing, 1), Ok(Err(Errno::ENOENT)));
    }
    // Any other shard redirects (to where it sent the range, else to the home), and following the
    // redirections ends at the owner.
    for s in (0..SHARDS).filter(|&s| s != owner) {
        let (mut at, mut hops) = (s, 0);
        while let ReadValue::Moved(to) = fs.c.shards()[at as usize].read(std::slice::from_ref(&key)).remove(0).value {
            (at, hops) = (to, hops + 1);
            assert!(hops <= 8, "redirections from shard {s} loop");
        }
        assert_eq!((at, hops > 0), (owner, true), "from shard {s}");
    }
    // Through the driver the lookup is the home's redirection and one read at the owner.
    let (before, ops) = (fs.c.stats(), fs.c.stats().ops);
    assert!(matches!(fs.lookup(dir, &name, root()), Ok(MetaReply::Child { .. })));
    assert_eq!((fs.c.stats().planned, fs.c.stats().reads, fs.c.stats().ops), (before.planned, before.reads, ops + 1));
}

#[test]
fn cookies_stay_valid_across_a_split_between_two_pages() {
    let mut fs = Fs::new();
    let dir = fs.big_dir(THRESHOLD as usize);
    assert_eq!(fs.c.partitions(dir).len(), 1, "not split yet");
    let (first, eof) = fs.page(dir, READDIR_START, 5);
    assert!(!eof);
    // One more entry splits the directory; the listing goes on from the cookie it had.
    let mut extra = Vec::new();
    for i in 0..3 * THRESHOLD {
        extra.push(format!("x{i}"));
        fs.create(dir, &format!("x{i}"));
    }
    assert!(fs.c.partitions(dir).len() > 2 && fs.c.stats().entries_moved > 0);
    let mut listed: Vec<String> = first.iter().map(|e| e.name.clone()).collect();
    let mut cookie = first.last().unwrap().cookie;
    loop {
        let (entries, eof) = fs.page(dir, cookie, 5);
        assert!(entries.iter().all(|e| e.cookie > cookie), "cookie order");
        listed.extend(entries.iter().map(|e| e.name.clone()));
        if eof {
            break;
        }
        cookie = entries.last().unwrap().cookie;
    }
    let originals: BTreeSet<String> = (0..THRESHOLD).map(|i| format!("f{i}")).collect();
    let listed_set: BTreeSet<String> = listed.iter().cloned().collect();
    assert_eq!(listed_set.len(), listed.len(), "an entry listed twice");
    assert!(originals.is_subset(&listed_set), "an entry present throughout is missing");
    assert!(listed_set.iter().all(|n| originals.contains(n) || extra.contains(n)));
    // Pages crossing partitions are whole: the first page of 40 has 40 entries.
    let (entries, eof) = fs.page(dir, READDIR_START, 40);
    assert_eq!((entries.len(), eof), (40, false));
    let (all, eof) = fs.page(dir, READDIR_START, 1000);
    assert_eq!((all.len(), eof), (4 * THRESHOLD as usize, true));
    let (tail, eof) = fs.page(dir, all[all.len() - 2].cookie, 1);
    assert_eq!((tail.len(), eof), (1, true), "eof found past the last partitions");
}

#[test]
fn a_split_directory_is_removed_only_when_every_partition_is_empty() {
    let mut fs = Fs::new();
    let dir = fs.big_dir(120);
    let dir_name = fs.list(ROOT, 100).into_iter().find(|n| n.starts_with("big")).unwrap();
    let rmdir = MetaOp::Rmdir { parent: ROOT, name: dir_name.clone(), creds: root() };
    // Empty every partition but one, whichever it is: still not empty.
    let owners: BTreeMap<String, u16> =
        (0..120).map(|i| format!("f{i}")).map(|n| (n.clone(), fs.c.entry_shard(dir, &n))).collect();
    let last = owners.iter().find(|(_, s)| **s != dir.shard()).map(|(n, _)| n.clone()).unwrap();
    for n in owners.keys().filter(|n| **n != last) {
        fs.unlink(dir, n);
    }
    assert_eq!(fs.run(rmdir.clone()), Err(Errno::ENOTEMPTY));
    fs.unlink(dir, &last);
    assert!(fs.c.partitions(dir).len() > 1);
    assert_eq!(fs.run(rmdir), Ok(MetaReply::Done));
    // Every shard forgot the directory's partitions (the map went with the inode).
    for s in fs.c.shards() {
        assert!(s.owned_partitions().iter().all(|(d, _)| *d != dir), "shard {} keeps {dir:?}", s.shard());
        let access = s.read(&[ReadKey::Access { dir, shard: s.shard() }]).remove(0).value;
        assert!(matches!(access, ReadValue::Access(None) | ReadValue::NotHere));
    }
    assert_eq!(fs.lookup(dir, &last, root()), Err(Errno::ESTALE));
    assert_eq!(fs.lookup(ROOT, &dir_name, root()), Err(Errno::ENOENT));
}

#[test]
fn a_split_directorys_permissions_reach_every_partition() {
    let mut fs = Fs::new();
    let dir = fs.big_dir(150);
    let user = Credentials::user(1000, 1000);
    let far = (0..150).map(|i| format!("f{i}")).find(|n| fs.c.entry_shard(dir, n) != dir.shard()).unwrap();
    assert!(matches!(fs.lookup(dir, &far, user.clone()), Ok(MetaReply::Child { .. })));
    let chmod = MetaOp::SetAttr { ino: dir, set: SetAttr { mode: Some(0o700), ..SetAttr::default() }, creds: root() };
    assert!(matches!(fs.run(chmod), Ok(MetaReply::Attr(_))));
    assert_eq!(fs.lookup(dir, &far, user.clone()), Err(Errno::EACCES));
    // Giving the directory to the user lets them search it again, in every partition.
    let chown = MetaOp::SetAttr { ino: dir, set: SetAttr { uid: Some(1000), ..SetAttr::default() }, creds: root() };
    assert!(matches!(fs.run(chown), Ok(MetaReply::Attr(_))));
    for i in 0..150 {
        assert!(matches!(fs.lookup(dir, &format!("f{i}"), user.clone()), Ok(MetaReply::Child { .. })));
    }
    let readdir = MetaOp::Readdir { dir, cookie: READDIR_START, max_entries: 10, creds: Credentials::user(7, 7) };
    assert_eq!(fs.run(readdir), Err(Errno::EACCES));
}

#[test]
fn renames_within_and_across_split_directories_move_entries_between_shards() {
    let mut fs = Fs::new();
    let dir = fs.big_dir(100);
    let other = fs.mkdir(ROOT, "other", 0o755);
    let a = (0..100).map(|i| format!("f{i}")).find(|n| fs.c.entry_shard(dir, n) != dir.shard()).unwrap();
    let b = (0..).map(|i| format!("r{i}")).find(|n| fs.c.entry_shard(dir, n) != fs.c.entry_shard(dir, &a)).unwrap();
    let Ok(MetaReply::Child { ino, .. }) = fs.lookup(dir, &a, root()) else { panic!() };
    let rename = MetaOp::Rename { parent: dir, name: a.clone(), new_parent: dir, new_name: b.clone(), creds: root() };
    assert_eq!(fs.run(rename), Ok(MetaReply::Done));
    assert_eq!(fs.lookup(dir, &a, root()), Err(Errno::ENOENT));
    assert_eq!(fs.lookup(dir, &b, root()), Ok(MetaReply::Child { ino, kind: FileType::Regular }));
    let out =
        MetaOp::Rename { parent: dir, name: b.clone(), new_parent: other, new_name: "moved".into(), creds: root() };
    assert_eq!(fs.run(out), Ok(MetaReply::Done));
    assert_eq!(fs.lookup(other, "moved", root()), Ok(MetaReply::Child { ino, kind: FileType::Regular }));
    let Ok(MetaReply::Attr(attr)) = fs.run(MetaOp::GetAttr { ino: dir }) else { panic!() };
    assert_eq!(attr.size, 99);
}

#[test]
fn a_plan_made_before_a_split_is_refused_and_made_again() {
    let mut fs = Fs::new();
    let dir = fs.big_dir(THRESHOLD as usize);
    // A mkdir planned while the directory is unsplit (the new directory goes to another shard): the
    // split between its reads and its begin makes the plan stale.
    let sub = (0..).map(|i| format!("d{i}")).find(|n| dir_shard(dir, n, SHARDS) != 0).unwrap();
    let op = MetaOp::Mkdir { parent: dir, name: sub.clone(), mode: 0o755, creds: root() };
    fs.now += 1;
    let now = fs.now;
    let mut driver = OpDriver::new(op, now, SHARDS);
    let (mut begins, mut raced) = (0, false);
    let result = loop {
        match driver.next() {
            Next::Call { shard, call } => {
                if let ShardCall::Begin { .. } = &call {
                    begins += 1;
                    if !raced {
                        raced = true;
                        // Another client's creates split the directory now.
                        for i in 0..2 * THRESHOLD {
                            fs.create(dir, &format!("late{i}"));
                        }
                        assert!(fs.c.partitions(dir).len() > 1);
                    }
                }
                let answer = fs.c.call(shard, call, now);
                driver.answer(answer);
            }
            Next::Backoff { .. } => {}
            Next::Done(result) => break result,
            Next::GiveUp => panic!("gave up"),
        }
    };
    assert!(matches!(result, Ok(MetaReply::Entry(_))));
    assert!(begins >= 2, "the stale plan was refused and made again");
    fs.c.check().unwrap();
    assert!(matches!(fs.lookup(dir, &sub, root()), Ok(MetaReply::Child { kind: FileType::Directory, .. })));
}

/// Shards stepped by hand, as a host would: the leader's calls and the messages between shards.
struct Shards {
    shards: Vec<ShardState>,
    net: VecDeque<Envelope>,
}

impl Shards {
    fn new(n: u16, threshold: u32) -> Shards {
        let shards = (0..n)
            .map(|s| ShardState::new(s, n, (s == 0).then_some((ROOT, 0))).with_split_threshold(threshold))
            .collect();
        Shards { shards, net: VecDeque::new() }
    }

    /// `count` files in the root of shard 0, each applied there (no split runs: nobody asks).
    fn fill(&mut self, prefix: &str, count: usize) {
        for i in 0..count {
            let op = MetaOp::Create { parent: ROOT, name: format!("{prefix}{i}"), mode: 0o644, creds: root() };
            assert!(matches!(self.shards[0].apply(&op, 1), Ok(Ok(MetaReply::Entry(_)))));
        }
    }

    fn deliver_all(&mut self) -> usize {
        let mut delivered = 0;
        while let Some(env) = self.net.pop_front() {
            delivered += 1;
            let out = self.shards[env.to as usize].on_message(&env, 2);
            self.net.extend(out);
        }
        delivered
    }
}

#[test]
fn the_hosts_call_order_runs_a_split_through_two_phase_commit() {
    let mut x = Shards::new(4, THRESHOLD);
    x.fill("f", THRESHOLD as usize);
    assert!(x.shards[0].due_splits().is_empty() && x.shards[0].is_settled());
    x.fill("g", 1);
    let due = x.shards[0].due_splits();
    assert_eq!(due, vec![(ROOT, PartitionId::WHOLE)]);
    assert!(!x.shards[0].is_settled());
    let plan = x.shards[0].plan_split(ROOT, PartitionId::WHOLE, 5).unwrap();
    let (id, out) = x.shards[0].begin_split(ROOT, PartitionId::WHOLE, 5).unwrap();
    // While prepared the directory's keys are locked: operations on it get EAGAIN, the split is not
    // proposed again, and a duplicate of the command is refused.
    assert_eq!(x.shards[0].decision(id), Decision::Pending);
    let create = MetaOp::Create { parent: ROOT, name: "h".into(), mode: 0o644, creds: root() };
    assert_eq!(x.shards[0].apply(&create, 3), Ok(Err(Errno::EAGAIN)));
    assert!(x.shards[0].due_splits().is_empty());
    assert_eq!(x.shards[0].begin_split(ROOT, PartitionId::WHOLE, 5).map(|_| ()), Err(Errno::EAGAIN));
    x.net.extend(out);
    assert_eq!(x.deliver_all(), 4, "prepare, prepared, decision, ack");
    assert!(x.shards.iter().all(ShardState::is_settled));
    check_shards(&x.shards).unwrap();
    let upper = plan.changes.keys().copied().find(|&s| s != 0).expect("the upper half moved away");
    let moved = plan.changes[&upper].iter().filter(|c| matches!(c, TxnChange::PutEntry { .. })).count();
    assert_eq!(x.shards[upper as usize].entries().count(), moved);
    assert_eq!(x.shards[0].entries().count(), THRESHOLD as usize + 1 - moved);
    // The split is done: a replayed command is refused, and nothing is due any more.
    assert_eq!(x.shards[0].begin_split(ROOT, PartitionId::WHOLE, 6).map(|_| ()), Err(Errno::EINVAL));
}

#[test]
fn a_split_planned_from_other_entries_is_refused() {
    let mut x = Shards::new(4, THRESHOLD);
    x.fill("f", 2 * THRESHOLD as usize);
    let plan = x.shards[0].plan_split(ROOT, PartitionId::WHOLE, 5).unwrap();
    // An entry of the upper half changes between the plan and its begin.
    let (_, upper) = PartitionId::WHOLE.halves();
    let name = (0..).map(|i| format!("u{i}")).find(|n| upper.contains(crate::name_hash(n))).unwrap();
    x.fill(&name, 1);
    assert_eq!(x.shards[0].begin_plan(plan, 6).map(|_| ()), Err(Errno::EAGAIN));
    assert_eq!(x.shards[0].due_splits(), vec![(ROOT, PartitionId::WHOLE)], "still due, nothing logged");
    check_shards(&x.shards).unwrap();
}

#[test]
fn an_upper_half_too_big_to_move_is_relabelled_in_place() {
    let mut x = Shards::new(4, THRESHOLD);
    let count = 2 * SPLIT_MOVE_ENTRIES_MAX as usize + 2_000;
    x.fill("n", count);
    let plan = x.shards[0].plan_split(ROOT, PartitionId::WHOLE, 5).unwrap();
    assert_eq!(plan.shards().collect::<Vec<_>>(), vec![0], "nothing moves");
    let (_, out) = x.shards[0].begin_split(ROOT, PartitionId::WHOLE, 5).unwrap();
    assert!(out.is_empty());
    let mut rounds = 0;
    // The halves split further until every upper half fits in one move.
    while let Some(&(dir, part)) = x.shards[0].due_splits().first() {
        let (_, out) = x.shards[0].begin_split(dir, part, 6).unwrap();
        x.net.extend(out);
        x.deliver_all();
        rounds += 1;
        assert!(rounds < 20_000);
    }
    check_shards(&x.shards).unwrap();
    assert_eq!(x.shards.iter().map(|s| s.entries().count()).sum::<usize>(), count);
    assert!(x.shards.iter().all(|s| s.entries().count() > 0));
}

#[test]
fn a_split_fits_in_a_message() {
    let name = "n".repeat(crate::NAME_LEN_MAX_BYTES);
    let entry = EntryRecord { name, ino: InodeId::new(u16::MAX, InodeId::COUNTER_MAX), kind: FileType::Socket };
    let change = TxnChange::PutEntry { parent: InodeId(u64::MAX), cookie: u64::MAX, entry };
    assert!(tessera_proto::encode(&change).len() <= ENTRY_CHANGE_BYTES_MAX);
    let id = super::TxnId { coordinator: 1, seq: u64::MAX };
    let prepare = TxnMsg::Prepare { id, changes: vec![change; SPLIT_MOVE_ENTRIES_MAX as usize] };
    let bytes = tessera_proto::encode(&Envelope { from: 1, to: 2, msg: prepare }).len();
    assert!(bytes <= MESSAGE_BYTES_MAX / 2, "{bytes} bytes");
}
