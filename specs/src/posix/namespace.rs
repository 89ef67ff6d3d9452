//! The namespace's state (inodes, directories, xattrs), the dispatch of [`MetaOp`]s and the invariants.

use std::collections::{BTreeMap, BTreeSet};

use tessera_meta::{
    Attr, Credentials, Errno, FileType, InodeId, MODE_MASK, MetaOp, MetaReply, MetaResult, XATTR_VALUE_LEN_MAX_BYTES,
    cookie_matches, validate_name,
};

use tessera_meta::content::FileContent;

use super::dir::Dir;
use super::perm::{MAY_EXEC, permission};

/// The sequential reference model of one file system's namespace: apply [`MetaOp`]s one at a time and
/// get the reply POSIX (as Linux implements it) gives. See the module documentation for the choices.
///
/// Equality and hashing cover the whole state, so the linearizability checker can memoise on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Namespace {
    pub(super) inodes: BTreeMap<InodeId, Inode>,
    /// The per-shard counter of the next inode id (the model allocates in shard 0).
    next_counter: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Inode {
    pub(super) attr: Attr,
    pub(super) body: Body,
    pub(super) xattrs: BTreeMap<String, Vec<u8>>,
    /// A regular file's bytes; empty for every other type.
    pub(super) content: FileContent,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Body {
    Dir(Dir),
    Symlink(String),
    /// Regular files, devices, fifos and sockets: the model keeps only their attributes.
    Other,
}

impl Namespace {
    /// A file system holding only its root directory: [`InodeId::ROOT`], mode 0o755, owned by root,
    /// all times `now_ns`.
    pub fn new(now_ns: u64) -> Namespace {
        let attr = Attr {
            ino: InodeId::ROOT,
            kind: FileType::Directory,
            mode: 0o755,
            uid: 0,
            gid: 0,
            size: 0,
            nlink: 2,
            atime_ns: now_ns,
            mtime_ns: now_ns,
            ctime_ns: now_ns,
            rdev: 0,
        };
        let root = Inode {
            attr,
            body: Body::Dir(Dir::new(InodeId::ROOT)),
            xattrs: BTreeMap::new(),
            content: FileContent::default(),
        };
        Namespace { inodes: BTreeMap::from([(InodeId::ROOT, root)]), next_counter: InodeId::ROOT.counter() + 1 }
    }

    /// Apply one operation at wall-clock time `now_ns`. A failed operation changes nothing.
    pub fn apply(&mut self, op: &MetaOp, now_ns: u64) -> MetaResult {
        if let Some(result) = self.apply_content(op, now_ns) {
            return result;
        }
        match op {
            MetaOp::Lookup { parent, name, creds } => self.lookup(*parent, name, creds),
            MetaOp::GetAttr { ino } => Ok(MetaReply::Attr(self.inode(*ino)?.attr.clone())),
            MetaOp::SetAttr { ino, set, creds } => self.setattr(*ino, set, creds, now_ns),
            MetaOp::Create { parent, name, mode, creds } => {
                self.make_node(*parent, name, creds, FileType::Regular, *mode, 0, None, now_ns)
            }
            MetaOp::Mkdir { parent, name, mode, creds } => {
                self.make_node(*parent, name, creds, FileType::Directory, *mode, 0, None, now_ns)
            }
            MetaOp::Mknod { parent, name, mode, kind, rdev, creds } => {
                self.mknod(*parent, name, *mode, *kind, *rdev, creds, now_ns)
            }
            MetaOp::Symlink { parent, name, target, creds } => self.symlink(*parent, name, target, creds, now_ns),
            MetaOp::Readlink { ino } => match &self.inode(*ino)?.body {
                Body::Symlink(target) => Ok(MetaReply::LinkTarget(target.clone())),
                _ => Err(Errno::EINVAL),
            },
            MetaOp::Link { ino, new_parent, new_name, creds } => self.link(*ino, *new_parent, new_name, creds, now_ns),
            MetaOp::Unlink { parent, name, creds } => self.remove(*parent, name, creds, false, now_ns),
            MetaOp::Rmdir { parent, name, creds } => self.remove(*parent, name, creds, true, now_ns),
            MetaOp::Rename { parent, name, new_parent, new_name, creds } => {
                self.rename(*parent, name, *new_parent, new_name, creds, now_ns)
            }
            MetaOp::Readdir { dir, cookie, max_entries, creds } => self.readdir(*dir, *cookie, *max_entries, creds),
            MetaOp::SetXattr { ino, name, value, flags, creds } => {
                self.set_xattr(*ino, name, value, *flags, creds, now_ns)
            }
            MetaOp::GetXattr { ino, name, creds } => self.get_xattr(*ino, name, creds),
            MetaOp::ListXattr { ino, creds } => self.list_xattr(*ino, creds),
            MetaOp::RemoveXattr { ino, name, creds } => self.remove_xattr(*ino, name, creds, now_ns),
            MetaOp::Truncate { ino, size, creds } => self.truncate(*ino, *size, creds, now_ns),
            MetaOp::Write { .. }
            | MetaOp::ReadMap { .. }
            | MetaOp::GetStripe { .. }
            | MetaOp::MoveChunk { .. }
            | MetaOp::ScanStripes { .. }
            | MetaOp::TakeGarbage { .. }
            | MetaOp::ReleaseGarbage { .. } => unreachable!("answered by apply_content"),
        }
    }

    /// An inode's attributes, if it exists.
    pub fn attr(&self, ino: InodeId) -> Option<&Attr> {
        self.inodes.get(&ino).map(|inode| &inode.attr)
    }

    /// How many inodes exist (the root included).
    pub fn inode_count(&self) -> usize {
        self.inodes.len()
    }

    /// The inode at a `/`-separated path from the root, without permission checks (for tests and
    /// checkers): `""` and `"/"` are the root.
    pub fn resolve(&self, path: &str) -> Option<InodeId> {
        let mut ino = InodeId::ROOT;
        for name in path.split('/').filter(|n| !n.is_empty()) {
            ino = self.dir(ino).ok()?.child(name)?.ino;
        }
        Some(ino)
    }

    pub(super) fn inode(&self, ino: InodeId) -> Result<&Inode, Errno> {
        self.inodes.get(&ino).ok_or(Errno::ESTALE)
    }

    pub(super) fn inode_mut(&mut self, ino: InodeId) -> &mut Inode {
        self.inodes.get_mut(&ino).expect("inode checked before mutation")
    }

    /// The directory `ino`: ESTALE if it does not exist, ENOTDIR if it is something else.
    pub(super) fn dir(&self, ino: InodeId) -> Result<&Dir, Errno> {
        match &self.inode(ino)?.body {
            Body::Dir(dir) => Ok(dir),
            _ => Err(Errno::ENOTDIR),
        }
    }

    pub(super) fn dir_mut(&mut self, ino: InodeId) -> &mut Dir {
        match &mut self.inode_mut(ino).body {
            Body::Dir(dir) => dir,
            _ => panic!("{ino:?} checked to be a directory"),
        }
    }

    /// The directory `parent` after the search check a lookup in it needs, and `name` validated.
    pub(super) fn searchable_dir(&self, parent: InodeId, name: &str, creds: &Credentials) -> Result<&Dir, Errno> {
        let dir = self.dir(parent)?;
        permission(&self.inodes[&parent].attr, creds, MAY_EXEC)?;
        validate_name(name)?;
        Ok(dir)
    }

    fn lookup(&self, parent: InodeId, name: &str, creds: &Credentials) -> MetaResult {
        let slot = self.searchable_dir(parent, name, creds)?.child(name).ok_or(Errno::ENOENT)?;
        Ok(MetaReply::Child { ino: slot.ino, kind: self.inodes[&slot.ino].attr.kind })
    }

    /// The next inode id (never reused); ENOSPC when the shard's counter is exhausted.
    pub(super) fn next_ino(&self) -> Result<InodeId, Errno> {
        if self.next_counter > InodeId::COUNTER_MAX {
            return Err(Errno::ENOSPC);
        }
        Ok(InodeId::new(0, self.next_counter))
    }

    /// Insert a new inode under the id [`Namespace::next_ino`] returned.
    pub(super) fn insert_inode(&mut self, inode: Inode) {
        assert_eq!(inode.attr.ino, InodeId::new(0, self.next_counter));
        self.next_counter += 1;
        self.inodes.insert(inode.attr.ino, inode);
    }

    /// Mark `ino` changed (its ctime) and, for a directory whose entries changed, modified (mtime).
    pub(super) fn touch(&mut self, ino: InodeId, modified: bool, now_ns: u64) {
        let attr = &mut self.inode_mut(ino).attr;
        attr.ctime_ns = now_ns;
        if modified {
            attr.mtime_ns = now_ns;
        }
    }

    /// Every structural invariant of the namespace; the first one broken, described.
    pub fn check_invariants(&self) -> Result<(), String> {
        let root = self.inodes.get(&InodeId::ROOT).ok_or("no root inode")?;
        match &root.body {
            Body::Dir(dir) if dir.parent == InodeId::ROOT => {}
            _ => return Err("the root is not a directory that is its own parent".into()),
        }
        let mut refs: BTreeMap<InodeId, u32> = BTreeMap::new();
        for (&ino, inode) in &self.inodes {
            check_inode(ino, inode, self.next_counter)?;
            if let Body::Dir(dir) = &inode.body {
                self.check_dir(ino, dir, inode, &mut refs)?;
            }
        }
        for (&ino, inode) in &self.inodes {
            let named = refs.get(&ino).copied().unwrap_or(0);
            let attr = &inode.attr;
            match &inode.body {
                Body::Dir(_) if ino == InodeId::ROOT && named != 0 => {
                    return Err("the root is named by an entry".into());
                }
                Body::Dir(_) if ino != InodeId::ROOT && named != 1 => {
                    return Err(format!("directory {ino:?} is named by {named} entries"));
                }
                Body::Dir(_) => {}
                _ if named == 0 => return Err(format!("orphan: {ino:?} has no entry")),
                _ if attr.nlink != named => {
                    return Err(format!("{ino:?} has nlink {} but {named} entries", attr.nlink));
                }
                _ => {}
            }
        }
        self.check_reachable()
    }

    fn check_dir(
        &self,
        ino: InodeId,
        dir: &Dir,
        inode: &Inode,
        refs: &mut BTreeMap<InodeId, u32>,
    ) -> Result<(), String> {
        dir.check_indexes().map_err(|e| format!("directory {ino:?}: {e}"))?;
        let mut subdirs = 0;
        for (&cookie, slot) in dir.slots() {
            let child =
                self.inodes.get(&slot.ino).ok_or_else(|| format!("dangling entry {:?} in {ino:?}", slot.name))?;
            if validate_name(&slot.name).is_err() || !cookie_matches(&slot.name, cookie) {
                return Err(format!("entry {:?} in {ino:?}: bad name or cookie {cookie:#x}", slot.name));
            }
            if child.attr.kind != slot.kind {
                return Err(format!("entry {:?} in {ino:?} has the wrong type", slot.name));
            }
            if let Body::Dir(child_dir) = &child.body {
                subdirs += 1;
                if child_dir.parent != ino {
                    return Err(format!(
                        "directory {:?} is in {ino:?} but says its parent is {:?}",
                        slot.ino, child_dir.parent
                    ));
                }
            }
            *refs.entry(slot.ino).or_default() += 1;
        }
        if inode.attr.nlink != 2 + subdirs {
            return Err(format!("directory {ino:?} has nlink {} and {subdirs} subdirectories", inode.attr.nlink));
        }
        if inode.attr.size != dir.len() as u64 {
            return Err(format!("directory {ino:?} has size {} and {} entries", inode.attr.size, dir.len()));
        }
        Ok(())
    }

    fn check_reachable(&self) -> Result<(), String> {
        let mut seen = BTreeSet::from([InodeId::ROOT]);
        let mut todo = vec![InodeId::ROOT];
        while let Some(ino) = todo.pop() {
            if let Body::Dir(dir) = &self.inodes[&ino].body {
                for (_, slot) in dir.slots() {
                    if seen.insert(slot.ino) {
                        todo.push(slot.ino);
                    }
                }
            }
        }
        match self.inodes.keys().find(|ino| !seen.contains(ino)) {
            Some(ino) => Err(format!("{ino:?} is not reachable from the root")),
            None => Ok(()),
        }
    }
}

/// The invariants of one inode on its own.
fn check_inode(ino: InodeId, inode: &Inode, next_counter: u64) -> Result<(), String> {
    let attr = &inode.attr;
    if attr.ino != ino || ino.shard() != 0 || ino.counter() >= next_counter {
        return Err(format!("inode {ino:?} has id {:?} (next counter {next_counter})", attr.ino));
    }
    if attr.mode & !MODE_MASK != 0 || attr.nlink == 0 {
        return Err(format!("inode {ino:?}: mode {:#o}, nlink {}", attr.mode, attr.nlink));
    }
    let shape_ok = match (&inode.body, attr.kind) {
        (Body::Dir(_), FileType::Directory) => attr.rdev == 0,
        (Body::Symlink(target), FileType::Symlink) => attr.size == target.len() as u64 && !target.is_empty(),
        (Body::Other, FileType::CharDevice | FileType::BlockDevice) => true,
        (Body::Other, FileType::Regular | FileType::Fifo | FileType::Socket) => attr.rdev == 0,
        _ => false,
    };
    if !shape_ok {
        return Err(format!("inode {ino:?} of type {:?} has the wrong body, size or rdev", attr.kind));
    }
    for (name, value) in &inode.xattrs {
        if super::xattr::namespace_of(name).is_err() || value.len() > XATTR_VALUE_LEN_MAX_BYTES {
            return Err(format!("inode {ino:?} has a bad xattr {name:?}"));
        }
    }
    if attr.kind != FileType::Regular && !inode.content.is_empty() {
        return Err(format!("inode {ino:?} of type {:?} has content", attr.kind));
    }
    inode.content.check(attr.size).map_err(|e| format!("inode {ino:?}: {e}"))
}
