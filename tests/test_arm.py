"""Opt-in (``pytest -m arm``): the ARM subset under qemu-user emulation, via the same script a
person runs (benchmarks/arm/run.sh). Not part of the default suite (nor CI's): it downloads
Debian ARM packages and aarch64 wheels on first use, so it only runs when ``-m arm`` asks."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _only_when_asked(request: pytest.FixtureRequest) -> None:
    expr = request.config.option.markexpr or ""
    if "arm" not in expr.replace("not arm", ""):
        pytest.skip("opt-in: run with pytest -m arm")


def _run(arch: str) -> str:
    r = subprocess.run(["bash", str(ROOT / "benchmarks" / "arm" / "run.sh"), arch], capture_output=True,
                       text=True, timeout=1800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


@pytest.mark.arm
def test_aarch64_subset_under_emulation():
    out = _run("aarch64")
    assert "all ARM checks passed" in out and "bench smoke" in out


@pytest.mark.arm
def test_armv7_subset_under_emulation():
    out = _run("armv7")
    assert "armv7l, numpy 1.24" in out  # Debian bookworm's python3-numpy, as on Raspberry Pi OS
    if "NO ENGINE" in out:  # the numpy backend is not in this checkout yet: environment only
        assert out.count("core ok") == 4
        pytest.skip("armv7 environment ready; no numpy backend in this checkout to run models with")
    assert "all ARM checks passed" in out and "bench smoke" in out
