#!/usr/bin/env bash
# Installs the tools the mount tests (real-io/tests/mount.rs) drive, if any is missing: FUSE
# (fusermount3), fio, rsync, git, tar, getfattr/setfattr, python3 (setxattr flags), and the
# coreutils/util-linux commands they use.
# Idempotent: prints nothing and touches no package list when every tool is there. Debian/Ubuntu only
# (apt-get); runs as root, or through sudo when not root. Fails naming what it could not install.
set -euo pipefail

# command -> the Debian package that provides it
tools=(
    "fusermount3 fuse3"
    "fio fio"
    "rsync rsync"
    "git git"
    "tar tar"
    "getfattr attr"
    "setfattr attr"
    "mkfifo coreutils"
    "df coreutils"
    "fallocate util-linux"
    "umount mount"
    "python3 python3"
)

missing_commands=()
packages=()
for entry in "${tools[@]}"; do
    read -r command package <<<"$entry"
    if ! command -v "$command" >/dev/null 2>&1; then
        missing_commands+=("$command")
        [[ " ${packages[*]-} " == *" $package "* ]] || packages+=("$package")
    fi
done
[ ${#missing_commands[@]} -eq 0 ] && exit 0

say() { printf 'install-test-tools: %s\n' "$*" >&2; }
say "missing ${missing_commands[*]}: installing ${packages[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
    say "FAILED: no apt-get on this machine; install ${packages[*]} by hand"
    exit 1
fi
as_root=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        as_root=(sudo)
    else
        say "FAILED: not root and no sudo; install ${packages[*]} as root"
        exit 1
    fi
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! "${as_root[@]}" apt-get update -qq >"$log" 2>&1 \
    || ! "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >>"$log" 2>&1; then
    cat "$log" >&2
    say "FAILED: apt-get could not install ${packages[*]} (its output is above)"
    exit 1
fi
still_missing=()
for command in "${missing_commands[@]}"; do
    command -v "$command" >/dev/null 2>&1 || still_missing+=("$command")
done
if [ ${#still_missing[@]} -gt 0 ]; then
    say "FAILED: ${still_missing[*]} still missing after installing ${packages[*]}"
    exit 1
fi
say "installed ${packages[*]}"
