# numpy 1.24 (Debian bookworm's, the only numpy 32-bit Raspberry Pi OS gets) for
# tests/test_numpy124.py: a venv in build/np124 (git-ignored) with just numpy==1.24.*.
# Idempotent: does nothing when the venv already imports numpy 1.24. Sourced by
# scripts/test.sh (set -euo pipefail).
_er_np124="$(pwd)/build/np124"
if ! "$_er_np124/bin/python" -c 'import numpy, sys; sys.exit(not numpy.__version__.startswith("1.24."))' \
    >/dev/null 2>&1; then
  echo "setup 40-numpy124: creating $_er_np124 with numpy 1.24"
  python3 -m venv "$_er_np124"
  # wheels only (numpy 1.24 has them for CPython 3.8-3.11): never a source build on CI
  "$_er_np124/bin/pip" install -q --disable-pip-version-check --only-binary=:all: 'numpy==1.24.*'
fi
unset _er_np124
