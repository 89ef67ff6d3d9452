//! File contents in the model: `Write`, `ReadMap`, `GetStripe`, `MoveChunk` with the shard's errno
//! order, over the same `tessera_meta::content::FileContent` functions (the model's business is the
//! checks and the size and time effects, not a second implementation of extent maps).
//!
//! The shard-addressed operations (`ScanStripes`, `TakeGarbage`, `ReleaseGarbage`) concern one
//! shard's bookkeeping for the data path, not the POSIX namespace: the model answers them with fixed
//! replies (an empty, complete scan; an empty garbage queue; `Done`; EINVAL for a `max` of 0, as
//! a shard answers). A model of one file system
//! never queues garbage, so `Write` naming a stripe id some shard already queued as garbage (EINVAL
//! in the shard) is not modelled: generators use fresh stripe ids.

use tessera_meta::content::{WriteData, check_write};
use tessera_meta::{Credentials, Errno, FileType, InodeId, MetaOp, MetaReply, MetaResult};

use super::namespace::{Inode, Namespace};
use super::perm::{MAY_WRITE, permission};

impl Namespace {
    /// ESTALE, then EISDIR for a directory, EINVAL for another non-regular type.
    fn regular(&self, ino: InodeId) -> Result<&Inode, Errno> {
        let inode = self.inode(ino)?;
        match inode.attr.kind {
            FileType::Regular => Ok(inode),
            FileType::Directory => Err(Errno::EISDIR),
            _ => Err(Errno::EINVAL),
        }
    }

    /// Write: the file, write permission (EACCES), the data (`check_write`: EINVAL, EFBIG); then the
    /// content, `size = max(size, end)`, mtime and ctime. An empty inline write changes nothing.
    pub(super) fn write(
        &mut self,
        ino: InodeId,
        offset: u64,
        data: &WriteData,
        creds: &Credentials,
        now_ns: u64,
    ) -> MetaResult {
        let inode = self.regular(ino)?;
        permission(&inode.attr, creds, MAY_WRITE)?;
        let end = check_write(&inode.content, offset, data)?;
        if matches!(data, WriteData::Inline(bytes) if bytes.is_empty()) {
            return Ok(MetaReply::Attr(inode.attr.clone()));
        }
        let inode = self.inode_mut(ino);
        inode.content.write(offset, data);
        inode.attr.size = inode.attr.size.max(end);
        inode.attr.mtime_ns = now_ns;
        inode.attr.ctime_ns = now_ns;
        Ok(MetaReply::Attr(inode.attr.clone()))
    }

    /// The content operations; `None` for the others.
    pub(super) fn apply_content(&mut self, op: &MetaOp, now_ns: u64) -> Option<MetaResult> {
        Some(match op {
            MetaOp::Write { ino, offset, data, creds } => self.write(*ino, *offset, data, creds, now_ns),
            MetaOp::ReadMap { ino, offset, len } => {
                self.regular(*ino).map(|inode| MetaReply::FileMap(inode.content.map(inode.attr.size, *offset, *len)))
            }
            MetaOp::GetStripe { ino, stripe } => self
                .inode(*ino)
                .and_then(|inode| inode.content.stripe(*stripe).cloned().ok_or(Errno::ENOENT))
                .map(MetaReply::Stripe),
            MetaOp::MoveChunk { ino, stripe, index, from, to } => {
                let moved = self.inode(*ino).and_then(|inode| {
                    let mut content = inode.content.clone();
                    content.move_chunk(*stripe, *index, *from, *to).map(|()| content)
                });
                moved.map(|content| {
                    self.inode_mut(*ino).content = content;
                    MetaReply::Done
                })
            }
            MetaOp::ScanStripes { max: 0, .. } | MetaOp::TakeGarbage { max: 0, .. } => Err(Errno::EINVAL),
            MetaOp::ScanStripes { .. } => Ok(MetaReply::Stripes { stripes: Vec::new(), next: None }),
            MetaOp::TakeGarbage { .. } => Ok(MetaReply::Garbage(Vec::new())),
            MetaOp::ReleaseGarbage { .. } => Ok(MetaReply::Done),
            _ => return None,
        })
    }
}
