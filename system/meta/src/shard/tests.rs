//! Unit tests of what the differential test (specs/tests/shard_differential.rs) cannot reach:
//! locality, placement, id allocation in shards other than 0, and limits. The directory names used
//! with mkdir are placed in the shard under test by [`dir_shard`] (checked where it matters).

use crate::{Credentials, Errno, FileType, InodeId, MetaOp, MetaReply, READDIR_START};

use super::store::Store;
use super::{EntryRecord, NotLocal, ReadKey, ShardState, dir_shard};

fn root() -> Credentials {
    Credentials::root()
}

fn create(parent: InodeId, name: &str) -> MetaOp {
    MetaOp::Create { parent, name: name.into(), mode: 0o644, creds: root() }
}

fn created(state: &mut ShardState, op: &MetaOp) -> InodeId {
    match state.apply(op, 10) {
        Ok(Ok(MetaReply::Entry(attr))) => attr.ino,
        other => panic!("{op:?}: {other:?}"),
    }
}

#[test]
fn ids_are_allocated_in_the_shard_and_never_reused() {
    let fs_root = InodeId::new(7, 1);
    let mut state = ShardState::new(7, 8, Some((fs_root, 1)));
    assert_eq!(state.root(), Some(fs_root));
    let a = created(&mut state, &create(fs_root, "a"));
    assert_eq!(a, InodeId::new(7, 2));
    let unlink = MetaOp::Unlink { parent: fs_root, name: "a".into(), creds: root() };
    assert_eq!(state.apply(&unlink, 11), Ok(Ok(MetaReply::Done)));
    // "z" is placed in this shard (see `dir_shard`).
    let d = created(&mut state, &MetaOp::Mkdir { parent: fs_root, name: "z".into(), mode: 0o755, creds: root() });
    assert_eq!(d, InodeId::new(7, 3));
    assert_eq!(state.apply(&MetaOp::GetAttr { ino: a }, 12), Ok(Err(Errno::ESTALE)));
    // A failed create allocates nothing.
    assert_eq!(state.apply(&create(fs_root, "z"), 13), Ok(Err(Errno::EEXIST)));
    assert_eq!(created(&mut state, &create(d, "b")), InodeId::new(7, 4));
    state.check_invariants().unwrap();
}

#[test]
fn a_shard_without_a_root_holds_nothing_yet() {
    let mut state = ShardState::new(3, 4, None);
    assert_eq!(state.root(), None);
    assert_eq!(state.apply(&MetaOp::GetAttr { ino: InodeId::new(3, 1) }, 1), Ok(Err(Errno::ESTALE)));
    assert_eq!(state.apply(&create(InodeId::new(3, 1), "a"), 1), Ok(Err(Errno::ESTALE)));
    state.check_invariants().unwrap();
}

#[test]
#[should_panic(expected = "belongs to another shard")]
fn the_root_must_be_the_shards() {
    let _ = ShardState::new(0, 2, Some((InodeId::new(1, 1), 0)));
}

#[test]
fn inodes_named_by_the_op_in_other_shards_are_not_local() {
    let mut state = ShardState::new(0, 2, Some((InodeId::ROOT, 0)));
    let before = state.clone();
    let (one, two) = (InodeId::new(1, 5), InodeId::new(2, 9));
    assert_eq!(state.apply(&MetaOp::GetAttr { ino: one }, 1), Err(NotLocal { shards: vec![1] }));
    assert_eq!(state.apply(&create(one, "x"), 1), Err(NotLocal { shards: vec![1] }));
    let link = MetaOp::Link { ino: one, new_parent: InodeId::ROOT, new_name: "x".into(), creds: root() };
    assert_eq!(state.apply(&link, 1), Err(NotLocal { shards: vec![1] }));
    let rename = MetaOp::Rename { parent: two, name: "a".into(), new_parent: one, new_name: "b".into(), creds: root() };
    assert_eq!(state.apply(&rename, 1), Err(NotLocal { shards: vec![1, 2] }));
    let readdir = MetaOp::Readdir { dir: two, cookie: READDIR_START, max_entries: 10, creds: root() };
    assert_eq!(state.apply(&readdir, 1), Err(NotLocal { shards: vec![2] }));
    assert_eq!(state, before);
}

/// A root holding entry `remote` for an inode of shard 1 (as a later cross-shard create leaves it),
/// and a local directory `d`.
fn with_remote_entry() -> (ShardState, InodeId, InodeId) {
    let mut state = ShardState::new(0, 2, Some((InodeId::ROOT, 0)));
    let d = created(&mut state, &MetaOp::Mkdir { parent: InodeId::ROOT, name: "d".into(), mode: 0o755, creds: root() });
    let remote = InodeId::new(1, 4);
    let cookie = state.plan_cookie(InodeId::ROOT, "remote", &[]).unwrap();
    state.insert_entry(
        InodeId::ROOT,
        cookie,
        EntryRecord { name: "remote".into(), ino: remote, kind: FileType::Regular },
    );
    state.inode_mut(InodeId::ROOT).attr.size += 1;
    state.check_invariants().unwrap();
    (state, d, remote)
}

#[test]
fn inodes_reached_through_entries_in_other_shards_are_not_local() {
    let (mut state, d, _) = with_remote_entry();
    let before = state.clone();
    let not_local = Err(NotLocal { shards: vec![1] });
    let name = || "remote".to_string();
    // A lookup answers from the entry alone, wherever the inode lives.
    let lookup = MetaOp::Lookup { parent: InodeId::ROOT, name: name(), creds: root() };
    assert!(matches!(state.apply(&lookup, 1), Ok(Ok(MetaReply::Child { kind: FileType::Regular, .. }))));
    assert_eq!(state.apply(&MetaOp::Unlink { parent: InodeId::ROOT, name: name(), creds: root() }, 1), not_local);
    let rename =
        MetaOp::Rename { parent: InodeId::ROOT, name: name(), new_parent: d, new_name: "x".into(), creds: root() };
    assert_eq!(state.apply(&rename, 1), not_local);
    assert_eq!(state, before);
    // Local answers stay local: a missing name, an existing name, and readdir (entries carry the type).
    let lookup = MetaOp::Lookup { parent: InodeId::ROOT, name: "nope".into(), creds: root() };
    assert_eq!(state.apply(&lookup, 1), Ok(Err(Errno::ENOENT)));
    assert_eq!(state.apply(&create(InodeId::ROOT, "remote"), 1), Ok(Err(Errno::EEXIST)));
    let readdir = MetaOp::Readdir { dir: InodeId::ROOT, cookie: READDIR_START, max_entries: 10, creds: root() };
    let Ok(Ok(MetaReply::DirEntries { entries, eof: true })) = state.apply(&readdir, 1) else { panic!() };
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"remote") && names.contains(&"d"));
}

#[test]
fn an_exhausted_counter_is_enospc() {
    let mut state = ShardState::new(0, 2, Some((InodeId::ROOT, 0)));
    state.next_counter = InodeId::COUNTER_MAX;
    assert_eq!(created(&mut state, &create(InodeId::ROOT, "last")), InodeId::new(0, InodeId::COUNTER_MAX));
    let before = state.clone();
    assert_eq!(state.apply(&create(InodeId::ROOT, "more"), 1), Ok(Err(Errno::ENOSPC)));
    assert_eq!(state, before);
}

#[test]
fn entries_are_one_key_range_per_directory_in_cookie_order() {
    let mut state = ShardState::new(0, 2, Some((InodeId::ROOT, 0)));
    let d = created(&mut state, &MetaOp::Mkdir { parent: InodeId::ROOT, name: "d".into(), mode: 0o755, creds: root() });
    for name in ["a", "b", "c", "e", "f"] {
        created(&mut state, &create(d, name));
        created(&mut state, &create(InodeId::ROOT, name));
    }
    let keys: Vec<(InodeId, u64)> = state.entries().map(|(k, _)| *k).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(keys.iter().filter(|(p, _)| *p == d).count(), 5);
    // Paging by cookie returns each entry once.
    let mut cookie = READDIR_START;
    let mut seen = Vec::new();
    loop {
        let op = MetaOp::Readdir { dir: d, cookie, max_entries: 2, creds: root() };
        let Ok(Ok(MetaReply::DirEntries { entries, eof })) = state.apply(&op, 1) else { panic!() };
        seen.extend(entries.iter().map(|e| e.name.clone()));
        if eof {
            break;
        }
        cookie = entries.last().unwrap().cookie;
    }
    seen.sort();
    assert_eq!(seen, ["a", "b", "c", "e", "f"]);
}

#[test]
fn link_counts_are_bounded() {
    let mut state = ShardState::new(0, 2, Some((InodeId::ROOT, 0)));
    let f = created(&mut state, &create(InodeId::ROOT, "f"));
    state.inode_mut(f).attr.nlink = crate::LINK_MAX;
    let link = MetaOp::Link { ino: f, new_parent: InodeId::ROOT, new_name: "g".into(), creds: root() };
    assert_eq!(state.apply(&link, 1), Ok(Err(Errno::EMLINK)));
    state.inode_mut(f).attr.nlink = 1;
    let d = created(&mut state, &MetaOp::Mkdir { parent: InodeId::ROOT, name: "d".into(), mode: 0o755, creds: root() });
    created(&mut state, &MetaOp::Mkdir { parent: InodeId::ROOT, name: "sub".into(), mode: 0o755, creds: root() });
    state.inode_mut(d).attr.nlink = crate::LINK_MAX;
    let before = state.clone();
    let mkdir = MetaOp::Mkdir { parent: d, name: "x".into(), mode: 0o755, creds: root() };
    assert_eq!(state.apply(&mkdir, 2), Ok(Err(Errno::EMLINK)));
    let rename = MetaOp::Rename {
        parent: InodeId::ROOT,
        name: "sub".into(),
        new_parent: d,
        new_name: "sub".into(),
        creds: root(),
    };
    assert_eq!(state.apply(&rename, 2), Ok(Err(Errno::EMLINK)));
    assert_eq!(state, before);
    // A file may still be created there: only subdirectories add links.
    created(&mut state, &create(d, "file"));
}

#[test]
fn the_ancestor_walk_of_a_rename_stops_at_other_shards() {
    // A directory whose `..` lies in shard 1 (as a later cross-shard mkdir leaves it): moving a
    // directory into it needs the walk up through shard 1.
    let (mut state, d, _) = with_remote_entry();
    state.inode_mut(d).parent = Some(InodeId::new(1, 8));
    created(&mut state, &MetaOp::Mkdir { parent: InodeId::ROOT, name: "e".into(), mode: 0o755, creds: root() });
    let before = state.clone();
    let rename =
        MetaOp::Rename { parent: InodeId::ROOT, name: "e".into(), new_parent: d, new_name: "e".into(), creds: root() };
    assert_eq!(state.apply(&rename, 3), Err(NotLocal { shards: vec![1] }));
    assert_eq!(state, before);
    // Within one directory no walk is needed.
    let same = MetaOp::Rename {
        parent: InodeId::ROOT,
        name: "e".into(),
        new_parent: InodeId::ROOT,
        new_name: "f".into(),
        creds: root(),
    };
    assert_eq!(state.apply(&same, 4), Ok(Ok(MetaReply::Done)));
}

#[test]
fn a_new_directory_is_placed_by_its_name_and_parent() {
    // Of two shards, "f" goes to shard 1 and "d" stays in shard 0.
    assert_eq!((dir_shard(InodeId::ROOT, "f", 2), dir_shard(InodeId::ROOT, "d", 2)), (1, 0));
    let mut state = ShardState::new(0, 2, Some((InodeId::ROOT, 0)));
    let before = state.clone();
    let mkdir = |name: &str| MetaOp::Mkdir { parent: InodeId::ROOT, name: name.into(), mode: 0o755, creds: root() };
    assert_eq!(state.apply(&mkdir("f"), 1), Err(NotLocal { shards: vec![1] }));
    assert_eq!(state, before);
    // Files stay beside their entry whatever their name; errors found before placement stay local.
    created(&mut state, &create(InodeId::ROOT, "f"));
    assert_eq!(state.apply(&mkdir("f"), 2), Ok(Err(Errno::EEXIST)));
    assert!(matches!(state.apply(&mkdir("d"), 3), Ok(Ok(MetaReply::Entry(_)))));
    // A shard reads only its keys; others are refused, typed.
    let fetched = state.read(&[ReadKey::NextInode(1), ReadKey::Children(InodeId::ROOT)]);
    assert_eq!(fetched[0].value, super::ReadValue::NotHere);
    assert_eq!(fetched[1].value, super::ReadValue::Children(true));
    state.check_invariants().unwrap();
}
