//! The codec trait every Reed-Solomon implementation provides, its errors, and the argument checks
//! all implementations share (so they refuse the same inputs with the same errors).

use std::fmt;

use crate::geometry::Geometry;

/// Why an encode or a reconstruct was refused. Nothing is written when one of these is returned.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum CodecError {
    #[error("expected {expected} data shards, got {got}")]
    DataShardCount { expected: usize, got: usize },
    #[error("expected {expected} parity shards, got {got}")]
    ParityShardCount { expected: usize, got: usize },
    #[error("expected {expected} shards (data then parity), got {got}")]
    ShardCount { expected: usize, got: usize },
    #[error("expected one presence flag per shard ({expected}), got {got}")]
    PresentFlagCount { expected: usize, got: usize },
    #[error("shard {index} is {len} bytes, shard 0 is {expected}: all shards must be the same length")]
    UnequalShardLengths { index: usize, len: usize, expected: usize },
    #[error("shards are empty")]
    EmptyShards,
    #[error("shards of {len} bytes: this codec needs a multiple of {multiple}")]
    ShardLengthAlignment { len: usize, multiple: usize },
    #[error("{present} shards present, {needed} needed to reconstruct")]
    TooFewShards { present: usize, needed: usize },
}

/// A systematic Reed-Solomon codec for one [`Geometry`]: the data shards are stored as they are and
/// `parity_shards()` parity shards are computed from them; any `data_shards()` of the shards restore
/// all the others.
///
/// Implementations differ in their parity bytes: a stripe must be reconstructed by the same
/// implementation (and geometry) that encoded it. They agree on everything else, checked by one
/// conformance suite (`tests/conformance.rs`).
///
/// A codec holds scratch space sized for the largest shards it has seen, so the methods take
/// `&mut self` and use one codec per thread; after the first call with a given shard length the
/// hot paths do not allocate.
pub trait Codec: fmt::Debug + Send {
    /// The stripe shape this codec was built for.
    fn geometry(&self) -> Geometry;

    /// A short stable name for logs and benches.
    fn name(&self) -> &'static str;

    /// Shard lengths must be a non-zero multiple of this.
    fn shard_len_multiple(&self) -> usize {
        1
    }

    /// Computes the parity shards of `data` into `parity`. All shards have the same non-zero length,
    /// a multiple of [`Codec::shard_len_multiple`]; `parity`'s old contents are ignored.
    fn encode(&mut self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), CodecError>;

    /// Restores the shards whose `present` flag is false, data and parity alike, in place.
    ///
    /// `shards` are all `total_shards()` shards (data first, then parity), every buffer of the
    /// same length; the contents of absent ones are ignored and overwritten. Needs at least
    /// `data_shards()` present; with fewer it returns [`CodecError::TooFewShards`] and writes
    /// nothing. With all present it does nothing (it does not verify parity).
    fn reconstruct(&mut self, shards: &mut [&mut [u8]], present: &[bool]) -> Result<(), CodecError>;

    /// [`Codec::reconstruct`] for shards held as `Option<Vec<u8>>` (`None` = lost): allocates the
    /// missing ones. On error the slice is left as it was.
    fn reconstruct_vecs(&mut self, shards: &mut [Option<Vec<u8>>]) -> Result<(), CodecError> {
        let geometry = self.geometry();
        if shards.len() != geometry.total_shards() {
            return Err(CodecError::ShardCount { expected: geometry.total_shards(), got: shards.len() });
        }
        let present: Vec<bool> = shards.iter().map(Option::is_some).collect();
        let count = present.iter().filter(|&&p| p).count();
        if count < geometry.data_shards() {
            return Err(CodecError::TooFewShards { present: count, needed: geometry.data_shards() });
        }
        // Lost shards get the length of the first present one; `reconstruct` checks the rest.
        let len = shards.iter().flatten().map(Vec::len).next().expect("data_shards() >= 1 are present");
        let mut buffers: Vec<&mut [u8]> =
            shards.iter_mut().map(|shard| shard.get_or_insert_with(|| vec![0; len]).as_mut_slice()).collect();
        let result = self.reconstruct(&mut buffers, &present);
        if result.is_err() {
            for (shard, &was_present) in shards.iter_mut().zip(&present) {
                if !was_present {
                    *shard = None;
                }
            }
        }
        result
    }
}

/// Checks an `encode` call's arguments against `geometry`; returns the shard length.
pub(crate) fn check_encode(
    geometry: Geometry,
    multiple: usize,
    data: &[&[u8]],
    parity: &[&mut [u8]],
) -> Result<usize, CodecError> {
    if data.len() != geometry.data_shards() {
        return Err(CodecError::DataShardCount { expected: geometry.data_shards(), got: data.len() });
    }
    if parity.len() != geometry.parity_shards() {
        return Err(CodecError::ParityShardCount { expected: geometry.parity_shards(), got: parity.len() });
    }
    check_shard_lengths(data.iter().map(|s| s.len()).chain(parity.iter().map(|s| s.len())), multiple)
}

/// What a valid `reconstruct` call asks for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Erasures {
    pub(crate) shard_len: usize,
    /// Absent data shards.
    pub(crate) data_missing: usize,
    /// Absent parity shards.
    pub(crate) parity_missing: usize,
}

impl Erasures {
    pub(crate) fn none(self) -> bool {
        self.data_missing == 0 && self.parity_missing == 0
    }
}

/// Checks a `reconstruct` call's arguments against `geometry`.
pub(crate) fn check_reconstruct(
    geometry: Geometry,
    multiple: usize,
    shards: &[&mut [u8]],
    present: &[bool],
) -> Result<Erasures, CodecError> {
    if shards.len() != geometry.total_shards() {
        return Err(CodecError::ShardCount { expected: geometry.total_shards(), got: shards.len() });
    }
    if present.len() != shards.len() {
        return Err(CodecError::PresentFlagCount { expected: shards.len(), got: present.len() });
    }
    let shard_len = check_shard_lengths(shards.iter().map(|s| s.len()), multiple)?;
    let (data_present, parity_present) = present.split_at(geometry.data_shards());
    let data_missing = data_present.iter().filter(|&&p| !p).count();
    let parity_missing = parity_present.iter().filter(|&&p| !p).count();
    let count = geometry.total_shards() - data_missing - parity_missing;
    if count < geometry.data_shards() {
        return Err(CodecError::TooFewShards { present: count, needed: geometry.data_shards() });
    }
    Ok(Erasures { shard_len, data_missing, parity_missing })
}

/// All lengths equal, non-zero and a multiple of `multiple`; returns the length.
fn check_shard_lengths(mut lens: impl Iterator<Item = usize>, multiple: usize) -> Result<usize, CodecError> {
    let Some(len) = lens.next() else { return Err(CodecError::EmptyShards) };
    if let Some((index, other)) = lens.enumerate().find(|&(_, other)| other != len) {
        return Err(CodecError::UnequalShardLengths { index: index + 1, len: other, expected: len });
    }
    if len == 0 {
        return Err(CodecError::EmptyShards);
    }
    if !len.is_multiple_of(multiple) {
        return Err(CodecError::ShardLengthAlignment { len, multiple });
    }
    Ok(len)
}
