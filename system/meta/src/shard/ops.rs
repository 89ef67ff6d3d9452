//! The dispatch of a [`MetaOp`] to its logic over a [`Store`], and what an operation names: the one
//! place both [`super::ShardState::apply`] and the planner enter the logic.

use crate::{FileType, InodeId, MetaOp, MetaReply, SetAttr};

use super::create::{NewNode, link, make_node, mknod, symlink};
use super::entries::{lookup, readdir};
use super::plan::ReadKey;
use super::store::Store;
use super::xattr::{get_xattr, list_xattr, remove_xattr, set_xattr};
use super::{Halt, Step, attrs, file, remove, rename};
use crate::Errno;

/// Run `op` at time `now` over `s`: the reply, or why it stopped (a POSIX error changes nothing).
pub(super) fn dispatch<S: Store>(s: &mut S, op: &MetaOp, now: u64) -> Step<MetaReply> {
    match op {
        MetaOp::Lookup { parent, name, creds } => lookup(s, *parent, name, creds),
        MetaOp::GetAttr { ino } => Ok(MetaReply::Attr(s.inode(*ino)?.attr.clone())),
        MetaOp::SetAttr { ino, set, creds } => attrs::setattr(s, *ino, set, creds, now),
        MetaOp::Create { parent, name, mode, creds } => {
            make_node(s, *parent, name, creds, NewNode::plain(FileType::Regular, *mode), now)
        }
        MetaOp::Mkdir { parent, name, mode, creds } => {
            make_node(s, *parent, name, creds, NewNode::plain(FileType::Directory, *mode), now)
        }
        MetaOp::Mknod { parent, name, mode, kind, rdev, creds } => {
            mknod(s, *parent, name, *mode, *kind, *rdev, creds, now)
        }
        MetaOp::Symlink { parent, name, target, creds } => symlink(s, *parent, name, target, creds, now),
        MetaOp::Readlink { ino } => {
            s.inode(*ino)?.symlink_target.clone().map(MetaReply::LinkTarget).ok_or(Halt::Errno(Errno::EINVAL))
        }
        MetaOp::Link { ino, new_parent, new_name, creds } => link(s, *ino, *new_parent, new_name, creds, now),
        MetaOp::Unlink { parent, name, creds } => remove::remove(s, *parent, name, creds, false, now),
        MetaOp::Rmdir { parent, name, creds } => remove::remove(s, *parent, name, creds, true, now),
        MetaOp::Rename { parent, name, new_parent, new_name, creds } => {
            rename::rename(s, *parent, name, *new_parent, new_name, creds, now)
        }
        MetaOp::Readdir { dir, cookie, max_entries, creds } => readdir(s, *dir, *cookie, *max_entries, creds),
        MetaOp::SetXattr { ino, name, value, flags, creds } => set_xattr(s, *ino, name, value, *flags, creds, now),
        MetaOp::GetXattr { ino, name, creds } => get_xattr(s, *ino, name, creds),
        MetaOp::ListXattr { ino, creds } => list_xattr(s, *ino, creds),
        MetaOp::RemoveXattr { ino, name, creds } => remove_xattr(s, *ino, name, creds, now),
        MetaOp::Truncate { ino, size, creds } => {
            let set = SetAttr { size: Some(*size), ..SetAttr::default() };
            attrs::setattr(s, *ino, &set, creds, now)
        }
        MetaOp::Write { ino, offset, data, creds } => file::write(s, *ino, *offset, data, creds, now),
        MetaOp::ReadMap { ino, offset, len } => file::read_map(s, *ino, *offset, *len),
        MetaOp::GetStripe { ino, stripe } => {
            let stripe = s.inode(*ino)?.content.stripe(*stripe).ok_or(Halt::Errno(Errno::ENOENT))?;
            Ok(MetaReply::Stripe(stripe.clone()))
        }
        MetaOp::MoveChunk { ino, stripe, index, from, to } => file::move_chunk(s, *ino, *stripe, *index, *from, *to),
        // Applied by `ShardState::apply` itself: they name no key a planner could fetch.
        MetaOp::ScanStripes { .. } | MetaOp::TakeGarbage { .. } | MetaOp::ReleaseGarbage { .. } => {
            panic!("shard-addressed {op:?} is never dispatched over a store")
        }
    }
}

/// The inode ids an operation names directly (each is read by it), the home's first.
pub(crate) fn named_inodes(op: &MetaOp) -> Vec<InodeId> {
    op.inodes()
}

/// The op's home shard: the shard of the first key it names. Its first call goes there, and it
/// coordinates the op's transaction when the op needs other shards.
pub fn home_shard(op: &MetaOp) -> u16 {
    op.target_shard().unwrap_or_else(|| named_inodes(op)[0].shard())
}

/// The keys an operation surely reads when it gets past its argument checks: the inodes and entries it
/// names. The planner fetches them up front, one read per shard, instead of one key at a time.
pub(crate) fn named_keys(op: &MetaOp) -> Vec<ReadKey> {
    let mut keys: Vec<ReadKey> = named_inodes(op).into_iter().map(ReadKey::Inode).collect();
    let mut entry = |parent: InodeId, name: &str| keys.push(ReadKey::Entry { parent, name: name.to_string() });
    match op {
        MetaOp::Lookup { parent, name, .. }
        | MetaOp::Create { parent, name, .. }
        | MetaOp::Mkdir { parent, name, .. }
        | MetaOp::Mknod { parent, name, .. }
        | MetaOp::Symlink { parent, name, .. }
        | MetaOp::Unlink { parent, name, .. }
        | MetaOp::Rmdir { parent, name, .. } => entry(*parent, name),
        MetaOp::Link { new_parent, new_name, .. } => entry(*new_parent, new_name),
        MetaOp::Rename { parent, name, new_parent, new_name, .. } => {
            entry(*parent, name);
            entry(*new_parent, new_name);
        }
        _ => {}
    }
    keys
}
