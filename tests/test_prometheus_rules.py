"""The shipped Prometheus alert rules: promtool accepts them and their unit tests pass (one rule
fires only after its `for:` delay, the error-rate rule computes errors / (calls + errors))."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parents[1] / "examples" / "prometheus"
PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMTOOL is None,
                                reason="promtool missing: run scripts/setup.d/70-prometheus.sh")


def _promtool(*args: str) -> subprocess.CompletedProcess:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=RULES, capture_output=True, text=True, timeout=60)


def test_rules_are_valid():
    r = _promtool("check", "rules", "edgert-rules.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 7 rules found" in r.stdout


def test_rule_unit_tests_pass():
    r = _promtool("test", "rules", "edgert-rules.test.yml")
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_broken_rule_is_refused(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text((RULES / "edgert-rules.yml").read_text().replace(
        "edgert_feature_psi > 0.2", "edgert_feature_psi >"))
    r = subprocess.run([str(PROMTOOL), "check", "rules", str(bad)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0 and "EdgertFeatureDrift" in r.stdout + r.stderr
