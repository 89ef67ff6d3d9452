//! The write path: inline while the file is small, else stripes made durable and then committed.

use std::collections::{BTreeMap, BTreeSet};

use tessera_config::stripe::place_stripe;
use tessera_env::{Clock, Net, NodeId, Rng, WallClock, buggify};
use tessera_meta::content::{NewExtent, StripeLayout, StripeRef, WRITE_EXTENTS_MAX, WriteData};
use tessera_meta::{Attr, Credentials, Errno, FILE_SIZE_MAX_BYTES, InodeId, MetaOp};

use super::{DataClient, DataPathError, attr_of};
use crate::stripe_io::{ChunkError, ChunkPut, StripeShape, cut_into_stripes, encode_stripe, stripe_key};
use crate::wire::{ChunkKey, DataError};

impl<C: Clock, W: WallClock, N: Net, R: Rng> DataClient<C, W, N, R> {
    /// Writes `bytes` at `offset` of regular file `ino`. A write ending at or below `inline_max_bytes`
    /// goes inline into metadata unless the file already has extents (the shard answers EFBIG); otherwise
    /// every stripe is durable on all its nodes before it is committed, in commits of at most
    /// `WRITE_EXTENTS_MAX` extents, in order (an error after the first commit leaves a prefix written).
    /// Inline bytes the file already has stay as the base layer under the new extents. An empty write
    /// changes nothing and answers the attributes.
    pub async fn write(
        &mut self,
        ino: InodeId,
        offset: u64,
        bytes: &[u8],
        creds: &Credentials,
    ) -> Result<Attr, DataPathError> {
        let end = offset.checked_add(bytes.len() as u64).filter(|&end| end <= FILE_SIZE_MAX_BYTES);
        let Some(end) = end else { return Err(DataPathError::Posix(Errno::EFBIG)) };
        if bytes.is_empty() {
            return self.getattr(ino).await;
        }
        if end <= self.config.inline_max_bytes {
            let op = MetaOp::Write { ino, offset, data: WriteData::Inline(bytes.to_vec()), creds: creds.clone() };
            match self.meta_call(op, true).await {
                Ok(reply) => return attr_of("write", reply),
                Err(DataPathError::Posix(Errno::EFBIG)) => {}
                Err(e) => return Err(e),
            }
        }
        self.write_stripes(ino, offset, bytes, creds).await
    }

    async fn write_stripes(
        &mut self,
        ino: InodeId,
        offset: u64,
        bytes: &[u8],
        creds: &Credentials,
    ) -> Result<Attr, DataPathError> {
        let layout = self.layout();
        let pieces = cut_into_stripes(layout, bytes.len());
        assert!(!pieces.is_empty(), "an empty write is inline");
        let mut attr = None;
        for group in pieces.chunks(WRITE_EXTENTS_MAX) {
            let mut extents = Vec::with_capacity(group.len());
            for &(start, len) in group {
                match self.write_stripe(ino, layout, &bytes[start..start + len]).await {
                    Ok(stripe) => extents.push(NewExtent {
                        file_offset: offset + start as u64,
                        len_bytes: len as u64,
                        stripe,
                        stripe_offset_bytes: 0,
                    }),
                    Err(e) => {
                        self.free_stripes_best_effort(extents.iter().map(|x| &x.stripe)).await;
                        return Err(e);
                    }
                }
            }
            let first = extents[0].file_offset;
            let stripes: Vec<StripeRef> = extents.iter().map(|x| x.stripe.clone()).collect();
            let op = MetaOp::Write { ino, offset: first, data: WriteData::Extents(extents), creds: creds.clone() };
            match self.meta_call(op, true).await {
                Ok(reply) => attr = Some(attr_of("write", reply)?),
                Err(e @ (DataPathError::Posix(_) | DataPathError::Meta(_))) => {
                    // Not applied: nothing references these stripes.
                    self.free_stripes_best_effort(stripes.iter()).await;
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(attr.expect("at least one commit"))
    }

    /// Writes one stripe durably: encode, place, put every chunk; if a node fails, free what was put
    /// and try a new stripe id placed without the nodes that failed.
    async fn write_stripe(
        &mut self,
        ino: InodeId,
        layout: StripeLayout,
        data: &[u8],
    ) -> Result<StripeRef, DataPathError> {
        let shape = StripeShape::new(layout, data.len()).expect("cut to the stripe capacity");
        let chunks = encode_stripe(&shape, data).expect("layout validated");
        let mut failed_nodes = BTreeSet::new();
        // Whether every failed put so far was a node out of room: then the cluster is full (ENOSPC).
        let mut only_full = true;
        for attempt in 1..=self.config.write_attempts_max {
            let id = self.next_stripe_id();
            let candidates: Vec<_> = self.nodes.iter().filter(|n| !failed_nodes.contains(&n.id)).copied().collect();
            let targets = match place_stripe(&candidates, self.config.protection, stripe_key(id)) {
                Ok(targets) => targets,
                Err(e) if failed_nodes.is_empty() => return Err(DataPathError::Placement(e)),
                Err(_) if only_full => return Err(DataPathError::Posix(Errno::ENOSPC)),
                Err(_) => break,
            };
            let stripe = shape.stripe_ref(id, targets);
            let puts = chunks
                .iter()
                .enumerate()
                .map(|(i, chunk)| {
                    let key = ChunkKey { stripe: id, index: i as u8 };
                    ChunkPut { node: stripe.nodes[i], key, payload: chunk.clone() }
                })
                .collect();
            let results = self.io.put_chunks(ino, layout, puts).await;
            // Fault hook: as if a put had failed (with an attempt left): free the stripe, write a new one.
            let retry = attempt < self.config.write_attempts_max && buggify!("data.write_new_placement");
            if results.iter().all(Result::is_ok) && !retry {
                return Ok(stripe);
            }
            if results.contains(&Err(ChunkError::Closed)) {
                return Err(DataPathError::Closed);
            }
            only_full &= results.iter().all(|r| matches!(r, Ok(()) | Err(ChunkError::Data(DataError::NoSpace { .. }))));
            failed_nodes.extend(results.iter().zip(&stripe.nodes).filter(|(r, _)| r.is_err()).map(|(_, &n)| n));
            self.free_stripes_best_effort(std::iter::once(&stripe)).await;
        }
        if only_full {
            return Err(DataPathError::Posix(Errno::ENOSPC));
        }
        Err(DataPathError::NoDurablePlacement { attempts: self.config.write_attempts_max, failed_nodes })
    }

    /// Frees every chunk of stripes no file references (a failed write's); failures leave orphans
    /// for a later sweep (each chunk names its owner inode).
    pub(super) async fn free_stripes_best_effort(&mut self, stripes: impl Iterator<Item = &StripeRef>) {
        let mut per_node: BTreeMap<NodeId, Vec<ChunkKey>> = BTreeMap::new();
        for stripe in stripes {
            for (i, &node) in stripe.nodes.iter().enumerate() {
                per_node.entry(node).or_default().push(ChunkKey { stripe: stripe.id, index: i as u8 });
            }
        }
        if !per_node.is_empty() {
            let _ = self.io.free_chunks(per_node.into_iter().collect()).await;
        }
    }
}
