//! [`ReedSolomonSimd`]: the `reed-solomon-simd` crate (Leopard-style O(n log n) Reed-Solomon over
//! GF(2^16) with runtime-selected SSSE3/AVX2/Neon kernels).

use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

use crate::codec::{Codec, CodecError, check_encode, check_reconstruct};
use crate::geometry::Geometry;

/// Reed-Solomon through `reed-solomon-simd` 3. Shard lengths must be even (GF(2^16) symbols).
///
/// The crate copies shards into its own work space; the encoder and decoder are kept and `reset`
/// for each call, so their space is reused (reallocated only when shards grow). The crate restores
/// only data shards: lost parity is recomputed by a full encode.
pub struct ReedSolomonSimd {
    geometry: Geometry,
    encoder: ReedSolomonEncoder,
    decoder: ReedSolomonDecoder,
}

impl std::fmt::Debug for ReedSolomonSimd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReedSolomonSimd").field("geometry", &self.geometry).finish_non_exhaustive()
    }
}

/// The length the work space is first sized for; any even length works.
const INITIAL_SHARD_BYTES: usize = 64;

impl ReedSolomonSimd {
    pub fn new(geometry: Geometry) -> ReedSolomonSimd {
        let (n, k) = (geometry.data_shards(), geometry.parity_shards());
        assert!(ReedSolomonEncoder::supports(n, k), "reed-solomon-simd supports every Geometry");
        let encoder = ReedSolomonEncoder::new(n, k, INITIAL_SHARD_BYTES).expect("supported geometry");
        let decoder = ReedSolomonDecoder::new(n, k, INITIAL_SHARD_BYTES).expect("supported geometry");
        ReedSolomonSimd { geometry, encoder, decoder }
    }

    /// Encodes `data` and copies parity shard `i` into `out(i)` when it returns a buffer.
    fn encode_into<'d, 'p>(
        &mut self,
        shard_len: usize,
        data: impl Iterator<Item = &'d [u8]>,
        mut out: impl FnMut(usize) -> Option<&'p mut [u8]>,
    ) {
        let (n, k) = (self.geometry.data_shards(), self.geometry.parity_shards());
        self.encoder.reset(n, k, shard_len).expect("arguments checked");
        for shard in data {
            self.encoder.add_original_shard(shard).expect("arguments checked");
        }
        let result = self.encoder.encode().expect("all original shards added");
        for (i, recovery) in result.recovery_iter().enumerate() {
            if let Some(buffer) = out(i) {
                buffer.copy_from_slice(recovery);
            }
        }
    }
}

impl Codec for ReedSolomonSimd {
    fn geometry(&self) -> Geometry {
        self.geometry
    }

    fn name(&self) -> &'static str {
        "reed-solomon-simd"
    }

    fn shard_len_multiple(&self) -> usize {
        2
    }

    fn encode(&mut self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), CodecError> {
        let shard_len = check_encode(self.geometry, self.shard_len_multiple(), data, parity)?;
        let mut parity = parity.iter_mut();
        self.encode_into(shard_len, data.iter().copied(), |_| parity.next().map(|p| &mut **p));
        Ok(())
    }

    fn reconstruct(&mut self, shards: &mut [&mut [u8]], present: &[bool]) -> Result<(), CodecError> {
        let erasures = check_reconstruct(self.geometry, self.shard_len_multiple(), shards, present)?;
        let (n, k) = (self.geometry.data_shards(), self.geometry.parity_shards());
        let (data, parity) = shards.split_at_mut(n);
        if erasures.data_missing > 0 {
            self.decoder.reset(n, k, erasures.shard_len).expect("arguments checked");
            for (i, shard) in data.iter().enumerate().filter(|&(i, _)| present[i]) {
                self.decoder.add_original_shard(i, &**shard).expect("arguments checked");
            }
            // Exactly as many parity shards as data shards are missing: more would only be copied.
            let parity_present = parity.iter().enumerate().filter(|&(j, _)| present[n + j]);
            for (j, shard) in parity_present.take(erasures.data_missing) {
                self.decoder.add_recovery_shard(j, &**shard).expect("arguments checked");
            }
            let result = self.decoder.decode().expect("enough shards added");
            for (i, shard) in data.iter_mut().enumerate().filter(|&(i, _)| !present[i]) {
                shard.copy_from_slice(result.restored_original(i).expect("missing shard restored"));
            }
        }
        if erasures.parity_missing > 0 {
            let mut parity = parity.iter_mut();
            let parity_present = &present[n..];
            self.encode_into(erasures.shard_len, data.iter().map(|d| &**d), |j| {
                let buffer = parity.next().expect("one buffer per parity shard");
                (!parity_present[j]).then_some(&mut **buffer)
            });
        }
        Ok(())
    }
}
