//! File contents as metadata holds them (DESIGN.md section 5, docs/design/data-path.md): a regular
//! file's bytes are an inline base layer (small files live entirely in metadata) overlaid by extents,
//! each a range of the file mapped onto part of an erasure-coded (or replicated) stripe whose chunks
//! live on storage nodes. These are the types the shard, the client library and the data path share.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tessera_env::NodeId;

use crate::{Errno, FILE_SIZE_MAX_BYTES};

/// Longest inline content of one file, in bytes: the hard cap; the client's threshold is at most this.
pub const INLINE_LEN_MAX_BYTES: u64 = 64 * 1024;
/// Most extents one [`crate::MetaOp::Write`] may commit.
pub const WRITE_EXTENTS_MAX: usize = 64;
/// Most chunks one stripe has (16 data + 4 parity).
pub const STRIPE_CHUNKS_MAX: usize = 20;

/// Names one stripe, cluster-wide and forever: the writer's 64-bit incarnation id in the high half, its
/// per-incarnation sequence number in the low half. Never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StripeId(pub u128);

impl StripeId {
    pub const fn new(writer: u64, seq: u64) -> StripeId {
        StripeId(((writer as u128) << 64) | seq as u128)
    }
}

/// How a stripe's bytes are protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StripeLayout {
    /// `data` data chunks (the stripe's bytes cut into `data` equal pieces, the last zero-padded) and
    /// `parity` Reed-Solomon parity chunks encoded by codec `codec` (`tessera_ec::CodecKind` as u8).
    ErasureCoded { data: u8, parity: u8, codec: u8 },
    /// `copies` chunks, each holding the whole stripe.
    Replicated { copies: u8 },
}

impl StripeLayout {
    /// Chunks holding data (any `data_chunks()` distinct chunks rebuild the stripe).
    pub fn data_chunks(self) -> usize {
        match self {
            StripeLayout::ErasureCoded { data, .. } => usize::from(data),
            StripeLayout::Replicated { .. } => 1,
        }
    }

    /// All chunks of a stripe.
    pub fn total_chunks(self) -> usize {
        match self {
            StripeLayout::ErasureCoded { data, parity, .. } => usize::from(data) + usize::from(parity),
            StripeLayout::Replicated { copies } => usize::from(copies),
        }
    }

    /// How many chunks may be lost with the stripe still readable.
    pub fn tolerated_losses(self) -> usize {
        self.total_chunks() - self.data_chunks()
    }
}

/// One stripe as metadata records it: where its chunks are and how long they are.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StripeRef {
    pub id: StripeId,
    pub layout: StripeLayout,
    /// Bytes of every chunk (data chunks are zero-padded to it).
    pub chunk_len_bytes: u32,
    /// Bytes of file data the stripe holds (at most `data_chunks * chunk_len_bytes`).
    pub data_len_bytes: u32,
    /// The node holding chunk `i`, for every chunk; all in distinct failure domains.
    pub nodes: Vec<NodeId>,
}

/// Most stripes one [`crate::MetaOp::ScanStripes`] or entries one [`crate::MetaOp::TakeGarbage`]
/// returns (a larger `max` is clamped to it).
pub const STRIPES_PAGE_MAX: u32 = 1024;

/// A regular file's bytes: the inline layer `[0, inline.len())` overlaid by extents (keyed by file
/// offset, non-overlapping, each non-empty); everything else below the file's size is a hole (zeros).
/// Nothing is stored at or beyond the size (see docs/design/data-path.md, "File contents in metadata").
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileContent {
    pub inline: Vec<u8>,
    pub extents: BTreeMap<u64, Extent>,
}

/// File bytes `[key, key + len_bytes)` are the stripe's data bytes `[stripe_offset_bytes,
/// stripe_offset_bytes + len_bytes)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Extent {
    pub len_bytes: u64,
    pub stripe: StripeRef,
    pub stripe_offset_bytes: u64,
}

/// One extent a [`WriteData::Extents`] commits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NewExtent {
    pub file_offset: u64,
    pub len_bytes: u64,
    pub stripe: StripeRef,
    pub stripe_offset_bytes: u64,
}

/// What a [`crate::MetaOp::Write`] writes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WriteData {
    /// Bytes for the inline layer at the write's offset.
    Inline(Vec<u8>),
    /// Extents of stripes already written (1..=[`WRITE_EXTENTS_MAX`], sorted, non-overlapping); the
    /// write's offset is the first one's `file_offset`.
    Extents(Vec<NewExtent>),
}

/// A part of an extent inside a mapped range.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Piece {
    pub file_offset: u64,
    pub len_bytes: u64,
    pub stripe: StripeRef,
    pub stripe_offset_bytes: u64,
}

/// A range of a file as [`crate::MetaOp::ReadMap`] answers it: the range clipped to `size`; `inline`
/// the inline layer's bytes from the range's offset (possibly shorter than the range); `pieces` the
/// extents' parts inside the range in file order. A reader lays out zeros, then inline, then pieces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileMap {
    pub size: u64,
    pub inline: Vec<u8>,
    pub pieces: Vec<Piece>,
}

/// Whether `extents` are a valid [`WriteData::Extents`] at `offset`: 1..=[`WRITE_EXTENTS_MAX`] of
/// them, the first at `offset`, sorted and non-overlapping, each non-empty, inside its stripe's data
/// and with a node for every chunk of its stripe. EINVAL otherwise.
pub fn check_new_extents(offset: u64, extents: &[NewExtent]) -> Result<(), Errno> {
    if extents.is_empty() || extents.len() > WRITE_EXTENTS_MAX || extents[0].file_offset != offset {
        return Err(Errno::EINVAL);
    }
    let mut end = 0;
    for e in extents {
        let stripe_end = e.stripe_offset_bytes.checked_add(e.len_bytes);
        let ok = e.len_bytes > 0
            && e.file_offset >= end
            && stripe_end.is_some_and(|s| s <= u64::from(e.stripe.data_len_bytes))
            && e.stripe.nodes.len() == e.stripe.layout.total_chunks();
        if !ok {
            return Err(Errno::EINVAL);
        }
        end = e.file_offset.checked_add(e.len_bytes).ok_or(Errno::EFBIG)?;
    }
    Ok(())
}

/// The checks of a write of `data` at `offset` into `content` after the inode's own (type,
/// permission), in order: malformed extents (EINVAL, see [`check_new_extents`]); an end beyond
/// [`FILE_SIZE_MAX_BYTES`] (EFBIG); inline bytes while the file has extents or beyond
/// [`INLINE_LEN_MAX_BYTES`] (EFBIG). The end of the write.
pub fn check_write(content: &FileContent, offset: u64, data: &WriteData) -> Result<u64, Errno> {
    let end = match data {
        WriteData::Inline(bytes) => offset.checked_add(bytes.len() as u64),
        WriteData::Extents(extents) => {
            check_new_extents(offset, extents)?;
            let last = extents.last().expect("checked non-empty");
            last.file_offset.checked_add(last.len_bytes)
        }
    };
    let end = end.filter(|&end| end <= FILE_SIZE_MAX_BYTES).ok_or(Errno::EFBIG)?;
    if matches!(data, WriteData::Inline(_)) && (!content.extents.is_empty() || end > INLINE_LEN_MAX_BYTES) {
        return Err(Errno::EFBIG);
    }
    Ok(end)
}

impl FileContent {
    pub fn is_empty(&self) -> bool {
        self.inline.is_empty() && self.extents.is_empty()
    }

    /// Apply a write [`check_write`] accepted. An empty inline write changes nothing.
    pub fn write(&mut self, offset: u64, data: &WriteData) {
        match data {
            WriteData::Inline(bytes) => self.write_inline(offset, bytes),
            WriteData::Extents(extents) => self.overlay(extents),
        }
    }

    /// Write `bytes` into the inline layer at `offset` (zero-filling a gap); extents over the range are
    /// cut away so the bytes show.
    pub fn write_inline(&mut self, offset: u64, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let start = usize::try_from(offset).expect("inline offset fits memory");
        let end = start + bytes.len();
        if self.inline.len() < end {
            self.inline.resize(end, 0);
        }
        self.inline[start..end].copy_from_slice(bytes);
        self.punch(offset, end as u64);
    }

    /// Overlay `extents` (valid as [`check_new_extents`] says), splitting and trimming the extents
    /// they cover.
    pub fn overlay(&mut self, extents: &[NewExtent]) {
        for e in extents {
            assert!(e.len_bytes > 0, "empty extent");
            let end = e.file_offset.checked_add(e.len_bytes).expect("extent end overflows");
            self.punch(e.file_offset, end);
            let extent =
                Extent { len_bytes: e.len_bytes, stripe: e.stripe.clone(), stripe_offset_bytes: e.stripe_offset_bytes };
            self.extents.insert(e.file_offset, extent);
        }
    }

    /// Drop everything at or beyond `size`: the inline layer is cut, an extent across `size` shortened.
    pub fn truncate(&mut self, size: u64) {
        if (self.inline.len() as u64) > size {
            self.inline.truncate(usize::try_from(size).expect("below the inline length"));
        }
        self.punch(size, u64::MAX);
    }

    /// Remove the extents' coverage of `[start, end)`, keeping the parts outside it.
    fn punch(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        // An extent starting before `start` and reaching into the range: keep its head (and its tail
        // beyond `end`, if it spans the whole range).
        if let Some((&at, before)) = self.extents.range(..start).next_back()
            && at + before.len_bytes > start
        {
            let before = before.clone();
            self.extents.get_mut(&at).expect("found").len_bytes = start - at;
            let before_end = at + before.len_bytes;
            if before_end > end {
                let tail = Extent {
                    len_bytes: before_end - end,
                    stripe_offset_bytes: before.stripe_offset_bytes + (end - at),
                    stripe: before.stripe,
                };
                self.extents.insert(end, tail);
                return;
            }
        }
        let inside: Vec<u64> = self.extents.range(start..end).map(|(&at, _)| at).collect();
        for at in inside {
            let extent = self.extents.remove(&at).expect("listed");
            let extent_end = at + extent.len_bytes;
            if extent_end > end {
                let tail = Extent {
                    len_bytes: extent_end - end,
                    stripe_offset_bytes: extent.stripe_offset_bytes + (end - at),
                    stripe: extent.stripe,
                };
                self.extents.insert(end, tail);
            }
        }
    }

    /// The range `[offset, offset + len)` of a file of `size` bytes with this content, clipped to the
    /// size.
    pub fn map(&self, size: u64, offset: u64, len: u64) -> FileMap {
        let end = offset.saturating_add(len).min(size);
        let mut map = FileMap { size, inline: Vec::new(), pieces: Vec::new() };
        if offset >= end {
            return map;
        }
        let inline_end = end.min(self.inline.len() as u64);
        if offset < inline_end {
            map.inline = self.inline[offset as usize..inline_end as usize].to_vec();
        }
        let first = match self.extents.range(..=offset).next_back() {
            Some((&at, e)) if at + e.len_bytes > offset => at,
            _ => offset,
        };
        for (&at, e) in self.extents.range(first..end) {
            let from = at.max(offset);
            let to = (at + e.len_bytes).min(end);
            map.pieces.push(Piece {
                file_offset: from,
                len_bytes: to - from,
                stripe: e.stripe.clone(),
                stripe_offset_bytes: e.stripe_offset_bytes + (from - at),
            });
        }
        map
    }

    /// Every stripe the extents reference, once, by id (the first extent's reference of each).
    pub fn stripes(&self) -> BTreeMap<StripeId, &StripeRef> {
        let mut stripes = BTreeMap::new();
        for e in self.extents.values() {
            stripes.entry(e.stripe.id).or_insert(&e.stripe);
        }
        stripes
    }

    /// The stripe ids the extents reference.
    pub fn stripe_ids(&self) -> BTreeSet<StripeId> {
        self.extents.values().map(|e| e.stripe.id).collect()
    }

    /// The stripe `id` as the extents reference it, if they do.
    pub fn stripe(&self, id: StripeId) -> Option<&StripeRef> {
        self.extents.values().map(|e| &e.stripe).find(|s| s.id == id)
    }

    /// The stripes this content references and `after` no longer does (by id, in id order).
    pub fn stripes_dropped(&self, after: &FileContent) -> Vec<StripeRef> {
        let kept = after.stripe_ids();
        self.stripes().into_iter().filter(|(id, _)| !kept.contains(id)).map(|(_, s)| s.clone()).collect()
    }

    /// Record that chunk `index` of stripe `id` moved from node `from` to `to`, in every extent naming
    /// the stripe: ENOENT if none does, EINVAL if the stripe has no chunk `index`, EAGAIN if the chunk
    /// is not on `from` (someone else moved it).
    pub fn move_chunk(&mut self, id: StripeId, index: u8, from: NodeId, to: NodeId) -> Result<(), Errno> {
        let stripe = self.stripe(id).ok_or(Errno::ENOENT)?;
        match stripe.nodes.get(usize::from(index)) {
            None => return Err(Errno::EINVAL),
            Some(&node) if node != from => return Err(Errno::EAGAIN),
            Some(_) => {}
        }
        for e in self.extents.values_mut().filter(|e| e.stripe.id == id) {
            e.stripe.nodes[usize::from(index)] = to;
        }
        Ok(())
    }

    /// The content's invariants for a file of `size` bytes; the first one broken, described.
    pub fn check(&self, size: u64) -> Result<(), String> {
        if self.inline.len() as u64 > size || self.inline.len() as u64 > INLINE_LEN_MAX_BYTES {
            return Err(format!("inline layer of {} bytes in a file of {size}", self.inline.len()));
        }
        let mut end = 0;
        for (&at, e) in &self.extents {
            let stripe_ok =
                e.stripe_offset_bytes.checked_add(e.len_bytes).is_some_and(|s| s <= u64::from(e.stripe.data_len_bytes))
                    && e.stripe.nodes.len() == e.stripe.layout.total_chunks();
            if e.len_bytes == 0 || at < end || !stripe_ok {
                return Err(format!("extent at {at} (len {}) overlaps, is empty or leaves its stripe", e.len_bytes));
            }
            end = at.checked_add(e.len_bytes).ok_or("extent end overflows")?;
            if end > size {
                return Err(format!("extent at {at} ends at {end}, beyond the size {size}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "content_tests.rs"]
mod tests;
