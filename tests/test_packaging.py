"""The wheel a device installs holds every subpackage and the device profiles."""

from __future__ import annotations

import configparser
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def listed_packages() -> set[str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return {p.strip() for p in cfg["options"]["packages"].split() if p.strip()}


def test_every_package_directory_is_listed_in_setup_cfg():
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for top in ("edge_runtime", "converters") for p in (ROOT / top).rglob("__init__.py")}
    missing = found - listed_packages()
    assert not missing, f"add to setup.cfg [options] packages: {sorted(missing)}"


@pytest.mark.slow
def test_wheel_contents(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                        "-q", "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    wheel = next(tmp_path.glob("edge_runtime-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    profiles = {n for n in names if n.startswith("edge_runtime/device_profiles/") and n.endswith(".toml")}
    assert "edge_runtime/device_profiles/laptop-x86_64.toml" in profiles
    for pkg in listed_packages():
        assert f"{pkg.replace('.', '/')}/__init__.py" in names, pkg
    assert not any(n.startswith("tests/") for n in names)
