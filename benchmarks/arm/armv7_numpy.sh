#!/usr/bin/env bash
# Run Python with Debian bookworm's armhf python3.11 + python3-numpy (1.24) under qemu-arm-static,
# with this checkout on PYTHONPATH: how the numpy backend runs on 32-bit Raspberry Pi OS,
# where PyPI has no numpy or onnxruntime wheel at all.
#
#   benchmarks/arm/armv7_numpy.sh script.py [args...]     # or: -c 'code' ...
#
# First run builds an armhf root (no root file system image, no binfmt_misc, host dpkg
# untouched): a private apt configuration with APT::Architecture "armhf" downloads
# python3.11, python3-numpy and their dependencies, unpacked with dpkg-deb -x into
# $ARMV7_ROOT (default build/armv7-root, git-ignored). Needs qemu-user-static (installed
# when missing) and access to the Debian mirror. Recipe: ../shared/FIELD-NOTES.md.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
ROOT="${ARMV7_ROOT:-$REPO/build/armv7-root}"
APTDIR="${ROOT}.apt"

if ! command -v qemu-arm-static >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-user-static \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
           --no-install-recommends qemu-user-static; }
fi

if [ ! -f "$ROOT/.complete" ]; then
  echo "armv7: building $ROOT (python3.11 + python3-numpy for armhf)" >&2
  rm -rf "$ROOT" "$APTDIR"
  mkdir -p "$ROOT" "$APTDIR/none" "$APTDIR/state/lists/partial" "$APTDIR/cache/archives/partial" "$APTDIR/debs"
  cat > "$APTDIR/sources.list" <<SRC
deb [arch=armhf signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
SRC
  cat > "$APTDIR/apt.conf" <<CONF
APT::Architecture "armhf";
APT::Architectures { "armhf"; };
Dir::State "$APTDIR/state";
Dir::State::status "$APTDIR/state/status";
Dir::Cache "$APTDIR/cache";
Dir::Etc::SourceList "$APTDIR/sources.list";
Dir::Etc::SourceParts "$APTDIR/none";
Dir::Etc::Preferences "$APTDIR/none";
Dir::Etc::PreferencesParts "$APTDIR/none";
APT::Sandbox::User "root";
CONF
  touch "$APTDIR/state/status"
  export APT_CONFIG="$APTDIR/apt.conf"
  apt-get update -qq
  pkgs=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
           --no-replaces --no-enhances --no-pre-depends python3.11 python3-numpy libblas3 liblapack3 \
         | grep -v '^ ' | grep -v '^<' | sed 's/:armhf$//' | sort -u)
  (cd "$APTDIR/debs" && apt-get download $pkgs >/dev/null)
  for deb in "$APTDIR"/debs/*.deb; do dpkg-deb -x "$deb" "$ROOT"; done
  # the symlinks Debian's alternatives system would have made
  lib="$ROOT/usr/lib/arm-linux-gnueabihf"
  [ -e "$lib/libblas.so.3" ] || ln -s blas/libblas.so.3 "$lib/libblas.so.3"
  [ -e "$lib/liblapack.so.3" ] || ln -s lapack/liblapack.so.3 "$lib/liblapack.so.3"
  rm -rf "$APTDIR/debs"
  touch "$ROOT/.complete"
fi

export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
exec qemu-arm-static -L "$ROOT" "$ROOT/usr/bin/python3.11" "$@"
