#!/usr/bin/env bash
# The device-side tests on the device install alone (issue #20 part 10): a second venv with the
# device extras and the test tools only (no convert extra: no scikit-learn, skl2onnx or onnx),
# cached under build/ per setup.cfg + pyproject.toml + this script, running the device tests on
# the bundles committed in tests/data. scripts/test.sh runs it as its last stage: every device
# test, the slow ones too (they add ~40 s; the issue's acceptance is `pytest -m device` there).
# DEVICE_MARK="device and not slow" for a quicker run. Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# batch and parquet: `edgert score` on a device (tqdm, pyarrow); the main suite leaves the
# device tests to this venv, so what they need is here
EXTRAS=serve,sync,telemetry,verify,litert,batch,parquet
key=$(cat setup.cfg pyproject.toml "$0" | sha256sum | cut -c1-12)
VENV=build/device-test-venv/$key
# a clean environment: nothing of the full venv's may leak in
unset PYTHONPATH VIRTUAL_ENV PYTHONHOME
if [ ! -e "$VENV/.complete" ]; then
  rm -rf build/device-test-venv
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  # editable: the checkout is what runs, so only a dependency change rebuilds the venv
  "$VENV/bin/python" -m pip install --quiet -e ".[$EXTRAS]" 'pytest>=7.4,<9.2' 'hypothesis>=6.90' 'httpx>=0.28'
  touch "$VENV/.complete"
fi
"$VENV/bin/python" - <<'PY'
import importlib.util
present = [m for m in ("sklearn", "skl2onnx", "onnx", "joblib") if importlib.util.find_spec(m)]
assert not present, f"the device test venv has workstation packages: {present}"
PY
"$VENV/bin/python" -m pytest -m "${DEVICE_MARK:-device}" -q -p no:cacheprovider "$@"
