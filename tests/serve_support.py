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
def two_bundles(tmp_path_factory: pytest.TempPathFactory, serve_bench: Any) -> tuple[Path, Path]:
    """breast_cancer logistic models 1.0.0 and 1.1.0 (different C: some answers differ)."""
    pytest.importorskip("sklearn")
    return serve_bench.build_demo_bundles(tmp_path_factory.mktemp("bundles"))
