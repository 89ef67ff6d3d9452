#!/usr/bin/env bash
# Erasure-coding throughput per core for every codec, ISA-L included (real-io/benches/ec.rs).
# Installs Debian's libisal-dev when the library is missing, then runs the bench with tessera-ec's
# `isal` feature. Extra arguments go to the bench (a criterion filter, e.g. `encode/8+2`);
# TESSERA_BENCH_NO_PAIRED=1 skips the paired summary.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -e /usr/include/isa-l/erasure_code.h ] || ! ldconfig -p | grep -q 'libisal\.so '; then
    echo "bench-ec: installing libisal-dev" >&2
    sudo_cmd=""
    if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
    $sudo_cmd apt-get update -qq
    $sudo_cmd apt-get install -y -qq libisal-dev
fi

exec cargo bench -p tessera-real-io --bench ec --features tessera-ec/isal -- "$@"
