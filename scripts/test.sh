#!/usr/bin/env bash
# Set up a virtual environment with every extra and run the whole test suite.
# Used as-is by the README and by .ci/run. Extra system setup (apt/npm packages that tests
# start as real services) lives in scripts/setup.d/*.sh, one file per need, sourced in order.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e '.[dev]'
export PATH="$PWD/$VENV/bin:$PATH"
for step in scripts/setup.d/*.sh; do
  [ -e "$step" ] || continue
  echo "== setup: $step"
  # shellcheck disable=SC1090
  source "$step"
done
"$VENV/bin/python" -m ruff check edge_runtime converters collector tests benchmarks
# Types: settings and the per-library list of untyped dependencies are in setup.cfg [mypy].
# mypy 2 needs Python 3.10+; on 3.9 the dev extra does not install it, so the step says so.
if "$VENV/bin/python" -c 'import mypy' 2>/dev/null; then
  "$VENV/bin/python" -m mypy edge_runtime converters collector
else
  echo "== mypy skipped: it needs Python 3.10 or newer"
fi
"$VENV/bin/lint-imports"
# The device-side tests again, in a venv without the convert extra (cached under build/), run
# beside the main suite: they share nothing with it but the machine (their own venv, processes,
# pytest temp root and ephemeral ports), and on 2 cores the main suite leaves one core mostly idle
# while it waits on subprocesses, servers and timeouts; one after the other the two took 22-28 min
mkdir -p build
PYTEST_DEBUG_TEMPROOT="$PWD/build/device-tmp" bash -c 'mkdir -p "$PYTEST_DEBUG_TEMPROOT" && exec bash scripts/device-tests.sh' \
  > build/device-tests.log 2>&1 &
device=$!
trap 'kill "$device" 2>/dev/null || true' EXIT
main_status=0
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@" || main_status=$?
device_status=0
wait "$device" || device_status=$?
echo "== device-only tests (scripts/device-tests.sh, run beside the main suite)"
cat build/device-tests.log
if [ "$main_status" -ne 0 ] || [ "$device_status" -ne 0 ]; then
  echo "== failed: main suite exit $main_status, device-only tests exit $device_status"
  exit 1
fi
