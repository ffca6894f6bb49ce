"""Shared pieces of the Pyodide (Node) and Chromium tests: where the JS dependencies live, how
to build our wheel, and the demo bundles both tests compare against the Python runtime."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
JS_DIR = ROOT / "tests" / "js"
NODE_MODULES = JS_DIR / "node_modules"
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "tests" / "artifacts"
SETUP_HINT = "run scripts/setup.d/30-node-pyodide.sh (npm ci in tests/js, apt-get install chromium)"


def require_node_modules() -> str:
    """Path of ``node``; skips (saying how to fix it) when Node or the npm packages are absent."""
    node = shutil.which("node")
    if node is None:
        pytest.skip(f"node is not installed: {SETUP_HINT}")
    for package in ("pyodide/pyodide.mjs", "onnxruntime-web/package.json"):
        if not (NODE_MODULES / package).exists():
            pytest.skip(f"tests/js/node_modules/{package} is missing: {SETUP_HINT}")
    return node


def _can_build_in_place() -> bool:
    """setuptools ≥ 64 is there, and can make wheels by itself (≥ 70.1) or has ``wheel``
    (a Python 3.11 venv brings setuptools 65.5 without ``wheel``)."""
    try:
        import setuptools
    except ImportError:
        return False
    try:
        version = tuple(int(p) for p in setuptools.__version__.split(".")[:2])
    except ValueError:
        return False
    return version >= (70, 1) or (version >= (64, 0) and importlib.util.find_spec("wheel") is not None)


def build_wheel(out_dir: Path) -> Path:
    """Our pure-Python wheel, built from a copy of the source tree so the checkout stays clean."""
    src = out_dir / "src"
    ignore = shutil.ignore_patterns(".git", ".venv", "node_modules", "build", "dist", "*.egg-info",
                                    "__pycache__", "tests", "benchmarks", "examples", ".*cache*")
    shutil.copytree(ROOT, src, ignore=ignore)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", str(src), "-w", str(out_dir)]
    if _can_build_in_place():
        cmd.insert(4, "--no-build-isolation")  # no round trip to the registry for setuptools
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"building our wheel failed: {r.stderr[-2000:]}"
    wheels = sorted(out_dir.glob("edge_runtime-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def demo_bundle(out_dir: Path, kind: str) -> tuple[Path, list[list[float]]]:
    """A converted bundle and float32-representable test rows (the device feeds float32).

    kind: ``logistic`` (breast_cancer, int labels, the browser demo's model), ``iris-strings``
    (string labels from the argmax of probabilities) or ``regression`` (diabetes, a forest).
    """
    import numpy as np
    from zoo import dataset

    import converters

    if kind == "logistic":
        from converters.demo import train_demo_model

        est, X_tr, X_te, names = train_demo_model("logistic")
        X_te = X_te.astype(np.float32).astype(np.float64)
        path = converters.convert(est, X_tr, out_dir / kind, name="breast-cancer-logistic",
                                  holdout=X_te, feature_names=names)
        return path, X_te[:40].tolist()
    if kind == "iris-strings":
        from sklearn.ensemble import RandomForestClassifier

        X, y, X_te, _ = dataset("iris")
        labels = np.array(["setosa", "versicolor", "virginica"])[y]
        est = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(X, labels)
        path = converters.convert(est, X, out_dir / kind, holdout=X_te,
                                  feature_names=["sepal_length", "sepal_width", "petal_length",
                                                 "petal_width"])
        return path, X_te.tolist()
    if kind == "regression":
        from sklearn.ensemble import RandomForestRegressor

        X, y, X_te, _ = dataset("regression")
        est = RandomForestRegressor(n_estimators=10, max_depth=5, random_state=0).fit(X, y)
        return converters.convert(est, X, out_dir / kind, holdout=X_te), X_te[:40].tolist()
    raise KeyError(kind)
