#!/usr/bin/env bash
# The project's whole test run: the command README.md names and .ci/run calls.
# Runs from a fresh clone with only the Rust toolchain installed (cargo, rustfmt, clippy).
set -euo pipefail
export CARGO_INCREMENTAL=0 # a clean clone builds once: incremental caches only cost disk
cd "$(dirname "$0")/.."
bash ci/install-test-tools.sh
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

step "main job smoke: README's local cluster (up, demo, status, put/get, down) and the default simulation seed"
cluster_dir=$(mktemp -d)
tessera() { cargo run --locked -q -p tessera-real-io -- "$@"; }
trap 'tessera cluster down --dir "$cluster_dir" >/dev/null 2>&1 || true; rm -rf "$cluster_dir"' EXIT
tessera cluster up --dir "$cluster_dir" --base-port 27100 --drive-size 256MiB
tessera status --dir "$cluster_dir"
head -c 5000000 /dev/urandom > "$cluster_dir/in.bin"
tessera put "$cluster_dir/in.bin" /demo/in.bin --dir "$cluster_dir"
tessera get /demo/in.bin "$cluster_dir/out.bin" --dir "$cluster_dir"
cmp "$cluster_dir/in.bin" "$cluster_dir/out.bin"
for w in mdtest-easy ior-easy; do # the workload runner on the real cluster; a wrong byte fails CI
    out=$(tessera bench "$w" --target cluster:127.0.0.1:27101 --load 2 --duration 1s --verify --progress off \
        --out target/bench-smoke) || { printf '%s\n' "$out"; echo "bench $w on the cluster FAILED"; exit 1; }
    printf '%-12s cluster %s\n' "$w" "$(grep -m1 '^errors:' <<<"$out")"
done
tessera cluster down --dir "$cluster_dir"
cargo run --locked -q -p tessera-sim -- run --seed 1

step "workload smoke: every workload on a scratch directory and three on the simulated cluster, with --verify"
bench_dir=$(mktemp -d)
trap 'tessera cluster down --dir "$cluster_dir" >/dev/null 2>&1 || true; rm -rf "$cluster_dir" "$bench_dir"' EXIT
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
