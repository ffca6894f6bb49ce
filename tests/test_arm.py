"""Opt-in (``pytest -m arm``): the ARM subset under qemu-user emulation, via the same script a
person runs (benchmarks/arm/run.sh). Not part of the default suite: it downloads an arm64
Python from Debian and aarch64 wheels from PyPI on first use."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.arm
def test_aarch64_subset_under_emulation():
    r = subprocess.run(["bash", str(ROOT / "benchmarks" / "arm" / "run.sh"), "aarch64"], capture_output=True,
                       text=True, timeout=1800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "all ARM checks passed" in r.stdout and "bench smoke" in r.stdout
