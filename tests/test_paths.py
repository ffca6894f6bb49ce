"""One rule for every location a device writes (docs/paths.md): the variable wins, else
platformdirs' directory of that kind, else the same layout under the home directory; the version
store and the telemetry outbox share one state root; an upgraded device keeps its old outbox."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from edge_runtime import paths

ROOT = Path(__file__).resolve().parents[1]
VARS = (paths.STATE_ENV, paths.CACHE_ENV, paths.NATIVE_ENV, paths.PROFILES_ENV)


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home of our own, no edge-runtime variable set, XDG variables unset (platformdirs then
    uses the home directory on Linux, as the fallback does)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in (*VARS, "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.fixture(params=["platformdirs", "no platformdirs"])
def layout(request: pytest.FixtureRequest, home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "platformdirs":
        pytest.importorskip("platformdirs")
        if sys.platform != "linux":
            pytest.skip("the expected paths below are platformdirs' Linux layout")
    else:
        monkeypatch.setitem(sys.modules, "platformdirs", None)  # import platformdirs fails
    return request.param


def test_the_variables_win(home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in VARS:
        monkeypatch.setenv(var, str(tmp_path / var))
    (home / ".local" / "state" / "edge-runtime" / "telemetry").mkdir(parents=True)  # an old outbox
    assert paths.state_dir() == tmp_path / paths.STATE_ENV
    assert paths.telemetry_state_dir() == tmp_path / paths.STATE_ENV
    assert paths.cache_dir() == tmp_path / paths.CACHE_ENV
    assert paths.native_dir() == tmp_path / paths.NATIVE_ENV
    assert paths.profiles_dir() == tmp_path / paths.PROFILES_ENV


def test_an_empty_variable_counts_as_unset(layout: str, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(paths.STATE_ENV, "")
    assert paths.state_dir() == home / ".local" / "share" / "edge-runtime"


def test_defaults_with_and_without_platformdirs_are_the_same_places(layout: str, home: Path) -> None:
    assert paths.state_dir() == home / ".local" / "share" / "edge-runtime"
    assert paths.telemetry_state_dir() == paths.state_dir()
    assert paths.cache_dir() == home / ".cache" / "edge-runtime"
    assert paths.native_dir() == home / ".cache" / "edge-runtime" / "native"
    assert paths.profiles_dir() == home / ".config" / "edge-runtime" / "profiles"


def test_store_outbox_and_profiles_use_the_rule(layout: str, home: Path) -> None:
    from edge_runtime import profiles
    from edge_runtime.backends.native_backend import library_dir
    from edge_runtime.sync.store import VersionStore
    from edge_runtime.telemetry.outbox import Outbox

    assert VersionStore().root == paths.state_dir()
    outbox = Outbox()
    try:
        assert outbox.dir == paths.state_dir() / "telemetry"  # beside the store, one state root
    finally:
        outbox.close()
    assert profiles.user_dir() == paths.profiles_dir()
    assert library_dir() == paths.native_dir()


def test_an_upgraded_device_keeps_its_outbox_in_the_old_state_dir(layout: str, home: Path) -> None:
    from edge_runtime.telemetry.outbox import Outbox
    from edge_runtime.telemetry.recorder import get_recorder

    old = home / ".local" / "state" / "edge-runtime"
    before = Outbox(old)  # written by the previous release, where the outbox defaulted then
    before.close()
    assert paths.telemetry_state_dir() == old
    again = Outbox()
    try:
        assert again.path == before.path
    finally:
        again.close()
    rec = get_recorder(start=False)
    try:
        assert rec.outbox.path == before.path  # the app's recorder writes where the agent reads
    finally:
        rec.close()


def test_a_device_with_an_outbox_in_the_data_dir_uses_it(layout: str, home: Path) -> None:
    (home / ".local" / "state" / "edge-runtime" / "telemetry").mkdir(parents=True)
    (paths.state_dir() / "telemetry").mkdir(parents=True)
    assert paths.telemetry_state_dir() == paths.state_dir()


def test_no_other_module_finds_a_directory_by_itself() -> None:
    """platformdirs and the home directory are read in paths.py alone (one rule)."""
    offenders = []
    for p in sorted((ROOT / "edge_runtime").rglob("*.py")):
        if p.name == "paths.py" and p.parent.name == "edge_runtime":
            continue
        tree = ast.parse(p.read_text(), str(p))
        for node in ast.walk(tree):
            imported = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            home_call = isinstance(node, ast.Attribute) and node.attr in ("home", "expanduser")
            if home_call or any(m.split(".")[0] == "platformdirs" for m in imported):
                offenders.append(f"{p.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}")
    assert not offenders, "use edge_runtime.paths: " + ", ".join(offenders)
