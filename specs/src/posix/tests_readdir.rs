//! readdir: cookie order, pagination, resumption across changes, errors, and cookie collisions.

use std::collections::BTreeSet;

use tessera_meta::{Errno, FileType, InodeId, MetaOp, MetaReply, READDIR_START, candidate_cookies, name_hash};

use super::dir::{Dir, Slot};
use super::test_util::{Fs, ROOT, alice, bob, root, unlink};

fn readdir(dir: InodeId, cookie: u64, max_entries: u32) -> MetaOp {
    MetaOp::Readdir { dir, cookie, max_entries, creds: root() }
}

#[test]
fn empty_directory_has_no_dots() {
    let mut fs = Fs::new();
    let d = fs.mkdir(ROOT, "d", 0o755, &root());
    assert_eq!(fs.ok(readdir(d, READDIR_START, 10)), MetaReply::DirEntries { entries: vec![], eof: true });
    assert_eq!(fs.list(d, 1), vec![]);
}

#[test]
fn entries_come_in_hash_order_with_any_page_size() {
    let mut fs = Fs::new();
    let mut expected = Vec::new();
    for i in 0..20 {
        let name = format!("entry-{i}");
        let ino =
            if i % 3 == 0 { fs.mkdir(ROOT, &name, 0o755, &root()) } else { fs.create(ROOT, &name, 0o644, &root()) };
        let kind = if i % 3 == 0 { FileType::Directory } else { FileType::Regular };
        expected.push((name, ino, kind));
    }
    expected.sort_by_key(|(name, ..)| name_hash(name));
    for page in [1, 2, 3, 7, 19, 20, 21, 1000] {
        assert_eq!(fs.list(ROOT, page), expected, "page size {page}");
    }
    // The whole directory in one page: eof on the first reply.
    let MetaReply::DirEntries { entries, eof } = fs.ok(readdir(ROOT, READDIR_START, 20)) else { panic!() };
    assert!(eof && entries.len() == 20);
    let MetaReply::DirEntries { entries, eof } = fs.ok(readdir(ROOT, READDIR_START, 19)) else { panic!() };
    assert!(!eof && entries.len() == 19);
    assert_eq!(fs.ok(readdir(ROOT, u64::MAX, 5)), MetaReply::DirEntries { entries: vec![], eof: true });
}

#[test]
fn resuming_after_changes_skips_and_repeats_nothing() {
    let mut fs = Fs::new();
    let names: Vec<String> = (0..30).map(|i| format!("f{i}")).collect();
    for name in &names {
        fs.create(ROOT, name, 0o644, &root());
    }
    let MetaReply::DirEntries { entries: first, eof: false } = fs.ok(readdir(ROOT, READDIR_START, 10)) else {
        panic!()
    };
    let seen_first: BTreeSet<String> = first.iter().map(|e| e.name.clone()).collect();
    // Remove the entry the cookie came from, a few already listed, a few not yet listed; add new ones.
    let last = first.last().unwrap().clone();
    fs.ok(unlink(ROOT, &last.name, &root()));
    fs.ok(unlink(ROOT, &first[0].name, &root()));
    let unlisted: Vec<String> = names.iter().filter(|n| !seen_first.contains(*n)).take(3).cloned().collect();
    for name in &unlisted {
        fs.ok(unlink(ROOT, name, &root()));
    }
    for i in 0..10 {
        fs.create(ROOT, &format!("new{i}"), 0o644, &root());
    }
    let mut rest = Vec::new();
    let mut cookie = last.cookie;
    loop {
        let MetaReply::DirEntries { entries, eof } = fs.ok(readdir(ROOT, cookie, 4)) else { panic!() };
        if let Some(e) = entries.last() {
            cookie = e.cookie;
        }
        rest.extend(entries.into_iter().map(|e| e.name));
        if eof {
            break;
        }
    }
    let mut all: Vec<String> = seen_first.iter().cloned().collect();
    all.extend(rest.iter().cloned());
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "no entry twice");
    for name in names.iter().filter(|n| !unlisted.contains(n) && **n != last.name && **n != first[0].name) {
        assert!(unique.contains(name), "{name} was present throughout but not listed");
    }
    for name in &unlisted {
        assert!(!rest.contains(name), "{name} was removed before it was reached");
    }
}

#[test]
fn readdir_errors() {
    let mut fs = Fs::new();
    let f = fs.create(ROOT, "f", 0o644, &root());
    let d = fs.mkdir(ROOT, "d", 0o311, &alice());
    assert_eq!(fs.err(readdir(f, READDIR_START, 10)), Errno::ENOTDIR);
    assert_eq!(fs.err(readdir(InodeId::new(0, 999), READDIR_START, 10)), Errno::ESTALE);
    assert_eq!(fs.err(readdir(ROOT, READDIR_START, 0)), Errno::EINVAL);
    let as_user = |creds| MetaOp::Readdir { dir: d, cookie: READDIR_START, max_entries: 5, creds };
    assert_eq!(fs.err(as_user(alice())), Errno::EACCES, "search without read");
    assert_eq!(fs.err(as_user(bob())), Errno::EACCES);
    assert!(matches!(fs.ok(as_user(root())), MetaReply::DirEntries { .. }));
}

#[test]
fn rename_moves_an_entry_to_its_new_names_position() {
    let mut fs = Fs::new();
    let f = fs.create(ROOT, "old", 0o644, &root());
    fs.create(ROOT, "other", 0o644, &root());
    fs.ok(super::test_util::rename(ROOT, "old", ROOT, "new", &root()));
    let MetaReply::DirEntries { entries, .. } = fs.ok(readdir(ROOT, READDIR_START, 10)) else { panic!() };
    let moved = entries.iter().find(|e| e.ino == f).unwrap();
    assert_eq!(moved.name, "new");
    assert_eq!(moved.cookie, candidate_cookies("new").next().unwrap());
}

#[test]
fn colliding_hash_prefixes_take_the_next_counter() {
    // Real 56-bit collisions are too rare to find; plant an entry on the cookie "x" would take.
    let mut dir = Dir::new(ROOT);
    let [first, second] = [0, 1].map(|i| candidate_cookies("x").nth(i).unwrap());
    dir.insert(first, Slot { name: "y".into(), ino: InodeId::new(0, 5), kind: FileType::Regular });
    assert_eq!(dir.plan_cookie("x", &[]), Ok(second));
    assert_eq!(dir.plan_cookie("x", &["y"]), Ok(first), "a cookie being freed by the same operation is free");
    for (i, cookie) in candidate_cookies("x").enumerate().skip(1) {
        dir.insert(cookie, Slot { name: format!("z{i}"), ino: InodeId::new(0, 6), kind: FileType::Regular });
    }
    assert_eq!(dir.plan_cookie("x", &[]), Err(Errno::ENOSPC));
}
