//! A harness for the model's unit tests: a clock that advances per operation, invariants checked after
//! every operation, and failed operations checked to change nothing.

use tessera_meta::{Attr, Credentials, Errno, FileType, InodeId, MetaOp, MetaReply, MetaResult};

use super::Namespace;

pub(super) const ROOT: InodeId = InodeId::ROOT;

pub(super) fn root() -> Credentials {
    Credentials::root()
}

pub(super) fn alice() -> Credentials {
    Credentials::user(1000, 1000)
}

pub(super) fn bob() -> Credentials {
    Credentials::user(1001, 1001)
}

/// A namespace with a clock: each operation runs 10 ns after the previous one.
pub(super) struct Fs {
    pub(super) ns: Namespace,
    pub(super) now: u64,
}

impl Fs {
    /// A namespace whose root is mode 0o777 (so that users may create in it), at time 1010.
    pub(super) fn new() -> Fs {
        let mut fs = Fs { ns: Namespace::new(1_000), now: 1_000 };
        let set = tessera_meta::SetAttr { mode: Some(0o777), ..Default::default() };
        fs.ok(MetaOp::SetAttr { ino: ROOT, set, creds: root() });
        fs
    }

    /// Apply `op`; the invariants hold afterwards, and a failure left the state as it was.
    pub(super) fn apply(&mut self, op: MetaOp) -> MetaResult {
        self.now += 10;
        let before = self.ns.clone();
        let result = self.ns.apply(&op, self.now);
        if let Err(e) = self.ns.check_invariants() {
            panic!("invariant broken by {op:?} -> {result:?}: {e}");
        }
        if result.is_err() {
            assert_eq!(before, self.ns, "failed {op:?} changed the namespace");
        }
        result
    }

    /// The error `op` must fail with.
    pub(super) fn err(&mut self, op: MetaOp) -> Errno {
        match self.apply(op.clone()) {
            Err(e) => e,
            Ok(reply) => panic!("{op:?} succeeded with {reply:?}"),
        }
    }

    /// Apply an operation that must succeed.
    pub(super) fn ok(&mut self, op: MetaOp) -> MetaReply {
        match self.apply(op.clone()) {
            Ok(reply) => reply,
            Err(e) => panic!("{op:?} failed with {e:?}"),
        }
    }

    fn entry(&mut self, op: MetaOp) -> InodeId {
        match self.ok(op) {
            MetaReply::Entry(attr) => attr.ino,
            other => panic!("expected an entry, got {other:?}"),
        }
    }

    pub(super) fn mkdir(&mut self, parent: InodeId, name: &str, mode: u32, creds: &Credentials) -> InodeId {
        self.entry(MetaOp::Mkdir { parent, name: name.into(), mode, creds: creds.clone() })
    }

    pub(super) fn create(&mut self, parent: InodeId, name: &str, mode: u32, creds: &Credentials) -> InodeId {
        self.entry(MetaOp::Create { parent, name: name.into(), mode, creds: creds.clone() })
    }

    pub(super) fn link(&mut self, ino: InodeId, new_parent: InodeId, new_name: &str) -> InodeId {
        self.entry(MetaOp::Link { ino, new_parent, new_name: new_name.into(), creds: root() })
    }

    /// The attributes of an existing inode.
    pub(super) fn attr(&self, ino: InodeId) -> Attr {
        self.ns.attr(ino).unwrap_or_else(|| panic!("{ino:?} does not exist")).clone()
    }

    pub(super) fn exists(&self, ino: InodeId) -> bool {
        self.ns.attr(ino).is_some()
    }

    /// The inode `name` in `parent` names, looked up as root.
    pub(super) fn lookup(&mut self, parent: InodeId, name: &str) -> Result<InodeId, Errno> {
        match self.apply(MetaOp::Lookup { parent, name: name.into(), creds: root() })? {
            MetaReply::Child { ino, .. } => Ok(ino),
            other => panic!("expected an entry, got {other:?}"),
        }
    }

    /// All names in a directory, read as root in pages of `page` entries.
    pub(super) fn list(&mut self, dir: InodeId, page: u32) -> Vec<(String, InodeId, FileType)> {
        let mut cookie = tessera_meta::READDIR_START;
        let mut names = Vec::new();
        loop {
            let op = MetaOp::Readdir { dir, cookie, max_entries: page, creds: root() };
            let MetaReply::DirEntries { entries, eof } = self.ok(op) else { panic!("readdir reply") };
            for e in &entries {
                assert!(e.cookie > cookie, "cookies increase");
                cookie = e.cookie;
                names.push((e.name.clone(), e.ino, e.kind));
            }
            if eof {
                return names;
            }
            assert!(!entries.is_empty(), "a page without eof holds entries");
        }
    }
}

/// An unlink as `creds`.
pub(super) fn unlink(parent: InodeId, name: &str, creds: &Credentials) -> MetaOp {
    MetaOp::Unlink { parent, name: name.into(), creds: creds.clone() }
}

/// An rmdir as `creds`.
pub(super) fn rmdir(parent: InodeId, name: &str, creds: &Credentials) -> MetaOp {
    MetaOp::Rmdir { parent, name: name.into(), creds: creds.clone() }
}

/// A rename as `creds`.
pub(super) fn rename(parent: InodeId, name: &str, new_parent: InodeId, new_name: &str, creds: &Credentials) -> MetaOp {
    MetaOp::Rename { parent, name: name.into(), new_parent, new_name: new_name.into(), creds: creds.clone() }
}
