//! Erasure-coding throughput per core: every `tessera_ec` codec in this build (`IsaL` only with
//! `--features tessera-ec/isal`, see ci/bench-ec.sh), one thread, on the same data.
//!
//! Cases, for the geometries 4+2, 8+2, 16+4 and shards of 64 KiB and 1 MiB, reported in bytes of
//! *data* per second (N x shard bytes per stripe, parity not counted):
//! - `encode/{geometry}/{shard}/{codec}`: compute the K parity shards of one stripe.
//! - `decode/{geometry}/{shard}/{codec}`: reconstruct a stripe that lost K data shards (the worst
//!   case for a degraded read: every parity shard is needed; parity itself is not rebuilt).
//!
//! After the criterion groups a paired pass alternates the codecs round after round on each case and
//! prints `paired:` lines from medians: GB/s (10^9 bytes) per codec, the ratio to the baseline (ISA-L
//! when built in, else reed-solomon-simd), and decode/encode. The last lines apply the default-codec
//! rule of issue 5: at least 0.8x ISA-L's encode at 8+2, and decode within 2x of encode (decode
//! throughput at least half of encode). `TESSERA_BENCH_NO_PAIRED=1` skips the paired pass.
//!
//! Run: `ci/bench-ec.sh` (installs libisal-dev if missing, enables ISA-L), or without ISA-L
//! `cargo bench -p tessera-real-io --bench ec`.

use std::hint::black_box;
use std::time::{Duration, Instant};

mod common;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tessera_ec::{Codec, CodecKind, Geometry};

const GEOMETRIES: [(u8, u8); 3] = [(4, 2), (8, 2), (16, 4)];
const SHARD_BYTES: [usize; 2] = [64 << 10, 1 << 20];
/// Paired pass: rounds per case, and data bytes coded per timed sample (several stripes).
const PAIRED_ROUNDS: usize = 15;
const PAIRED_SAMPLE_BYTES: usize = 64 << 20;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Encode,
    Decode,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Encode => "encode",
            Op::Decode => "decode",
        }
    }
}

/// One stripe's buffers, encoded once; a decode case loses the first K data shards each time.
struct Stripe {
    geometry: Geometry,
    shards: Vec<Vec<u8>>,
    present_after_loss: Vec<bool>,
}

impl Stripe {
    fn new(codec: &mut dyn Codec, shard_bytes: usize) -> Stripe {
        let geometry = codec.geometry();
        let (n, k) = (geometry.data_shards(), geometry.parity_shards());
        let shards = (0..n + k).map(|i| payload(i as u64 + 1, shard_bytes)).collect();
        let present_after_loss = (0..n + k).map(|i| i >= k).collect();
        let mut stripe = Stripe { geometry, shards, present_after_loss };
        stripe.run(codec, Op::Encode);
        stripe
    }

    fn data_bytes(&self) -> usize {
        self.geometry.data_shards() * self.shards[0].len()
    }

    fn run(&mut self, codec: &mut dyn Codec, op: Op) {
        let n = self.geometry.data_shards();
        match op {
            Op::Encode => {
                let (data, parity) = self.shards.split_at_mut(n);
                let data: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
                let mut parity: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
                codec.encode(&data, &mut parity).expect("encode");
            }
            Op::Decode => {
                let mut shards: Vec<&mut [u8]> = self.shards.iter_mut().map(Vec::as_mut_slice).collect();
                codec.reconstruct(&mut shards, &self.present_after_loss).expect("reconstruct");
            }
        }
        black_box(&self.shards);
    }
}

/// Incompressible bytes (xorshift), different per seed.
fn payload(seed: u64, len: usize) -> Vec<u8> {
    common::xorshift_bytes(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1, len)
}

fn shard_label(shard_bytes: usize) -> String {
    if shard_bytes >= 1 << 20 { format!("{}MiB", shard_bytes >> 20) } else { format!("{}KiB", shard_bytes >> 10) }
}

fn kinds() -> Vec<CodecKind> {
    CodecKind::available().collect()
}

fn criterion_groups(c: &mut Criterion) {
    for op in [Op::Encode, Op::Decode] {
        for (n, k) in GEOMETRIES {
            let geometry = Geometry::policy(n, k).unwrap();
            for shard_bytes in SHARD_BYTES {
                let mut g = c.benchmark_group(format!("{}/{geometry}/{}", op.name(), shard_label(shard_bytes)));
                g.throughput(Throughput::Bytes((geometry.data_shards() * shard_bytes) as u64));
                g.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
                for kind in kinds() {
                    let mut codec = kind.build(geometry).unwrap();
                    let mut stripe = Stripe::new(codec.as_mut(), shard_bytes);
                    g.bench_function(BenchmarkId::from_parameter(kind.name()), |b| {
                        b.iter(|| stripe.run(codec.as_mut(), op));
                    });
                }
                g.finish();
            }
        }
    }
}

/// Median GB/s per codec for one case, the codecs alternating round after round.
fn paired_case(geometry: Geometry, shard_bytes: usize, op: Op) -> Vec<(CodecKind, f64)> {
    /// A codec, its stripe and its GB/s samples.
    type Side = (CodecKind, Box<dyn Codec>, Stripe, Vec<f64>);
    let mut sides: Vec<Side> = kinds()
        .into_iter()
        .map(|kind| {
            let mut codec = kind.build(geometry).unwrap();
            let stripe = Stripe::new(codec.as_mut(), shard_bytes);
            (kind, codec, stripe, Vec::new())
        })
        .collect();
    let stripes_per_sample = PAIRED_SAMPLE_BYTES.div_ceil(geometry.data_shards() * shard_bytes);
    for round in 0..=PAIRED_ROUNDS {
        for (_, codec, stripe, samples) in &mut sides {
            let start = Instant::now();
            for _ in 0..stripes_per_sample {
                stripe.run(codec.as_mut(), op);
            }
            let seconds = start.elapsed().as_secs_f64();
            if round > 0 {
                // Round 0 warms caches and sizes scratch space.
                samples.push((stripes_per_sample * stripe.data_bytes()) as f64 / 1e9 / seconds);
            }
        }
    }
    sides.into_iter().map(|(kind, _, _, mut samples)| (kind, common::median(&mut samples))).collect()
}

fn paired() {
    let baseline = if CodecKind::IsaL.is_available() { CodecKind::IsaL } else { CodecKind::ReedSolomonSimd };
    println!(
        "paired: {PAIRED_ROUNDS} alternating rounds of {} MiB of data per codec, medians, one thread; baseline {}",
        PAIRED_SAMPLE_BYTES >> 20,
        baseline.name()
    );
    // (codec, geometry, shard bytes) -> (encode GB/s, decode GB/s), for the verdict.
    let mut results: Vec<(CodecKind, Geometry, usize, f64, f64)> = Vec::new();
    for (n, k) in GEOMETRIES {
        let geometry = Geometry::policy(n, k).unwrap();
        for shard_bytes in SHARD_BYTES {
            let encode = paired_case(geometry, shard_bytes, Op::Encode);
            let decode = paired_case(geometry, shard_bytes, Op::Decode);
            let base_of = |xs: &[(CodecKind, f64)]| xs.iter().find(|(kind, _)| *kind == baseline).unwrap().1;
            let (base_encode, base_decode) = (base_of(&encode), base_of(&decode));
            for ((kind, enc), (_, dec)) in encode.iter().zip(&decode) {
                println!(
                    "paired: {geometry} {:>6} {:<21} encode {enc:6.2} GB/s ({:.2}x)  decode {dec:6.2} GB/s ({:.2}x)  decode/encode {:.2}",
                    shard_label(shard_bytes),
                    kind.name(),
                    enc / base_encode,
                    dec / base_decode,
                    dec / enc,
                );
                results.push((*kind, geometry, shard_bytes, *enc, *dec));
            }
        }
    }
    if !CodecKind::IsaL.is_available() {
        println!("paired: rule: ISA-L not built in (run ci/bench-ec.sh); no verdict");
        return;
    }
    let at = |kind, geometry: Geometry, shard_bytes| {
        results.iter().find(|r| r.0 == kind && r.1 == geometry && r.2 == shard_bytes).map(|r| (r.3, r.4)).unwrap()
    };
    let g82 = Geometry::policy(8, 2).unwrap();
    for kind in CodecKind::available().filter(|&kind| kind != CodecKind::IsaL) {
        let verdicts: Vec<String> = SHARD_BYTES
            .iter()
            .map(|&shard_bytes| {
                let (enc, _) = at(kind, g82, shard_bytes);
                let (isal_enc, _) = at(CodecKind::IsaL, g82, shard_bytes);
                let decode_ok = results.iter().filter(|r| r.0 == kind).all(|r| r.4 >= 0.5 * r.3);
                let ok = enc >= 0.8 * isal_enc && decode_ok;
                format!(
                    "{}: encode {:.2}x ISA-L at 8+2, decode within 2x of encode everywhere: {} -> {}",
                    shard_label(shard_bytes),
                    enc / isal_enc,
                    decode_ok,
                    if ok { "PASS" } else { "FAIL" }
                )
            })
            .collect();
        println!("paired: rule for {}: {}", kind.name(), verdicts.join("; "));
    }
}

fn benches(c: &mut Criterion) {
    criterion_groups(c);
    if std::env::var_os("TESSERA_BENCH_NO_PAIRED").is_none() {
        paired();
    }
}

criterion_group!(ec, benches);
criterion_main!(ec);
