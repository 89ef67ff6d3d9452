//! [`ReedSolomonErasure`]: the `reed-solomon-erasure` crate (GF(2^8), a Vandermonde-derived systematic
//! matrix, its C SIMD kernels through the `simd-accel` feature).

use reed_solomon_erasure::galois_8::ReedSolomon;

use crate::codec::{Codec, CodecError, check_encode, check_reconstruct};
use crate::geometry::{Geometry, MAX_SHARDS};

/// Reed-Solomon through `reed-solomon-erasure` 6 (unmaintained since 2022, see DESIGN.md section 10).
///
/// Encoding and reconstruction work on the caller's buffers directly (coding them in 16 KiB columns
/// was measured slower); the crate caches inverted decode matrices per erasure pattern (an
/// allocation on each new pattern). Its C kernels are compiled with `-march=haswell` (override:
/// `RUST_REED_SOLOMON_ERASURE_ARCH`), without run-time dispatch: the binary needs AVX2.
pub struct ReedSolomonErasure {
    geometry: Geometry,
    rs: ReedSolomon,
}

impl std::fmt::Debug for ReedSolomonErasure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReedSolomonErasure").field("geometry", &self.geometry).finish_non_exhaustive()
    }
}

impl ReedSolomonErasure {
    pub fn new(geometry: Geometry) -> ReedSolomonErasure {
        let rs = ReedSolomon::new(geometry.data_shards(), geometry.parity_shards())
            .expect("every Geometry is within reed-solomon-erasure's GF(2^8) limits");
        ReedSolomonErasure { geometry, rs }
    }
}

impl Codec for ReedSolomonErasure {
    fn geometry(&self) -> Geometry {
        self.geometry
    }

    fn name(&self) -> &'static str {
        "reed-solomon-erasure"
    }

    fn encode(&mut self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), CodecError> {
        check_encode(self.geometry, 1, data, parity)?;
        self.rs.encode_sep(data, parity).expect("arguments checked");
        Ok(())
    }

    fn reconstruct(&mut self, shards: &mut [&mut [u8]], present: &[bool]) -> Result<(), CodecError> {
        let erasures = check_reconstruct(self.geometry, 1, shards, present)?;
        if erasures.none() {
            return Ok(());
        }
        // The crate takes `(buffer, present)` pairs; build them on the stack (unused tail slots are
        // empty slices and are not passed on).
        let mut pairs = shards.iter_mut().zip(present);
        let mut slots: [(&mut [u8], bool); MAX_SHARDS] = std::array::from_fn(|_| match pairs.next() {
            Some((shard, &present)) => (&mut **shard, present),
            None => (&mut [][..], false),
        });
        self.rs.reconstruct(&mut slots[..self.geometry.total_shards()]).expect("arguments checked");
        Ok(())
    }
}
