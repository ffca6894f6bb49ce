"""The version store: ``versions/<version>/`` unpacked, verified bundles and one ``active.json``
record, the single owner of every lifecycle transition.

Each version is in one of four states, and only the transitions below exist (anything else
raises :class:`~edge_runtime.sync.errors.TransitionError`)::

    (absent) --install--> installed --activate--> probation --commit--> good
                                                  probation --rollback/mark_bad--> bad
    good --rollback (to)--> current again          good/installed --mark_bad--> bad
    installed/good/bad (not current, not the rollback target) --prune--> (removed)

``installed``: unpacked and digest-checked, never served. ``probation``: current, being judged.
``good``: served without a failing verdict (committed, or superseded by a newer activation
before its verdict). ``bad``: never served again; the reason is kept even after pruning.

Every transition takes the record lock (``active.lock``, short, shared by the agent, the
server and ``HotSwapModel``), re-reads the record, validates, appends a history event and
replaces ``active.json`` atomically (write-temp, fsync, rename, fsync dir), so a crash at any
instant leaves the old record or the new one. Records written before ``states`` existed are
read by inferring each version's state (a device upgraded in place keeps working).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Optional, Union

from ..bundle import MANIFEST_NAME, Bundle, open_bundle, parse_semver, unpack_bundle
from ..errors import BundleError, IntegrityError
from ..fsutil import atomic_write_json, fsync_dir
from ..paths import state_dir
from ..signing import TrustedKeys, TrustSource, manifest_gate, required_trust, verify_bundle
from .errors import StoreBusy, TransitionError

ACTIVE = "active.json"
LOCK = "active.lock"
HISTORY_LIMIT = 200
LOCK_TIMEOUT_S = 10.0
STATES = ("installed", "probation", "good", "bad")
#: transition -> states a version may be in before it ("absent": not in the store)
ALLOWED = {
    "install": ("absent", "installed", "good"),
    "activate": ("installed",),
    "commit": ("probation",),
    "mark_bad": ("absent", "installed", "probation", "good"),
    "rollback_to": ("good", "installed"),
    "prune": ("installed", "good", "bad"),
}
#: kill -9 test hooks inside the store's own transitions (see :func:`checkpoint`)
VERDICT_STEPS = ("commit", "rollback")


def checkpoint(step: str) -> None:
    """Test hook: ``EDGERT_SYNC_KILL_AT=<step>`` kills this process (SIGKILL) right there, to
    prove that a power cut at any step leaves a loadable store."""
    if os.environ.get("EDGERT_SYNC_KILL_AT") == step:
        os.kill(os.getpid(), signal.SIGKILL)


def default_state_dir() -> Path:
    """The store's root when none is given: the device's state dir (``edge_runtime.paths``)."""
    return state_dir()


def is_store(path: Union[str, os.PathLike[str]]) -> bool:
    """A directory laid out as a version store (``active.json`` and ``versions/``)."""
    p = Path(path)
    return p.is_dir() and (p / ACTIVE).is_file() and (p / "versions").is_dir()


def resolve_version_dir(root: Path, version: str) -> Path:
    """The bundle of ``version`` under ``root``: ``versions/<v>/`` when it holds a manifest, else
    its single ``*.tar.gz``.

    Raises:
        BundleError: the version name is unsafe or the version holds no bundle.
    """
    if not version or "/" in version or "\\" in version or version in (".", "..") \
            or version.startswith("."):
        raise BundleError(f"{root}: unsafe version name {version!r} in {ACTIVE}")
    vdir = Path(root) / "versions" / version
    if (vdir / MANIFEST_NAME).is_file():
        return vdir
    archives = sorted(vdir.glob("*.tar.gz")) if vdir.is_dir() else []
    if len(archives) == 1:
        return archives[0]
    raise BundleError(f"{vdir}: no bundle (expected {MANIFEST_NAME} or one .tar.gz)")


def _native_digests(bundle: Bundle) -> dict[str, str]:
    return {a.path: a.sha256 for a in bundle.manifest.artifacts if a.format == "native"}


def installed_through_tuf(bundle: Bundle) -> bool:
    """Whether ``bundle`` is a version of a store that the sync agent installed from a TUF
    download (the record keeps its native artifacts' digests, which must still be the
    manifest's; read_artifact then holds the bytes to them). Gates native code on unsigned bundles."""
    origin = Path(bundle.origin)
    vdir = origin if origin.is_dir() else origin.parent
    root = vdir.parent.parent
    if vdir.parent.name != "versions" or not is_store(root):
        return False
    try:
        rec = json.loads((root / ACTIVE).read_text())
    except (OSError, ValueError):
        return False
    via = rec.get("via_tuf") if isinstance(rec, dict) else None
    want = via.get(vdir.name) if isinstance(via, dict) else None
    if not isinstance(want, dict) or vdir.name in (rec.get("known_bad") or {}):
        return False
    return bool(want) and want == _native_digests(bundle)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class VersionStore:
    """One device's models and the state machine over them (see the module docstring)."""

    def __init__(self, state_dir: Union[str, os.PathLike[str], None] = None, keep: int = 3,
                 trust: Optional[TrustSource] = None):
        self.root = Path(state_dir) if state_dir is not None else default_state_dir()
        #: keys bundles must be signed by (None: the device policy, see edge_runtime.signing);
        #: a model owner's keys, independent of the TUF roles that protect the download
        self.trust = trust
        self.versions = self.root / "versions"
        self.keep = max(2, keep)
        self.versions.mkdir(parents=True, exist_ok=True)

    # --- the record -------------------------------------------------------------------------
    def read_active(self) -> dict[str, Any]:
        """The record, normalised: every key present, ``states`` inferred for old records."""
        try:
            data = json.loads((self.root / ACTIVE).read_text())
        except (OSError, ValueError):
            data = {}
        if not isinstance(data, dict):
            data = {}
        for key, default in (("current", None), ("previous", None), ("probation", None),
                             ("pinned", None)):
            data.setdefault(key, default)
        if not isinstance(data.get("known_bad"), dict):
            data["known_bad"] = {}
        history = data.get("history")
        data["history"] = [h if isinstance(h, dict) else
                           {"time": "", "event": "legacy", "version": str(h), "reason": ""}
                           for h in (history if isinstance(history, list) else []) if h is not None]
        if not isinstance(data.get("probation"), dict):
            data["probation"] = None
        if not isinstance(data.get("states"), dict):
            data["states"] = self._infer_states(data)
        return data

    def _infer_states(self, rec: dict[str, Any]) -> dict[str, str]:
        """States of a record written before they were recorded: bad if known bad, probation
        for a current version on probation, good for every other version on disk (the old agent
        activated each version right after installing it)."""
        states = {v: "bad" for v in rec["known_bad"]}
        for v in self.installed():
            states.setdefault(v, "good")
        prob = rec.get("probation") or {}
        cur = rec.get("current")
        if cur and cur not in rec["known_bad"]:
            states[cur] = "probation" if prob.get("version") == cur else "good"
        return states

    def state_of(self, version: str, rec: Optional[dict[str, Any]] = None) -> str:
        """``installed``/``probation``/``good``/``bad``, or ``absent``."""
        rec = rec if rec is not None else self.read_active()
        if version in rec["known_bad"]:
            return "bad"
        return rec["states"].get(version, "installed" if self._on_disk(version) else "absent")

    def rollback_target(self, rec: Optional[dict[str, Any]] = None) -> Optional[str]:
        """The version a rollback returns to: the newest good one on disk other than current."""
        rec = rec if rec is not None else self.read_active()
        good = [v for v in self.installed()
                if v != rec["current"] and self.state_of(v, rec) == "good"]
        return good[-1] if good else None

    def _write(self, rec: dict[str, Any], event: str, version: Optional[str], reason: str = "") -> None:
        """Append the event, refresh ``previous`` and replace ``active.json`` atomically."""
        rec["history"].append({"time": _now(), "event": event, "version": version, "reason": reason})
        rec["history"] = rec["history"][-HISTORY_LIMIT:]
        rec["previous"] = self.rollback_target(rec)
        atomic_write_json(self.root / ACTIVE, rec)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """Hold the record lock and yield the fresh record (callers then validate and write).

        Raises:
            StoreBusy: the lock was held elsewhere for longer than ``LOCK_TIMEOUT_S``.
        """
        fh = open(self.root / LOCK, "a+")  # noqa: SIM115 - closed in finally
        try:
            try:
                import fcntl
            except ImportError:  # Windows: best effort, one writer assumed
                fcntl = None  # type: ignore[assignment]
            deadline = time.monotonic() + LOCK_TIMEOUT_S
            while fcntl is not None:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise StoreBusy(f"{self.root}: the store record is locked by another "
                                        f"process (more than {LOCK_TIMEOUT_S:g} s)") from None
                    time.sleep(0.01)
            yield self.read_active()
        finally:
            fh.close()

    def _require(self, transition: str, version: str, rec: dict[str, Any]) -> str:
        state = self.state_of(version, rec)
        if state not in ALLOWED[transition]:
            why = f": {rec['known_bad'][version]}" if state == "bad" else ""
            raise TransitionError(f"cannot {transition.replace('_', ' ')} {version}: it is {state}{why}")
        return state

    # --- versions ---------------------------------------------------------------------------
    def path(self, version: str) -> Path:
        return self.versions / version

    def bundle_path(self, version: str) -> Path:
        """Where ``version``'s bundle is (directory or single archive).

        Raises:
            BundleError: unsafe name or no bundle there.
        """
        return resolve_version_dir(self.root, version)

    def _on_disk(self, version: str) -> bool:
        try:
            self.bundle_path(version)
        except BundleError:
            return False
        return True

    def installed(self) -> list[str]:
        """Versions on disk, oldest first (semver order)."""
        out = []
        for p in self.versions.iterdir():
            if not p.is_dir() or p.name.startswith("."):
                continue
            try:
                parse_semver(p.name)
            except BundleError:  # foreign directories are not versions
                continue
            if self._on_disk(p.name):
                out.append(p.name)
        return sorted(out, key=parse_semver)

    def current_path(self) -> Optional[Path]:
        cur = self.read_active()["current"]
        return self.path(cur) if cur else None

    def verify_at_rest(self, version: str) -> Path:
        """Re-check the manifest's size and sha256 of every artifact of ``version`` on disk
        (a file changed since install is never handed to an engine), and its signature when one
        is required (``trust``/device policy). Returns its bundle path.

        Raises:
            IntegrityError: "tampered at rest: <file> digest mismatch (...)", or "signature
                check failed at rest: ..." (unsigned, unknown key, a file changed/added/removed).
            BundleError: no bundle, unreadable manifest, or its version is not ``version``.
        """
        path = self.bundle_path(version)
        keys = self._keys()
        bundle = self._open(path, keys)
        if bundle.manifest.version != version:
            raise BundleError(f"{path}: manifest version {bundle.manifest.version} does not match "
                              f"the store's {version}")
        for art in bundle.manifest.artifacts:
            try:
                bundle.read_artifact(art)
            except IntegrityError as exc:
                detail = str(exc).replace(f"{bundle.origin}: ", "")
                raise IntegrityError(f"tampered at rest: {art.path} digest mismatch ({detail})") from None
        self.check_signature(bundle, keys)
        return path

    def _keys(self) -> Optional[TrustedKeys]:
        """The keys a signature must come from, or None: none is required."""
        return required_trust(self.trust)

    def _open(self, path: Path, keys: Optional[TrustedKeys]) -> Bundle:
        """A stored bundle, its manifest checked against the signature of ``keys`` (the store's
        :meth:`_keys`) before it is parsed.

        Raises:
            IntegrityError: "signature check failed at rest: ..." (as :meth:`check_signature`).
            BundleError: no bundle, or an unreadable manifest.
        """
        try:
            return open_bundle(path, gate=manifest_gate(keys))
        except IntegrityError as exc:
            raise IntegrityError(f"signature check failed at rest: {exc}") from None

    def check_signature(self, bundle: Bundle, keys: Optional[TrustedKeys] = None) -> None:
        """The store's one signature hook (install, activation, every start through
        :meth:`verify_at_rest`): a no-op unless a signature is required. ``keys``: the store's
        :meth:`_keys`, when the caller has them already.

        Raises:
            IntegrityError: "signature check failed at rest: ..." naming the file or the reason.
        """
        keys = keys if keys is not None else self._keys()
        if keys is None:
            return
        try:
            verify_bundle(bundle, keys)
        except IntegrityError as exc:
            raise IntegrityError(f"signature check failed at rest: {exc}") from None

    # --- transitions ------------------------------------------------------------------------
    def install(self, version: str, archive: Path, *, via_tuf: bool = False) -> Path:
        """Unpack ``archive`` as ``version`` (members checked, digests verified, built aside then
        renamed into place) and record it as ``installed``. ``via_tuf``: the archive is a target
        the TUF client verified; its native artifacts' digests are recorded, so the loader may
        run that compiled code although the bundle itself is unsigned.

        Raises:
            TransitionError: the version is current or known bad.
            BundleError: the archive is unsafe or its digests do not match.
            IntegrityError: a required signature is missing, untrusted or does not match.
        """
        rec = self.read_active()
        if version == rec["current"]:
            raise TransitionError(f"cannot install {version}: it is the version being served")
        self._require("install", version, rec)
        dst = self.path(version)
        if dst.exists():  # an older, unverified leftover of the same version
            self._set_aside(version)
            self.remove_leftovers()
        # an archive TUF verified is the publisher's to the byte; any other is checked against
        # its signature before its manifest is parsed
        keys = self._keys()
        gate = None if via_tuf else manifest_gate(keys)
        try:
            path = unpack_bundle(archive, dst, gate=gate)
        except IntegrityError as exc:
            if gate is None:
                raise
            raise IntegrityError(f"signature check failed at install: {exc}") from None
        try:
            bundle = self._open(path, keys)
            self.check_signature(bundle, keys)  # before the version is recorded at all
        except BundleError:
            self._set_aside(version)
            self.remove_leftovers()
            raise
        with self._locked() as rec:
            self._require("install", version, rec)  # nobody marked it bad meanwhile
            rec["states"][version] = "installed"
            via = rec["via_tuf"] if isinstance(rec.get("via_tuf"), dict) else {}
            via.pop(version, None)
            if via_tuf:
                via[version] = _native_digests(bundle)
            rec["via_tuf"] = via
            self._write(rec, "install", version)
        return path

    def activate(self, version: str, *, reason: str = "smoke test passed",
                 expect: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        """Serve ``version`` from now on, on probation; the version it replaces becomes good
        (unless it is bad). ``expect``: the publisher's signed probation expectations, kept in
        the probation record for the judge. Returns the new record.

        Raises:
            TransitionError: ``version`` is not ``installed``.
            IntegrityError: its files changed since install (tampered at rest).
        """
        self.verify_at_rest(version)
        with self._locked() as rec:
            self._require("activate", version, rec)
            old = rec["current"]
            if old and self.state_of(old, rec) == "probation":
                rec["states"][old] = "good"
                rec["history"].append({"time": _now(), "event": "supersede", "version": old,
                                       "reason": f"no probation verdict before {version} was activated"})
            rec["current"] = version
            rec["states"][version] = "probation"
            rec["probation"] = {"version": version, "started": time.time(), "starts": 0}
            if expect:
                rec["probation"]["expect"] = dict(expect)
            self._write(rec, "activate", version, reason)
            return rec

    def commit(self, version: str, reason: str) -> None:
        """Probation passed: ``version`` becomes good.

        Raises:
            TransitionError: ``version`` is not the current version on probation.
        """
        with self._locked() as rec:
            self._require("commit", version, rec)
            if rec["current"] != version:
                raise TransitionError(f"cannot commit {version}: {rec['current']} is current")
            rec["states"][version] = "good"
            rec["probation"] = None
            checkpoint("commit")
            self._write(rec, "commit", version, reason)

    def mark_bad(self, version: str, reason: str) -> None:
        """``version`` is never served or installed again (its reason is kept). Marking the
        current version bad does not change what is served: with no good version to return to,
        a bad current keeps serving until a replacement installs (never no model).

        Raises:
            TransitionError: it is already bad.
        """
        with self._locked() as rec:
            self._require("mark_bad", version, rec)
            rec["known_bad"][version] = reason
            rec["states"][version] = "bad"
            if (rec.get("probation") or {}).get("version") == version:
                rec["probation"] = None
            self._write(rec, "reject", version, reason)

    def rollback(self, reason: str, *, to: Optional[str] = None,
                 expect_current: Optional[str] = None) -> str:
        """Serve ``to`` (default: the rollback target, the newest good version) again and mark
        the abandoned current version bad with ``reason``. ``expect_current``: act only if the
        record still names that version as current (a verdict about a version that is no longer
        current is void). Returns the version now current.

        Raises:
            TransitionError: nothing to roll back to, ``to`` not installed / bad / already
                current, or the current version is not ``expect_current``.
        """
        with self._locked() as rec:
            abandoned = rec["current"]
            if expect_current is not None and abandoned != expect_current:
                raise TransitionError(f"cannot roll back {expect_current}: {abandoned} is current")
            target = to or self.rollback_target(rec)
            if not target:
                raise TransitionError("no previous version to roll back to")
            if target == abandoned:
                raise TransitionError(f"{target} is already current")
            if not self._on_disk(target):
                raise TransitionError(f"{target} is not installed here (installed: "
                                      f"{', '.join(self.installed()) or 'none'})")
            state = self._require("rollback_to", target, rec)
            if abandoned and abandoned not in rec["known_bad"]:
                rec["known_bad"][abandoned] = reason
                rec["states"][abandoned] = "bad"
            rec["current"] = target
            rec["probation"] = None
            if state == "installed":  # never served before: judged like any first activation
                rec["states"][target] = "probation"
                rec["probation"] = {"version": target, "started": time.time(), "starts": 0}
            checkpoint("rollback")
            self._write(rec, "rollback", target, f"from {abandoned}: {reason}")
            return target

    def count_start(self, max_starts: int) -> Optional[str]:
        """One more process start of the current version on probation; past ``max_starts``
        without a commit it is rolled back (crash on start). Returns the version rolled back to.

        Raises:
            StoreBusy: the record lock could not be taken.
        """
        with self._locked() as rec:
            prob = rec.get("probation")
            if not prob or prob.get("version") != rec["current"]:
                return None
            prob["starts"] = int(prob.get("starts", 0)) + 1
            if prob["starts"] <= max_starts or not self.rollback_target(rec):
                self._write(rec, "start", rec["current"], f"start {prob['starts']} on probation")
                return None
        try:
            return self.rollback(f"failed probation: {prob['starts'] - 1} starts without reaching "
                                 "commit (crash on start)", expect_current=prob["version"])
        except TransitionError:
            return None

    def prune(self) -> list[str]:
        """Retention: delete bad versions, then unjudged ``installed`` ones, then the oldest
        good ones until at most ``keep`` versions remain; never the current version or the
        rollback target. Each doomed directory is first renamed aside (atomic), so a crash
        never leaves a half-deleted version that a rollback could pick. Returns what was removed.
        """
        with self._locked() as rec:
            protected = {rec["current"], self.rollback_target(rec)}
            on_disk = [v for v in self.installed() if v not in protected]
            bad = [v for v in on_disk if self.state_of(v, rec) == "bad"]
            kept = [v for v in self.installed() if v not in bad]
            rank = {"installed": 0, "good": 1}
            candidates = sorted((v for v in on_disk if v not in bad),
                                key=lambda v: (rank.get(self.state_of(v, rec), 0), parse_semver(v)))
            doomed = bad + candidates[:max(0, len(kept) - self.keep)]
            if not doomed:
                return []
            for v in doomed:
                self._require("prune", v, rec)
                self._set_aside(v)
            checkpoint("prune")
            for v in doomed:
                if rec["states"].get(v) != "bad":
                    rec["states"].pop(v, None)
            self._write(rec, "prune", ", ".join(doomed), f"retention keeps {self.keep}")
        self.remove_leftovers()
        return doomed

    def _set_aside(self, version: str) -> None:
        """Rename ``versions/<version>`` to a hidden name (gone for every reader at once)."""
        aside = tempfile.mkdtemp(prefix=f".{version}.gone.", dir=self.versions)
        os.replace(self.path(version), Path(aside) / version)
        fsync_dir(self.versions)

    def remove_leftovers(self) -> None:
        """Half-unpacked or set-aside directories from a crash (they are hidden: ``.<name>.*``)."""
        for p in self.versions.iterdir():
            if p.name.startswith("."):
                shutil.rmtree(p, ignore_errors=True)

    # --- reporting --------------------------------------------------------------------------
    def describe(self) -> list[dict[str, Any]]:
        """One row per version (installed, or bad and removed): state, whether it is current or
        the rollback target, and why a bad one is bad; for ``edgert versions``."""
        rec = self.read_active()
        target = self.rollback_target(rec)
        rows = []
        for v in self.installed():
            rows.append({"version": v, "state": self.state_of(v, rec), "current": v == rec["current"],
                         "rollback_target": v == target, "reason": rec["known_bad"].get(v, ""),
                         "path": str(self.path(v))})
        for v, why in rec["known_bad"].items():
            if v not in {r["version"] for r in rows}:
                rows.append({"version": v, "state": "bad", "current": v == rec["current"],
                             "rollback_target": False, "reason": why, "path": ""})
        return rows
