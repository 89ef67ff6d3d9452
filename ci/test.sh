#!/usr/bin/env bash
# The project's whole test run: the command README.md names and .ci/run calls.
# Runs from a fresh clone with only the Rust toolchain installed (cargo, rustfmt, clippy).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
step() { printf '\n=== %s (t+%ss)\n' "$*" "$(( $(date +%s) - start ))"; }

step "tidy: dependency rules and banned APIs in system/"
bash ci/tidy.sh

step "format"
cargo fmt --all -- --check

step "clippy (determinism lists for system/ in system/clippy.toml)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests (unit, property, conformance, crash-recovery seeds, determinism)"
cargo test --workspace --locked

step "main job smoke: the default simulation on its default seed"
cargo run --locked -q -p tessera-sim -- run --seed 1

step "workload smoke: every workload on a scratch directory and three on the simulated cluster, with --verify"
bench_dir=$(mktemp -d)
trap 'rm -rf "$bench_dir"' EXIT
bench() { # WORKLOAD TARGET: one short run; its summary line; a wrong byte or a failed operation fails CI
    out=$(cargo run --locked -q -p tessera-sim --bin tessera-bench -- "$1" --target "$2" --load 2 --duration 1s \
        --verify --progress off --out target/bench-smoke) || { printf '%s\n' "$out"; echo "bench $1 on $2 FAILED"; exit 1; }
    printf '%-12s %-4s %s\n' "$1" "${2%%:*}" "$(grep -m1 '^errors:' <<<"$out")"
}
for w in swbuild eda vda ior-easy ior-hard mdtest-easy mdtest-hard io500; do bench "$w" "dir:$bench_dir"; done
for w in mdtest-easy mdtest-hard ior-hard; do bench "$w" sim; done

step "bounded fault-injection campaign: 200 swarm seeds in parallel processes (a few minutes)"
cargo run --locked -q -p tessera-sim -- campaign --seeds 0..200 --jobs 2 --progress lines --json target/campaign/ci.json

step "done"
