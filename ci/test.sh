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

step "bounded fault-injection campaign: 200 swarm seeds in parallel processes (a few minutes)"
cargo run --locked -q -p tessera-sim -- campaign --seeds 0..200 --jobs 2 --progress lines --json target/campaign/ci.json

step "done"
