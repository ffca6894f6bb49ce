#!/usr/bin/env bash
# Proof on ARM without ARM hardware: run the runtime's ARM subset (load, predict, parity on demo
# bundles, a bench smoke) under qemu-user emulation on an x86_64 machine.
#
#   bash benchmarks/arm/run.sh [aarch64]       # default
#   bash benchmarks/arm/run.sh armv7           # 32-bit Raspberry Pi OS: numpy backend only
#   bash benchmarks/arm/run.sh ARCH --python ARGS...   # that emulated interpreter, this checkout on
#                                                      # its path (e.g. -c CODE, or a script)
#
# What it does (recipe and pitfalls: ../shared/FIELD-NOTES.md, "ARM under emulation"):
#  1. Debian's qemu-user-static (apt-get, once);
#  2. arm64 python3.11 and its library dependencies from Debian, fetched with a private APT
#     configuration (the host's dpkg is untouched) and unpacked with dpkg-deb -x: no root fs,
#     no binfmt_misc;
#  3. aarch64 wheels (numpy, onnxruntime, click) from PyPI, tagged manylinux_2_28 (plain
#     manylinux2014 silently resolves to old releases), unzipped into a site folder;
#  4. a realistic aarch64 /proc/cpuinfo inside the root (onnxruntime's CPU detection reads the
#     host's x86 one under qemu-user 7.2 and segfaults);
#  5. builds the demo bundles and expected outputs on the host, then runs
#     benchmarks/arm/arm_subset.py under emulation, which loads each bundle on every backend
#     available there, checks the outputs against the host's, and prints latency *ratios*
#     between backends (emulation distorts absolute times ~17x).
# Everything is cached in benchmarks/arm/.cache (git-ignored); a second run takes seconds.
set -euo pipefail
ARCH=${1:-aarch64}
MODE=${2:-subset}
if [ "$MODE" = --python ]; then shift 2; fi
exec 3>&1
[ "$MODE" = --python ] && exec 1>&2  # setup chatter on stderr: the child's stdout stays clean
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE="$HERE/.cache/$ARCH"
case "$ARCH" in
  aarch64) DEB_ARCH=arm64; QEMU=qemu-aarch64-static; LIBDIR=aarch64-linux-gnu; DEBIAN_PKGS="python3.11"
           PLAT="--platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64"
           WHEELS="numpy onnxruntime click" ;;
  # PyPI has no armv7 wheel of numpy or onnxruntime: Debian's python3-numpy (1.24) and the numpy
  # backend are the whole stack there; click is pure Python.
  armv7)   DEB_ARCH=armhf; QEMU=qemu-arm-static; LIBDIR=arm-linux-gnueabihf
           DEBIAN_PKGS="python3.11 python3-numpy libblas3 liblapack3"; PLAT=""; WHEELS="click" ;;
  *) echo "unsupported arch: $ARCH (aarch64 or armv7)" >&2; exit 2 ;;
esac
PY=${PYTHON:-python3}
start=$(date +%s)

if ! command -v "$QEMU" >/dev/null 2>&1; then
  echo "== installing qemu-user-static"
  apt-get install -y -qq qemu-user-static >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq qemu-user-static >/dev/null; }
fi

ROOT="$CACHE/root"
if [ ! -f "$ROOT/.complete" ]; then
  echo "== fetching $DEB_ARCH python3.11 from Debian"
  mkdir -p "$CACHE/apt/state/lists/partial" "$CACHE/apt/cache/archives/partial" "$CACHE/debs" "$ROOT"
  cat > "$CACHE/apt/apt.conf" <<CONF
APT::Architecture "$DEB_ARCH";
APT::Architectures { "$DEB_ARCH"; };
Dir::State "$CACHE/apt/state";
Dir::State::status "$CACHE/apt/state/status";
Dir::Cache "$CACHE/apt/cache";
Dir::Etc::SourceList "/dev/null";
Dir::Etc::SourceParts "$CACHE/apt/sources.list.d";
CONF
  mkdir -p "$CACHE/apt/sources.list.d"
  cp /etc/apt/sources.list.d/*.sources "$CACHE/apt/sources.list.d/" 2>/dev/null || true
  [ -f /etc/apt/sources.list ] && cp /etc/apt/sources.list "$CACHE/apt/sources.list.d/host.list"
  touch "$CACHE/apt/state/status"
  export APT_CONFIG="$CACHE/apt/apt.conf"
  apt-get update -qq || echo "   (apt-get update reported errors; going on with the indexes it got)"
  pkgs=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
         --no-replaces --no-enhances --no-pre-depends $DEBIAN_PKGS | grep -E '^[a-z0-9]' | grep -v ':' | sort -u)
  (cd "$CACHE/debs" && apt-get download $pkgs >/dev/null 2>&1 || true)
  (cd "$CACHE/debs" && for p in $pkgs; do ls ${p}_*.deb >/dev/null 2>&1 || apt-get download "$p" >/dev/null 2>&1 || echo "   (no $p)"; done)
  (cd "$CACHE/debs" && apt-get download libstdc++6 libgomp1 libgcc-s1 >/dev/null 2>&1)  # numpy/ORT need them
  unset APT_CONFIG
  for deb in "$CACHE"/debs/*.deb; do dpkg-deb -x "$deb" "$ROOT"; done
  # the symlinks Debian's alternatives system would have made (numpy links libblas.so.3)
  lib="$ROOT/usr/lib/$LIBDIR"
  if [ -e "$lib/blas/libblas.so.3" ] && [ ! -e "$lib/libblas.so.3" ]; then ln -s blas/libblas.so.3 "$lib/libblas.so.3"; fi
  if [ -e "$lib/lapack/liblapack.so.3" ] && [ ! -e "$lib/liblapack.so.3" ]; then
    ln -s lapack/liblapack.so.3 "$lib/liblapack.so.3"
  fi
  touch "$ROOT/.complete"
fi
if [ "$ARCH" = aarch64 ]; then
  mkdir -p "$ROOT/proc"
  cp "$HERE/cpuinfo-aarch64.txt" "$ROOT/proc/cpuinfo"
fi

SITE="$CACHE/site"
if [ ! -f "$SITE/.complete" ]; then
  echo "== fetching $ARCH wheels from PyPI ($WHEELS)"
  mkdir -p "$CACHE/wheels" "$SITE"
  if [ -n "$PLAT" ]; then
    # shellcheck disable=SC2086
    "$PY" -m pip download --isolated --quiet --only-binary=:all: $PLAT --python-version 3.11 \
        --implementation cp --abi cp311 -d "$CACHE/wheels" $WHEELS
  else  # pure-Python wheels only
    # shellcheck disable=SC2086
    "$PY" -m pip download --isolated --quiet --only-binary=:all: --no-deps -d "$CACHE/wheels" $WHEELS
  fi
  for w in "$CACHE"/wheels/*.whl; do "$PY" -m zipfile -e "$w" "$SITE"; done
  touch "$SITE/.complete"
fi

if [ "$MODE" = --python ]; then
  exec 1>&3
  PYTHONPATH="$REPO:$SITE" PYTHONNOUSERSITE=1 PYTHONDONTWRITEBYTECODE=1 exec "$QEMU" -L "$ROOT" \
      "$ROOT/usr/bin/python3.11" "$@"
fi

echo "== building demo bundles and expected outputs on the host"
"$PY" "$HERE/arm_subset.py" prepare "$CACHE/bundles"

echo "== running the ARM subset under $QEMU"
emu_start=$(date +%s)
PYTHONPATH="$REPO:$SITE" PYTHONNOUSERSITE=1 "$QEMU" -L "$ROOT" "$ROOT/usr/bin/python3.11" -s \
    "$HERE/arm_subset.py" check "$CACHE/bundles" | tee "$CACHE/last-run.log"
end=$(date +%s)
if grep -q "^all ARM checks passed" "$CACHE/last-run.log"; then verdict=passed; else verdict="ran (backend checks skipped)"; fi
echo "== ARM subset ($ARCH) $verdict: emulated run $((end - emu_start)) s, total $((end - start)) s"
