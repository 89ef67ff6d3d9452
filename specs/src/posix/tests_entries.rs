//! Lookup, create, mkdir, mknod, symlink, readlink, link, unlink and rmdir: every errno path, link
//! counts and times.

use tessera_meta::{
    Credentials, Errno, FileType, InodeId, LINK_MAX, MODE_SETGID, MODE_STICKY, MetaOp, MetaReply,
    SYMLINK_TARGET_LEN_MAX_BYTES,
};

use super::test_util::{Fs, ROOT, alice, bob, rmdir, root, unlink};

fn create_op(parent: InodeId, name: &str, mode: u32, creds: &Credentials) -> MetaOp {
    MetaOp::Create { parent, name: name.into(), mode, creds: creds.clone() }
}

fn lookup_op(parent: InodeId, name: &str, creds: &Credentials) -> MetaOp {
    MetaOp::Lookup { parent, name: name.into(), creds: creds.clone() }
}

#[test]
fn root_directory() {
    let ns = super::Namespace::new(1_000);
    let attr = ns.attr(ROOT).unwrap().clone();
    assert_eq!((attr.kind, attr.mode, attr.uid, attr.nlink, attr.size), (FileType::Directory, 0o755, 0, 2, 0));
    assert_eq!((attr.atime_ns, attr.mtime_ns, attr.ctime_ns), (1_000, 1_000, 1_000));
}

#[test]
fn lookup_errors() {
    let mut fs = Fs::new();
    let file = fs.create(ROOT, "f", 0o644, &root());
    let private = fs.mkdir(ROOT, "private", 0o700, &alice());
    fs.create(private, "secret", 0o644, &alice());
    assert_eq!(fs.lookup(ROOT, "f"), Ok(file));
    assert_eq!(fs.lookup(ROOT, "missing"), Err(Errno::ENOENT));
    assert_eq!(fs.err(lookup_op(InodeId::new(0, 999), "f", &root())), Errno::ESTALE);
    assert_eq!(fs.err(lookup_op(file, "x", &root())), Errno::ENOTDIR);
    assert_eq!(fs.err(lookup_op(private, "secret", &bob())), Errno::EACCES);
    assert!(matches!(fs.ok(lookup_op(private, "secret", &alice())), MetaReply::Child { .. }));
    for bad in ["", ".", "..", "a/b", "a\0"] {
        assert_eq!(fs.err(lookup_op(ROOT, bad, &root())), Errno::EINVAL, "{bad:?}");
    }
    assert_eq!(fs.err(lookup_op(ROOT, &"n".repeat(256), &root())), Errno::ENAMETOOLONG);
    // Root searches any directory.
    assert!(matches!(fs.ok(lookup_op(private, "secret", &root())), MetaReply::Child { .. }));
}

#[test]
fn create_sets_attributes_and_parent_times() {
    let mut fs = Fs::new();
    let ino = fs.create(ROOT, "f", 0o640, &alice());
    let attr = fs.attr(ino);
    assert_eq!(
        (attr.kind, attr.mode, attr.uid, attr.gid, attr.nlink, attr.size),
        (FileType::Regular, 0o640, 1000, 1000, 1, 0)
    );
    assert_eq!((attr.atime_ns, attr.mtime_ns, attr.ctime_ns), (fs.now, fs.now, fs.now));
    let parent = fs.attr(ROOT);
    assert_eq!((parent.mtime_ns, parent.ctime_ns, parent.atime_ns), (fs.now, fs.now, 1_000));
    assert_eq!((parent.size, parent.nlink), (1, 2));
    assert_eq!(ino.shard(), 0);
    assert_ne!(fs.create(ROOT, "g", 0o640, &alice()), ino, "ids are not reused");
}

#[test]
fn create_errors() {
    let mut fs = Fs::new();
    let file = fs.create(ROOT, "f", 0o644, &root());
    let ro = fs.mkdir(ROOT, "ro", 0o555, &alice());
    let noexec = fs.mkdir(ROOT, "noexec", 0o666, &alice());
    assert_eq!(fs.err(create_op(ROOT, "f", 0o644, &root())), Errno::EEXIST);
    assert_eq!(fs.err(create_op(ROOT, "x", 0o10644, &root())), Errno::EINVAL);
    assert_eq!(fs.err(create_op(file, "x", 0o644, &root())), Errno::ENOTDIR);
    assert_eq!(fs.err(create_op(InodeId::new(0, 999), "x", 0o644, &root())), Errno::ESTALE);
    let closed = fs.mkdir(ROOT, "closed", 0o755, &root());
    assert_eq!(fs.err(create_op(closed, "x", 0o644, &alice())), Errno::EACCES);
    assert_eq!(fs.err(create_op(ro, "x", 0o644, &alice())), Errno::EACCES);
    assert_eq!(fs.err(create_op(noexec, "x", 0o644, &alice())), Errno::EACCES);
    assert_eq!(fs.err(create_op(ROOT, "..", 0o644, &root())), Errno::EINVAL);
    assert_eq!(fs.err(create_op(ROOT, &"n".repeat(256), 0o644, &root())), Errno::ENAMETOOLONG);
    // EEXIST wins over EACCES for write (Linux looks the name up first), not over search.
    fs.create(ro, "there", 0o644, &root());
    assert_eq!(fs.err(create_op(ro, "there", 0o644, &alice())), Errno::EEXIST);
    // Root writes into a read-only directory.
    fs.create(ro, "by-root", 0o644, &root());
}

#[test]
fn group_and_other_bits_apply_to_the_right_callers() {
    let mut fs = Fs::new();
    // Owner alice has no write bit, group 1000 does: alice is judged by the owner bits only.
    let dir = fs.mkdir(ROOT, "d", 0o575, &root());
    fs.ok(MetaOp::SetAttr {
        ino: dir,
        set: tessera_meta::SetAttr { uid: Some(1000), gid: Some(2000), ..Default::default() },
        creds: root(),
    });
    let carol = Credentials { uid: 1002, gid: 5, groups: vec![2000] };
    assert_eq!(fs.err(create_op(dir, "a", 0o644, &alice())), Errno::EACCES);
    fs.create(dir, "c", 0o644, &carol);
    assert_eq!(fs.err(create_op(dir, "b", 0o644, &bob())), Errno::EACCES, "other bits are r-x");
}

#[test]
fn setgid_directory_passes_its_group_on() {
    let mut fs = Fs::new();
    let shared = fs.mkdir(ROOT, "shared", 0o777 | MODE_SETGID, &root());
    fs.ok(MetaOp::SetAttr {
        ino: shared,
        set: tessera_meta::SetAttr { gid: Some(50), ..Default::default() },
        creds: root(),
    });
    let sub = fs.mkdir(shared, "sub", 0o755, &alice());
    assert_eq!((fs.attr(sub).gid, fs.attr(sub).mode), (50, 0o755 | MODE_SETGID));
    let file = fs.create(shared, "f", 0o755 | MODE_SETGID, &alice());
    assert_eq!((fs.attr(file).gid, fs.attr(file).mode), (50, 0o755), "alice is not in group 50");
    let member = Credentials { uid: 1000, gid: 1000, groups: vec![50] };
    let kept = fs.create(shared, "g", 0o755 | MODE_SETGID, &member);
    assert_eq!(fs.attr(kept).mode, 0o755 | MODE_SETGID);
    let plain = fs.create(ROOT, "plain", 0o644, &root());
    assert_eq!(fs.attr(plain).gid, 0);
}

#[test]
fn mkdir_links_and_emlink() {
    let mut fs = Fs::new();
    let a = fs.mkdir(ROOT, "a", 0o755, &root());
    fs.mkdir(ROOT, "b", 0o755, &root());
    fs.mkdir(a, "c", 0o755, &root());
    assert_eq!(fs.attr(ROOT).nlink, 4);
    assert_eq!(fs.attr(a).nlink, 3);
    let mkdir = MetaOp::Mkdir { parent: ROOT, name: "a".into(), mode: 0o755, creds: root() };
    assert_eq!(fs.err(mkdir), Errno::EEXIST);
    // A directory at LINK_MAX links takes no more subdirectories (files are fine).
    fs.ns.inodes.get_mut(&a).unwrap().attr.nlink = LINK_MAX;
    let op = MetaOp::Mkdir { parent: a, name: "full".into(), mode: 0o755, creds: root() };
    assert_eq!(fs.ns.apply(&op, 5_000), Err(Errno::EMLINK));
    assert!(fs.ns.apply(&create_op(a, "file", 0o644, &root()), 5_000).is_ok());
}

#[test]
fn mknod_kinds() {
    let mut fs = Fs::new();
    let mknod = |kind, rdev, creds: &Credentials| MetaOp::Mknod {
        parent: ROOT,
        name: format!("{kind:?}"),
        mode: 0o600,
        kind,
        rdev,
        creds: creds.clone(),
    };
    assert_eq!(fs.err(mknod(FileType::Directory, 0, &root())), Errno::EPERM);
    assert_eq!(fs.err(mknod(FileType::Symlink, 0, &root())), Errno::EINVAL);
    let dir = fs.mkdir(ROOT, "open", 0o777, &root());
    let user_dev = MetaOp::Mknod {
        parent: dir,
        name: "d".into(),
        mode: 0o600,
        kind: FileType::CharDevice,
        rdev: 7,
        creds: alice(),
    };
    assert_eq!(fs.err(user_dev), Errno::EPERM);
    let MetaReply::Entry(dev) = fs.ok(mknod(FileType::BlockDevice, 0x0801, &root())) else { panic!() };
    assert_eq!((dev.kind, dev.rdev, dev.nlink), (FileType::BlockDevice, 0x0801, 1));
    let fifo =
        MetaOp::Mknod { parent: dir, name: "p".into(), mode: 0o600, kind: FileType::Fifo, rdev: 9, creds: alice() };
    let MetaReply::Entry(fifo) = fs.ok(fifo) else { panic!() };
    assert_eq!((fifo.kind, fifo.rdev), (FileType::Fifo, 0), "rdev only for devices");
    for kind in [FileType::Regular, FileType::Socket, FileType::CharDevice] {
        fs.ok(mknod(kind, 0, &root()));
    }
}

#[test]
fn symlink_and_readlink() {
    let mut fs = Fs::new();
    let symlink =
        |name: &str, target: String| MetaOp::Symlink { parent: ROOT, name: name.into(), target, creds: root() };
    let MetaReply::Entry(link) = fs.ok(symlink("l", "some/where".into())) else { panic!() };
    assert_eq!((link.kind, link.mode, link.size), (FileType::Symlink, 0o777, 10));
    assert_eq!(fs.ok(MetaOp::Readlink { ino: link.ino }), MetaReply::LinkTarget("some/where".into()));
    assert_eq!(fs.err(symlink("e", String::new())), Errno::ENOENT);
    assert_eq!(fs.err(symlink("long", "x".repeat(SYMLINK_TARGET_LEN_MAX_BYTES + 1))), Errno::ENAMETOOLONG);
    fs.ok(symlink("max", "x".repeat(SYMLINK_TARGET_LEN_MAX_BYTES)));
    assert_eq!(fs.err(symlink("l", "other".into())), Errno::EEXIST);
    assert_eq!(fs.err(MetaOp::Readlink { ino: ROOT }), Errno::EINVAL);
    assert_eq!(fs.err(MetaOp::Readlink { ino: InodeId::new(0, 999) }), Errno::ESTALE);
}

#[test]
fn hard_links() {
    let mut fs = Fs::new();
    let dir = fs.mkdir(ROOT, "d", 0o755, &root());
    let file = fs.create(ROOT, "f", 0o644, &root());
    let t_create = fs.now;
    fs.link(file, dir, "g");
    let attr = fs.attr(file);
    assert_eq!((attr.nlink, attr.ctime_ns, attr.mtime_ns), (2, fs.now, t_create));
    assert_eq!((fs.attr(dir).mtime_ns, fs.attr(dir).size), (fs.now, 1));
    let link = |ino, name: &str, creds: &Credentials| MetaOp::Link {
        ino,
        new_parent: dir,
        new_name: name.into(),
        creds: creds.clone(),
    };
    assert_eq!(fs.err(link(dir, "x", &root())), Errno::EPERM, "no hard links to directories");
    assert_eq!(fs.err(link(file, "g", &root())), Errno::EEXIST);
    assert_eq!(fs.err(link(InodeId::new(0, 999), "x", &root())), Errno::ESTALE);
    assert_eq!(fs.err(link(file, "x", &alice())), Errno::EACCES);
    assert_eq!(fs.err(link(file, "", &root())), Errno::EINVAL);
    fs.ns.inodes.get_mut(&file).unwrap().attr.nlink = LINK_MAX;
    assert_eq!(fs.ns.apply(&link(file, "x", &root()), 9_000), Err(Errno::EMLINK));
    fs.ns.inodes.get_mut(&file).unwrap().attr.nlink = 2;

    // Unlinking one name keeps the inode (ctime changes); the last one frees it.
    fs.ok(unlink(ROOT, "f", &root()));
    assert_eq!((fs.attr(file).nlink, fs.attr(file).ctime_ns), (1, fs.now));
    fs.ok(unlink(dir, "g", &root()));
    assert!(!fs.exists(file));
    assert_eq!(fs.err(MetaOp::GetAttr { ino: file }), Errno::ESTALE);
}

#[test]
fn unlink_errors() {
    let mut fs = Fs::new();
    let dir = fs.mkdir(ROOT, "d", 0o755, &alice());
    fs.create(dir, "f", 0o644, &alice());
    assert_eq!(fs.err(unlink(dir, "missing", &alice())), Errno::ENOENT);
    assert_eq!(fs.err(unlink(ROOT, "d", &alice())), Errno::EISDIR);
    assert_eq!(fs.err(unlink(dir, "f", &bob())), Errno::EACCES);
    assert_eq!(fs.err(unlink(InodeId::new(0, 999), "f", &bob())), Errno::ESTALE);
    assert_eq!(fs.err(unlink(dir, "..", &alice())), Errno::EINVAL);
    let t = fs.now;
    fs.ok(unlink(dir, "f", &alice()));
    let parent = fs.attr(dir);
    assert_eq!((parent.mtime_ns, parent.ctime_ns, parent.size), (t + 10, t + 10, 0));
}

#[test]
fn sticky_directory_restricts_removal() {
    let mut fs = Fs::new();
    let tmp = fs.mkdir(ROOT, "tmp", 0o777 | MODE_STICKY, &root());
    fs.create(tmp, "a", 0o666, &alice());
    fs.create(tmp, "a2", 0o666, &alice());
    fs.mkdir(tmp, "adir", 0o777, &alice());
    assert_eq!(fs.err(unlink(tmp, "a", &bob())), Errno::EPERM);
    assert_eq!(fs.err(rmdir(tmp, "adir", &bob())), Errno::EPERM);
    fs.ok(unlink(tmp, "a", &alice()));
    fs.ok(unlink(tmp, "a2", &root()));
    fs.ok(rmdir(tmp, "adir", &alice()));
    // The directory's owner may remove anyone's entry.
    let own = fs.mkdir(ROOT, "own", 0o777 | MODE_STICKY, &root());
    fs.ok(MetaOp::SetAttr {
        ino: own,
        set: tessera_meta::SetAttr { uid: Some(1001), ..Default::default() },
        creds: root(),
    });
    fs.create(own, "x", 0o666, &alice());
    fs.ok(unlink(own, "x", &bob()));
}

#[test]
fn rmdir_errors_and_links() {
    let mut fs = Fs::new();
    let a = fs.mkdir(ROOT, "a", 0o755, &root());
    fs.mkdir(a, "b", 0o755, &root());
    fs.create(ROOT, "f", 0o644, &root());
    assert_eq!(fs.attr(ROOT).nlink, 3);
    assert_eq!(fs.err(rmdir(ROOT, "f", &root())), Errno::ENOTDIR);
    assert_eq!(fs.err(rmdir(ROOT, "a", &root())), Errno::ENOTEMPTY);
    assert_eq!(fs.err(rmdir(ROOT, "zz", &root())), Errno::ENOENT);
    assert_eq!(fs.err(rmdir(a, "b", &alice())), Errno::EACCES);
    assert_eq!(fs.err(rmdir(ROOT, ".", &root())), Errno::EINVAL);
    fs.ok(rmdir(a, "b", &root()));
    assert_eq!(fs.attr(a).nlink, 2);
    fs.ok(rmdir(ROOT, "a", &root()));
    assert_eq!(fs.attr(ROOT).nlink, 2);
    assert!(!fs.exists(a));
    assert_eq!(fs.ns.inode_count(), 2);
}

#[test]
fn resolve_walks_paths() {
    let mut fs = Fs::new();
    let a = fs.mkdir(ROOT, "a", 0o755, &root());
    let f = fs.create(a, "f", 0o644, &root());
    assert_eq!(fs.ns.resolve("/a/f"), Some(f));
    assert_eq!(fs.ns.resolve("a"), Some(a));
    assert_eq!(fs.ns.resolve("/"), Some(ROOT));
    assert_eq!(fs.ns.resolve("/a/f/x"), None);
    assert_eq!(fs.ns.resolve("/b"), None);
}
