#!/usr/bin/env bash
# Measures a local multi-process cluster against the disk it runs on and against the local file system,
# all in one run on one disk (the figures issue 8's note and docs/benchmarks.md report):
#   1. raw disk: dd of 1 GiB with O_DIRECT (write, then read), the ceiling for everything below;
#   2. 1 MiB files: mdtest-hard with file_bytes = 1 MiB (each process writes its own files into one shared
#      directory, then reads them back) against the cluster and against a local directory;
#   3. small-file creates: mdtest-easy (empty files, a directory per process) against both.
# Usage: bash ci/measure-local.sh [WORKDIR]
#   env: NODES=6 RACKS=3 PROCS=8 DURATION=20s BASE_PORT=7400 FILES_PER_PROC=250 (1 MiB files each process
#   writes at most: bounds the disk space the run needs)
set -euo pipefail
cd "$(dirname "$0")/.."
nodes=${NODES:-6}; racks=${RACKS:-3}; procs=${PROCS:-8}; duration=${DURATION:-20s}; base=${BASE_PORT:-7400}
work=${1:-target/measure-local}
rm -rf "$work" && mkdir -p "$work/local"
cargo build --release --locked -q -p tessera-real-io
tessera=target/release/tessera
cluster="cluster:127.0.0.1:$((base + 1))"
trap '"$tessera" cluster down --dir "$work/cluster" >/dev/null 2>&1 || true' EXIT

echo "=== raw disk ($(df --output=source "$work" | tail -1)): 1 GiB, O_DIRECT"
dd if=/dev/zero of="$work/raw.bin" bs=1M count=1024 oflag=direct conv=fdatasync 2>&1 | tail -1 | sed 's/^/write: /'
dd if="$work/raw.bin" of=/dev/null bs=1M iflag=direct 2>&1 | tail -1 | sed 's/^/read:  /'
rm -f "$work/raw.bin"

echo "=== local cluster: $nodes nodes in $racks racks"
"$tessera" cluster up --dir "$work/cluster" --nodes "$nodes" --racks "$racks" --base-port "$base" --drive-size 1GiB --no-demo

printf 'file_bytes = 1048576\nmax_files_per_proc = %s\n' "${FILES_PER_PROC:-250}" > "$work/files-1mib.toml"
bench() { # NAME TARGET ARGS...
    local name=$1 target=$2; shift 2
    echo "=== $name on ${target%%:*}"
    "$tessera" bench "$@" --target "$target" --load "$procs" --duration "$duration" --verify --progress off \
        --out "$work/results" | sed -n '/^phases/,/^$/p'
}
bench "1 MiB files (mdtest-hard, file_bytes = 1 MiB)" "$cluster" mdtest-hard --config "$work/files-1mib.toml"
bench "1 MiB files (mdtest-hard, file_bytes = 1 MiB)" "dir:$work/local" mdtest-hard --config "$work/files-1mib.toml"
bench "small-file creates (mdtest-easy)" "$cluster" mdtest-easy
bench "small-file creates (mdtest-easy)" "dir:$work/local" mdtest-easy
echo "JSON, CSV and SVG of every run: $work/results"
