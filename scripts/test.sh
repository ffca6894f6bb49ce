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
echo "== setup done after ${SECONDS}s"
"$VENV/bin/python" -m ruff check edge_runtime converters collector tests benchmarks
# Types: settings and the per-library list of untyped dependencies are in setup.cfg [mypy].
# mypy 2 needs Python 3.10+; on 3.9 the dev extra does not install it, so the step says so.
if "$VENV/bin/python" -c 'import mypy' 2>/dev/null; then
  "$VENV/bin/python" -m mypy edge_runtime converters collector
else
  echo "== mypy skipped: it needs Python 3.10 or newer"
fi
"$VENV/bin/lint-imports"
echo "== lint and types done after ${SECONDS}s"
# The device-side tests (pytest -m device) run in a venv without the convert extra (cached under
# build/), beside the main suite, which then runs everything else: the two share nothing but the
# machine (their own venv, processes, pytest temp root and ephemeral ports). Run one after the
# other, with the device tests in both, they took 22-28 min of a 20-min budget. Arguments (a
# focused run) go to the main suite, which then runs what they select, device tests included.
mkdir -p build
PYTEST_DEBUG_TEMPROOT="$PWD/build/device-tmp" bash -c 'mkdir -p "$PYTEST_DEBUG_TEMPROOT" && exec bash scripts/device-tests.sh' \
  > build/device-tests.log 2>&1 &
device=$!
trap 'kill "$device" 2>/dev/null || true' EXIT
main_status=0
start=$SECONDS
if [ "$#" -eq 0 ]; then set -- -m "not device and not arm"; fi  # arm: opt-in, as in pyproject's addopts
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@" || main_status=$?
echo "== main suite: $((SECONDS - start))s"
device_status=0
wait "$device" || device_status=$?
echo "== device-only tests (scripts/device-tests.sh, run beside the main suite)"
cat build/device-tests.log
if [ "$main_status" -ne 0 ] || [ "$device_status" -ne 0 ]; then
  echo "== failed: main suite exit $main_status, device-only tests exit $device_status"
  exit 1
fi
echo "== all done after ${SECONDS}s"
