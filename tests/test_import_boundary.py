"""The device side never needs the workstation side: edge_runtime imports, loads and predicts
with scikit-learn, skl2onnx, onnx, converters (and pickle-based loaders) blocked."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from blocking import blocker


def run_blocked(code: str, blocked: list[str], env: dict) -> subprocess.CompletedProcess:
    script = blocker(blocked) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                          timeout=120)



@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A 10-tree iris forest (committed)."""
    from committed import copy_bundle

    return copy_bundle("iris-forest", tmp_path_factory.mktemp("b") / "forest")


WORKSTATION = ["sklearn", "skl2onnx", "onnx", "converters", "joblib", "scipy", "pandas"]


@pytest.mark.device
def test_runtime_imports_loads_and_predicts_without_workstation_packages(bundle, cli_env):
    r = run_blocked(f"""
        import pickle
        pickle.loads = pickle.load = None  # loading must never unpickle anything
        import edge_runtime
        m = edge_runtime.load({str(bundle)!r})
        print(m.predict([[5.1, 3.5, 1.4, 0.2]]).tolist(), m.predict_proba([[5.1, 3.5, 1.4, 0.2]]).shape)
        bad = sorted(k for k in sys.modules if k.split(".")[0] in {WORKSTATION!r})
        assert not bad, bad
    """, WORKSTATION, cli_env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[0] (1, 3)"


@pytest.mark.device
def test_bare_import_needs_no_numpy_or_engine(cli_env):
    r = run_blocked("""
        import edge_runtime
        from edge_runtime import bundle, errors, fsutil, profiles
        print(edge_runtime.__version__)
    """, WORKSTATION + ["numpy", "onnxruntime", "click", "ai_edge_litert"], cli_env)
    assert r.returncode == 0, r.stderr


@pytest.mark.device
def test_cli_device_commands_work_without_workstation_packages(bundle, cli_env, tmp_path):
    csv = tmp_path / "in.csv"
    csv.write_text("x0,x1,x2,x3\n5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n")
    r = run_blocked(f"""
        import sys
        from edge_runtime.cli import main
        sys.argv = ["edgert", "predict", {str(bundle)!r}, {str(csv)!r}]
        try:
            main()
        except SystemExit as e:
            assert not e.code, e.code
    """, WORKSTATION, cli_env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["label", "0", "2"]


@pytest.mark.device
def test_convert_without_converters_says_what_to_install(cli_env, tmp_path):
    r = run_blocked("""
        import sys
        from edge_runtime.cli import main
        sys.argv = ["edgert", "demo", "-o", "x"]
        main()
    """, WORKSTATION, cli_env)
    assert r.returncode != 0
    assert "pip install 'edge-runtime[convert]'" in r.stderr


@pytest.mark.parametrize("argv", [  # publish is a workstation command (the convert extra), sync a device one
    pytest.param(["sync", "--once", "--repo", "REPO", "--root", "ROOT", "--state", "STATE"], marks=pytest.mark.device),
    ["publish", "--repo", "REPO", "--keys", "KEYS", "--refresh-timestamp"]])
def test_sync_commands_without_tuf_say_what_to_install(argv, cli_env, tmp_path):
    root = tmp_path / "root.json"
    root.write_text("{}")
    argv = [str(tmp_path / a.lower()) if a.isupper() else a for a in argv]
    argv = [str(root) if a.endswith("/root") else a for a in argv]
    r = run_blocked(f"""
        import sys
        from edge_runtime.cli import main
        sys.argv = ["edgert", *{argv!r}]
        main()
    """, ["tuf"], cli_env)
    assert r.returncode != 0
    assert "pip install 'edge-runtime[sync]'" in r.stderr and "Traceback" not in r.stderr, r.stderr
