//! Erasure coding for Tessera's data path (DESIGN.md section 5): systematic Reed-Solomon N+K behind
//! one [`Codec`] trait, with interchangeable implementations chosen by benchmark
//! (docs/design/erasure-coding.md):
//!
//! - [`ReedSolomonErasure`] (`reed-solomon-erasure` with its C SIMD kernels): the default;
//! - [`ReedSolomonSimd`] (`reed-solomon-simd`, pure Rust, run-time SIMD dispatch; slow to decode
//!   small stripes);
//! - `IsaL` (Intel ISA-L through FFI), with the `isal` cargo feature and the system library.
//!
//! Implementations produce different parity bytes: a stripe is reconstructed by the implementation
//! that encoded it, so the one in use is part of a stripe's stored format ([`CodecKind`]).
//!
//! Pure computation: no clock, thread or randomness, so the same code runs in simulation.

mod codec;
mod geometry;
#[cfg(feature = "isal")]
mod isal;
mod rs_simd;
mod rse;

pub use codec::{Codec, CodecError};
pub use geometry::{
    Geometry, GeometryError, MAX_DATA_SHARDS, MAX_PARITY_SHARDS, MAX_SHARDS, POLICY_DATA_SHARDS, POLICY_PARITY_SHARDS,
};
#[cfg(feature = "isal")]
pub use isal::IsaL;
pub use rs_simd::ReedSolomonSimd;
pub use rse::ReedSolomonErasure;

/// Which implementation encodes a stripe. Every variant exists in every build; [`CodecKind::build`]
/// says whether this build can run it (`IsaL` needs the `isal` feature).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum CodecKind {
    ReedSolomonErasure,
    ReedSolomonSimd,
    IsaL,
}

impl CodecKind {
    /// Every kind, available or not.
    pub const ALL: [CodecKind; 3] = [CodecKind::ReedSolomonErasure, CodecKind::ReedSolomonSimd, CodecKind::IsaL];

    /// The codec new stripes use (chosen by benchmark, see docs/design/erasure-coding.md). It must be
    /// in every build, since stripes are only decodable by the codec that encoded them.
    pub const DEFAULT: CodecKind = CodecKind::ReedSolomonErasure;

    /// Whether this build includes the implementation.
    pub const fn is_available(self) -> bool {
        match self {
            CodecKind::ReedSolomonErasure | CodecKind::ReedSolomonSimd => true,
            CodecKind::IsaL => cfg!(feature = "isal"),
        }
    }

    /// The kinds this build includes.
    pub fn available() -> impl Iterator<Item = CodecKind> {
        CodecKind::ALL.into_iter().filter(|kind| kind.is_available())
    }

    /// A codec of this kind for `geometry`, or `None` if this build does not include it.
    pub fn build(self, geometry: Geometry) -> Option<Box<dyn Codec>> {
        match self {
            CodecKind::ReedSolomonErasure => Some(Box::new(ReedSolomonErasure::new(geometry))),
            CodecKind::ReedSolomonSimd => Some(Box::new(ReedSolomonSimd::new(geometry))),
            #[cfg(feature = "isal")]
            CodecKind::IsaL => Some(Box::new(IsaL::new(geometry))),
            #[cfg(not(feature = "isal"))]
            CodecKind::IsaL => None,
        }
    }

    /// The same name as [`Codec::name`].
    pub const fn name(self) -> &'static str {
        match self {
            CodecKind::ReedSolomonErasure => "reed-solomon-erasure",
            CodecKind::ReedSolomonSimd => "reed-solomon-simd",
            CodecKind::IsaL => "isa-l",
        }
    }
}
