#!/usr/bin/env bash
# scxd set-up for Debian 12, as root.  Idempotent: a second run only checks.
#
#   ./setup.sh run    install everything, then run the daemon in the foreground
#                     (embedded defaults; advisory mode where the kernel has no sched_ext)
#   ./setup.sh test   install everything incl. test tools, then run the whole test suite
#   ./setup.sh install  only install
#
# What "everything" is:
#   - Debian packages: python3-bpfcc + bpfcc-tools (bcc; PyPI's "bcc" is unrelated),
#     python3-venv, and for tests stress-ng, rt-tests, linux-perf, prometheus, gcc;
#   - kernel headers for bcc at /lib/modules/$(uname -r)/build.  When Debian has no headers
#     package for the running kernel (custom kernels such as this machine's 6.18), the newest
#     linux-headers-6.12.*-amd64 is installed and linked as .../build and .../source.  bcc
#     only needs them for its helper definitions: scxd reads tracepoint fields through
#     tracefs, never task_struct offsets, so a version mismatch does not skew the data;
#   - a venv at .venv made with /usr/bin/python3 --system-site-packages (to see bcc), with
#     torch==2.13.0 (the local CPU wheel; an unpinned torch pulls GBs of CUDA) and scxd;
#   - /usr/local/sbin/scxd and /usr/local/bin/scxctl linked to the venv's commands.
set -euo pipefail

cd "$(dirname "$(readlink -f "$0")")"
REPO=$PWD
VENV=${SCXD_VENV:-$REPO/.venv}
MODE=${1:-install}
shift || true

say() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (bcc loads BPF programs; packages are installed)"
[ -r /etc/debian_version ] || die "this script targets Debian 12 (no /etc/debian_version)"

RUN_PACKAGES=(python3-bpfcc bpfcc-tools python3-venv python3-pip kmod)
TEST_PACKAGES=(stress-ng rt-tests linux-perf prometheus gcc libc6-dev)

missing_packages() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
            || printf '%s\n' "$p"
    done
}

apt_install() {
    local -a need
    mapfile -t need < <(missing_packages "$@")
    [ "${#need[@]}" -eq 0 ] && return 0
    say "installing Debian packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "${need[@]}" >/tmp/scxd-apt.log 2>&1; then
        apt-get update >>/tmp/scxd-apt.log 2>&1 || true
        apt-get install -y --no-install-recommends "${need[@]}" >>/tmp/scxd-apt.log 2>&1 \
            || die "apt-get install ${need[*]} failed; see /tmp/scxd-apt.log"
    fi
}

ensure_headers() {
    local rel build hdr common
    rel=$(uname -r)
    build=/lib/modules/$rel/build
    if [ -e "$build/Makefile" ] || [ -e "$build/include/generated" ]; then
        return 0
    fi
    if apt-cache show "linux-headers-$rel" >/dev/null 2>&1; then
        apt_install "linux-headers-$rel"
        return 0
    fi
    hdr=$(ls -d /usr/src/linux-headers-6.12.*-amd64 2>/dev/null | grep -v -e rt- -e cloud- \
          | sort -V | tail -n1 || true)
    if [ -z "$hdr" ]; then
        local pkg
        pkg=$(apt-cache search --names-only '^linux-headers-6\.12\.[0-9]+\+deb12-amd64$' \
              | awk '{print $1}' | sort -V | tail -n1)
        [ -n "$pkg" ] || { apt-get update >/dev/null 2>&1; \
            pkg=$(apt-cache search --names-only '^linux-headers-6\.12\.[0-9]+\+deb12-amd64$' \
                  | awk '{print $1}' | sort -V | tail -n1); }
        [ -n "$pkg" ] || die "no linux-headers-6.12.*-amd64 package found for bcc"
        apt_install "$pkg"
        hdr=/usr/src/${pkg}
    fi
    common=${hdr%-amd64}-common
    [ -d "$common" ] || die "expected $common beside $hdr"
    mkdir -p "/lib/modules/$rel"
    ln -sfn "$hdr" "$build"
    ln -sfn "$common" "/lib/modules/$rel/source"
    say "NOTE: no headers package for kernel $rel; linked $(basename "$hdr") as $build"
    say "      (bcc uses them for helper definitions only; tracepoint fields come from tracefs)"
}

ensure_venv() {
    local extras=$1 stamp want
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating venv $VENV (system site packages, for bcc)"
        /usr/bin/python3 -m venv --system-site-packages "$VENV"
    fi
    want=$(cat pyproject.toml | sha256sum | cut -c1-16)-$extras
    stamp=$VENV/.scxd-installed
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        say "installing torch==2.13.0 (CPU) and scxd[$extras] into $VENV"
        "$VENV/bin/pip" install -q --disable-pip-version-check torch==2.13.0
        "$VENV/bin/pip" install -q --disable-pip-version-check -e ".[$extras]"
        echo "$want" >"$stamp"
    fi
    "$VENV/bin/python" -c "import bcc, torch, psutil, prometheus_client, pydantic_settings" \
        || die "venv is missing a module (see above)"
}

link_commands() {
    # Where systemd/scxd.service and users find them.
    ln -sfn "$VENV/bin/scxd" /usr/local/sbin/scxd
    ln -sfn "$VENV/bin/scxctl" /usr/local/bin/scxctl
}

install() {
    local extras=$1
    apt_install "${RUN_PACKAGES[@]}"
    if [ "$extras" = "test,testbed,replay" ]; then apt_install "${TEST_PACKAGES[@]}"; fi
    ensure_headers
    ensure_venv "$extras"
    link_commands
}

case "$MODE" in
    install)
        install "test,testbed,replay"
        say "installed; run: $VENV/bin/scxd run" ;;
    run)
        install "testbed"
        say "starting scxd in the foreground (Ctrl-C stops it and restores the fair scheduler)"
        exec "$VENV/bin/scxd" run "$@" ;;
    test)
        install "test,testbed,replay"
        # The sched_ext test bed (kernel + schedulers, cached): ≈10 min cold, seconds warm.
        # A failure here is reported by the testbed tests themselves (fail under CI=true).
        "$VENV/bin/scxd-testbed" build || say "test bed build failed; testbed tests will say why"
        say "running the test suite"
        exec "$VENV/bin/python" -m pytest "$@" ;;
    *)
        die "usage: $0 {run|test|install} [args...]" ;;
esac
