"""The numpy backend on numpy 1.24 (what Debian gives 32-bit Raspberry Pi OS): every zoo bundle,
converted here, is loaded by the checkout under a numpy-1.24 interpreter (golden rows checked
at load) and its outputs compared with onnxruntime's, computed here on numpy 2."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

import numpy as np
import pytest
from zoo import CASES, dataset, fitted

import converters
import edge_runtime

ROOT = Path(__file__).resolve().parents[1]
PYTHON = Path(os.environ.get("EDGE_NP124_PYTHON", ROOT / "build" / "np124" / "bin" / "python"))

CHILD = r"""
import json, sys
import numpy as np
import edge_runtime
import platform
assert np.__version__.startswith("1.24."), np.__version__
worst = {}
for item in json.load(open(sys.argv[1])):
    m = edge_runtime.load(item["bundle"], backend="numpy")  # golden rows checked here
    assert m.backend.name == "numpy"
    ref = np.load(item["expected"], allow_pickle=False)
    x = np.ascontiguousarray(ref["x"], dtype=m.artifact.input_dtype)
    got = m.backend.run(x, item["outputs"])
    errs = []
    for i, g in enumerate(got):
        w = ref[f"y{i}"]
        g = np.asarray(g)
        assert g.shape == w.shape, (item["id"], g.shape, w.shape)
        if w.dtype.kind == "f":
            errs.append(float(np.max(np.abs(g.astype(float) - w) / np.maximum(1, np.abs(w)))))
        else:
            assert np.array_equal(g, w), item["id"]
    worst[item["id"]] = max(errs) if errs else 0.0
print(json.dumps({"numpy": np.__version__, "machine": platform.machine(), "worst": worst}))
"""


def prepare(tmp_path: Path, cases=CASES) -> Path:
    """Convert the zoo, store onnxruntime's outputs next to each bundle; returns the job file."""
    items = []
    for case in cases:
        X, _, X_te, _ = dataset(case.data)
        bundle = converters.convert(fitted(case.id), X, tmp_path / case.id, holdout=X_te)
        ort = edge_runtime.load(bundle, backend="onnxruntime")
        outs = list(ort.artifact.outputs.values())
        x = np.ascontiguousarray(X_te, dtype=ort.artifact.input_dtype)
        ys = ort.backend.run(x, outs)
        expected = tmp_path / f"{case.id}.npz"
        np.savez(expected, x=x, **{f"y{i}": np.asarray(y) for i, y in enumerate(ys)})
        items.append({"id": case.id, "bundle": str(bundle), "expected": str(expected),
                      "outputs": outs})
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(items))
    return plan


def check(proc: subprocess.CompletedProcess, cases=CASES) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["numpy"].startswith("1.24.")
    assert set(result["worst"]) == {c.id for c in cases}
    bad = {k: v for k, v in result["worst"].items() if v > 1e-5}
    assert not bad, bad
    print(f"\nnumpy {result['numpy']} on {result['machine']}: {len(result['worst'])} bundles, "
          f"worst relative error {max(result['worst'].values()):.2e}")
    return result


def test_zoo_parity_on_numpy_124(tmp_path, cli_env):
    if not PYTHON.exists():
        pytest.skip(f"no numpy 1.24 interpreter at {PYTHON}: run scripts/setup.d/40-numpy124.sh")
    plan = prepare(tmp_path)
    proc = subprocess.run([str(PYTHON), "-c", CHILD, str(plan)], env=cli_env, capture_output=True,
                          text=True, timeout=300)
    result = check(proc)
    assert result["machine"] == platform.machine()
