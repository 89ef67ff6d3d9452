//! Planning corner cases, on a [`LocalCluster`] (every operation checked against the cross-shard
//! invariants) and with drivers stepped by hand where the order of calls matters.

use crate::exec::{Next, OpDriver, ShardAnswer, ShardCall};
use crate::local::LocalCluster;
use crate::{Credentials, Errno, FileType, InodeId, MetaOp, MetaReply, MetaResult};

use super::{TxnChange, TxnPlan, dir_shard};

const ROOT: InodeId = InodeId::ROOT;
const SHARDS: u16 = 3;

fn root() -> Credentials {
    Credentials::root()
}

/// A name whose directory `parent` places in `shard`.
fn name_in(parent: InodeId, shard: u16, prefix: &str) -> String {
    (0..).map(|i| format!("{prefix}{i}")).find(|n| dir_shard(parent, n, SHARDS) == shard).unwrap()
}

struct Fs {
    c: LocalCluster,
    now: u64,
}

impl Fs {
    fn new() -> Fs {
        Fs { c: LocalCluster::new(SHARDS), now: 10 }
    }

    fn run(&mut self, op: MetaOp) -> MetaResult {
        self.now += 1;
        let result = self.c.execute(&op, self.now);
        self.c.check().unwrap_or_else(|e| panic!("after {op:?}: {e}"));
        result
    }

    /// mkdir `parent/<name placed in shard>`: its id and name.
    fn mkdir_in(&mut self, parent: InodeId, shard: u16) -> (InodeId, String) {
        let name = name_in(parent, shard, "d");
        let Ok(MetaReply::Entry(attr)) =
            self.run(MetaOp::Mkdir { parent, name: name.clone(), mode: 0o755, creds: root() })
        else {
            panic!("mkdir {name}")
        };
        assert_eq!(attr.ino.shard(), shard);
        (attr.ino, name)
    }

    fn create(&mut self, parent: InodeId, name: &str) -> InodeId {
        let Ok(MetaReply::Entry(attr)) =
            self.run(MetaOp::Create { parent, name: name.into(), mode: 0o644, creds: root() })
        else {
            panic!("create {name}")
        };
        attr.ino
    }

    fn lookup(&mut self, parent: InodeId, name: &str) -> MetaResult {
        self.run(MetaOp::Lookup { parent, name: name.into(), creds: root() })
    }

    /// Drive `op` by hand: `before_begin` runs on the cluster just before the plan is begun.
    fn drive(
        &mut self,
        op: MetaOp,
        mut before_begin: impl FnMut(&mut Fs, &TxnPlan),
    ) -> (MetaResult, Vec<TxnPlan>, u32) {
        self.now += 1;
        let now = self.now;
        let mut driver = OpDriver::new(op, now, SHARDS);
        let (mut plans, mut backoffs) = (Vec::new(), 0);
        loop {
            match driver.next() {
                Next::Call { shard, call } => {
                    if let ShardCall::Begin { plan } = &call {
                        plans.push(plan.clone());
                        before_begin(self, plan);
                    }
                    let answer = self.c.call(shard, call, now);
                    driver.answer(answer);
                }
                Next::Backoff { attempt } => {
                    backoffs += 1;
                    assert_eq!(attempt, backoffs);
                }
                Next::Done(result) => {
                    self.c.check().unwrap();
                    return (result, plans, backoffs);
                }
                Next::GiveUp => panic!("gave up"),
            }
        }
    }
}

#[test]
fn mkdir_in_another_shard_is_a_transaction_and_the_directory_works_there() {
    let mut fs = Fs::new();
    let (d, name) = fs.mkdir_in(ROOT, 2);
    assert_eq!(fs.c.stats().planned, 1);
    assert!(matches!(fs.lookup(ROOT, &name), Ok(MetaReply::Child { ino, kind: FileType::Directory }) if ino == d));
    // Its entries live in its own shard: creating a file there is single-shard on shard 2.
    let f = fs.create(d, "f");
    assert_eq!((f.shard(), fs.c.stats().planned), (2, 1));
    let Ok(MetaReply::Attr(root_attr)) = fs.run(MetaOp::GetAttr { ino: ROOT }) else { panic!() };
    assert_eq!((root_attr.nlink, root_attr.size), (3, 1));
    // rmdir of the non-empty remote directory: ENOTEMPTY, planned (its emptiness is shard 2's).
    let rmdir = MetaOp::Rmdir { parent: ROOT, name: name.clone(), creds: root() };
    assert_eq!(fs.run(rmdir.clone()), Err(Errno::ENOTEMPTY));
    assert_eq!(fs.run(MetaOp::Unlink { parent: d, name: "f".into(), creds: root() }), Ok(MetaReply::Done));
    assert_eq!(fs.run(rmdir), Ok(MetaReply::Done));
    assert_eq!(fs.run(MetaOp::GetAttr { ino: d }), Err(Errno::ESTALE));
    assert_eq!(fs.c.stats().planned_errors, 1);
}

#[test]
fn error_outcomes_are_planned_with_expectations_only() {
    let mut fs = Fs::new();
    let (_, name) = fs.mkdir_in(ROOT, 1);
    // unlink of a directory whose inode is in shard 1: EISDIR is known only from shard 1's record.
    let (result, plans, backoffs) = fs.drive(MetaOp::Unlink { parent: ROOT, name, creds: root() }, |_, _| {});
    assert_eq!((result, backoffs), (Err(Errno::EISDIR), 0));
    let [plan] = &plans[..] else { panic!("{plans:?}") };
    assert_eq!((plan.coordinator, plan.shards().collect::<Vec<_>>()), (0, vec![0, 1]));
    assert!(plan.changes.values().flatten().all(|c| matches!(c, TxnChange::Expect { .. })));
}

#[test]
fn a_stale_plan_is_refused_at_prepare_and_planned_again() {
    let mut fs = Fs::new();
    let (p, p_name) = fs.mkdir_in(ROOT, 1);
    let (q, _) = fs.mkdir_in(ROOT, 2);
    fs.create(p, "f");
    // rename(P/f, Q/g); just before the begin, another client creates Q/g: the plan (which saw Q/g
    // missing) is refused, the driver backs off, plans again and replaces the new Q/g.
    let op = MetaOp::Rename { parent: p, name: "f".into(), new_parent: q, new_name: "g".into(), creds: root() };
    let mut raced = false;
    let (result, plans, backoffs) = fs.drive(op, |fs, _| {
        if !raced {
            raced = true;
            fs.create(q, "g");
        }
    });
    assert_eq!((result, backoffs, plans.len()), (Ok(MetaReply::Done), 1, 2));
    assert_ne!(plans[0], plans[1]);
    let Ok(MetaReply::Child { ino, .. }) = fs.lookup(q, "g") else { panic!() };
    assert_eq!(ino.shard(), 1);
    assert_eq!(fs.lookup(p, "f"), Err(Errno::ENOENT));
    // And the race that turns the answer into an error: the source disappears.
    fs.create(p, "h");
    let op = MetaOp::Rename { parent: p, name: "h".into(), new_parent: q, new_name: "i".into(), creds: root() };
    let mut raced = false;
    let (result, _, backoffs) = fs.drive(op, |fs, _| {
        if !raced {
            raced = true;
            fs.run(MetaOp::Unlink { parent: p, name: "h".into(), creds: root() }).unwrap();
        }
    });
    assert_eq!((result, backoffs), (Err(Errno::ENOENT), 1));
    assert_eq!(fs.lookup(ROOT, &p_name).map(|_| ()), Ok(()));
}

#[test]
fn a_directory_renamed_across_shards_keeps_its_tree() {
    let mut fs = Fs::new();
    let (p, _) = fs.mkdir_in(ROOT, 1);
    let (q, _) = fs.mkdir_in(ROOT, 2);
    let (d, d_name) = fs.mkdir_in(p, 0);
    let f = fs.create(d, "f");
    let op = MetaOp::Rename { parent: p, name: d_name.clone(), new_parent: q, new_name: "moved".into(), creds: root() };
    assert_eq!(fs.run(op), Ok(MetaReply::Done));
    assert!(matches!(fs.lookup(q, "moved"), Ok(MetaReply::Child { ino, .. }) if ino == d));
    assert_eq!(fs.lookup(p, &d_name), Err(Errno::ENOENT));
    assert!(matches!(fs.lookup(d, "f"), Ok(MetaReply::Child { ino, .. }) if ino == f));
    assert_eq!(fs.c.shards()[0].inode_record(d).unwrap().parent, Some(q));
    let nlink = |fs: &mut Fs, ino| match fs.run(MetaOp::GetAttr { ino }) {
        Ok(MetaReply::Attr(attr)) => attr.nlink,
        other => panic!("{other:?}"),
    };
    assert_eq!((nlink(&mut fs, p), nlink(&mut fs, q)), (2, 3));
    // Over an empty directory of a third shard.
    let (e, e_name) = fs.mkdir_in(q, 1);
    let op = MetaOp::Rename { parent: q, name: "moved".into(), new_parent: q, new_name: e_name, creds: root() };
    assert_eq!(fs.run(op), Ok(MetaReply::Done));
    assert_eq!(fs.run(MetaOp::GetAttr { ino: e }), Err(Errno::ESTALE));
}

#[test]
fn a_rename_into_its_own_subtree_is_einval_across_shards() {
    let mut fs = Fs::new();
    // /a (shard 1) / b (shard 2) / c (shard 0): the ancestor walk from c crosses every shard.
    let (a, a_name) = fs.mkdir_in(ROOT, 1);
    let (b, b_name) = fs.mkdir_in(a, 2);
    let (c, c_name) = fs.mkdir_in(b, 0);
    let into_own =
        MetaOp::Rename { parent: ROOT, name: a_name.clone(), new_parent: c, new_name: "x".into(), creds: root() };
    assert_eq!(fs.run(into_own), Err(Errno::EINVAL));
    let into_child =
        MetaOp::Rename { parent: a, name: b_name.clone(), new_parent: c, new_name: "x".into(), creds: root() };
    assert_eq!(fs.run(into_child), Err(Errno::EINVAL));
    // Over an ancestor of the source's parent: ENOTEMPTY.
    let over_ancestor =
        MetaOp::Rename { parent: b, name: c_name.clone(), new_parent: ROOT, new_name: a_name, creds: root() };
    assert_eq!(fs.run(over_ancestor), Err(Errno::ENOTEMPTY));
    // Up the tree is fine.
    let up = MetaOp::Rename { parent: b, name: c_name, new_parent: ROOT, new_name: "c".into(), creds: root() };
    assert_eq!(fs.run(up), Ok(MetaReply::Done));
    assert!(matches!(fs.lookup(ROOT, "c"), Ok(MetaReply::Child { ino, .. }) if ino == c));
    assert!(fs.c.stats().planned >= 4);
}

#[test]
fn a_driver_backs_off_on_locked_keys_and_gives_up_after_its_attempts() {
    let mut fs = Fs::new();
    let (_, name) = fs.mkdir_in(ROOT, 1);
    let mut driver = OpDriver::new(MetaOp::Rmdir { parent: ROOT, name, creds: root() }, 20, SHARDS);
    let mut attempts = 0;
    loop {
        match driver.next() {
            Next::Call { call: ShardCall::Apply { .. }, .. } => {
                driver.answer(ShardAnswer::Applied(Ok(Err(Errno::EAGAIN))))
            }
            Next::Backoff { attempt } => attempts = attempt,
            Next::GiveUp => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(attempts, crate::exec::ATTEMPTS_MAX - 1);
    assert_eq!(driver.next(), Next::GiveUp);
}

#[test]
fn inodes_of_shards_beyond_the_cluster_do_not_exist() {
    let mut fs = Fs::new();
    let beyond = InodeId::new(SHARDS + 4, 1);
    assert_eq!(fs.run(MetaOp::GetAttr { ino: beyond }), Err(Errno::ESTALE));
    let f = fs.create(ROOT, "f");
    // The errno order is the logic's: the parent's checks come first.
    let link = MetaOp::Link { ino: f, new_parent: beyond, new_name: "g".into(), creds: root() };
    assert_eq!(fs.run(link), Err(Errno::ESTALE));
    let mknod =
        MetaOp::Mknod { parent: beyond, name: "n".into(), mode: 0, kind: FileType::Directory, rdev: 0, creds: root() };
    assert_eq!(fs.run(mknod), Err(Errno::EPERM));
    let rename =
        MetaOp::Rename { parent: ROOT, name: "nope".into(), new_parent: beyond, new_name: "x".into(), creds: root() };
    assert_eq!(fs.run(rename), Err(Errno::ESTALE));
}
