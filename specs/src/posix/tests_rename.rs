//! rename: every errno path, replacement, link counts and times.

use tessera_meta::{Errno, InodeId, LINK_MAX, MODE_STICKY, MetaOp, MetaReply, SetAttr};

use super::test_util::{Fs, ROOT, alice, bob, rename, root};

/// `/a/b/c` (directories), `/f` and `/e` (an empty directory), all root's.
fn tree() -> (Fs, InodeId, InodeId, InodeId) {
    let mut fs = Fs::new();
    let a = fs.mkdir(ROOT, "a", 0o755, &root());
    let b = fs.mkdir(a, "b", 0o755, &root());
    let c = fs.mkdir(b, "c", 0o755, &root());
    fs.create(ROOT, "f", 0o644, &root());
    fs.mkdir(ROOT, "e", 0o755, &root());
    (fs, a, b, c)
}

#[test]
fn rename_within_a_directory() {
    let (mut fs, ..) = tree();
    let f = fs.lookup(ROOT, "f").unwrap();
    let created = fs.attr(f).mtime_ns;
    fs.ok(rename(ROOT, "f", ROOT, "g", &root()));
    assert_eq!(fs.lookup(ROOT, "f"), Err(Errno::ENOENT));
    assert_eq!(fs.lookup(ROOT, "g"), Ok(f));
    let (attr, parent) = (fs.attr(f), fs.attr(ROOT));
    assert_eq!((attr.ctime_ns, attr.mtime_ns, attr.nlink), (fs.now - 20, created, 1), "ctime at the rename");
    assert_eq!((parent.mtime_ns, parent.ctime_ns, parent.size, parent.nlink), (fs.now - 20, fs.now - 20, 3, 4));
}

#[test]
fn rename_directory_across_parents_moves_links() {
    let (mut fs, a, b, c) = tree();
    let e = fs.lookup(ROOT, "e").unwrap();
    fs.ok(rename(b, "c", e, "c2", &root()));
    assert_eq!((fs.attr(b).nlink, fs.attr(e).nlink), (2, 3));
    assert_eq!(fs.ns.resolve("/e/c2"), Some(c));
    // Its `..` now names e: moving e into c2 would put e in its own subtree.
    assert_eq!(fs.err(rename(ROOT, "e", c, "x", &root())), Errno::EINVAL);
    fs.ok(rename(ROOT, "a", c, "a", &root()));
    assert_eq!(fs.ns.resolve("/e/c2/a/b"), Some(b));
    assert_eq!(fs.attr(ROOT).nlink, 3);
    let _ = a;
}

#[test]
fn rename_into_own_subtree_is_einval() {
    let (mut fs, a, b, c) = tree();
    assert_eq!(fs.err(rename(ROOT, "a", c, "x", &root())), Errno::EINVAL);
    assert_eq!(fs.err(rename(ROOT, "a", a, "x", &root())), Errno::EINVAL);
    assert_eq!(fs.err(rename(a, "b", b, "x", &root())), Errno::EINVAL);
}

#[test]
fn rename_over_an_ancestor_is_enotempty() {
    let (mut fs, a, b, c) = tree();
    assert_eq!(fs.err(rename(b, "c", ROOT, "a", &root())), Errno::ENOTEMPTY);
    fs.create(c, "file", 0o644, &root());
    assert_eq!(fs.err(rename(c, "file", a, "b", &root())), Errno::ENOTEMPTY, "over the source's grandparent");
    assert_eq!(fs.err(rename(c, "file", b, "c", &root())), Errno::ENOTEMPTY, "over the source's parent");
}

#[test]
fn rename_type_mismatches() {
    let (mut fs, ..) = tree();
    assert_eq!(fs.err(rename(ROOT, "e", ROOT, "f", &root())), Errno::ENOTDIR, "directory over a file");
    assert_eq!(fs.err(rename(ROOT, "f", ROOT, "e", &root())), Errno::EISDIR, "file over a directory");
    assert_eq!(fs.err(rename(ROOT, "e", ROOT, "a", &root())), Errno::ENOTEMPTY, "over a non-empty directory");
}

#[test]
fn rename_replaces_an_empty_directory() {
    let (mut fs, a, b, _) = tree();
    let e = fs.lookup(ROOT, "e").unwrap();
    fs.ok(rename(a, "b", ROOT, "e", &root()));
    assert!(!fs.exists(e));
    assert_eq!(fs.lookup(ROOT, "e"), Ok(b));
    assert_eq!((fs.attr(ROOT).nlink, fs.attr(a).nlink, fs.attr(ROOT).size), (4, 2, 3));
    // Within one directory: the replaced directory's link goes, the moved one's stays.
    fs.mkdir(ROOT, "empty", 0o755, &root());
    fs.ok(rename(ROOT, "a", ROOT, "empty", &root()));
    assert_eq!(fs.attr(ROOT).nlink, 4);
}

#[test]
fn rename_replacing_a_file_drops_its_link() {
    let mut fs = Fs::new();
    let f = fs.create(ROOT, "f", 0o644, &root());
    let g = fs.create(ROOT, "g", 0o644, &root());
    let d = fs.mkdir(ROOT, "d", 0o755, &root());
    fs.link(g, d, "g2");
    fs.ok(rename(ROOT, "f", ROOT, "g", &root()));
    assert_eq!(fs.lookup(ROOT, "g"), Ok(f));
    assert_eq!((fs.attr(g).nlink, fs.attr(g).ctime_ns), (1, fs.now - 10), "ctime at the rename");
    fs.ok(rename(ROOT, "g", d, "g2", &root()));
    assert!(!fs.exists(g), "last link gone: freed");
    assert_eq!(fs.lookup(d, "g2"), Ok(f));
    assert_eq!(fs.attr(ROOT).size, 1);
}

#[test]
fn rename_between_links_of_one_inode_does_nothing() {
    let mut fs = Fs::new();
    let f = fs.create(ROOT, "f", 0o644, &root());
    fs.link(f, ROOT, "g");
    let before = fs.ns.clone();
    fs.ok(rename(ROOT, "f", ROOT, "g", &root()));
    fs.ok(rename(ROOT, "f", ROOT, "f", &root()));
    assert_eq!(before, fs.ns, "no change, not even times");
    assert_eq!((fs.lookup(ROOT, "f"), fs.lookup(ROOT, "g")), (Ok(f), Ok(f)));
    // A directory onto itself, too.
    fs.mkdir(ROOT, "d", 0o755, &root());
    let before = fs.ns.clone();
    assert_eq!(fs.ok(rename(ROOT, "d", ROOT, "d", &root())), MetaReply::Done);
    assert_eq!(before, fs.ns);
}

#[test]
fn rename_lookup_errors() {
    let (mut fs, a, ..) = tree();
    let f = fs.lookup(ROOT, "f").unwrap();
    assert_eq!(fs.err(rename(ROOT, "nope", ROOT, "x", &root())), Errno::ENOENT);
    assert_eq!(fs.err(rename(InodeId::new(0, 999), "f", ROOT, "x", &root())), Errno::ESTALE);
    assert_eq!(fs.err(rename(ROOT, "f", InodeId::new(0, 999), "x", &root())), Errno::ESTALE);
    assert_eq!(fs.err(rename(f, "x", ROOT, "y", &root())), Errno::ENOTDIR);
    assert_eq!(fs.err(rename(ROOT, "f", f, "y", &root())), Errno::ENOTDIR);
    for (from, to) in [(".", "x"), ("..", "x"), ("f", "."), ("f", ".."), ("f", ""), ("f", "a/b")] {
        assert_eq!(fs.err(rename(ROOT, from, a, to, &root())), Errno::EINVAL, "{from:?} -> {to:?}");
    }
    assert_eq!(fs.err(rename(ROOT, "f", a, &"n".repeat(256), &root())), Errno::ENAMETOOLONG);
}

#[test]
fn rename_permissions() {
    let mut fs = Fs::new();
    let mine = fs.mkdir(ROOT, "mine", 0o777, &root());
    let theirs = fs.mkdir(ROOT, "theirs", 0o755, &bob());
    let closed = fs.mkdir(ROOT, "closed", 0o733, &root());
    fs.create(mine, "f", 0o644, &alice());
    fs.create(theirs, "t", 0o644, &bob());
    assert_eq!(fs.err(rename(mine, "f", theirs, "f", &alice())), Errno::EACCES, "no write on the new parent");
    assert_eq!(fs.err(rename(theirs, "t", mine, "t", &alice())), Errno::EACCES, "no write on the old parent");
    assert_eq!(fs.err(rename(mine, "f", theirs, "t", &alice())), Errno::EACCES, "no write over the target");
    fs.create(closed, "c", 0o644, &root());
    let no_search = fs.mkdir(ROOT, "nosearch", 0o776, &root());
    assert_eq!(fs.err(rename(no_search, "x", mine, "x", &alice())), Errno::EACCES);
    // A directory changing parent needs write permission on itself (its `..` changes) ...
    fs.mkdir(mine, "sub", 0o555, &alice());
    let dest = fs.mkdir(ROOT, "dest", 0o777, &root());
    assert_eq!(fs.err(rename(mine, "sub", dest, "sub", &alice())), Errno::EACCES);
    // ... but not within its parent.
    fs.ok(rename(mine, "sub", mine, "sub2", &alice()));
}

#[test]
fn rename_sticky_directories() {
    let mut fs = Fs::new();
    let tmp = fs.mkdir(ROOT, "tmp", 0o777 | MODE_STICKY, &root());
    fs.create(tmp, "a", 0o666, &alice());
    fs.create(tmp, "b", 0o666, &bob());
    assert_eq!(fs.err(rename(tmp, "a", tmp, "a2", &bob())), Errno::EPERM, "bob moves alice's file");
    assert_eq!(fs.err(rename(tmp, "b", tmp, "a", &bob())), Errno::EPERM, "bob replaces alice's file");
    fs.ok(rename(tmp, "b", tmp, "b2", &bob()));
    assert_eq!(fs.err(rename(tmp, "a", tmp, "b2", &alice())), Errno::EPERM, "alice replaces bob's file");
    fs.ok(rename(tmp, "a", tmp, "a2", &alice()));
    fs.ok(rename(tmp, "a2", tmp, "b2", &root()));
    assert!(fs.ns.resolve("/tmp/a2").is_none());
}

#[test]
fn rename_directory_into_a_full_parent_is_emlink() {
    let mut fs = Fs::new();
    let full = fs.mkdir(ROOT, "full", 0o755, &root());
    fs.mkdir(ROOT, "d", 0o755, &root());
    fs.mkdir(full, "empty", 0o755, &root());
    fs.ns.inodes.get_mut(&full).unwrap().attr.nlink = LINK_MAX;
    let op = rename(ROOT, "d", full, "d", &root());
    assert_eq!(fs.ns.apply(&op, 9_000), Err(Errno::EMLINK));
    // Replacing a directory there adds no link.
    assert!(fs.ns.apply(&rename(ROOT, "d", full, "empty", &root()), 9_000).is_ok());
}

#[test]
fn rename_keeps_xattrs_and_attributes() {
    let mut fs = Fs::new();
    let f = fs.create(ROOT, "f", 0o600, &root());
    fs.ok(MetaOp::SetAttr { ino: f, set: SetAttr { size: Some(77), ..SetAttr::default() }, creds: root() });
    let set = MetaOp::SetXattr {
        ino: f,
        name: "user.k".into(),
        value: b"v".to_vec(),
        flags: tessera_meta::XattrFlags::Upsert,
        creds: root(),
    };
    fs.ok(set);
    let d = fs.mkdir(ROOT, "d", 0o755, &root());
    fs.ok(rename(ROOT, "f", d, "g", &root()));
    let get = MetaOp::GetXattr { ino: f, name: "user.k".into(), creds: root() };
    assert_eq!(fs.ok(get), MetaReply::Xattr(b"v".to_vec()));
    assert_eq!((fs.attr(f).size, fs.attr(f).mode), (77, 0o600));
}
