"""The numpy backend's zoo parity under armv7 emulation with Debian's python3-numpy 1.24
(``benchmarks/arm/run.sh armv7 --python``). Opt-in: ``pytest -m arm`` (first run downloads ~40 MB of
armhf packages from the Debian mirror and takes about a minute)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from test_numpy124 import CHILD, ROOT, check, prepare
from zoo import CASES

pytestmark = pytest.mark.arm


def test_zoo_parity_under_armv7(tmp_path, cli_env, request):
    if "arm" not in (request.config.option.markexpr or ""):
        pytest.skip("opt-in: run with -m arm")
    if shutil.which("qemu-arm-static") is None and shutil.which("apt-get") is None:
        pytest.skip("needs qemu-user-static (Debian)")
    plan = prepare(tmp_path)
    # the emulated interpreter reads the bundles and expected outputs written by this one
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "arm" / "run.sh"), "armv7", "--python", "-c", CHILD,
                           str(plan)], env=cli_env, capture_output=True, text=True, timeout=1800)
    result = check(proc, CASES)
    assert result["machine"] == "armv7l"
