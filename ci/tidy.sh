#!/usr/bin/env bash
# Tidy checks that clippy cannot express (STYLE.md rule 2, DESIGN.md section 2):
#  1. crates under system/ never depend (even transitively) on a runtime, a simulator or OS randomness;
#  2. the dependency direction between areas: system <- specs <- sim, system <- real-io; system depends on
#     nothing outside system/;
#  3. a text scan of system/ for OS doors, as a second net under clippy's disallowed lists.
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

if [ "$fail" -ne 0 ]; then say "FAILED"; exit 1; fi
echo "tidy: ok (system crates: $(echo $system_crates | tr '\n' ' '))"
