#!/usr/bin/env bash
# Measures the FUSE mount (`tessera mount`) of a local multi-process cluster against the local file system
# and the raw disk it all runs on, in one run on one disk (the figures docs/benchmarks.md reports under
# "The FUSE mount"):
#   1. fio, the same jobs on three targets: the mount, a plain ext4 directory on the same disk, and that
#      directory with O_DIRECT (--direct=1: the physical limit, no page cache):
#        sequential 1 MiB write (--end_fsync=1), sequential 1 MiB read, 4 KiB random read (4 jobs, timed);
#      the page cache is dropped before every read job. Beside them the cluster without FUSE: `tessera put`
#      and `tessera get` of fio's file;
#   2. workloads with --verify: SWBUILD-like (open loop) on the mount and on the ext4 directory, mdtest-easy
#      (closed loop) on the mount, on the ext4 directory and on the cluster without FUSE (cluster: target);
#   3. a summary table (metric | mount | cluster | local | raw | ratios) and, for every measurement, the
#      CPU the mount process and the node processes used and the requests the nodes served.
# Usage: bash ci/measure-mount.sh [WORKDIR]   (as root: it mounts and drops the page cache)
#   env: NODES=6 RACKS=3 BASE_PORT=7600 SIZE=1g (fio's file) RUNTIME=20 (seconds of random reads)
#        PROCS=8 (workload load) DURATION=20s (workload phases)
# WORKDIR (default target/measure-mount) keeps summary.txt, mount.log and results/ (fio and workload JSON,
# CSV, SVG); the cluster's drives and the test files are removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/install-test-tools.sh
nodes=${NODES:-6}; racks=${RACKS:-3}; base=${BASE_PORT:-7600}; size=${SIZE:-1g}; runtime=${RUNTIME:-20}
procs=${PROCS:-8}; duration=${DURATION:-20s}
work=$(realpath -m "${1:-target/measure-mount}")
mnt=$work/mnt
results=$work/results
cargo build --release --locked -q -p tessera-real-io
tessera=$PWD/target/release/tessera
cluster="cluster:127.0.0.1:$((base + 1))"

# A mount left by an interrupted run would make `rm -rf` delete through it: take it away first.
if mountpoint -q "$mnt" 2>/dev/null; then
    "$tessera" unmount --lazy "$mnt" || umount -l "$mnt"
fi
rm -rf "$work" && mkdir -p "$work/local" "$mnt" "$results/fio"
cleanup() {
    if mountpoint -q "$mnt"; then
        "$tessera" unmount "$mnt" || "$tessera" unmount --lazy "$mnt" || umount -l "$mnt" || true
    fi
    "$tessera" cluster down --dir "$work/cluster" >/dev/null 2>&1 || true
    rm -rf "$work/cluster" "$work/local"
    mountpoint -q "$mnt" || rm -rf "$mnt"
}
trap cleanup EXIT

# What each measurement cost: the machine's busy and iowait share, the cores the mount process and the
# node processes kept busy (/proc), and the requests and flushes the nodes counted (their metrics).
counters() { # snap FILE | diff FILE FILE
    python3 - "$base" "$nodes" "$@" <<'EOF'
import json, re, sys, urllib.request

base, nodes, cmd, *files = sys.argv[1:]
series = re.compile(r'^(tessera_ops_total|tessera_disk_ops_total|tessera_disk_io_bytes_total)\{(.*)\} (\S+)$')
if cmd == "snap":
    counts = {}
    for i in range(1, int(nodes) + 1):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{int(base) + 100 + i}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            continue
        for line in text.splitlines():
            m = series.match(line)
            if not m:
                continue
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
            if m.group(1) == "tessera_ops_total":
                key = f"{labels['service']} {labels['op']}" + ("" if labels["result"] == "ok" else " (errors)")
            elif m.group(1) == "tessera_disk_ops_total" and labels["op"] == "flush":
                key = f"flush {'meta' if labels['drive'] == 'meta' else 'data'}"
            elif m.group(1) == "tessera_disk_io_bytes_total" and labels["drive"] != "meta":
                key = f"data drive MiB {'read' if labels['op'] == 'read' else 'written'}"
            else:
                continue
            value = float(m.group(3)) / (2**20 if key.startswith("data drive MiB") else 1)
            counts[key] = counts.get(key, 0) + value
    json.dump(counts, open(files[0], "w"))
else:
    a, b = (json.load(open(f)) for f in files)
    delta = {k: v - a.get(k, 0) for k, v in b.items() if v - a.get(k, 0) > 0}
    delta = {k: v for k, v in delta.items() if v >= 0.5}
    print(", ".join(f"{k} {v:.0f}" for k, v in sorted(delta.items(), key=lambda kv: -kv[1])) or "none")
EOF
}
hz=$(getconf CLK_TCK)
proc_ticks() { # PID... -> utime + stime summed
    local sum=0 pid
    for pid in "$@"; do
        [ -r "/proc/$pid/stat" ] && sum=$((sum + $(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')))
    done
    echo "$sum"
}
snapshot() { # -> "busy iowait total mount nodes seconds" as of now
    local _c u n s i w q sq st _rest
    read -r _c u n s i w q sq st _rest </proc/stat
    echo "$((u + n + s + q + sq + st)) $w $((u + n + s + i + w + q + sq + st))" \
        "$(proc_ticks "$mount_pid") $(proc_ticks "${node_pids[@]}") $(date +%s.%N)"
}
begin() { cpu_start=$(snapshot); counters snap "$work/counters.before"; }
end() { # LABEL: prints and records what was used since `begin`
    local now line
    now=$(snapshot)
    counters snap "$work/counters.after"
    line=$(awk -v a="$cpu_start" -v b="$now" -v hz="$hz" -v label="$1" 'BEGIN {
        split(a, x, " "); split(b, y, " "); total = y[3] - x[3]; secs = y[6] - x[6];
        if (total <= 0) total = 1; if (secs <= 0) secs = 1;
        printf "%-22s %5.1f s; machine busy %3.0f%%, iowait %3.0f%%; cores: mount %.2f, nodes %.2f", label, secs,
            100 * (y[1] - x[1]) / total, 100 * (y[2] - x[2]) / total,
            (y[4] - x[4]) / hz / secs, (y[5] - x[5]) / hz / secs }')
    line="$line; nodes served: $(counters diff "$work/counters.before" "$work/counters.after")"
    echo "used: $line"
    echo "$line" >>"$results/used.txt"
}
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

echo "=== local cluster: $nodes nodes in $racks racks, file system default, mounted at $mnt"
"$tessera" cluster up --dir "$work/cluster" --nodes "$nodes" --racks "$racks" --base-port "$base" \
    --drive-size 2GiB --no-demo
"$tessera" mount --dir "$work/cluster" --background --log-file "$work/mount.log" "$mnt"
key=${mnt#/}
mount_pid=$(tr -d '\n' 2>/dev/null <"${TMPDIR:-/tmp}/tessera-mounts/${key//\//%}.pid" || true)
[ -n "$mount_pid" ] || mount_pid=$(pgrep -f -n "tessera mount .*$mnt" || true)
mapfile -t node_pids < <(pgrep -f "tessera node --config $work/cluster/")
echo "mount process: ${mount_pid:-unknown}; node processes: ${node_pids[*]}"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg);" \
    "disk $(df --output=source "$work" | tail -1)"

# fio: the same three jobs on each target; JSON to results/fio/TARGET-JOB.json.
fio_job() { # TARGET JOB DIR ARGS...
    local target=$1 job=$2 dir=$3; shift 3
    [ "$job" = seqwrite ] || drop_caches
    begin
    fio --name="$target-$job" --filename="$dir/fio.dat" --size="$size" --ioengine=psync --fallocate=none \
        --output-format=json --output="$results/fio/$target-$job.json" "$@"
    end "fio $target $job"
}
fio_target() { # TARGET DIR ARGS... (ARGS go to every job)
    local target=$1 dir=$2; shift 2
    echo "=== fio on $target ($dir): $size sequential write and read (1 MiB), ${runtime}s 4 KiB random read"
    fio_job "$target" seqwrite "$dir" --rw=write --bs=1m --end_fsync=1 "$@"
    fio_job "$target" seqread "$dir" --rw=read --bs=1m "$@"
    fio_job "$target" randread "$dir" --rw=randread --bs=4k --runtime="$runtime" --time_based --numjobs=4 \
        --group_reporting "$@"
}
timed() { # NAME COMMAND...: runs it, records its seconds in results/fio/cluster-NAME.secs
    local name=$1 t0 t1; shift
    t0=$(date +%s.%N); "$@"; t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }' >"$results/fio/cluster-$name.secs"
}
fio_target raw "$work/local" --direct=1
rm -f "$work/local/fio.dat"
fio_target local "$work/local"
echo "=== the cluster without FUSE: tessera put and tessera get of fio's $size file"
drop_caches; begin
timed put "$tessera" put --dir "$work/cluster" "$work/local/fio.dat" /put.dat
end "cluster put"
drop_caches; begin
timed get "$tessera" get --dir "$work/cluster" /put.dat "$work/local/get.dat"
end "cluster get"
stat -c %s "$work/local/fio.dat" >"$results/fio/cluster-bytes"
cmp -s "$work/local/fio.dat" "$work/local/get.dat" || { echo "FAILED: tessera get returned other bytes"; exit 1; }
"$tessera" rm --dir "$work/cluster" /put.dat
rm -f "$work/local/fio.dat" "$work/local/get.dat"
fio_target mount "$mnt"
rm -f "$mnt/fio.dat"

# Workloads: one --out directory per run, so the summary finds each run's JSON. --keep: the run
# directories go with the cluster and the local directory at the end (removing a SWBUILD tree through the
# mount would take minutes).
failed=0
bench() { # TARGET WORKLOAD TARGET-SPEC
    local target=$1 workload=$2 spec=$3 status=0
    echo "=== $workload on $target ($spec), load $procs, $duration"
    [[ $spec != dir:* ]] || mkdir -p "${spec#dir:}"
    begin
    "$tessera" bench "$workload" --target "$spec" --load "$procs" --duration "$duration" --verify \
        --progress off --keep --out "$results/$target-$workload" >"$results/$target-$workload.txt" 2>&1 \
        || status=$?
    end "$workload $target"
    sed -n '/^phases/,/^$/p' "$results/$target-$workload.txt"
    if [ "$status" -ne 0 ]; then
        echo "FAILED: $workload on $target exited $status; its output:"
        cat "$results/$target-$workload.txt"
        failed=1
    fi
}
bench mount swbuild "dir:$mnt/swbuild"
bench local swbuild "dir:$work/local/swbuild"
bench mount mdtest-easy "dir:$mnt/mdtest-easy"
bench cluster mdtest-easy "$cluster"
bench local mdtest-easy "dir:$work/local/mdtest-easy"

python3 - "$results" <<'EOF' | tee "$work/summary.txt"
import glob, json, os, sys

results = sys.argv[1]
targets = ("mount", "cluster", "local", "raw")

def fio(target, job):
    try:
        if target == "cluster":  # tessera put / get of the same file
            name = {"seqwrite": "put", "seqread": "get"}.get(job)
            secs = float(open(f"{results}/fio/cluster-{name}.secs").read())
            return int(open(f"{results}/fio/cluster-bytes").read()) / 2**20 / secs
        with open(f"{results}/fio/{target}-{job}.json") as f:
            side = json.load(f)["jobs"][0]["write" if job == "seqwrite" else "read"]
    except (OSError, ValueError, KeyError):
        return None
    return side["iops"] if job == "randread" else side["bw_bytes"] / 2**20

def phase(target, workload, name):
    files = glob.glob(f"{results}/{target}-{workload}/*.json")
    if len(files) != 1:
        return None
    with open(files[0]) as f:
        run = json.load(f)["runs"][0]
    return next((p for p in run["phases"] if p["name"] == name), None)

rows = [("fio seq write 1 MiB, MiB/s", *(fio(t, "seqwrite") for t in targets)),
        ("fio seq read 1 MiB, MiB/s", *(fio(t, "seqread") for t in targets)),
        ("fio rand read 4 KiB x4, IOPS", *(fio(t, "randread") for t in targets))]
sw = {t: phase(t, "swbuild", "swbuild") for t in targets}
asked = next((p["requested_ops_per_sec"] for p in sw.values() if p), None)
rows.append((f"swbuild ops/s (of {asked:g} asked)" if asked else "swbuild ops/s",
             *(sw[t]["ops_per_sec"] if sw[t] else None for t in targets)))
for name, label in (("write", "creates/s"), ("stat", "stats/s"), ("delete", "deletes/s")):
    got = {t: phase(t, "mdtest-easy", f"mdtest-easy-{name}") for t in targets}
    rows.append((f"mdtest-easy {label}", *(got[t]["ops_per_sec"] if got[t] else None for t in targets)))

def num(v):
    return "-" if v is None else f"{v:,.0f}" if v >= 100 else f"{v:,.1f}"

def ratio(a, b):
    return "-" if a is None or not b else f"{a / b:.3f}"

header = ("metric", *targets, "mount/local", "mount/raw", "mount/cluster")
table = [header] + [(m, *(num(v) for v in (mo, cl, lo, raw)), ratio(mo, lo), ratio(mo, raw), ratio(mo, cl))
                    for m, mo, cl, lo, raw in rows]
widths = [max(len(r[i]) for r in table) for i in range(len(header))]
print("=== summary (cluster: the cluster without FUSE, tessera put/get and bench --target cluster:;"
      " raw: the local directory with O_DIRECT)")
for r in table:
    print(" | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
with open(f"{results}/used.txt") as f:
    cores = os.cpu_count()
    print(f"\nWhat each measurement used ({cores} cores = {cores:.2f} cores busy):\n" + f.read(), end="")
EOF
echo "machine at the end: load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "JSON of every fio job and workload run, CSV and SVG: $results"
exit "$failed"
