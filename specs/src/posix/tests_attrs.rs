//! setattr, truncate and extended attributes: every errno path and the mode-bit side effects.

use tessera_meta::{
    Credentials, Errno, FILE_SIZE_MAX_BYTES, FileType, InodeId, MODE_SETGID, MODE_SETUID, MODE_STICKY, MetaOp,
    MetaReply, SetAttr, SetTime, XATTR_NAME_LEN_MAX_BYTES, XATTR_VALUE_LEN_MAX_BYTES, XattrFlags,
};

use super::test_util::{Fs, ROOT, alice, bob, root};

fn setattr(ino: InodeId, set: SetAttr, creds: &Credentials) -> MetaOp {
    MetaOp::SetAttr { ino, set, creds: creds.clone() }
}

fn mode(m: u32) -> SetAttr {
    SetAttr { mode: Some(m), ..SetAttr::default() }
}

fn size(s: u64) -> SetAttr {
    SetAttr { size: Some(s), ..SetAttr::default() }
}

#[test]
fn chmod_needs_ownership() {
    let mut fs = Fs::new();
    let f = fs.create(ROOT, "f", 0o644, &alice());
    let created = fs.now;
    assert_eq!(fs.err(setattr(f, mode(0o600), &bob())), Errno::EPERM);
    assert_eq!(fs.err(setattr(f, mode(0o10600), &alice())), Errno::EINVAL);
    assert_eq!(fs.err(setattr(InodeId::new(0, 999), mode(0o600), &root())), Errno::ESTALE);
    let MetaReply::Attr(attr) = fs.ok(setattr(f, mode(0o4711), &alice())) else { panic!() };
    assert_eq!((attr.mode, attr.ctime_ns, attr.mtime_ns), (0o4711, fs.now, created));
    fs.ok(setattr(f, mode(0o600), &root()));
    // setgid is dropped when the caller is not in the file's group.
    fs.ok(setattr(f, SetAttr { gid: Some(7), ..SetAttr::default() }, &root()));
    let MetaReply::Attr(attr) = fs.ok(setattr(f, mode(0o2755), &alice())) else { panic!() };
    assert_eq!(attr.mode, 0o755);
    let member = Credentials { uid: 1000, gid: 1000, groups: vec![7] };
    let MetaReply::Attr(attr) = fs.ok(setattr(f, mode(0o2755), &member)) else { panic!() };
    assert_eq!(attr.mode, 0o2755);
}

#[test]
fn chown_rules() {
    let mut fs = Fs::new();
    let f = fs.create(ROOT, "f", 0o644, &alice());
    let chown = |uid: Option<u32>, gid: Option<u32>| SetAttr { uid, gid, ..SetAttr::default() };
    assert_eq!(fs.err(setattr(f, chown(Some(1001), None), &alice())), Errno::EPERM, "give away");
    fs.ok(setattr(f, chown(Some(1000), None), &alice()));
    assert_eq!(fs.err(setattr(f, chown(None, Some(1000)), &bob())), Errno::EPERM, "not the owner");
    assert_eq!(fs.err(setattr(f, chown(None, Some(99)), &alice())), Errno::EPERM, "not a member of 99");
    let member = Credentials { uid: 1000, gid: 1000, groups: vec![99] };
    fs.ok(setattr(f, chown(None, Some(99)), &member));
    fs.ok(setattr(f, chown(Some(1001), Some(1001)), &root()));
    assert_eq!((fs.attr(f).uid, fs.attr(f).gid), (1001, 1001));
}

#[test]
fn chown_clears_setuid_and_setgid() {
    let mut fs = Fs::new();
    let f = fs.create(ROOT, "f", 0o644, &root());
    let chown = SetAttr { uid: Some(5), ..SetAttr::default() };
    fs.ok(setattr(f, mode(0o6755), &root()));
    fs.ok(setattr(f, chown.clone(), &root()));
    assert_eq!(fs.attr(f).mode, 0o755, "even by root, with group-execute");
    // setgid without group-execute (mandatory-locking marker) survives a chown by root.
    fs.ok(setattr(f, mode(0o6745), &root()));
    fs.ok(setattr(f, chown.clone(), &root()));
    assert_eq!(fs.attr(f).mode, 0o2745);
    // A mode given together with the chown is the final mode.
    fs.ok(setattr(f, SetAttr { uid: Some(6), mode: Some(0o4755), ..SetAttr::default() }, &root()));
    assert_eq!(fs.attr(f).mode, 0o4755);
    // Directories keep their bits.
    let d = fs.mkdir(ROOT, "d", 0o2755, &root());
    fs.ok(setattr(d, chown, &root()));
    assert_eq!(fs.attr(d).mode, 0o2755);
}

#[test]
fn truncate_rules() {
    let mut fs = Fs::new();
    let f = fs.create(ROOT, "f", 0o664, &alice());
    let d = fs.mkdir(ROOT, "d", 0o777, &alice());
    let symlink = MetaOp::Symlink { parent: ROOT, name: "l".into(), target: "f".into(), creds: root() };
    let MetaReply::Entry(l) = fs.ok(symlink) else { panic!() };
    let truncate = |ino, size, creds: &Credentials| MetaOp::Truncate { ino, size, creds: creds.clone() };
    assert_eq!(fs.err(truncate(d, 0, &alice())), Errno::EISDIR);
    assert_eq!(fs.err(truncate(l.ino, 0, &root())), Errno::EINVAL);
    assert_eq!(fs.err(truncate(f, 10, &bob())), Errno::EACCES);
    assert_eq!(fs.err(truncate(f, FILE_SIZE_MAX_BYTES + 1, &alice())), Errno::EFBIG);
    assert_eq!(fs.err(setattr(f, size(5), &bob())), Errno::EACCES);
    let MetaReply::Attr(attr) = fs.ok(truncate(f, 4096, &alice())) else { panic!() };
    assert_eq!((attr.size, attr.mtime_ns, attr.ctime_ns), (4096, fs.now, fs.now));
    // Group members may write; root may truncate anything.
    let member = Credentials { uid: 7, gid: 1000, groups: vec![] };
    fs.ok(truncate(f, 1, &member));
    fs.ok(setattr(f, size(FILE_SIZE_MAX_BYTES), &root()));
    // A write by a non-root user clears setuid, and setgid with group-execute.
    fs.ok(setattr(f, mode(0o6775), &root()));
    fs.ok(truncate(f, 0, &alice()));
    assert_eq!(fs.attr(f).mode, 0o775);
    fs.ok(setattr(f, mode(0o6765), &root()));
    fs.ok(truncate(f, 0, &alice()));
    assert_eq!(fs.attr(f).mode, 0o2765, "setgid without group-execute stays");
    fs.ok(setattr(f, mode(0o6775), &root()));
    fs.ok(truncate(f, 0, &root()));
    assert_eq!(fs.attr(f).mode, MODE_SETUID | MODE_SETGID | 0o775, "root keeps them");
}

#[test]
fn utimes_rules() {
    let mut fs = Fs::new();
    let f = fs.create(ROOT, "f", 0o666, &alice());
    let ro = fs.create(ROOT, "ro", 0o644, &alice());
    let times = |a, m| SetAttr { atime: a, mtime: m, ..SetAttr::default() };
    // Explicit times: owner or root only.
    assert_eq!(fs.err(setattr(f, times(Some(SetTime::At(5)), None), &bob())), Errno::EPERM);
    assert_eq!(fs.err(setattr(f, times(Some(SetTime::Now), Some(SetTime::At(5))), &bob())), Errno::EPERM);
    let MetaReply::Attr(attr) = fs.ok(setattr(f, times(Some(SetTime::At(5)), Some(SetTime::At(6))), &alice())) else {
        panic!()
    };
    assert_eq!((attr.atime_ns, attr.mtime_ns, attr.ctime_ns), (5, 6, fs.now));
    // The current time: also anyone with write permission.
    let MetaReply::Attr(attr) = fs.ok(setattr(f, times(Some(SetTime::Now), Some(SetTime::Now)), &bob())) else {
        panic!()
    };
    assert_eq!((attr.atime_ns, attr.mtime_ns), (fs.now, fs.now));
    assert_eq!(fs.err(setattr(ro, times(None, Some(SetTime::Now)), &bob())), Errno::EACCES);
    fs.ok(setattr(ro, times(Some(SetTime::At(1)), None), &root()));
    assert_eq!(fs.attr(ro).atime_ns, 1);
}

#[test]
fn empty_setattr_changes_nothing() {
    let mut fs = Fs::new();
    let f = fs.create(ROOT, "f", 0o644, &alice());
    let before = fs.attr(f);
    assert_eq!(fs.ok(setattr(f, SetAttr::default(), &bob())), MetaReply::Attr(before.clone()));
    assert_eq!(fs.attr(f), before);
    assert_eq!(fs.ok(MetaOp::GetAttr { ino: f }), MetaReply::Attr(before));
}

fn set_x(ino: InodeId, name: &str, value: &[u8], flags: XattrFlags, creds: &Credentials) -> MetaOp {
    MetaOp::SetXattr { ino, name: name.into(), value: value.to_vec(), flags, creds: creds.clone() }
}

fn get_x(ino: InodeId, name: &str, creds: &Credentials) -> MetaOp {
    MetaOp::GetXattr { ino, name: name.into(), creds: creds.clone() }
}

fn remove_x(ino: InodeId, name: &str, creds: &Credentials) -> MetaOp {
    MetaOp::RemoveXattr { ino, name: name.into(), creds: creds.clone() }
}

#[test]
fn xattr_flags_and_lifecycle() {
    let mut fs = Fs::new();
    let f = fs.create(ROOT, "f", 0o644, &alice());
    let a = alice();
    assert_eq!(fs.err(set_x(f, "user.k", b"1", XattrFlags::Replace, &a)), Errno::ENODATA);
    assert_eq!(fs.err(get_x(f, "user.k", &a)), Errno::ENODATA);
    assert_eq!(fs.err(remove_x(f, "user.k", &a)), Errno::ENODATA);
    fs.ok(set_x(f, "user.k", b"1", XattrFlags::Create, &a));
    assert_eq!(fs.attr(f).ctime_ns, fs.now);
    assert_eq!(fs.err(set_x(f, "user.k", b"2", XattrFlags::Create, &a)), Errno::EEXIST);
    fs.ok(set_x(f, "user.k", b"2", XattrFlags::Replace, &a));
    fs.ok(set_x(f, "user.j", b"", XattrFlags::Upsert, &a));
    fs.ok(set_x(f, "user.j", b"3", XattrFlags::Upsert, &a));
    assert_eq!(fs.ok(get_x(f, "user.k", &bob())), MetaReply::Xattr(b"2".to_vec()), "others may read (0644)");
    let list = MetaOp::ListXattr { ino: f, creds: bob() };
    assert_eq!(fs.ok(list), MetaReply::XattrNames(vec!["user.j".into(), "user.k".into()]));
    fs.ok(remove_x(f, "user.k", &a));
    assert_eq!(fs.attr(f).ctime_ns, fs.now);
    assert_eq!(fs.err(get_x(f, "user.k", &a)), Errno::ENODATA);
    assert_eq!(fs.err(get_x(InodeId::new(0, 999), "user.k", &a)), Errno::ESTALE);
}

#[test]
fn xattr_limits() {
    let mut fs = Fs::new();
    let f = fs.create(ROOT, "f", 0o644, &root());
    let r = root();
    let long_name = format!("user.{}", "n".repeat(XATTR_NAME_LEN_MAX_BYTES - 5));
    fs.ok(set_x(f, &long_name, &vec![7; XATTR_VALUE_LEN_MAX_BYTES], XattrFlags::Upsert, &r));
    assert_eq!(fs.err(set_x(f, &format!("{long_name}n"), b"", XattrFlags::Upsert, &r)), Errno::ERANGE);
    assert_eq!(fs.err(set_x(f, "", b"", XattrFlags::Upsert, &r)), Errno::ERANGE);
    assert_eq!(fs.err(get_x(f, "", &r)), Errno::ERANGE);
    assert_eq!(fs.err(remove_x(f, &format!("{long_name}n"), &r)), Errno::ERANGE);
    let big = vec![0; XATTR_VALUE_LEN_MAX_BYTES + 1];
    assert_eq!(fs.err(set_x(f, "user.big", &big, XattrFlags::Upsert, &r)), Errno::E2BIG);
    assert_eq!(fs.err(set_x(f, "user.", b"", XattrFlags::Upsert, &r)), Errno::EINVAL);
    assert_eq!(fs.err(set_x(f, "system.posix_acl_access", b"", XattrFlags::Upsert, &r)), Errno::EOPNOTSUPP);
    assert_eq!(fs.err(get_x(f, "nonamespace", &r)), Errno::EOPNOTSUPP);
}

#[test]
fn xattr_permissions() {
    let mut fs = Fs::new();
    let f = fs.create(ROOT, "f", 0o640, &alice());
    let (a, b) = (alice(), bob());
    assert_eq!(fs.err(set_x(f, "user.k", b"v", XattrFlags::Upsert, &b)), Errno::EACCES);
    fs.ok(set_x(f, "user.k", b"v", XattrFlags::Upsert, &a));
    assert_eq!(fs.err(get_x(f, "user.k", &b)), Errno::EACCES);
    assert_eq!(fs.err(remove_x(f, "user.k", &b)), Errno::EACCES);
    // trusted.*: root only, invisible to others.
    assert_eq!(fs.err(set_x(f, "trusted.t", b"v", XattrFlags::Upsert, &a)), Errno::EPERM);
    fs.ok(set_x(f, "trusted.t", b"v", XattrFlags::Upsert, &root()));
    assert_eq!(fs.err(get_x(f, "trusted.t", &a)), Errno::ENODATA);
    assert_eq!(fs.err(remove_x(f, "trusted.t", &a)), Errno::EPERM);
    // security.*: root writes, anyone reads.
    assert_eq!(fs.err(set_x(f, "security.s", b"v", XattrFlags::Upsert, &a)), Errno::EPERM);
    fs.ok(set_x(f, "security.s", b"v", XattrFlags::Upsert, &root()));
    assert_eq!(fs.ok(get_x(f, "security.s", &b)), MetaReply::Xattr(b"v".to_vec()));
    let names = |creds: Credentials| MetaOp::ListXattr { ino: f, creds };
    assert_eq!(fs.ok(names(b.clone())), MetaReply::XattrNames(vec!["security.s".into(), "user.k".into()]));
    let all = vec!["security.s".into(), "trusted.t".into(), "user.k".into()];
    assert_eq!(fs.ok(names(root())), MetaReply::XattrNames(all));
    // user.* only on regular files and directories.
    let symlink = MetaOp::Symlink { parent: ROOT, name: "l".into(), target: "f".into(), creds: a.clone() };
    let MetaReply::Entry(l) = fs.ok(symlink) else { panic!() };
    assert_eq!(fs.err(set_x(l.ino, "user.k", b"v", XattrFlags::Upsert, &a)), Errno::EPERM);
    assert_eq!(fs.err(get_x(l.ino, "user.k", &a)), Errno::ENODATA);
    // In a sticky directory only its owner (or root) writes user.* attributes, despite write permission.
    let tmp = fs.mkdir(ROOT, "tmp", 0o777 | MODE_STICKY, &a);
    assert_eq!(fs.err(set_x(tmp, "user.k", b"v", XattrFlags::Upsert, &b)), Errno::EPERM);
    fs.ok(set_x(tmp, "user.k", b"v", XattrFlags::Upsert, &a));
    assert_eq!(fs.attr(tmp).kind, FileType::Directory);
}
