//! File contents (docs/design/data-path.md, "File contents in metadata"): `Write`, `ReadMap` and
//! `MoveChunk` over a [`Store`], and what a shard keeps for the data path beside its inodes: the scan
//! of the stripes its inodes reference (rebuild) and the garbage queue of stripes none references any
//! more (the reclaimer).
//!
//! **Garbage.** Content changes only through [`Store::edit_content`], and inode records leave or are
//! replaced only through [`ShardState::free_inode`] and [`ShardState::put_inode`]; each pushes the
//! stripes the inode stops referencing onto the queue, so no path drops a stripe unseen.

use crate::content::{STRIPES_PAGE_MAX, StripeId, StripeRef, WriteData, check_write};
use crate::{Credentials, Errno, FileType, InodeId, MetaOp, MetaReply, MetaResult};
use tessera_env::NodeId;

use super::perm::{WRITE, check_access};
use super::store::Store;
use super::{Halt, ShardState, Step};

/// ESTALE, then EISDIR for a directory and EINVAL for another non-regular type: the file's record.
fn regular<S: Store>(s: &S, ino: InodeId) -> Step<&super::InodeRecord> {
    let record = s.inode(ino)?;
    match record.attr.kind {
        FileType::Regular => Ok(record),
        FileType::Directory => Err(Errno::EISDIR.into()),
        _ => Err(Errno::EINVAL.into()),
    }
}

/// `Write`: the file (ESTALE, EISDIR, EINVAL), write permission (EACCES), the data (EINVAL, EFBIG: see
/// [`check_write`]), no extent naming a stripe already queued as garbage (EINVAL: a late write must
/// not resurrect a stripe the reclaimer may be freeing). Then the content, size, mtime and ctime.
pub(super) fn write<S: Store>(
    s: &mut S,
    ino: InodeId,
    offset: u64,
    data: &WriteData,
    creds: &Credentials,
    now: u64,
) -> Step<MetaReply> {
    let record = regular(s, ino)?;
    check_access(&record.attr, creds, WRITE)?;
    let end = check_write(&record.content, offset, data)?;
    match data {
        WriteData::Extents(extents) if extents.iter().any(|e| s.in_garbage(e.stripe.id)) => {
            return Err(Errno::EINVAL.into());
        }
        WriteData::Inline(bytes) if bytes.is_empty() => return Ok(MetaReply::Attr(record.attr.clone())),
        _ => {}
    }
    s.edit_content(ino, |content| content.write(offset, data));
    let attr = &mut s.inode_mut(ino).attr;
    attr.size = attr.size.max(end);
    s.stamp(ino, true, now);
    let record = s.inode(ino)?;
    debug_assert!(record.content.check(record.attr.size).is_ok(), "{ino:?}'s content is inconsistent");
    Ok(MetaReply::Attr(record.attr.clone()))
}

/// `ReadMap`: the file (ESTALE, EISDIR, EINVAL), then the range's map.
pub(super) fn read_map<S: Store>(s: &S, ino: InodeId, offset: u64, len: u64) -> Step<MetaReply> {
    let record = regular(s, ino)?;
    Ok(MetaReply::FileMap(record.content.map(record.attr.size, offset, len)))
}

/// `MoveChunk`: the inode (ESTALE), the stripe (ENOENT), its chunk `index` (EINVAL), on `from`
/// (EAGAIN); then every extent naming the stripe has the chunk on `to`.
pub(super) fn move_chunk<S: Store>(
    s: &mut S,
    ino: InodeId,
    stripe: StripeId,
    index: u8,
    from: NodeId,
    to: NodeId,
) -> Step<MetaReply> {
    // Checked on a copy first: a failed op changes nothing.
    let mut content = s.inode(ino)?.content.clone();
    content.move_chunk(stripe, index, from, to).map_err(Halt::Errno)?;
    s.edit_content(ino, |c| *c = content);
    Ok(MetaReply::Done)
}

impl ShardState {
    /// The garbage queue: stripes no inode of this shard references, by sequence number.
    pub fn garbage(&self) -> &std::collections::BTreeMap<u64, StripeRef> {
        &self.garbage
    }

    /// Queue `stripes` as garbage, each under a new sequence number.
    pub(super) fn push_garbage(&mut self, stripes: Vec<StripeRef>) {
        for stripe in stripes {
            let seq = self.next_garbage_seq;
            self.next_garbage_seq = seq.checked_add(1).expect("garbage sequence exhausted");
            self.garbage.insert(seq, stripe);
        }
    }

    /// Whether stripe `id` waits in the garbage queue.
    pub(super) fn garbage_holds(&self, id: StripeId) -> bool {
        self.garbage.values().any(|s| s.id == id)
    }

    /// The reply of a shard-addressed op (addressed to this shard), `None` for the others.
    pub(super) fn apply_shard_op(&mut self, op: &MetaOp) -> Option<MetaResult> {
        let page = |max: u32| if max == 0 { Err(Errno::EINVAL) } else { Ok(max.min(STRIPES_PAGE_MAX) as usize) };
        Some(match op {
            MetaOp::ScanStripes { after, max, .. } => page(*max).map(|max| self.scan_stripes(*after, max)),
            MetaOp::TakeGarbage { max, .. } => page(*max).map(|max| {
                MetaReply::Garbage(self.garbage.iter().take(max).map(|(&seq, s)| (seq, s.clone())).collect())
            }),
            MetaOp::ReleaseGarbage { seqs, .. } => {
                for seq in seqs {
                    self.garbage.remove(seq);
                }
                Ok(MetaReply::Done)
            }
            _ => return None,
        })
    }

    /// Up to `max` stripes after `after` in `(ino, stripe id)` order; `next` is the last one returned
    /// when more follow.
    fn scan_stripes(&self, after: Option<(InodeId, StripeId)>, max: usize) -> MetaReply {
        let start = after.map_or(InodeId(0), |(ino, _)| ino);
        let mut stripes = Vec::new();
        for (&ino, record) in self.inodes.range(start..) {
            for (id, stripe) in record.content.stripes() {
                if after.is_some_and(|a| (ino, id) <= a) {
                    continue;
                }
                if stripes.len() == max {
                    let next = stripes.last().map(|(ino, s): &(InodeId, StripeRef)| (*ino, s.id));
                    return MetaReply::Stripes { stripes, next };
                }
                stripes.push((ino, stripe.clone()));
            }
        }
        MetaReply::Stripes { stripes, next: None }
    }
}
