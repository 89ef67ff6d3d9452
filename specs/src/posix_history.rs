//! Checking a concurrent history of metadata operations against the POSIX reference model.
//!
//! [`PosixModel`] is [`crate::posix::Namespace`] as a [`SequentialModel`]. Replies are compared by
//! shape ([`shape`]): inode ids and times are blanked, because they depend on which shard allocated an
//! inode and on clocks, not on the order. Operations must name inodes by the MODEL's ids: a recorder
//! maps the ids of inodes it created before the concurrent phase (whose model ids it knows, having
//! applied the same setup to the model) and names every other inode by path only.

use tessera_meta::{Attr, InodeId, MetaOp, MetaReply, MetaResult};

use crate::linearizability::{History, Outcome, SequentialModel, check};
use crate::posix::Namespace;

/// The namespace as a sequential model whose answers are [`shape`]d.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PosixModel(pub Namespace);

impl SequentialModel for PosixModel {
    type Op = MetaOp;
    type Ret = MetaResult;
    fn step(&mut self, op: &MetaOp) -> MetaResult {
        shape(self.0.apply(op, 0))
    }
}

/// A reply with inode ids and times blanked (what a history records and the model answers).
pub fn shape(result: MetaResult) -> MetaResult {
    let blank = |mut attr: Attr| {
        attr.ino = InodeId(0);
        (attr.atime_ns, attr.mtime_ns, attr.ctime_ns) = (0, 0, 0);
        attr
    };
    Ok(match result? {
        MetaReply::Entry(attr) => MetaReply::Entry(blank(attr)),
        MetaReply::Attr(attr) => MetaReply::Attr(blank(attr)),
        MetaReply::Child { kind, .. } => MetaReply::Child { ino: InodeId(0), kind },
        MetaReply::DirEntries { mut entries, eof } => {
            entries.iter_mut().for_each(|e| e.ino = InodeId(0));
            MetaReply::DirEntries { entries, eof }
        }
        other => other,
    })
}

/// Check a history (ops in model ids, replies shaped) from the model state `init`, exploring at most
/// `budget_states` model steps ([`Outcome::TooLarge`] beyond).
pub fn check_posix(init: &Namespace, history: &History<MetaOp, MetaResult>, budget_states: u64) -> Outcome {
    check(&PosixModel(init.clone()), history, budget_states)
}
