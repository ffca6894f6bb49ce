"""Candidates are tried in isolation, with a deadline: signed bundles that raise any exception
type at load, loop for ever in the smoke test, kill their process or allocate past the memory
limit are each marked bad within their time limit and never retried; the agent, `edgert sync
--once` and the `edgert sync --daemon` process survive them, and a good version published
afterwards installs. A real TUF repository on 127.0.0.1, signed by `converters.publish`."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hostile_bundles import publish_deep, with_graph_prefix, with_manifest

from converters import publish as pub
from edge_runtime.errors import ProfileError
from edge_runtime.profiles import load_profile
from edge_runtime.sync.agent import SyncAgent
from edge_runtime.sync.store import VersionStore
from edge_runtime.sync.trial import TEST_HOOK_ENV, CandidateFailed, TrialUnavailable, trial_limits, try_candidate

#: signs a bundle that `edgert verify` would refuse: the device, not the publisher, must catch it here
publish_bad = functools.partial(pub.publish, verify=False)

TIMEOUT_S = 5.0
MARGIN_S = 15.0  # child start + load on a busy 2-core machine, on top of the enforced deadline
LAPTOP = load_profile("laptop-x86_64")


def _profile(*backends: str, **probation):
    return dataclasses.replace(LAPTOP, backends=backends or LAPTOP.backends,
                               probation={**LAPTOP.probation, **probation})


def _dtype(value: str):
    def edit(m):
        m["artifacts"][0]["input"]["dtype"] = value
    return edit


def _output_name(m):
    m["artifacts"][0]["outputs"]["label"] = "no_such_output"


def _nothing(m):
    pass


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """The iris LogisticRegression bundle ``iris`` 1.0.0 (committed)."""
    from committed import copy_bundle

    return copy_bundle("iris", tmp_path_factory.mktemp("trial") / "iris")


def _good(base: Path, out: Path, version: str) -> Path:
    return with_manifest(base, out / f"good-{version}", _nothing, version=version)


#: kind -> (builder(base, dst, version), profile, env hook, memory MiB, reason pattern). Where
#: another engineer's stricter manifest checks may turn a raw exception into a BundleError first,
#: the pattern accepts that too: either way the version must be marked bad, never crash the agent.
CASES = {
    "TypeError at load (dtype 'foo')": (
        lambda b, d, v: with_manifest(b, d, _dtype("foo"), version=v), None, None, None,
        r"raised (TypeError|BundleError|InputError)|input.dtype' a string 'foo' is not one of"),
    "ValueError at smoke test (dtype 'U3')": (
        lambda b, d, v: with_manifest(b, d, _dtype("U3"), version=v), None, None, None,
        r"raised (ValueError|BundleError|InputError)|input.dtype' a string 'U3' is not one of"),
    "RecursionError (manifest nested 50k deep)": (
        lambda b, d, v: with_manifest(b, d, _nothing, version=v, nest=50_000), None, None, None,
        r"RecursionError|BundleError|too deep|nested|nests deeper"),
    "wrong output name": (
        lambda b, d, v: with_manifest(b, d, _output_name, version=v), None, None, None,
        r"raised \w+: .*no_such_output"),
    "Loop of 1e15 iterations, onnxruntime": (
        lambda b, d, v: with_graph_prefix(b, d, "loop", version=v), _profile("onnxruntime"), None, None,
        rf"did not finish within {TIMEOUT_S:g} s"),
    "Loop of 1e15 iterations, numpy backend": (  # refuses the operator instead of hanging
        lambda b, d, v: with_graph_prefix(b, d, "loop", version=v), _profile("numpy"), None, None,
        r"Loop"),
    "Loop, deadline from the profile": (
        lambda b, d, v: with_graph_prefix(b, d, "loop", version=v),
        _profile("onnxruntime", trial_timeout_s=2.0), None, None, r"did not finish within 2 s"),
    "load aborts (SIGABRT)": (
        lambda b, d, v: _good(b, d, v), None, "abort", None, r"died from SIGABRT"),
    "load is killed (SIGKILL)": (
        lambda b, d, v: _good(b, d, v), None, "sigkill", None, r"died from SIGKILL"),
    "load crashes (SIGSEGV)": (
        lambda b, d, v: _good(b, d, v), None, "segv", None, r"died from SIGSEGV"),
    "1 GiB tensor past a 512 MiB limit, onnxruntime": (
        lambda b, d, v: with_graph_prefix(b, d, "huge", version=v), _profile("onnxruntime"), None, 512,
        r"ran out of memory \(limit 512 MiB\)"),
    "1 GiB tensor past a 512 MiB limit, numpy backend": (
        lambda b, d, v: with_graph_prefix(b, d, "huge", version=v), _profile("numpy"), None, 512,
        r"ran out of memory \(limit 512 MiB\)"),
}


#: Cases that build their graph with the onnx package (workstation side): not device tests.
NEEDS_ONNX = ("Loop", "tensor")


@pytest.mark.parametrize("kind", [pytest.param(k, marks=() if any(w in k for w in NEEDS_ONNX) else pytest.mark.device)
                                  for k in CASES])
def test_bad_candidate_is_marked_bad_in_time_never_retried_and_a_good_one_follows(
        kind, base, http_repo, tmp_path, monkeypatch):
    build, profile, hook, memory_mb, reason = CASES[kind]
    keys, path, url = http_repo
    state = tmp_path / "state"
    timeout = None if profile and "trial_timeout_s" in profile.probation else TIMEOUT_S

    def agent() -> SyncAgent:
        return SyncAgent(url, (keys / "root.json").read_bytes(), state, device_id="d", profile=profile,
                         trial_timeout_s=timeout, trial_memory_mb=memory_mb)

    pub.publish(base, path, keys)
    assert agent().sync_once().version == "1.0.0"
    (publish_deep if "nested" in kind else publish_bad)(build(base, tmp_path / "bad", "1.1.0"), path, keys)
    if hook:
        monkeypatch.setenv(TEST_HOOK_ENV, hook)
    started = time.monotonic()
    r = agent().sync_once()
    assert time.monotonic() - started < agent().trial_limits.timeout_s + MARGIN_S
    monkeypatch.delenv(TEST_HOOK_ENV, raising=False)
    rec = VersionStore(state).read_active()
    assert not r.changed and rec["current"] == "1.0.0"
    assert r.rejected and r.rejected[0] == "1.1.0"
    assert re.search(reason, rec["known_bad"]["1.1.0"]), rec["known_bad"]["1.1.0"]
    assert not (state / "versions" / "1.1.0").exists()

    again = agent().sync_once()  # never retried
    assert not again.changed and again.rejected is None
    assert any("skip iris 1.1.0: marked bad" in d for d in again.decisions), again.decisions

    pub.publish(_good(base, tmp_path, "1.2.0"), path, keys)
    assert agent().sync_once().version == "1.2.0"


@pytest.mark.device
def test_cli_sync_once_refuses_with_one_line_and_exit_3(base, http_repo, tmp_path, cli_env):
    keys, path, url = http_repo
    state = tmp_path / "state"
    args = [sys.executable, "-m", "edge_runtime", "sync", "--once", "--repo", url, "--root",
            str(keys / "root.json"), "--state", str(state), "--trial-timeout", "5"]
    pub.publish(base, path, keys)
    assert subprocess.run(args, env=cli_env, capture_output=True, timeout=120).returncode == 0
    publish_bad(with_manifest(base, tmp_path / "bad", _dtype("foo"), version="1.1.0"), path, keys)
    r = subprocess.run(args, env=cli_env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    (line,) = [ln for ln in r.stderr.splitlines() if ln.startswith("edgert:")]
    assert line.startswith("edgert: rejected 1.1.0: ") and "dtype" in line and "foo" in line
    assert "sync: current version 1.0.0" in r.stdout
    r = subprocess.run(args, env=cli_env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "skip iris 1.1.0: marked bad" in r.stdout, r.stdout + r.stderr


def test_daemon_process_outlives_bad_versions_and_installs_the_good_one(base, http_repo, tmp_path, cli_env):
    """The real `edgert sync --daemon`: a TypeError, a manifest 50k deep and a smoke test that
    never ends are each refused once; the daemon keeps running and installs 2.0.0."""
    keys, path, url = http_repo
    state = tmp_path / "state"
    pub.publish(base, path, keys)
    log = tmp_path / "daemon.log"
    with open(log, "w") as out:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "edge_runtime", "sync", "--daemon", "--interval", "0.5s", "--repo", url,
             "--root", str(keys / "root.json"), "--state", str(state), "--trial-timeout", "5",
             "--profile", "laptop-x86_64"],
            env=cli_env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for(lambda: VersionStore(state).read_active()["current"] == "1.0.0", daemon, log)
        bad = {"1.1.0": lambda d, v: with_manifest(base, d, _dtype("foo"), version=v),
               "1.2.0": lambda d, v: with_manifest(base, d, _nothing, version=v, nest=50_000),
               "1.3.0": lambda d, v: with_graph_prefix(base, d, "loop", version=v)}
        for version, build in bad.items():
            (publish_deep if version == "1.2.0" else publish_bad)(build(tmp_path / version, version), path, keys)
            _wait_for(lambda v=version: v in VersionStore(state).read_active()["known_bad"], daemon, log)
        pub.publish(_good(base, tmp_path, "2.0.0"), path, keys)
        _wait_for(lambda: VersionStore(state).read_active()["current"] == "2.0.0", daemon, log)
        assert daemon.poll() is None
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
    text = log.read_text()
    assert "Traceback" not in text
    for version in bad:
        assert text.count(f"reject {version}:") == 1, text  # refused once, then skipped
    assert "did not finish within 5 s" in text


def _wait_for(cond, proc: subprocess.Popen, log: Path, within_s: float = TIMEOUT_S + 60) -> None:
    end = time.monotonic() + within_s
    while not cond():
        assert proc.poll() is None, f"the daemon exited ({proc.returncode}):\n{log.read_text()}"
        assert time.monotonic() < end, f"timed out waiting:\n{log.read_text()}"
        time.sleep(0.1)


@pytest.mark.device
def test_daemon_survives_a_pass_that_raises_outside_the_sync_errors(base, http_repo, tmp_path):
    """A pass that fails on the device's own side (here the TUF cache path is a file: OSError)
    is logged and retried; once it is fixed the daemon installs."""
    keys, path, url = http_repo
    state = tmp_path / "state"
    state.mkdir()
    (state / "tuf").write_text("not a directory")
    pub.publish(base, path, keys)
    lines: list[str] = []
    agent = SyncAgent(url, (keys / "root.json").read_bytes(), state, device_id="d", echo=lines.append)
    done = threading.Event()
    thread = threading.Thread(target=agent.daemon, args=(0.05,), daemon=True,
                              kwargs={"stop": lambda: done.is_set() or time.monotonic() > end})
    end = time.monotonic() + 60
    thread.start()
    while sum("sync failed (" in ln for ln in list(lines)) < 2 and thread.is_alive():
        time.sleep(0.02)
    assert thread.is_alive(), lines
    assert any("Error" in ln for ln in lines if "sync failed" in ln), lines
    (state / "tuf").unlink()
    while VersionStore(state).read_active()["current"] != "1.0.0" and thread.is_alive():
        time.sleep(0.05)
    done.set()
    thread.join(10)
    assert VersionStore(state).read_active()["current"] == "1.0.0", lines


@pytest.mark.device
def test_a_trial_that_cannot_start_does_not_blame_the_version(base, http_repo, tmp_path):
    """20 MiB is too little for the interpreter's own imports: the pass fails, nothing is
    marked bad, and with a workable limit the same version installs."""
    keys, path, url = http_repo
    state = tmp_path / "state"
    pub.publish(base, path, keys)
    starved = SyncAgent(url, (keys / "root.json").read_bytes(), state, device_id="d", trial_memory_mb=20)
    with pytest.raises(TrialUnavailable, match="the trial process failed to start"):
        starved.sync_once()
    rec = VersionStore(state).read_active()
    assert rec["current"] is None and rec["known_bad"] == {}
    assert SyncAgent(url, (keys / "root.json").read_bytes(), state, device_id="d").sync_once().version == "1.0.0"


@pytest.mark.device
def test_try_candidate_reports_the_backend_and_the_golden_figures(base):
    result = try_candidate(base, name="iris", version="1.0.0", profile=_profile("numpy"))
    assert result["backend"] == "numpy"
    assert result["figures"]["label_agreement"] == 1.0
    assert 0 <= result["figures"]["probabilities_max_abs_diff"] < 1e-4
    with pytest.raises(CandidateFailed, match="bundle says iris 1.0.0, signed metadata says iris 9.9.9"):
        try_candidate(base, name="iris", version="9.9.9")


def test_the_memory_limit_is_what_stops_the_huge_tensor(base, tmp_path):
    """The 1 GiB bundle refused above at 512 MiB passes under a 2 GiB limit: the limit decides
    (onnxruntime only: the numpy backend takes ~10 s to sum 1 GiB)."""
    huge = with_graph_prefix(base, tmp_path / "huge", "huge", version="1.0.0")
    assert try_candidate(huge, name="iris", version="1.0.0", profile=_profile("onnxruntime"),
                         memory_mb=2048)["backend"] == "onnxruntime"


@pytest.mark.device
@pytest.mark.parametrize(("hook", "reason"), [
    ("exit", r"^the trial process exited with status 7$"),
    ("garbage", r"^the trial process sent no readable result \(got '\\x00\{not json'\)$"),
])
def test_a_child_that_exits_or_answers_nonsense_fails_the_candidate(base, monkeypatch, hook, reason):
    monkeypatch.setenv(TEST_HOOK_ENV, hook)
    with pytest.raises(CandidateFailed, match=reason):
        try_candidate(base, name="iris", version="1.0.0")


@pytest.mark.device
def test_trial_hang_hook_is_killed_with_its_process_group(base, monkeypatch):
    monkeypatch.setenv(TEST_HOOK_ENV, "hang")
    started = time.monotonic()
    with pytest.raises(CandidateFailed, match="did not finish within 2 s"):
        try_candidate(base, name="iris", version="1.0.0", timeout_s=2.0)
    assert time.monotonic() - started < 2.0 + MARGIN_S


@pytest.mark.device
def test_trial_limits_explicit_then_profile_then_default():
    assert trial_limits() == trial_limits(None, timeout_s=None, memory_mb=None)
    assert (trial_limits().timeout_s, trial_limits().memory_mb) == (60.0, 2048)
    pi = load_profile("rpi-zero2w-armv7")  # 512 MiB of RAM: the limit follows the device
    assert trial_limits(pi).memory_mb == pi.memory_mb < 2048
    prof = _profile(trial_timeout_s=7, trial_memory_mb=300)
    assert (trial_limits(prof).timeout_s, trial_limits(prof).memory_mb) == (7.0, 300)
    assert trial_limits(prof, timeout_s=3, memory_mb=100).timeout_s == 3.0
    with pytest.raises(ValueError, match="trial_timeout_s = 0 is not a positive number"):
        trial_limits(timeout_s=0)
    with pytest.raises(ProfileError, match=r"\[probation\] trial_memory_mb = 'lots' is not a positive whole"):
        trial_limits(_profile(trial_memory_mb="lots"))


@pytest.mark.device
@pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups are POSIX")
def test_trial_leaves_no_process_behind(base, monkeypatch):
    monkeypatch.setenv(TEST_HOOK_ENV, "hang")
    before = _children()
    with pytest.raises(CandidateFailed):
        try_candidate(base, name="iris", version="1.0.0", timeout_s=1.0)
    assert _children() == before


@pytest.mark.device
@pytest.mark.skipif(not hasattr(signal, "alarm"), reason="the child's own deadline uses SIGALRM")
def test_a_trial_whose_agent_is_killed_does_not_outlive_its_deadline(base, monkeypatch, cli_env):
    """kill -9 of the agent mid-trial: the hanging child ends itself soon after its deadline."""
    code = ("import sys; from edge_runtime.sync.trial import try_candidate; "
            "try_candidate(sys.argv[1], name='iris', version='1.0.0', timeout_s=2.0)")
    agent = subprocess.Popen([sys.executable, "-c", code, str(base)], env={**cli_env, TEST_HOOK_ENV: "hang"})
    try:
        deadline = time.monotonic() + 60
        while not (pids := [p for p in _trial_pids(base) if "nanosleep" in _wchan(p)]):  # in the hook
            assert agent.poll() is None
            if time.monotonic() > deadline:
                pytest.skip("cannot see the trial child reach its hook (/proc/PID/wchan)")
            time.sleep(0.05)
        agent.kill()
        agent.wait()
        killed = time.monotonic()
        while _trial_pids(base) and time.monotonic() < killed + 2.0 + 5 + MARGIN_S:
            time.sleep(0.1)
        assert not _trial_pids(base), pids
    finally:
        agent.kill()
        for pid in _trial_pids(base):  # only when the test failed: leave nothing behind
            os.kill(pid, signal.SIGKILL)


def _wchan(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return ""


def _trial_pids(bundle: Path) -> list[int]:
    """Running (not zombie) trial processes for ``bundle``, from /proc."""
    out = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            running = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            continue
        if running and b"edge_runtime.sync.trial" in argv and str(bundle).encode() in argv:
            out.append(int(proc.name))
    return out


def _children() -> set[str]:
    """Pids of this process's children (Linux /proc), to see that none is left running."""
    proc = Path(f"/proc/{os.getpid()}/task")
    if not proc.exists():
        pytest.skip("needs /proc")
    out: set[str] = set()
    for task in proc.iterdir():
        with contextlib.suppress(OSError):
            out |= set((task / "children").read_text().split())
    return out
