//! [`IsaL`]: Intel's ISA-L (`libisal`, Debian `libisal-dev`) through a small FFI block. Only built with
//! the `isal` cargo feature, so nothing else needs the system library.
//!
//! Encoding uses the systematic Cauchy matrix of `gf_gen_cauchy1_matrix` (every square submatrix is
//! invertible, unlike `gf_gen_rs_matrix` for some shapes). Decoding picks the first N surviving
//! rows, inverts that N x N submatrix with `gf_invert_matrix`, derives one row per lost shard (lost
//! data: the inverse's row; lost parity: the parity row times the inverse) and applies them all in
//! one `ec_encode_data` pass over the survivors.
#![allow(unsafe_code)] // the FFI calls; each is preceded by the checks that make it sound

use std::ffi::c_int;

use crate::codec::{Codec, CodecError, check_encode, check_reconstruct};
use crate::geometry::{Geometry, MAX_DATA_SHARDS, MAX_PARITY_SHARDS, MAX_SHARDS};

#[link(name = "isal")]
unsafe extern "C" {
    /// `gftbls` must hold `32 * k * rows` bytes; `a` is `rows x k` coefficients.
    fn ec_init_tables(k: c_int, rows: c_int, a: *const u8, gftbls: *mut u8);
    /// `data`: `k` pointers to `len` readable bytes; `coding`: `rows` pointers to `len` writable bytes.
    fn ec_encode_data(
        len: c_int,
        k: c_int,
        rows: c_int,
        gftbls: *const u8,
        data: *const *const u8,
        coding: *const *mut u8,
    );
    /// Writes an `m x k` matrix: identity on top, Cauchy rows below.
    fn gf_gen_cauchy1_matrix(a: *mut u8, m: c_int, k: c_int);
    /// Inverts the `n x n` matrix `input` (destroyed) into `out`; non-zero if singular.
    fn gf_invert_matrix(input: *mut u8, out: *mut u8, n: c_int) -> c_int;
    fn gf_mul(a: u8, b: u8) -> u8;
}

const N_MAX: usize = MAX_DATA_SHARDS as usize;
const K_MAX: usize = MAX_PARITY_SHARDS as usize;
/// Expanded tables for up to `K_MAX` output rows over `N_MAX` inputs.
const TABLES_BYTES: usize = 32 * N_MAX * K_MAX;

/// Reed-Solomon through ISA-L's `ec_encode_data` (AVX2/AVX-512/GFNI kernels picked at run time).
/// Shards longer than `i32::MAX` bytes are refused by an assertion. Nothing allocates after `new`.
pub struct IsaL {
    geometry: Geometry,
    /// `(N + K) x N`, row-major: identity then the parity rows.
    matrix: [u8; MAX_SHARDS * N_MAX],
    /// `ec_init_tables` of the parity rows.
    encode_tables: Box<[u8; TABLES_BYTES]>,
    /// Scratch for decode tables.
    decode_tables: Box<[u8; TABLES_BYTES]>,
}

impl std::fmt::Debug for IsaL {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IsaL").field("geometry", &self.geometry).finish_non_exhaustive()
    }
}

fn c_int_of(n: usize) -> c_int {
    c_int::try_from(n).expect("shard length fits ISA-L's int")
}

impl IsaL {
    pub fn new(geometry: Geometry) -> IsaL {
        let (n, k, m) = (geometry.data_shards(), geometry.parity_shards(), geometry.total_shards());
        let mut matrix = [0u8; MAX_SHARDS * N_MAX];
        // SAFETY: `matrix` holds `m * n` bytes (m <= MAX_SHARDS, n <= N_MAX).
        unsafe { gf_gen_cauchy1_matrix(matrix.as_mut_ptr(), c_int_of(m), c_int_of(n)) };
        let mut encode_tables = Box::new([0u8; TABLES_BYTES]);
        // SAFETY: the parity rows are `k x n` bytes at offset `n * n`; the tables need `32 * n * k`.
        unsafe { ec_init_tables(c_int_of(n), c_int_of(k), matrix[n * n..].as_ptr(), encode_tables.as_mut_ptr()) };
        IsaL { geometry, matrix, encode_tables, decode_tables: Box::new([0u8; TABLES_BYTES]) }
    }
}

/// Runs `ec_encode_data` with `rows` output rows.
fn apply(tables: &[u8; TABLES_BYTES], len: usize, inputs: &[*const u8], outputs: &[*mut u8]) {
    assert!(inputs.len() <= N_MAX && outputs.len() <= K_MAX);
    assert!(32 * inputs.len() * outputs.len() <= tables.len());
    // SAFETY: callers pass pointers to `inputs.len()` and `outputs.len()` distinct live buffers of
    // `len` bytes each (checked by `check_encode`/`check_reconstruct`); the tables were initialised
    // for these counts and fit the array (asserted above).
    unsafe {
        ec_encode_data(
            c_int_of(len),
            c_int_of(inputs.len()),
            c_int_of(outputs.len()),
            tables.as_ptr(),
            inputs.as_ptr(),
            outputs.as_ptr(),
        );
    }
}

impl Codec for IsaL {
    fn geometry(&self) -> Geometry {
        self.geometry
    }

    fn name(&self) -> &'static str {
        "isa-l"
    }

    fn encode(&mut self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), CodecError> {
        let len = check_encode(self.geometry, 1, data, parity)?;
        let mut inputs = [std::ptr::null::<u8>(); N_MAX];
        let mut outputs = [std::ptr::null_mut::<u8>(); K_MAX];
        for (input, shard) in inputs.iter_mut().zip(data) {
            *input = shard.as_ptr();
        }
        for (output, shard) in outputs.iter_mut().zip(parity.iter_mut()) {
            *output = shard.as_mut_ptr();
        }
        apply(&self.encode_tables, len, &inputs[..data.len()], &outputs[..parity.len()]);
        Ok(())
    }

    fn reconstruct(&mut self, shards: &mut [&mut [u8]], present: &[bool]) -> Result<(), CodecError> {
        let erasures = check_reconstruct(self.geometry, 1, shards, present)?;
        if erasures.none() {
            return Ok(());
        }
        let n = self.geometry.data_shards();
        let matrix = &self.matrix;

        // The first n surviving rows, as a square matrix, and its inverse.
        let mut survivors = [0usize; N_MAX];
        for (slot, row) in survivors.iter_mut().zip((0..shards.len()).filter(|&i| present[i])) {
            *slot = row;
        }
        let survivors = &survivors[..n];
        let mut square = [0u8; N_MAX * N_MAX];
        for (r, &row) in survivors.iter().enumerate() {
            square[r * n..(r + 1) * n].copy_from_slice(&matrix[row * n..(row + 1) * n]);
        }
        let mut inverse = [0u8; N_MAX * N_MAX];
        // SAFETY: both arrays hold at least `n * n` bytes.
        let singular = unsafe { gf_invert_matrix(square.as_mut_ptr(), inverse.as_mut_ptr(), c_int_of(n)) };
        assert_eq!(singular, 0, "every square submatrix of a Cauchy-systematic matrix is invertible");

        // One decode row per lost shard: it maps the survivors to that shard.
        let lost = (0..shards.len()).filter(|&i| !present[i]);
        let mut decode = [0u8; K_MAX * N_MAX];
        let mut rows = 0;
        for (r, shard) in lost.enumerate() {
            let out = &mut decode[r * n..(r + 1) * n];
            if shard < n {
                out.copy_from_slice(&inverse[shard * n..(shard + 1) * n]);
            } else {
                for (j, coefficient) in out.iter_mut().enumerate() {
                    *coefficient = (0..n).fold(0, |acc, i| {
                        // SAFETY: a pure function of two bytes.
                        acc ^ unsafe { gf_mul(matrix[shard * n + i], inverse[i * n + j]) }
                    });
                }
            }
            rows = r + 1;
        }
        assert!(rows <= K_MAX);
        // SAFETY: `decode` holds `rows x n` coefficients; the tables need `32 * n * rows` bytes.
        unsafe { ec_init_tables(c_int_of(n), c_int_of(rows), decode.as_ptr(), self.decode_tables.as_mut_ptr()) };

        let mut inputs = [std::ptr::null::<u8>(); N_MAX];
        for (input, &row) in inputs.iter_mut().zip(survivors) {
            *input = shards[row].as_ptr();
        }
        let mut outputs = [std::ptr::null_mut::<u8>(); K_MAX];
        let lost_shards = shards.iter_mut().zip(present).filter(|(_, p)| !**p);
        for (output, (shard, _)) in outputs.iter_mut().zip(lost_shards) {
            *output = shard.as_mut_ptr();
        }
        apply(&self.decode_tables, erasures.shard_len, &inputs[..n], &outputs[..rows]);
        Ok(())
    }
}
