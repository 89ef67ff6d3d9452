//! The shape of a stripe: N data shards and K parity shards.

use std::fmt;

/// The most data shards any codec here accepts (the protection policy's N is at most this).
pub const MAX_DATA_SHARDS: u8 = 16;
/// The most parity shards any codec here accepts (the protection policy's K is at most this).
pub const MAX_PARITY_SHARDS: u8 = 4;
/// The most shards in one stripe: sizes the fixed scratch arrays of the codecs.
pub const MAX_SHARDS: usize = MAX_DATA_SHARDS as usize + MAX_PARITY_SHARDS as usize;

/// The data-shard range of the production protection policy (DESIGN.md section 5).
pub const POLICY_DATA_SHARDS: std::ops::RangeInclusive<u8> = 4..=MAX_DATA_SHARDS;
/// The parity-shard range of the production protection policy (DESIGN.md section 5).
pub const POLICY_PARITY_SHARDS: std::ops::RangeInclusive<u8> = 2..=MAX_PARITY_SHARDS;

const _: () = assert!(MAX_SHARDS <= 255, "GF(2^8) codes have at most 255 distinct rows");
const _: () = assert!(*POLICY_DATA_SHARDS.end() <= MAX_DATA_SHARDS);

/// A systematic N+K stripe geometry: `data` shards carry the bytes as they are, `parity` shards are
/// computed from them, and any `data` of the `data + parity` shards restore all the others.
///
/// Built only through [`Geometry::new`] (any codable shape, used by tests too) or
/// [`Geometry::policy`] (the production range), so a `Geometry` value is always valid.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Geometry {
    data: u8,
    parity: u8,
}

/// Why a geometry was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum GeometryError {
    #[error("{data} data shards: must be in 1..={MAX_DATA_SHARDS}")]
    DataShards { data: u8 },
    #[error("{parity} parity shards: must be in 1..={max} (at most {MAX_PARITY_SHARDS} and at most the data shards)")]
    ParityShards { parity: u8, max: u8 },
    #[error("{data}+{parity} is outside the protection policy (data 4..=16, parity 2..=4)")]
    OutsidePolicy { data: u8, parity: u8 },
}

impl Geometry {
    /// Any shape the codecs can code: `data` in 1..=16, `parity` in 1..=min(4, data). Small shapes
    /// (1+1, 2+2, 3+1) are for tests; production stripes come from [`Geometry::policy`].
    pub const fn new(data: u8, parity: u8) -> Result<Geometry, GeometryError> {
        if data == 0 || data > MAX_DATA_SHARDS {
            return Err(GeometryError::DataShards { data });
        }
        let max = if data < MAX_PARITY_SHARDS { data } else { MAX_PARITY_SHARDS };
        if parity == 0 || parity > max {
            return Err(GeometryError::ParityShards { parity, max });
        }
        Ok(Geometry { data, parity })
    }

    /// A production protection policy: `data` in 4..=16, `parity` in 2..=4.
    pub fn policy(data: u8, parity: u8) -> Result<Geometry, GeometryError> {
        let geometry = Geometry::new(data, parity)?;
        if !geometry.is_policy() {
            return Err(GeometryError::OutsidePolicy { data, parity });
        }
        Ok(geometry)
    }

    /// Whether this shape is inside the production protection policy.
    pub fn is_policy(self) -> bool {
        POLICY_DATA_SHARDS.contains(&self.data) && POLICY_PARITY_SHARDS.contains(&self.parity)
    }

    /// N: the number of data shards.
    pub const fn data_shards(self) -> usize {
        self.data as usize
    }

    /// K: the number of parity shards, which is also the number of lost shards a stripe survives.
    pub const fn parity_shards(self) -> usize {
        self.parity as usize
    }

    /// N + K.
    pub const fn total_shards(self) -> usize {
        self.data as usize + self.parity as usize
    }
}

impl fmt::Display for Geometry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{}", self.data, self.parity)
    }
}
