//! The checker with the POSIX namespace model: concurrent creates and renames, the cross-directory
//! rename cycle that a cross-shard protocol must refuse, and renames whose outcome is unknown.

use tessera_meta::{Credentials, Errno, FileType, InodeId, MetaOp, MetaReply, MetaResult, READDIR_START};

use super::{Event, History, Outcome, check};
use crate::posix::Namespace;

use crate::posix_history::PosixModel as Posix;

const ROOT: InodeId = InodeId::ROOT;

fn creds() -> Credentials {
    Credentials::root()
}

/// A namespace holding directories `x` and `y` and file `a` in the root, which anyone may write.
fn setup() -> (Posix, InodeId, InodeId) {
    let mut ns = Namespace::new(0);
    let open = tessera_meta::SetAttr { mode: Some(0o777), ..Default::default() };
    ns.apply(&MetaOp::SetAttr { ino: ROOT, set: open, creds: creds() }, 0).expect("chmod root");
    let mut make = |op: MetaOp| match ns.apply(&op, 0) {
        Ok(MetaReply::Entry(attr)) => attr.ino,
        other => panic!("setup: {other:?}"),
    };
    let x = make(MetaOp::Mkdir { parent: ROOT, name: "x".into(), mode: 0o755, creds: creds() });
    let y = make(MetaOp::Mkdir { parent: ROOT, name: "y".into(), mode: 0o755, creds: creds() });
    make(MetaOp::Create { parent: ROOT, name: "a".into(), mode: 0o644, creds: creds() });
    (Posix(ns), x, y)
}

fn rename(parent: InodeId, name: &str, new_parent: InodeId, new_name: &str) -> MetaOp {
    MetaOp::Rename { parent, name: name.into(), new_parent, new_name: new_name.into(), creds: creds() }
}

fn lookup(parent: InodeId, name: &str) -> MetaOp {
    MetaOp::Lookup { parent, name: name.into(), creds: creds() }
}

fn ev(client: u64, op: MetaOp, ret: Option<MetaResult>, invoke_ns: u64, complete_ns: u64) -> Event<MetaOp, MetaResult> {
    Event { client, op, ret, invoke_ns, complete_ns }
}

/// The shape of a successful lookup of a regular file or a directory.
fn found(kind: FileType) -> MetaResult {
    Ok(MetaReply::Child { ino: InodeId(0), kind })
}

/// The shape of a successful create of a regular file or a directory by root.
fn created(kind: FileType) -> MetaResult {
    let (mode, nlink) = if kind == FileType::Directory { (0o755, 2) } else { (0o644, 1) };
    let attr = tessera_meta::Attr {
        ino: InodeId(0),
        kind,
        mode,
        uid: 0,
        gid: 0,
        size: 0,
        nlink,
        atime_ns: 0,
        mtime_ns: 0,
        ctime_ns: 0,
        rdev: 0,
    };
    Ok(MetaReply::Entry(attr))
}

fn run(init: &Posix, events: Vec<Event<MetaOp, MetaResult>>) -> Outcome {
    check(init, &History { events }, 100_000)
}

#[test]
fn concurrent_creates_of_one_name() {
    let (init, ..) = setup();
    let create = |client| MetaOp::Create {
        parent: ROOT,
        name: "new".into(),
        mode: 0o644,
        creds: Credentials::user(client as u32, 0),
    };
    // Each caller's file is owned by them: the replies say who won.
    let ok = |uid| match created(FileType::Regular) {
        Ok(MetaReply::Entry(attr)) => Ok(MetaReply::Entry(tessera_meta::Attr { uid, ..attr })),
        other => other,
    };
    let both_won = vec![ev(7, create(7), Some(ok(7)), 0, 10), ev(8, create(8), Some(ok(8)), 5, 15)];
    let out = run(&init, both_won);
    assert!(matches!(out, Outcome::NotLinearizable { .. }), "{out:?}");
    let one_won = vec![ev(7, create(7), Some(ok(7)), 0, 10), ev(8, create(8), Some(Err(Errno::EEXIST)), 5, 15)];
    assert!(run(&init, one_won).is_linearizable());
    // The later one may win too, as they overlap.
    let other_won = vec![ev(7, create(7), Some(Err(Errno::EEXIST)), 0, 10), ev(8, create(8), Some(ok(8)), 5, 15)];
    assert_eq!(run(&init, other_won), Outcome::Linearizable { order: vec![1, 0] });
}

#[test]
fn concurrent_renames_of_one_source() {
    let (init, ..) = setup();
    let done = || Ok(MetaReply::Done);
    let both = vec![
        ev(1, rename(ROOT, "a", ROOT, "b"), Some(done()), 0, 10),
        ev(2, rename(ROOT, "a", ROOT, "c"), Some(done()), 5, 15),
    ];
    let out = run(&init, both);
    let Outcome::NotLinearizable { reason, .. } = out else { panic!("{out:?}") };
    assert!(reason.contains("Err(ENOENT)"), "the model says the second rename finds no source: {reason}");
    // One wins; a later lookup must agree on which.
    let mut events = vec![
        ev(1, rename(ROOT, "a", ROOT, "b"), Some(Err(Errno::ENOENT)), 0, 10),
        ev(2, rename(ROOT, "a", ROOT, "c"), Some(done()), 5, 15),
        ev(3, lookup(ROOT, "c"), Some(found(FileType::Regular)), 20, 30),
    ];
    assert!(run(&init, events.clone()).is_linearizable());
    events[2].op = lookup(ROOT, "b");
    assert!(!run(&init, events).is_linearizable());
}

#[test]
fn cross_directory_rename_cycle() {
    // mv x y/x and mv y x/y at once: at most one may succeed, or y would sit inside x inside y.
    let (init, x, y) = setup();
    let done = || Ok(MetaReply::Done);
    let both = vec![
        ev(1, rename(ROOT, "x", y, "x"), Some(done()), 0, 10),
        ev(2, rename(ROOT, "y", x, "y"), Some(done()), 5, 15),
    ];
    assert!(!run(&init, both).is_linearizable());
    let one = vec![
        ev(1, rename(ROOT, "x", y, "x"), Some(done()), 0, 10),
        ev(2, rename(ROOT, "y", x, "y"), Some(Err(Errno::EINVAL)), 5, 15),
        ev(3, lookup(y, "x"), Some(found(FileType::Directory)), 20, 30),
    ];
    assert!(run(&init, one).is_linearizable());
}

#[test]
fn renames_without_response() {
    let (init, ..) = setup();
    // A rename that timed out, then a reader finds the new name and not the old one: it happened.
    let mut events = vec![
        ev(1, rename(ROOT, "a", ROOT, "b"), None, 0, 0),
        ev(2, lookup(ROOT, "b"), Some(found(FileType::Regular)), 50, 60),
        ev(3, lookup(ROOT, "a"), Some(Err(Errno::ENOENT)), 70, 80),
    ];
    assert_eq!(run(&init, events.clone()), Outcome::Linearizable { order: vec![0, 1, 2] });
    // Both names at once: a rename is atomic, so no.
    events[2].ret = Some(found(FileType::Regular));
    assert!(!run(&init, events.clone()).is_linearizable());
    // The old name first, the new one later: it happened in between.
    events.swap(1, 2);
    (events[1].invoke_ns, events[1].complete_ns, events[2].invoke_ns, events[2].complete_ns) = (10, 20, 50, 60);
    events[1].op = lookup(ROOT, "a");
    assert!(run(&init, events).is_linearizable());
}

#[test]
fn readdir_concurrent_with_a_create() {
    let (init, x, _) = setup();
    let create = MetaOp::Create { parent: x, name: "f".into(), mode: 0o644, creds: creds() };
    let readdir = MetaOp::Readdir { dir: x, cookie: READDIR_START, max_entries: 10, creds: creds() };
    let listing = |with: bool| {
        let entries = if with {
            let cookie = tessera_meta::candidate_cookies("f").next().unwrap();
            vec![tessera_meta::DirEntry { name: "f".into(), ino: InodeId(0), kind: FileType::Regular, cookie }]
        } else {
            vec![]
        };
        Some(Ok(MetaReply::DirEntries { entries, eof: true }))
    };
    let ok = created(FileType::Regular);
    for with in [false, true] {
        let events = vec![ev(1, create.clone(), Some(ok.clone()), 0, 10), ev(2, readdir.clone(), listing(with), 5, 15)];
        assert!(run(&init, events).is_linearizable(), "listing with f: {with}");
    }
    let after = vec![ev(1, create, Some(ok), 0, 10), ev(2, readdir, listing(false), 20, 30)];
    assert!(!run(&init, after).is_linearizable(), "a listing after the create completed must show it");
}
