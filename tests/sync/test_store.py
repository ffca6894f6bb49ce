"""The version store's state machine on real bundles and a real directory: every transition
allowed and refused (a refusal leaves ``active.json`` byte for byte unchanged), old records,
retention that keeps a way back, verification at rest, and the hot-swap core keeping the record
honest when it cannot serve what the record names."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge_runtime.bundle import pack_bundle
from edge_runtime.errors import EdgeRuntimeError, IntegrityError
from edge_runtime.fsutil import atomic_write_json
from edge_runtime.hotswap import MAX_STARTS_ON_PROBATION, HotSwapModel
from edge_runtime.sync.errors import TransitionError
from edge_runtime.sync.store import ACTIVE, VersionStore

ROW = [[5.1, 3.5, 1.4, 0.2]]


pytestmark = pytest.mark.device


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The iris LogisticRegression bundle ``iris`` 1.0.0 (committed)."""
    from committed import copy_bundle

    return copy_bundle("iris", tmp_path_factory.mktemp("iris") / "b")


@pytest.fixture()
def archive(iris: Path, tmp_path: Path):
    """version -> a packed bundle of that version (the iris model, manifest version changed)."""
    def make(version: str) -> Path:
        out = tmp_path / "src" / f"iris-{version}.tar.gz"
        if out.exists():
            return out
        d = tmp_path / "src" / version
        shutil.copytree(iris, d)
        m = json.loads((d / "manifest.json").read_text())
        m["version"] = version
        (d / "manifest.json").write_text(json.dumps(m))
        return pack_bundle(d, out)
    return make


@pytest.fixture()
def store(tmp_path: Path) -> VersionStore:
    return VersionStore(tmp_path / "state")


def served(store: VersionStore, archive, version: str, *, commit: bool = True) -> None:
    """Install and activate ``version``, and commit it."""
    store.install(version, archive(version))
    store.activate(version)
    if commit:
        store.commit(version, "test: judged good")


def tamper(store: VersionStore, version: str) -> str:
    """Flip one byte in the middle of ``version``'s artifact; returns the file name."""
    m = json.loads((store.path(version) / "manifest.json").read_text())
    name = m["artifacts"][0]["path"]
    art = store.path(version) / name
    blob = bytearray(art.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    art.write_bytes(bytes(blob))
    return name


def record_bytes(store: VersionStore) -> bytes:
    return (store.root / ACTIVE).read_bytes()


# --- transitions ------------------------------------------------------------------------------
def test_the_allowed_path_install_activate_commit_rollback(store: VersionStore, archive) -> None:
    store.install("1.0.0", archive("1.0.0"))
    assert store.state_of("1.0.0") == "installed" and store.read_active()["current"] is None
    rec = store.activate("1.0.0", expect={"min_agreement": 0.8})
    assert rec["current"] == "1.0.0" and store.state_of("1.0.0") == "probation"
    assert rec["probation"]["version"] == "1.0.0" and rec["probation"]["expect"] == {"min_agreement": 0.8}
    store.commit("1.0.0", "200 predictions within limits")
    assert store.state_of("1.0.0") == "good" and store.read_active()["probation"] is None

    served(store, archive, "1.1.0", commit=False)
    assert store.read_active()["previous"] == "1.0.0" == store.rollback_target()
    assert store.rollback("failed probation: agreement 0.42 < 0.8", expect_current="1.1.0") == "1.0.0"
    rec = store.read_active()
    assert rec["current"] == "1.0.0" and rec["probation"] is None and rec["previous"] is None
    assert store.state_of("1.1.0") == "bad"
    assert rec["known_bad"]["1.1.0"] == "failed probation: agreement 0.42 < 0.8"
    assert [h["event"] for h in rec["history"]] == ["install", "activate", "commit", "install",
                                                   "activate", "rollback"]
    assert rec["history"][-1]["reason"] == "from 1.1.0: failed probation: agreement 0.42 < 0.8"


def test_refused_transitions_leave_the_record_unchanged(store: VersionStore, archive) -> None:
    with pytest.raises(TransitionError, match="no previous version"):
        store.rollback("nothing yet")
    served(store, archive, "1.0.0")
    store.install("1.1.0", archive("1.1.0"))
    store.mark_bad("1.1.0", "smoke test failed")
    before = record_bytes(store)
    refusals = [
        (lambda: store.commit("1.0.0", "again"), "cannot commit 1.0.0: it is good"),
        (lambda: store.activate("1.1.0"), "cannot activate 1.1.0: it is bad: smoke test failed"),
        (lambda: store.install("1.1.0", archive("1.1.0")), "cannot install 1.1.0: it is bad"),
        (lambda: store.install("1.0.0", archive("1.0.0")), "it is the version being served"),
        (lambda: store.mark_bad("1.1.0", "twice"), "cannot mark bad 1.1.0: it is bad"),
        (lambda: store.rollback("x"), "no previous version"),
        (lambda: store.rollback("x", to="1.1.0"), "cannot rollback to 1.1.0: it is bad"),
        (lambda: store.rollback("x", to="1.0.0"), "1.0.0 is already current"),
        (lambda: store.rollback("x", to="9.9.9"), "9.9.9 is not installed here"),
        (lambda: store.rollback("x", expect_current="1.1.0"), "1.0.0 is current"),
        (lambda: store.commit("9.9.9", "x"), "cannot commit 9.9.9: it is absent"),
    ]
    for call, message in refusals:
        with pytest.raises(TransitionError, match=message):
            call()
        assert record_bytes(store) == before, message


def test_a_newer_activation_ends_an_unjudged_probation_as_good(store: VersionStore, archive) -> None:
    served(store, archive, "1.0.0", commit=False)  # nobody judged it (a sync-only device)
    served(store, archive, "1.1.0", commit=False)
    assert store.state_of("1.0.0") == "good" and store.rollback_target() == "1.0.0"
    assert [h["event"] for h in store.read_active()["history"]][-2:] == ["supersede", "activate"]


def test_a_bad_current_version_keeps_serving_when_nothing_else_is_installed(
        store: VersionStore, archive) -> None:
    served(store, archive, "1.0.0")
    store.mark_bad("1.0.0", "revoked by the publisher: recall")
    rec = store.read_active()
    assert rec["current"] == "1.0.0" and store.state_of("1.0.0") == "bad"
    served(store, archive, "1.1.0", commit=False)  # the replacement
    assert store.state_of("1.0.0") == "bad" and store.rollback_target() is None


def test_records_written_before_states_existed_are_read(store: VersionStore, archive) -> None:
    served(store, archive, "1.0.0")
    served(store, archive, "1.1.0")
    served(store, archive, "1.2.0")
    atomic_write_json(store.root / ACTIVE, {  # what the previous agent wrote
        "current": "1.2.0", "previous": "1.1.0", "known_bad": {"1.1.0": "failed probation: x"},
        "probation": {"version": "1.2.0", "started": 1.0, "starts": 1},
        "history": ["1.0.0", {"time": "t", "event": "activate", "version": "1.2.0", "reason": ""}]})
    assert [store.state_of(v) for v in ("1.0.0", "1.1.0", "1.2.0")] == ["good", "bad", "probation"]
    assert store.rollback_target() == "1.0.0"
    assert store.read_active()["history"][0]["event"] == "legacy"
    store.commit("1.2.0", "upgraded in place")
    assert store.state_of("1.2.0") == "good"


# --- retention --------------------------------------------------------------------------------
def test_retention_deletes_bad_first_and_never_the_way_back(store: VersionStore, archive) -> None:
    served(store, archive, "1.0.0")
    served(store, archive, "1.1.0")
    for i in range(5):  # five bad versions in a row, each rolled back after activation
        v = f"1.2.{i}"
        served(store, archive, v, commit=False)
        assert store.rollback("failed probation: test", expect_current=v) == "1.1.0"
        assert store.prune() == [v]
    assert store.installed() == ["1.0.0", "1.1.0"]
    assert sorted(store.read_active()["known_bad"]) == [f"1.2.{i}" for i in range(5)]  # reasons kept
    assert store.rollback("manual rollback") == "1.0.0"  # the way back is still there


def test_retention_keeps_n_and_the_rollback_target_before_unjudged_leftovers(
        tmp_path: Path, archive) -> None:
    store = VersionStore(tmp_path / "state", keep=3)
    for v in ("1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0"):
        served(store, archive, v)
    assert store.prune() == ["1.0.0", "1.1.0"] and store.installed() == ["1.2.0", "1.3.0", "1.4.0"]
    two = VersionStore(tmp_path / "state", keep=2)
    two.install("1.5.0", archive("1.5.0"))  # a leftover never activated (e.g. a crash before switch)
    assert two.prune() == ["1.5.0", "1.2.0"]  # unjudged first, then the oldest good
    assert two.installed() == ["1.3.0", "1.4.0"] and two.rollback_target() == "1.3.0"
    assert not [p for p in two.versions.iterdir() if p.name.startswith(".")]


# --- verified at rest -------------------------------------------------------------------------
def test_a_version_changed_at_rest_is_never_activated(store: VersionStore, archive) -> None:
    served(store, archive, "1.0.0")
    store.install("1.1.0", archive("1.1.0"))
    name = tamper(store, "1.1.0")
    before = record_bytes(store)
    with pytest.raises(IntegrityError, match=f"tampered at rest: {name} digest mismatch"):
        store.activate("1.1.0")
    assert record_bytes(store) == before


def test_hot_swap_start_on_a_tampered_current_serves_the_previous_good(store: VersionStore,
                                                                        archive) -> None:
    served(store, archive, "1.0.0")
    served(store, archive, "1.1.0")
    name = tamper(store, "1.1.0")
    model = HotSwapModel(store.root)
    try:
        assert model.version == "1.0.0" and model.predict(ROW).shape == (1,)
        rec = store.read_active()
        assert rec["current"] == "1.0.0"
        assert rec["known_bad"]["1.1.0"].startswith(f"tampered at rest: {name} digest mismatch")
    finally:
        model.close()


def test_hot_swap_refusing_a_version_rolls_the_record_back_to_what_serves(
        store: VersionStore, archive) -> None:
    served(store, archive, "1.0.0")
    model = HotSwapModel(store.root, check_every_s=3600)
    try:
        served(store, archive, "1.1.0", commit=False)
        tamper(store, "1.1.0")  # changed between activation and the swap
        assert model.refresh(force=True) is False
        assert model.version == "1.0.0" and "tampered at rest" in (model.last_swap_error or "")
        rec = store.read_active()
        assert rec["current"] == "1.0.0" and store.state_of("1.1.0") == "bad"  # honest state
        served(store, archive, "1.2.0", commit=False)
        assert model.refresh(force=True) is True and model.version == "1.2.0"
    finally:
        model.close()


def test_no_loadable_version_is_a_clear_error(store: VersionStore, archive) -> None:
    served(store, archive, "1.0.0")
    tamper(store, "1.0.0")
    with pytest.raises(EdgeRuntimeError, match="no loadable model version.*tampered at rest"):
        HotSwapModel(store.root)


def test_a_version_that_keeps_crashing_on_start_is_rolled_back(store: VersionStore, archive) -> None:
    served(store, archive, "1.0.0")
    served(store, archive, "1.1.0", commit=False)
    for _ in range(MAX_STARTS_ON_PROBATION):
        assert store.count_start(MAX_STARTS_ON_PROBATION) is None
    assert store.count_start(MAX_STARTS_ON_PROBATION) == "1.0.0"
    assert "crash on start" in store.read_active()["known_bad"]["1.1.0"]


# --- CLI --------------------------------------------------------------------------------------
def test_cli_rollback_with_a_reason_and_versions_say_why(store: VersionStore, archive,
                                                         cli_env: dict) -> None:
    served(store, archive, "1.0.0")
    served(store, archive, "1.1.0")
    store.install("1.2.0", archive("1.2.0"))
    store.mark_bad("1.2.0", "smoke test: golden label agreement 0.3")

    def edgert(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "edge_runtime", *args, "--state", str(store.root)],
                              capture_output=True, text=True, env=cli_env, timeout=60)

    r = edgert("rollback", "--reason", "field report: drifting on site B")
    assert r.returncode == 0 and "current version 1.0.0" in r.stdout, r.stderr
    r = edgert("versions")
    lines = {line.split()[0]: line for line in r.stdout.splitlines() if line and not line.startswith(" ")}
    assert lines["1.0.0"].split()[1:3] == ["good", "current"]
    assert lines["1.1.0"].split()[1] == "bad" and "field report: drifting on site B" in lines["1.1.0"]
    assert "golden label agreement 0.3" in lines["1.2.0"]
    doc = json.loads(edgert("versions", "--json").stdout)
    rows = {row["version"]: row for row in doc["versions"]}
    assert rows["1.1.0"]["state"] == "bad" and rows["1.1.0"]["reason"] == "field report: drifting on site B"
    assert rows["1.0.0"]["current"] is True and doc["history"][-1]["event"] == "rollback"
    r = edgert("rollback")
    assert r.returncode == 1 and "no previous version to roll back to" in r.stderr
    assert "Traceback" not in r.stderr


def _profile(max_p99_ms: float) -> object:
    """Probation over 5 calls with a p99 limit (1e-6 ms: every call fails)."""
    from edge_runtime.profiles import load_profile

    base = load_profile("laptop-x86_64")
    rules = {"predictions": 5, "max_error_rate": 0.5, "max_p99_ms": max_p99_ms}
    return type(base)(**{**base.__dict__, "probation": rules})


def _strict_profile() -> object:
    return _profile(1e-6)


def test_a_verdict_while_the_record_is_locked_is_recorded_on_a_later_call(
        store: VersionStore, archive, monkeypatch: pytest.MonkeyPatch) -> None:
    import fcntl

    from edge_runtime.sync import store as store_module

    monkeypatch.setattr(store_module, "LOCK_TIMEOUT_S", 0.05)
    served(store, archive, "1.0.0")
    served(store, archive, "1.1.0", commit=False)
    model = HotSwapModel(store.root, profile=_profile(1000.0))
    try:
        with open(store.root / store_module.LOCK, "a+") as held:  # another process's transition
            fcntl.flock(held.fileno(), fcntl.LOCK_EX)
            for _ in range(5):
                model.predict(ROW)
            assert store.state_of("1.1.0") == "probation"  # deferred, the caller was not failed
        model._monitor_for("1.1.0").drain()  # noqa: SLF001 - the shadow answered every sample
        model.predict(ROW)
        assert store.state_of("1.1.0") == "good" and store.read_active()["probation"] is None
    finally:
        model.close()


def test_a_failed_probation_is_recorded_in_the_store_and_swapped_back(store: VersionStore,
                                                                       archive) -> None:
    served(store, archive, "1.0.0")
    served(store, archive, "1.1.0", commit=False)
    model = HotSwapModel(store.root, profile=_strict_profile())
    try:
        assert model.version == "1.1.0"
        for _ in range(5):
            model.predict(ROW)
        assert model.version == "1.0.0" and store.read_active()["current"] == "1.0.0"
        assert store.read_active()["known_bad"]["1.1.0"].startswith("failed probation: p99 latency")
    finally:
        model.close()


def test_a_first_version_failing_probation_is_marked_bad_and_keeps_serving(store: VersionStore,
                                                                            archive) -> None:
    served(store, archive, "1.0.0", commit=False)  # nothing to roll back to
    model = HotSwapModel(store.root, profile=_strict_profile())
    try:
        for _ in range(6):
            assert model.predict(ROW).shape == (1,)  # never no model
        rec = store.read_active()
        assert rec["current"] == "1.0.0" and store.state_of("1.0.0") == "bad"
        assert rec["probation"] is None and rec["known_bad"]["1.0.0"].startswith("failed probation")
    finally:
        model.close()
