"""Trying a candidate version in a child process, with a deadline and a memory limit.

A signed bundle is still untrusted code paths: its manifest and graph may make the loader raise
any exception type, recurse without end, loop for ever in a backend, allocate without bound or
crash the interpreter. So the load, the name/version check and the golden-row smoke test run in
a child (``python -m edge_runtime.sync.trial``) and whatever goes wrong there becomes one
:class:`CandidateFailed` with a reason a person can read; the agent's own process never sees
the candidate's exception, hang or crash.

Why ``subprocess`` and not ``multiprocessing``: spawn re-imports the parent's ``__main__`` (the
CLI, or an app that embeds the agent) in the child, and its result channel is pickle, which the
device never uses. A plain child with JSON on a pipe runs only this module, and a new session
lets the deadline kill the child and anything it started (a process group) at once.

The result travels on a duplicate of the child's stdout; the child's fd 1 is pointed at its
stderr first, so a library that prints cannot corrupt the result. The child's first line there
says it is set up (imports, limits, profile) and about to touch the candidate: a child that
fails before that is the device's problem (:class:`TrialUnavailable`; the version is not
blamed). The parent keeps at most ``_STDOUT_CAP`` bytes of result and the last
``_STDERR_TAIL`` bytes of stderr, so a chatty child cannot exhaust the agent's memory.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, Optional, Union

from ..errors import CandidateFailed, TrialUnavailable  # defined in errors.py; importable from here too

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MEMORY_MB = 2048
#: Test-only: ``EDGERT_TRIAL_TEST_HOOK=abort|sigkill|segv|hang|exit|garbage`` makes the trial child
#: crash, hang, exit 7 or answer nonsense right before it loads the candidate (read only in the
#: child, like ``EDGERT_SYNC_KILL_AT``).
TEST_HOOK_ENV = "EDGERT_TRIAL_TEST_HOOK"
_READY = b"ready\n"  # the child's first line, once it is set up and about to touch the candidate
_STDOUT_CAP = 1 << 20
_STDERR_TAIL = 4096
_REASON_CHARS = 300
_ALARM_GRACE_S = 5  # the child's own deadline, after the parent's: it outlives no dead agent
_OOM = re.compile(r"MemoryError|bad[ _]alloc|(failed|unable) to allocate|out of memory|cannot allocate memory|"
                  r"memory allocation", re.I)


@dataclasses.dataclass(frozen=True)
class TrialLimits:
    """How long and how much memory one trial may take."""

    timeout_s: float = DEFAULT_TIMEOUT_S
    memory_mb: Optional[int] = DEFAULT_MEMORY_MB  # None: no limit


def trial_limits(profile: Any = None, *, timeout_s: Optional[float] = None,
                 memory_mb: Optional[int] = None) -> TrialLimits:
    """Explicit values first, then the profile's ``[probation]`` keys ``trial_timeout_s`` and
    ``trial_memory_mb``, then the defaults (60 s; 2 GiB, or the device's memory if smaller).

    Raises:
        ProfileError: the profile's value is not a positive number (names the key).
        ValueError: an explicit value is not a positive number.
    """
    section = dict(getattr(profile, "probation", None) or {})
    device_mb = getattr(profile, "memory_mb", None)
    default_mb = min(DEFAULT_MEMORY_MB, int(device_mb)) if device_mb else DEFAULT_MEMORY_MB
    timeout = _limit(timeout_s, section, "trial_timeout_s", DEFAULT_TIMEOUT_S, profile)
    mb = _limit(memory_mb, section, "trial_memory_mb", default_mb, profile, integer=True)
    return TrialLimits(float(timeout), int(mb))


def _limit(explicit: Optional[float], section: dict[str, Any], key: str, default: float, profile: Any,
           integer: bool = False) -> float:
    value = explicit if explicit is not None else section.get(key, default)
    kinds = (int,) if integer else (int, float)
    if isinstance(value, kinds) and not isinstance(value, bool) and 0 < value < math.inf:
        return value
    what = f"a positive {'whole ' if integer else ''}number"
    if explicit is None:
        from ..errors import ProfileError

        raise ProfileError(f"profile {getattr(profile, 'name', '?')}: [probation] {key} = {value!r} "
                           f"is not {what}")
    raise ValueError(f"{key} = {value!r} is not {what}")


def try_candidate(path: Union[str, os.PathLike[str]], *, name: str, version: str, profile: Any = None,
                  timeout_s: float = DEFAULT_TIMEOUT_S,
                  memory_mb: Optional[int] = DEFAULT_MEMORY_MB) -> dict[str, Any]:
    """Load the bundle at ``path`` and run its golden rows in a child process, as the device
    would load it (``loader.load(..., verify=False)`` then ``check_golden()``).

    Returns ``{"backend": name, "figures": {...}, "seconds": s}`` from the child.

    Raises:
        CandidateFailed: the manifest names another model or version; the load or smoke test
            raised (any type); it did not finish within ``timeout_s``; the child died from a
            signal, ran out of memory (``memory_mb``, where ``RLIMIT_AS`` exists) or sent no
            readable result.
        TrialUnavailable: the child failed before it reached the candidate.
    """
    cmd = [sys.executable, "-m", __name__, os.fspath(path), "--name", name, "--version", version,
           "--deadline-s", str(timeout_s)]
    if memory_mb:
        cmd += ["--memory-mb", str(int(memory_mb))]
    if profile is not None:
        cmd += ["--profile", json.dumps(_profile_dict(profile), default=str)]
    started = time.monotonic()
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=_child_env(), start_new_session=os.name == "posix")
    except (OSError, ValueError) as exc:  # no usable sys.executable (an embedded interpreter)
        raise TrialUnavailable(f"cannot start the trial process {sys.executable!r}: {exc}") from None
    assert proc.stdout is not None and proc.stderr is not None
    out = _Reader(proc.stdout, keep_head=_STDOUT_CAP)
    err = _Reader(proc.stderr, keep_tail=_STDERR_TAIL)
    timed_out = False
    try:
        rc = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        rc = proc.wait()
    else:  # the child's own deadline fired first (a parent slow to wake): the same timeout
        timed_out = hasattr(signal, "SIGALRM") and rc == -signal.SIGALRM
    finally:
        for reader in (out, err):
            if not reader.join(2.0):  # a grandchild still holds the pipe open
                _kill_group(proc)
                reader.join(2.0)
    if not out.head.startswith(_READY):
        why = f"did not start within {timeout_s:g} s" if timed_out else f"failed to start (status {rc})"
        last = _last_line(err.text())
        raise TrialUnavailable(f"the trial process {why}" + (f": {last}" if last else ""))
    if timed_out:
        raise CandidateFailed(f"load and smoke test did not finish within {timeout_s:g} s "
                              "(the trial process was killed)")
    return _verdict(rc, out.head[len(_READY):], out.overflow, err.text(), memory_mb,
                    time.monotonic() - started)


def _verdict(rc: int, out: bytes, overflow: bool, stderr: str, memory_mb: Optional[int],
             seconds: float) -> dict[str, Any]:
    """The child's exit status and result line as a result, or the reason it failed."""
    last = _last_line(stderr)
    result = None if overflow else _parse_result(out)
    if rc < 0:
        try:
            sig = signal.Signals(-rc).name
        except ValueError:
            sig = f"signal {-rc}"
        why = f"the trial process died from {sig}"
        if _OOM.search(stderr) and memory_mb:
            why = f"ran out of memory (limit {memory_mb} MiB): {why}"
        raise CandidateFailed(why + (f" ({last})" if last else ""))
    if isinstance(result, dict) and result.get("ok") is False:
        stage, error, message = (str(result.get(k) or "") for k in ("stage", "error", "message"))
        raised = f"{error}: {message}" if message else error
        if error == "MemoryError" or _OOM.search(message):
            limit = f"limit {memory_mb} MiB" if memory_mb else "no limit set"
            raise CandidateFailed(_clip(f"ran out of memory ({limit}) during {stage}: {raised}"))
        if error == "CandidateFailed":
            raise CandidateFailed(_clip(message))
        raise CandidateFailed(_clip(f"{stage} raised {raised}"))
    if rc != 0:
        why = f"the trial process exited with status {rc}" + (f" ({last})" if last else "")
        if memory_mb and _OOM.search(stderr):
            why = f"ran out of memory (limit {memory_mb} MiB): {why}"
        raise CandidateFailed(_clip(why))
    if not (isinstance(result, dict) and result.get("ok") is True and isinstance(result.get("backend"), str)
            and isinstance(result.get("figures"), dict)
            and all(isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
                    for k, v in result["figures"].items())):
        shown = out[:80].decode("utf-8", "replace").strip() or "nothing"
        raise CandidateFailed(_clip(f"the trial process sent no readable result (got {shown!r})"))
    return {"backend": result["backend"], "figures": dict(result["figures"]), "seconds": seconds}


def _parse_result(out: bytes) -> Any:
    try:
        return json.loads(out.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


class _Reader:
    """Drains one pipe in a thread, keeping the first or the last bytes only (bounded memory)."""

    def __init__(self, pipe: IO[bytes], *, keep_head: int = 0, keep_tail: int = 0):
        self.head = b""
        self.tail = b""
        self.overflow = False
        self._pipe, self._head, self._tail = pipe, keep_head, keep_tail
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with self._pipe:
            while chunk := self._pipe.read1(65536):  # type: ignore[attr-defined]
                if self._head:
                    room = self._head - len(self.head)
                    self.head += chunk[:room]
                    self.overflow |= len(chunk) > room
                if self._tail:
                    self.tail = (self.tail + chunk)[-self._tail:]

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def text(self) -> str:
        return self.tail.decode("utf-8", "replace")


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the child's whole process group (POSIX), else the child itself."""
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover - Windows
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass


def _child_env() -> dict[str, str]:
    """The parent's environment (BLAS on one thread unless set), with this copy of edge_runtime
    first on the child's path (an app may have imported it from a directory not installed)."""
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):  # a few rows need one thread, and
        env.setdefault(var, "1")  # per-thread BLAS buffers would eat the address-space limit
    here = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _profile_dict(profile: Any) -> dict[str, Any]:
    if isinstance(profile, str):
        return {"ref": profile}
    data = dataclasses.asdict(profile)
    data.pop("path", None)
    data["backends"] = list(data["backends"])
    return {"fields": data}


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return _clip(lines[-1]) if lines else ""


def _clip(text: str) -> str:
    one = " ".join(text.split())
    return one if len(one) <= _REASON_CHARS else one[: _REASON_CHARS - 1] + "…"


# --- the child --------------------------------------------------------------------------------
def _limit_memory(memory_mb: Optional[int]) -> None:
    if not memory_mb:
        return
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows: no RLIMIT_AS
        return
    limit = int(memory_mb) * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _test_hook(result_fd: int) -> None:
    hook = os.environ.get(TEST_HOOK_ENV)
    if hook == "exit":
        os._exit(7)
    elif hook == "garbage":
        os.write(result_fd, b"\x00{not json")
        os._exit(0)
    elif hook == "abort":
        os.abort()
    elif hook == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif hook == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif hook == "hang":
        while True:
            time.sleep(3600)


def _setup(profile: Any) -> Any:
    """Everything the child does before it touches the candidate; a failure here is the
    device's (the parent sees no ready line), not the version's."""
    from .. import loader  # noqa: F401 - imported now, so a broken install fails before ready

    with contextlib.suppress(ImportError):
        import numpy  # noqa: F401 - every engine but onnxruntime-web needs it
    from ..profiles import load_profile, profile_from_dict

    if profile and "ref" in profile:
        return load_profile(profile["ref"])
    if profile:
        fields = dict(profile["fields"])
        return profile_from_dict(fields, name=str(fields.get("name", "profile")))
    return None


def _run_trial(path: str, name: str, version: str, prof: Any, stage: list[str], result_fd: int
               ) -> dict[str, Any]:
    from ..loader import load

    stage[0] = "load"
    _test_hook(result_fd)
    model = load(path, profile=prof, verify=False)
    try:
        stage[0] = "name check"
        m = model.manifest
        if (m.name, m.version) != (name, version):
            raise CandidateFailed(f"bundle says {m.name} {m.version}, signed metadata says {name} {version}")
        stage[0] = "smoke test"
        figures = model.check_golden()
        return {"ok": True, "backend": model.backend.name,
                "figures": {k: float(v) for k, v in figures.items()}}
    finally:
        model.close()


def _own_deadline(seconds: Optional[float]) -> None:
    """SIGALRM, with its default action (terminate, even inside native code), a few seconds
    after the parent's deadline: a trial whose agent was killed -9 does not spin for ever."""
    if seconds and hasattr(signal, "alarm"):
        signal.alarm(math.ceil(seconds) + _ALARM_GRACE_S)


def main(argv: Optional[list[str]] = None) -> int:
    """The child: one JSON object on the result channel (the original stdout), exit 0."""
    result_fd = os.dup(1)
    os.dup2(2, 1)  # whatever else prints (Python or native code) lands in stderr
    parser = argparse.ArgumentParser(prog="python -m edge_runtime.sync.trial")
    parser.add_argument("path")
    parser.add_argument("--name", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--memory-mb", type=int, default=None)
    parser.add_argument("--deadline-s", type=float, default=None)
    parser.add_argument("--profile", type=json.loads, default=None)
    args = parser.parse_args(argv)
    _own_deadline(args.deadline_s)
    _limit_memory(args.memory_mb)
    prof = _setup(args.profile)  # may raise: no ready line, so the parent blames the device
    reserve: Optional[bytearray] = bytearray(1 << 20)  # freed on MemoryError to report it
    os.write(result_fd, _READY)
    stage = ["start"]
    try:
        result = _run_trial(args.path, args.name, args.version, prof, stage, result_fd)
    except MemoryError as exc:
        reserve = None
        result = {"ok": False, "stage": stage[0], "error": "MemoryError", "message": _clip(str(exc))}
    except BaseException as exc:  # noqa: BLE001 - any failure of the candidate is reported
        result = {"ok": False, "stage": stage[0], "error": type(exc).__name__,
                  "message": _clip(str(exc) or repr(exc))}
    del reserve
    with os.fdopen(result_fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
