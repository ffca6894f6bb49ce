"""Shared fixtures for the serve and batch-scoring tests: two versions of a small model (so a
swap is visible in the answers), a sync-store layout, and the load-test helpers of
benchmarks/serve_load.py (imported from the file, so the test and the benchmark run one code)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_benchmark(name: str) -> Any:
    path = ROOT / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def cli_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


@pytest.fixture(scope="session")
def serve_bench() -> Any:
    return load_benchmark("serve_load")


@pytest.fixture(scope="session")
def two_bundles(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """breast_cancer logistic models 1.0.0 and 1.1.0 (different C: some answers differ): copies of
    the committed ones (benchmarks/serve_load.build_demo_bundles trains the same)."""
    from committed import copy_bundle

    d = tmp_path_factory.mktemp("bundles")
    return (copy_bundle("breast-cancer-1.0.0", d / "bundle-1.0.0"),
            copy_bundle("breast-cancer-1.1.0", d / "bundle-1.1.0"))


@pytest.fixture(scope="session")
def forest_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small random forest: tree ensembles score each row on its own, so batch and row-by-row
    probabilities are bit-identical (a linear model's batched MatMul may differ in the last ulp).
    The committed one (15 trees, depth 6, scripts/make_test_bundles.py)."""
    from committed import copy_bundle

    return copy_bundle("bc-forest", tmp_path_factory.mktemp("forest") / "bc-forest")


def breast_cancer_rows(n: int, seed: int = 0) -> tuple[list[str], Any]:
    """``n`` rows resampled from breast_cancer with a little noise, as float32-representable
    values (the models run in float32), and the feature names."""
    import numpy as np
    from committed import breast_cancer

    data, _, names = breast_cancer()
    rng = np.random.default_rng(seed)
    X = data[rng.integers(0, len(data), n)] * rng.uniform(0.9, 1.1, (n, data.shape[1]))
    return names, X.astype(np.float32).astype(np.float64)


def write_csv(path: Path, names: list[str], X: Any, *, id_column: str = "id") -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(",".join([id_column, *names]) + "\n")
        for i, row in enumerate(X):
            fh.write(f"r{i}," + ",".join(repr(float(v)) for v in row) + "\n")
    return path
