//! Cross-shard transactions driven through the whole protocol on an in-memory cluster of shards, with
//! plans made by the real planner ([`Cluster::plan`]): commit and refusal (stale plan) paths,
//! timeouts, duplicated and reordered messages, a coordinator crash, queries, stale prepares after a
//! tombstone, locks against single-shard operations, reserved ids and malformed plans. After each
//! scenario the shards are checked together ([`check_shards`]).

use std::collections::BTreeMap;

use crate::exec::{Next, OpDriver, ShardAnswer, ShardCall};
use crate::local::check_shards;
use crate::{Attr, Credentials, Errno, FileType, InodeId, MetaOp, MetaReply};

use super::store::Store;
use super::{
    Decision, EntryRecord, Envelope, InodeRecord, NotLocal, QueryAnswer, RESOLVE_TIMEOUT_NS, ReadKey, ShardState,
    TxnChange, TxnId, TxnMsg, TxnPlan, dir_shard,
};

const ROOT: InodeId = InodeId::ROOT;

/// Shards and the messages in flight between them.
struct Cluster {
    shards: Vec<ShardState>,
    net: Vec<Envelope>,
    now: u64,
}

/// The namespace part of every shard (entries and inodes), to compare before and after.
type Namespace = Vec<(Vec<((InodeId, u64), EntryRecord)>, Vec<(InodeId, InodeRecord)>)>;

fn root() -> Credentials {
    Credentials::root()
}

impl Cluster {
    fn new(n: u16) -> Cluster {
        let shards = (0..n).map(|s| ShardState::new(s, n, (s == 0).then_some((ROOT, 0)))).collect::<Vec<_>>();
        Cluster { shards, net: Vec::new(), now: 1 }
    }

    fn shard(&mut self, s: u16) -> &mut ShardState {
        &mut self.shards[s as usize]
    }

    /// Fixture: a new inode of `kind` on shard `on`, named `name` in `parent` (outside the protocol).
    fn mk(&mut self, parent: InodeId, name: &str, kind: FileType, on: u16) -> InodeId {
        let dir = kind == FileType::Directory;
        let s = self.shard(on);
        let ino = s.plan_ino(on).unwrap();
        let attr = Attr {
            ino,
            kind,
            mode: 0o755,
            uid: 0,
            gid: 0,
            size: 0,
            nlink: if dir { 2 } else { 1 },
            atime_ns: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            rdev: 0,
        };
        s.insert_inode(InodeRecord {
            attr,
            parent: dir.then_some(parent),
            symlink_target: None,
            xattrs: BTreeMap::new(),
            content: Default::default(),
        });
        let p = self.shard(parent.shard());
        let cookie = p.plan_cookie(parent, name, &[]).unwrap();
        p.insert_entry(parent, cookie, EntryRecord { name: name.into(), ino, kind });
        let attr = &mut p.inode_mut(parent).attr;
        attr.size += 1;
        attr.nlink += u32::from(dir);
        ino
    }

    /// The plan of `op` as a driver makes it from the shards' current state (not begun).
    fn plan(&mut self, op: &MetaOp) -> TxnPlan {
        self.now += 1;
        let mut driver = OpDriver::new(op.clone(), self.now, self.shards.len() as u16);
        loop {
            let answer = match driver.next() {
                Next::Call { call: ShardCall::Apply { .. }, .. } => {
                    ShardAnswer::Applied(Err(NotLocal { shards: vec![] }))
                }
                Next::Call { shard, call: ShardCall::Read { keys } } => {
                    ShardAnswer::Read(self.shards[shard as usize].read(&keys))
                }
                Next::Call { call: ShardCall::Begin { plan }, .. } => return plan,
                other => panic!("{op:?}: {other:?}"),
            };
            driver.answer(answer);
        }
    }

    /// Begin `plan` at its coordinator; the prepares go to the network.
    fn begin(&mut self, plan: TxnPlan) -> Result<TxnId, Errno> {
        self.now += 1;
        let now = self.now;
        let (id, out) = self.shard(plan.coordinator).begin_plan(plan, now)?;
        self.net.extend(out);
        Ok(id)
    }

    fn run_op(&mut self, op: &MetaOp) -> TxnId {
        let plan = self.plan(op);
        self.begin(plan).unwrap()
    }

    /// Deliver message `i` of the network (keeping it there too when `duplicate`); its replies are
    /// sent unless `drop_replies` (the sender's leader crashed before sending them).
    fn deliver(&mut self, i: usize, duplicate: bool, drop_replies: bool) -> Vec<Envelope> {
        let env = if duplicate { self.net[i].clone() } else { self.net.remove(i) };
        self.now += 1;
        let now = self.now;
        let out = self.shard(env.to).on_message(&env, now);
        if !drop_replies {
            self.net.extend(out.clone());
        }
        out
    }

    /// Deliver everything in order until the network is empty.
    fn run(&mut self) {
        for _ in 0..1000 {
            if self.net.is_empty() {
                return;
            }
            self.deliver(0, false, false);
        }
        panic!("the network does not drain");
    }

    /// Index of the first message matching `f`.
    fn find(&self, f: impl Fn(&Envelope) -> bool) -> usize {
        self.net.iter().position(f).expect("no such message")
    }

    fn namespace(&self) -> Namespace {
        let ns = |s: &ShardState| {
            let entries = s.entries().map(|(k, e)| (*k, e.clone())).collect();
            let inodes = s.inodes().map(|(k, r)| (*k, r.clone())).collect();
            (entries, inodes)
        };
        self.shards.iter().map(ns).collect()
    }

    /// No intent, lock or record left anywhere, and the shards agree ([`check_shards`]).
    fn settled(&self) {
        for s in &self.shards {
            assert!(s.txn.intents.is_empty() && s.txn.locks.is_empty(), "shard {} holds intents", s.shard());
            assert!(s.txn.records.is_empty(), "shard {} holds records", s.shard());
        }
        check_shards(&self.shards).unwrap();
    }

    fn lookup(&mut self, parent: InodeId, name: &str) -> Result<InodeId, Errno> {
        let op = MetaOp::Lookup { parent, name: name.into(), creds: root() };
        let s = self.shard(parent.shard());
        match s.apply(&op, 0) {
            Ok(Ok(MetaReply::Child { ino, .. })) => Ok(ino),
            Ok(Err(e)) => Err(e),
            other => panic!("{other:?}"),
        }
    }

    fn nlink(&self, ino: InodeId) -> Option<u32> {
        self.shards[ino.shard() as usize].inode_record(ino).map(|r| r.attr.nlink)
    }
}

fn rename_op(parent: InodeId, name: &str, new_parent: InodeId, new_name: &str) -> MetaOp {
    MetaOp::Rename { parent, name: name.into(), new_parent, new_name: new_name.into(), creds: root() }
}

fn link_op(ino: InodeId, new_parent: InodeId, new_name: &str) -> MetaOp {
    MetaOp::Link { ino, new_parent, new_name: new_name.into(), creds: root() }
}

/// Three shards: `/A` (s0) holding file `f` (s0) and directory `d` (s0); `/B` a directory of s1
/// named in the root (s0), holding `t` (a file of s2) and `x` (a file of s1).
struct Fixture {
    c: Cluster,
    a: InodeId,
    f: InodeId,
    d: InodeId,
    b: InodeId,
    t: InodeId,
}

fn fixture(t_kind: FileType) -> Fixture {
    let mut c = Cluster::new(3);
    let a = c.mk(ROOT, "A", FileType::Directory, 0);
    let f = c.mk(a, "f", FileType::Regular, 0);
    let d = c.mk(a, "d", FileType::Directory, 0);
    let b = c.mk(ROOT, "B", FileType::Directory, 1);
    let t = c.mk(b, "t", t_kind, 2);
    c.mk(b, "x", FileType::Regular, 1);
    check_shards(&c.shards).unwrap();
    Fixture { c, a, f, d, b, t }
}

/// rename(A/f, B/t) replacing file t: source entry on s0 (the coordinator), target directory on
/// s1, the replaced inode on s2.
fn rename_f_over_t(x: &mut Fixture) -> TxnId {
    let plan = x.c.plan(&rename_op(x.a, "f", x.b, "t"));
    assert_eq!((plan.coordinator, plan.shards().collect::<Vec<_>>()), (0, vec![0, 1, 2]));
    assert_eq!(plan.reply, Ok(MetaReply::Done));
    x.c.begin(plan).unwrap()
}

fn assert_renamed(x: &mut Fixture) {
    assert_eq!(x.c.lookup(x.b, "t"), Ok(x.f));
    assert_eq!(x.c.lookup(x.a, "f"), Err(Errno::ENOENT));
    assert_eq!(x.c.nlink(x.t), None);
    x.c.settled();
}

#[test]
fn cross_shard_rename_commits_on_every_shard() {
    let mut x = fixture(FileType::Regular);
    let id = rename_f_over_t(&mut x);
    assert_eq!(x.c.shards[0].decision(id), Decision::Pending);
    // Prepares out, votes back: the last vote is the commit point.
    x.c.deliver(0, false, false);
    x.c.deliver(0, false, false);
    x.c.deliver(0, false, false);
    assert_eq!(x.c.shards[0].decision(id), Decision::Pending);
    x.c.deliver(0, false, false);
    assert_eq!(x.c.shards[0].decision(id), Decision::Commit);
    x.c.run();
    assert_eq!(x.c.shards[0].decision(id), Decision::Forgotten);
    assert_renamed(&mut x);
    assert!(x.c.shards[1].tombstone(id).is_some() && x.c.shards[2].tombstone(id).is_some());
}

#[test]
fn cross_shard_link_commits() {
    let mut x = fixture(FileType::Regular);
    let (b, f) = (x.b, x.f);
    // The home of a link is the inode's shard: s0 coordinates, s1 adds the entry.
    let id = x.c.run_op(&link_op(f, b, "g"));
    assert_eq!(id.coordinator, 0);
    x.c.run();
    assert_eq!(x.c.shards[0].decision(id), Decision::Forgotten);
    assert_eq!(x.c.lookup(b, "g"), Ok(f));
    assert_eq!(x.c.nlink(f), Some(2));
    x.c.settled();
}

#[test]
fn cross_shard_directory_rename_over_an_empty_directory_commits() {
    let mut x = fixture(FileType::Directory);
    let (a, d, b, t) = (x.a, x.d, x.b, x.t);
    x.c.mk(d, "inner", FileType::Regular, 0);
    let id = x.c.run_op(&rename_op(a, "d", b, "t"));
    x.c.run();
    assert_eq!(x.c.shards[0].decision(id), Decision::Forgotten);
    assert_eq!(x.c.lookup(b, "t"), Ok(d));
    assert_eq!(x.c.shards[0].inode_record(d).unwrap().parent, Some(b));
    assert_eq!(x.c.nlink(t), None);
    assert_eq!(x.c.nlink(a), Some(2));
    x.c.settled();
}

#[test]
fn a_stale_plan_is_refused_and_aborts_everywhere() {
    // B changed (a new entry) between the planner's reads and the prepare: s1 refuses (EAGAIN).
    let mut x = fixture(FileType::Regular);
    let (a, b) = (x.a, x.b);
    let plan = x.c.plan(&rename_op(a, "f", b, "t"));
    x.c.mk(b, "y", FileType::Regular, 1);
    let before = x.c.namespace();
    let id = x.c.begin(plan).unwrap();
    x.c.run();
    assert_eq!(x.c.shards[0].decision(id), Decision::Forgotten);
    assert_eq!(x.c.namespace(), before);
    x.c.settled();

    // The replaced directory got an entry: its shard refuses, before s1 even prepared.
    let mut x = fixture(FileType::Directory);
    let (a, b, t) = (x.a, x.b, x.t);
    let plan = x.c.plan(&rename_op(a, "d", b, "t"));
    x.c.mk(t, "u", FileType::Regular, 2);
    let before = x.c.namespace();
    let id = x.c.begin(plan).unwrap();
    let i = x.c.find(|e| e.to == 2);
    x.c.deliver(i, false, false);
    let i = x.c.find(|e| matches!(e.msg, TxnMsg::Refused { .. }));
    x.c.deliver(i, false, false);
    assert_eq!(x.c.shards[0].decision(id), Decision::Abort(Errno::EAGAIN));
    x.c.run();
    assert_eq!(x.c.namespace(), before);
    x.c.settled();

    // A plan whose coordinator's part is stale is refused at begin, logging nothing.
    let mut x = fixture(FileType::Regular);
    let plan = x.c.plan(&rename_op(x.a, "f", x.b, "t"));
    x.c.mk(x.a, "z", FileType::Regular, 0);
    assert_eq!(x.c.begin(plan), Err(Errno::EAGAIN));
    x.c.settled();
}

#[test]
fn malformed_plans_are_refused() {
    let mut x = fixture(FileType::Regular);
    let before = x.c.namespace();
    let mut plan = x.c.plan(&rename_op(x.a, "f", x.b, "t"));
    let id = TxnId { coordinator: 0, seq: 9 };
    // A write without the expectation of its key.
    let mut unexpected = plan.changes[&2].clone();
    unexpected.retain(|c| !matches!(c, TxnChange::Expect { .. }));
    assert_eq!(x.c.shard(2).prepare(id, 0, unexpected, 5), super::PrepareVote::Refused(Errno::EINVAL));
    // Keys of another shard, and a plan coordinated elsewhere.
    let foreign = plan.changes[&1].clone();
    assert_eq!(x.c.shard(2).prepare(id, 0, foreign, 5), super::PrepareVote::Refused(Errno::EINVAL));
    plan.coordinator = 1;
    assert_eq!(x.c.shard(0).begin_plan(plan, 5).map(|_| ()), Err(Errno::EINVAL));
    assert_eq!(x.c.namespace(), before);
    x.c.settled();
}

#[test]
fn a_prepare_timeout_aborts_and_a_late_prepare_is_ignored() {
    let mut x = fixture(FileType::Regular);
    let before = x.c.namespace();
    let id = rename_f_over_t(&mut x);
    let late = x.c.net.remove(x.c.find(|e| e.to == 2));
    x.c.deliver(0, false, false); // s1 prepares
    x.c.deliver(0, false, false); // its vote
    let out = x.c.shards[0].prepare_timeout(id, 100);
    assert_eq!(out.len(), 2);
    assert_eq!(x.c.shards[0].decision(id), Decision::Abort(Errno::EAGAIN));
    x.c.net.extend(out);
    x.c.run();
    assert_eq!(x.c.shards[0].decision(id), Decision::Forgotten);
    // The lost prepare arrives after s2 learned the abort: refused, nothing locked.
    x.c.net.push(late);
    x.c.deliver(0, false, false);
    assert!(matches!(x.c.net[0].msg, TxnMsg::Refused { .. }));
    x.c.run();
    assert_eq!(x.c.namespace(), before);
    x.c.settled();
}

/// The namespace with every time zeroed (times depend on when each shard applied).
fn untimed(mut ns: Namespace) -> Namespace {
    for (_, inodes) in &mut ns {
        for (_, r) in inodes {
            (r.attr.atime_ns, r.attr.mtime_ns, r.attr.ctime_ns) = (0, 0, 0);
        }
    }
    ns
}

/// A deterministic draw (a 64-bit LCG), for message orders.
struct Lcg(u64);

impl Lcg {
    fn pick(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

#[test]
fn duplicated_and_reordered_messages_converge_to_one_outcome() {
    let mut reference = fixture(FileType::Regular);
    rename_f_over_t(&mut reference);
    reference.c.run();
    let expected = untimed(reference.c.namespace());
    for seed in 0..200 {
        let mut x = fixture(FileType::Regular);
        rename_f_over_t(&mut x);
        let mut draw = Lcg(seed);
        let mut duplicates = 6;
        while !x.c.net.is_empty() {
            let i = draw.pick(x.c.net.len());
            let dup = duplicates > 0 && draw.pick(3) == 0;
            duplicates -= usize::from(dup);
            x.c.deliver(i, dup, false);
        }
        assert_eq!(untimed(x.c.namespace()), expected, "seed {seed}");
        assert_renamed(&mut x);
    }
}

#[test]
fn a_new_coordinator_leader_resends_the_decisions() {
    let mut x = fixture(FileType::Regular);
    let id = rename_f_over_t(&mut x);
    x.c.deliver(0, false, false);
    x.c.deliver(0, false, false);
    x.c.deliver(0, false, false);
    // The commit point; the leader crashes before sending the decisions (they are lost).
    let decisions = x.c.deliver(0, false, true);
    assert_eq!(decisions.len(), 2);
    assert!(x.c.net.is_empty());
    assert_eq!(x.c.shards[0].decision(id), Decision::Commit);
    // The new leader has the log only.
    let resent = x.c.shards[0].recover();
    assert_eq!(resent, decisions);
    x.c.net.extend(resent);
    x.c.run();
    assert_eq!(x.c.shards[0].decision(id), Decision::Forgotten);
    assert!(x.c.shards[0].recover().is_empty());
    assert_renamed(&mut x);

    // A crash while preparing: the new leader re-sends the prepares not yet answered.
    let mut x = fixture(FileType::Regular);
    let id = rename_f_over_t(&mut x);
    x.c.deliver(0, false, false); // s1 prepares; its vote arrives
    x.c.deliver(1, false, false);
    x.c.net.clear();
    let resent = x.c.shards[0].recover();
    assert_eq!(resent.len(), 1);
    assert!(matches!(&resent[0], Envelope { to: 2, msg: TxnMsg::Prepare { id: i, .. }, .. } if *i == id));
    x.c.net.extend(resent);
    x.c.run();
    assert_renamed(&mut x);
}

#[test]
fn participants_in_doubt_ask_the_coordinator() {
    let mut x = fixture(FileType::Regular);
    let id = rename_f_over_t(&mut x);
    x.c.deliver(0, false, false); // s1 prepares
    let now = x.c.now;
    assert!(x.c.shards[1].in_doubt(now).is_empty());
    let late = now + RESOLVE_TIMEOUT_NS;
    assert_eq!(x.c.shards[1].in_doubt(late), vec![(id, 0)]);
    // While preparing, the coordinator says "ask again".
    assert_eq!(x.c.shards[0].answer_query(id), QueryAnswer::AskAgain);
    let query = Envelope { from: 1, to: 0, msg: TxnMsg::Query { id } };
    assert!(x.c.shards[0].on_message(&query, late).is_empty());
    // Commit; every decision is lost; both participants ask.
    x.c.run_dropping_decisions();
    assert_eq!(x.c.shards[0].decision(id), Decision::Commit);
    for p in [1, 2] {
        for (txn, coordinator) in x.c.shards[p as usize].in_doubt(late + late) {
            x.c.net.push(Envelope { from: p, to: coordinator, msg: TxnMsg::Query { id: txn } });
        }
    }
    assert_eq!(x.c.net.len(), 2);
    x.c.run();
    assert_eq!(x.c.shards[0].decision(id), Decision::Forgotten);
    assert_renamed(&mut x);
    // No record: presumed abort.
    assert_eq!(x.c.shards[0].answer_query(TxnId { coordinator: 0, seq: 99 }), QueryAnswer::Aborted);
}

impl Cluster {
    /// Deliver everything but lose every decision.
    fn run_dropping_decisions(&mut self) {
        while !self.net.is_empty() {
            self.deliver(0, false, false);
            self.net.retain(|e| !matches!(e.msg, TxnMsg::Decision { .. }));
        }
    }
}

/// Run the network dry; the stale copies of the initial prepares and of the decisions.
fn run_keeping_copies(c: &mut Cluster) -> Vec<Envelope> {
    let mut copies: Vec<Envelope> = c.net.clone();
    while !c.net.is_empty() {
        let out = c.deliver(0, false, false);
        copies.extend(out.into_iter().filter(|e| matches!(e.msg, TxnMsg::Decision { .. })));
    }
    copies
}

#[test]
fn a_prepare_after_the_tombstone_is_ignored() {
    // link(f, B/x) fails with EEXIST: a plan of expectations only. A stale prepare at s1 passes
    // validation again after the commit: without the tombstone it would re-take the intent and hold
    // B locked (the protocol model's bug, in its harmless form here).
    let mut x = fixture(FileType::Regular);
    let (b, f) = (x.b, x.f);
    let plan = x.c.plan(&link_op(f, b, "x"));
    assert_eq!(plan.reply, Err(Errno::EEXIST));
    assert!(plan.changes.values().flatten().all(|c| matches!(c, TxnChange::Expect { .. })));
    let id = x.c.begin(plan).unwrap();
    let stale = run_keeping_copies(&mut x.c);
    let after = x.c.namespace();
    x.c.net.extend(stale);
    x.c.run();
    assert_eq!(x.c.namespace(), after);
    assert!(x.c.shards[1].intent(id).is_none());
    x.c.settled();
    // Once the coordinator reports the transaction done, the tombstone goes.
    x.c.shard(1).forget_tombstones(&[id]);
    assert_eq!(x.c.shards[1].tombstone(id), None);

    // A link that commits: stale prepares and commits change nothing either.
    let id = x.c.run_op(&link_op(f, b, "g"));
    let stale = run_keeping_copies(&mut x.c);
    let after = x.c.namespace();
    assert_eq!(x.c.nlink(f), Some(2));
    x.c.net.extend(stale);
    x.c.run();
    assert_eq!(x.c.namespace(), after);
    assert!(x.c.shards[1].intent(id).is_none());
    x.c.settled();

    // The rename.
    let mut x = fixture(FileType::Regular);
    let id = rename_f_over_t(&mut x);
    let stale = run_keeping_copies(&mut x.c);
    let after = x.c.namespace();
    x.c.net.extend(stale);
    x.c.run();
    assert_eq!(x.c.namespace(), after);
    assert!(x.c.shards[1].intent(id).is_none() && x.c.shards[2].intent(id).is_none());
    assert_renamed(&mut x);
}

#[test]
fn locked_keys_are_busy_until_the_transaction_ends() {
    for commit in [true, false] {
        let mut x = fixture(FileType::Regular);
        let (a, f, b) = (x.a, x.f, x.b);
        // Plans of other operations on the same keys, made before the keys are locked (planning
        // backs off from locked keys).
        let second = x.c.plan(&rename_op(a, "f", b, "w"));
        let flags = crate::XattrFlags::Upsert;
        let touch_b =
            x.c.plan(&MetaOp::SetXattr { ino: b, name: "user.a".into(), value: vec![1], flags, creds: root() });
        let id = rename_f_over_t(&mut x);
        let unlink = |parent: InodeId, name: &str| MetaOp::Unlink { parent, name: name.into(), creds: root() };
        // The coordinator's own keys: A/f, A and f.
        assert_eq!(x.c.shard(0).apply(&unlink(a, "f"), 5), Ok(Err(Errno::EAGAIN)));
        assert_eq!(x.c.lookup(a, "f"), Err(Errno::EAGAIN));
        assert_eq!(x.c.shard(0).apply(&MetaOp::GetAttr { ino: f }, 5), Ok(Err(Errno::EAGAIN)));
        // Unrelated keys are free; reads flag locked keys.
        assert!(matches!(x.c.shard(0).apply(&MetaOp::GetAttr { ino: ROOT }, 5), Ok(Ok(_))));
        let fetched = x.c.shards[0].read(&[ReadKey::Inode(ROOT), ReadKey::Inode(f)]);
        assert_eq!((fetched[0].locked, fetched[1].locked), (false, true));
        // A second transaction on the same keys is refused at begin.
        assert_eq!(x.c.begin(second), Err(Errno::EAGAIN));
        // A participant's keys once prepared: B/x is in B, whose inode is locked.
        x.c.deliver(x.c.find(|e| e.to == 1), false, false);
        assert_eq!(x.c.shard(1).apply(&unlink(b, "x"), 5), Ok(Err(Errno::EAGAIN)));
        let other = x.c.shards[1].txn.locks.clone();
        let vote = x.c.shard(1).prepare(TxnId { coordinator: 2, seq: 0 }, 2, touch_b.changes[&1].clone(), 5);
        assert_eq!(vote, super::PrepareVote::Refused(Errno::EAGAIN));
        assert_eq!(x.c.shards[1].txn.locks, other);
        if commit {
            x.c.run();
            assert_eq!(x.c.shard(0).apply(&unlink(a, "f"), 5), Ok(Err(Errno::ENOENT)));
            // B/t now names f, held by s0.
            assert_eq!(x.c.shard(1).apply(&unlink(b, "t"), 5), Err(NotLocal { shards: vec![0] }));
        } else {
            let out = x.c.shard(0).prepare_timeout(id, 50);
            x.c.net.extend(out);
            x.c.run();
            assert_eq!(x.c.shard(0).apply(&unlink(a, "f"), 5), Ok(Ok(MetaReply::Done)));
        }
        assert_eq!(x.c.shard(1).apply(&unlink(b, "x"), 5), Ok(Ok(MetaReply::Done)));
        x.c.settled();
    }
}

#[test]
fn a_cross_shard_mkdir_reserves_the_new_id() {
    let mut x = fixture(FileType::Regular);
    let b = x.b;
    // A name B's directories get in shard 2.
    let name = (0..).map(|i| format!("n{i}")).find(|n| dir_shard(b, n, 3) == 2).unwrap();
    for commit in [false, true] {
        let n = x.c.shards[2].plan_ino(2).unwrap();
        let mkdir = MetaOp::Mkdir { parent: b, name: name.clone(), mode: 0o700, creds: root() };
        let plan = x.c.plan(&mkdir);
        assert_eq!((plan.coordinator, plan.shards().collect::<Vec<_>>()), (1, vec![1, 2]));
        assert!(matches!(&plan.reply, Ok(MetaReply::Entry(attr)) if attr.ino == n));
        let id = x.c.begin(plan).unwrap();
        x.c.deliver(0, false, false);
        assert_ne!(x.c.shards[2].plan_ino(2), Ok(n), "the id is reserved at prepare");
        if !commit {
            let out = x.c.shard(1).prepare_timeout(id, 50);
            x.c.net = out;
        }
        x.c.run();
        assert_eq!(x.c.lookup(b, &name), if commit { Ok(n) } else { Err(Errno::ENOENT) });
        x.c.settled();
    }
}
