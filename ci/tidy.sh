#!/usr/bin/env bash
# Tidy checks that clippy cannot express (STYLE.md rule 2, DESIGN.md section 2):
#  1. crates under system/ never depend (even transitively) on a runtime, a simulator or OS randomness;
#  2. the dependency direction between areas: system <- specs <- sim, system <- real-io; system depends on
#     nothing outside system/;
#  3. a text scan of system/ for OS doors, as a second net under clippy's disallowed lists;
#  4. the production crate never has the simulator's fault hooks, and the hooks' names are listed and
#     documented (system/env/src/hooks.rs, docs/SIMULATION.md).
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
say() { printf 'tidy: %s\n' "$*" >&2; }

system_crates=$(cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
m = json.load(sys.stdin)
for p in m["packages"]:
    if "/system/" in p["manifest_path"]:
        print(p["name"])
')

# Transitively banned: runtimes and simulators. Directly banned: OS randomness (raft-rs, needed later,
# pulls `rand` transitively; our driver pins its draws, see DESIGN.md section 10).
banned='^(tokio|madsim|mio|async-std|smol|turmoil)( |$)'
banned_direct='^(rand|getrandom)( |$)'
for crate in $system_crates; do
    hits=$(cargo tree -p "$crate" -e normal --prefix none --format '{p}' | sed 's/ (.*//' | grep -E "$banned" | sort -u || true)
    if [ -n "$hits" ]; then
        say "$crate (in system/) depends on runtime or OS-randomness crates:"; printf '  %s\n' $hits >&2; fail=1
    fi
    direct=$(cargo tree -p "$crate" -e normal --depth 1 --prefix none --format '{p}' | sed 's/ (.*//' | grep -E "$banned_direct" | sort -u || true)
    if [ -n "$direct" ]; then say "$crate (in system/) depends directly on OS randomness: $direct"; fail=1; fi
    # Path dependencies of a system crate must stay inside system/.
    outside=$(cargo metadata --format-version 1 --no-deps | python3 -c '
import json, sys
name = sys.argv[1]
m = json.load(sys.stdin)
for p in m["packages"]:
    if p["name"] != name: continue
    for d in p["dependencies"]:
        if d.get("path") and "/system/" not in d["path"] + "/" and d["kind"] != "dev":
            print(d["name"])
' "$crate")
    if [ -n "$outside" ]; then say "$crate (in system/) depends on crates outside system/: $outside"; fail=1; fi
done

# Text scan (tests and examples under system/ included: they must be deterministic too; measuring tools
# that read the wall clock live in sim/ or real-io/).
scan=$(grep -rnE 'std::time::(Instant|SystemTime)|thread::spawn|thread_rng\(|rand::random|tokio::|madsim::|HashMap|HashSet' system --include=*.rs || true)
if [ -n "$scan" ]; then say "OS doors or random-order maps in system/:"; printf '%s\n' "$scan" >&2; fail=1; fi
scan=$(grep -rnE 'thread_rng\(|rand::random|OsRng' sim specs --include=*.rs || true)
if [ -n "$scan" ]; then say "OS randomness in sim/ or specs/ (madsim cannot make it deterministic):"; printf '%s\n' "$scan" >&2; fail=1; fi

# Workload code runs inside the simulator too: only the directory target and the command line may touch
# the OS clock and threads.
scan=$(grep -rnE 'std::time|std::thread|thread::spawn|Instant|SystemTime|thread_rng\(|rand::random|HashMap|HashSet' workloads/src --include=*.rs | grep -vE '^workloads/src/(dir|cli)\.rs:' || true)
if [ -n "$scan" ]; then say "OS clock, threads or random-order maps in workload code that runs in the simulator:"; printf '%s\n' "$scan" >&2; fail=1; fi

# The production crate never has the simulator's fault hooks (tessera-env feature `sim-hooks`): without
# it `buggify!` is the constant `false` and `mark!` nothing. Dev-dependencies are left out (they never
# reach the production binary).
if ! tree=$(cargo tree -p tessera-real-io -e no-dev,features -i tessera-env 2>&1); then
    say "cargo tree of tessera-real-io failed:"; printf '%s\n' "$tree" >&2; fail=1
elif grep -q 'sim-hooks' <<<"$tree"; then
    say "tessera-real-io (production) enables tessera-env's sim-hooks feature (fault hooks compiled in):"
    printf '%s\n' "$tree" >&2; fail=1
fi

# Every buggify!/mark! name used in system/ is listed in system/env/src/hooks.rs (BUGGIFY_SITES, RARE_MARKS,
# EXTRA_MARKS) and in docs/SIMULATION.md, every listed name is used, and no buggify! site is used twice.
hooks_check=$(python3 - <<'PY'
import pathlib, re
hooks = pathlib.Path("system/env/src/hooks.rs").read_text()
def listed(const):
    body = re.search(r"pub const " + const + r": \[\(&str, &str\); \d+\] = \[(.*?)\n\];", hooks, re.S)
    return set(re.findall(r'\(\s*"([^"]+)"', body.group(1))) if body else None
sites, marks = listed("BUGGIFY_SITES"), listed("RARE_MARKS")
extra = listed("EXTRA_MARKS")
if sites is None or marks is None or extra is None:
    print("hooks.rs: BUGGIFY_SITES, RARE_MARKS or EXTRA_MARKS not found"); raise SystemExit
marks |= extra
used = {"buggify": [], "mark": []}
for path in sorted(pathlib.Path("system").rglob("*.rs")):
    if path.name in ("hooks.rs", "tests_hooks.rs") and path.parent.as_posix() == "system/env/src":
        continue
    for kind, name in re.findall(r'\b(buggify|mark)!\(\s*"([^"]*)"\s*(?:,[^)]*)?\)', path.read_text()):
        used[kind].append((name, path.as_posix()))
docs = pathlib.Path("docs/SIMULATION.md").read_text()
for kind, known in (("buggify", sites), ("mark", marks)):
    names = [n for n, _ in used[kind]]
    for name, path in used[kind]:
        if name not in known:
            print(f"{path}: {kind}!(\"{name}\") is not listed in hooks.rs")
    for name in sorted(known - set(names)):
        print(f"hooks.rs lists {kind} name {name!r}, which no code in system/ uses")
    for name in sorted(known):
        if f"`{name}`" not in docs:
            print(f"docs/SIMULATION.md does not describe {kind} name {name!r}")
    if kind == "buggify":
        for name in sorted({n for n in names if names.count(n) > 1}):
            print(f"buggify site {name!r} is used in more than one place")
PY
)
if [ -n "$hooks_check" ]; then say "fault hooks and coverage marks out of step:"; printf '%s\n' "$hooks_check" >&2; fail=1; fi

if [ "$fail" -ne 0 ]; then say "FAILED"; exit 1; fi
echo "tidy: ok (system crates: $(echo $system_crates | tr '\n' ' '))"
