"""Compiled native artifacts (format ``native``: one C shared library per architecture, built by
``converters.native``), run through ``ctypes``: no compiler, no extra package on the device.

A library is executable code, so it is loaded only when the loader vouches for it (a verified
bundle signature, a version the sync agent installed through TUF, or an explicit
``allow_unsigned_native=True``); the loader passes that reason in ``options.extra`` under
:data:`TRUST_KEY`, and without it this backend refuses (fail closed: an engine built by any other
path never runs native code). Before ``dlopen`` the library must be for this machine (manifest
``arch`` and the ELF header), and it is written to a private directory (0700, ours) and its
sha256 checked *there*, so the bytes mapped are the verified ones.

Calls: the input's shape and dtype (and, for a batch C reads in place, its layout) are checked
before every call into C. A call of up to :data:`SMALL_ROWS` rows goes through this thread's
preallocated buffers, whose addresses are ``ctypes`` objects built once: the rows are copied in,
the answers the caller asked for copied out, and no array, ``ctypes`` object or address lookup
is made per call (``arr.ctypes.data`` alone costs about a microsecond, a third of a one-row
call). Larger batches are read and written in place; from ``PARALLEL_MIN_ROWS`` rows they are
shared out in chunks over ``threads`` Python threads, each calling C on the chunks it takes
(ctypes releases the GIL).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import stat
import tempfile
import threading
from pathlib import Path
from typing import Any, Optional, Sequence

from ..errors import InputError, IntegrityError, UnsupportedModelError
from ..native_abi import ABI_VERSION, elf_arch, host_arch
from ..paths import native_dir
from . import register
from .base import Backend, BackendOptions

#: key in ``BackendOptions.extra`` holding why this native library may run (set by the loader)
TRUST_KEY = "native_trust"
PARALLEL_MIN_ROWS = 2048
#: a parallel batch is cut into this many chunks per thread, shared out as threads come free
CHUNKS_PER_THREAD = 4
#: calls of at most this many rows go through per-thread preallocated buffers (copying a few
#: kilobytes costs less than looking up three arrays' addresses)
SMALL_ROWS = 64
#: the output roles this backend answers, and which of its two buffers holds each
_LABEL, _VALUES = 0, 1
_ROLE_BUFFER = {"label": _LABEL, "probabilities": _VALUES, "prediction": _VALUES}


def library_dir() -> Path:
    """Private directory for extracted libraries (``$EDGERT_NATIVE_DIR`` or the user cache)."""
    return native_dir()


def _private_dir() -> Path:
    """Raises: IntegrityError when the directory is not ours alone (others could swap the file)."""
    d = library_dir()
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = d.stat()
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise IntegrityError(f"{d}: native library directory is owned by another user")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise IntegrityError(f"{d}: native library directory is writable by others")
    return d


def _digest(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def extract(data: bytes, sha256: str) -> Path:
    """Write the library to the private directory (atomically), re-read it there and check its
    digest. Returns its path.

    Raises:
        IntegrityError: the bytes on disk are not the verified ones.
    """
    if hashlib.sha256(data).hexdigest() != sha256:
        raise IntegrityError(f"native library bytes do not match their sha256 {sha256[:12]}…")
    d = _private_dir()
    path = d / f"{sha256}.so"
    if path.exists() and _digest(path) != sha256:
        path.unlink()  # a torn or altered copy: write it again
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".lib-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o500)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    if _digest(path) != sha256:
        path.unlink(missing_ok=True)
        raise IntegrityError(f"{path}: extracted native library does not match its sha256")
    return path


@register
class NativeBackend(Backend):
    name = "native"
    formats = ("native",)
    priority = 5
    #: batches of PARALLEL_MIN_ROWS rows or more are split over options.threads threads
    threaded = True
    #: the loader refuses this backend's artifacts from bundles that are neither signed nor
    #: installed through TUF (see edge_runtime.loader)
    requires_trust = True

    @classmethod
    def is_available(cls) -> bool:
        return host_arch() is not None

    @classmethod
    def accepts(cls, artifact: Any) -> bool:
        """Only the artifact built for this machine is ever picked."""
        return artifact.extra.get("arch") == host_arch()

    def __init__(self, model_bytes: bytes, artifact: Any, options: BackendOptions):
        super().__init__(model_bytes, artifact, options)
        if not options.extra.get(TRUST_KEY):
            raise IntegrityError(f"'{artifact.path}': native code is loaded only from a bundle whose "
                                 "signature verifies against the device's trust, or that the sync agent "
                                 "installed through TUF (or with allow_unsigned_native=True)")
        here, want = host_arch(), artifact.extra.get("arch")
        if want != here:
            raise UnsupportedModelError(f"'{artifact.path}' is built for {want}; this machine is {here}")
        got = elf_arch(model_bytes)
        if got != here:
            raise IntegrityError(f"'{artifact.path}': the manifest says {want} but the library is {got}")
        if artifact.input_dtype != "float32":
            raise UnsupportedModelError(f"'{artifact.path}': native input dtype must be float32")
        self._path = extract(model_bytes, artifact.sha256)
        try:
            lib = ctypes.CDLL(str(self._path), mode=getattr(os, "RTLD_LOCAL", 0))
        except OSError as exc:
            raise UnsupportedModelError(f"'{artifact.path}' cannot be loaded here: {exc}") from None
        for sym, res in (("edgert_abi", ctypes.c_uint32), ("edgert_n_features", ctypes.c_int32),
                         ("edgert_n_outputs", ctypes.c_int32), ("edgert_has_label", ctypes.c_int32)):
            try:
                getattr(lib, sym).restype = res
            except AttributeError:
                raise UnsupportedModelError(f"'{artifact.path}' is not an edge-runtime library (no {sym})") from None
        abi = lib.edgert_abi()
        if abi != ABI_VERSION:
            raise UnsupportedModelError(f"'{artifact.path}' has native ABI {abi}; this runtime runs {ABI_VERSION}")
        self._lib = lib
        self._fn = lib.edgert_predict
        self._fn.restype = ctypes.c_int32
        self._fn.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p]
        self.n_features = int(lib.edgert_n_features())
        self.n_outputs = int(lib.edgert_n_outputs())
        self.has_label = bool(lib.edgert_has_label())
        roles = {v: k for k, v in artifact.outputs.items()}
        self._roles = roles
        #: output name -> which buffer answers it (names of other roles are refused per call)
        self._buffer_of = {name: _ROLE_BUFFER[r] for name, r in roles.items() if r in _ROLE_BUFFER}
        self.check_names({artifact.input_name: "float32"}, list(roles))
        if "label" in artifact.outputs and not self.has_label:
            raise UnsupportedModelError(f"'{artifact.path}': the library writes no labels")
        self._threads = max(1, options.threads or 1)
        self._pool: Optional[Any] = None
        import numpy as np

        self._np = np
        self._ndarray = np.ndarray
        self._f32 = np.dtype(np.float32)
        self._one_shape = (1, self.n_features)
        # the same symbol without argtypes, for calls whose every argument is a ctypes object
        # built once (argtypes conversion of four ints costs more than the C of a small model)
        self._prebuilt = lib["edgert_predict"]
        self._prebuilt.restype = ctypes.c_int32
        self._local = threading.local()

    def widths(self) -> dict[str, int]:
        out = {self.artifact.input_name: self.n_features}
        for role in ("probabilities", "prediction"):
            if role in self.artifact.outputs:
                out[self.artifact.outputs[role]] = self.n_outputs
        return out

    def _check(self, x: Any) -> None:
        """Raises: InputError unless ``x`` is a C-contiguous float32 (n, n_features) array."""
        np = self._np
        if not isinstance(x, np.ndarray) or x.ndim != 2 or x.shape[1] != self.n_features:
            shape = getattr(x, "shape", None)
            raise InputError(f"native backend: input must be 2-D with {self.n_features} columns, got shape {shape}")
        if x.dtype != np.float32:
            raise InputError(f"native backend: input dtype must be float32, got {x.dtype}")
        if not x.flags.c_contiguous:
            raise InputError("native backend: input must be C-contiguous")

    def _call(self, x: Any, out: Any, label: Any, start: int, stop: int) -> None:
        d, k = self.n_features, self.n_outputs
        rc = self._fn(x.ctypes.data + start * d * 4, stop - start, out.ctypes.data + start * k * 8,
                      label.ctypes.data + start * 4 if label is not None else None)
        if rc != 0:
            self._failed(rc, start)

    def _buffers(self) -> tuple[Any, Any, Any, Any, Any, Any]:
        """This thread's :data:`SMALL_ROWS`-row buffers (input, outputs, labels), the one-row
        views of them, and the one-row C call with every argument prebuilt: a call of a few
        rows builds no array and no ctypes object before C runs."""
        np = self._np
        xb = np.zeros((SMALL_ROWS, self.n_features), np.float32)
        ob = np.zeros((SMALL_ROWS, self.n_outputs), np.float64)
        lb = np.zeros(SMALL_ROWS, np.int32)
        addr = tuple(ctypes.c_void_p(a.ctypes.data) for a in (xb, ob, lb))
        one = functools.partial(self._prebuilt, addr[0], ctypes.c_int64(1), addr[1], addr[2])
        self._local.one = (xb[:1], ob[:1], lb[:1], one)
        self._local.small = ((xb, ob, lb), addr)
        return self._local.one + self._local.small

    def run(self, x: Any, outputs: Sequence[str]) -> list:
        if type(x) is self._ndarray and x.shape == self._one_shape and x.dtype is self._f32:
            # one row, checked (a plain float32 array of shape (1, n_features)); the copy into
            # our contiguous buffer makes its layout irrelevant
            try:
                x1, o1, l1, one = self._local.one
            except AttributeError:
                x1, o1, l1, one = self._buffers()[:4]
            x1[...] = x
            rc = one()
            if rc != 0:
                self._failed(rc, 0)
            if len(outputs) == 1:  # the common call, inline: a copy of the one buffer asked for
                which = self._buffer_of.get(outputs[0])
                if which is not None:
                    return [(l1 if which == _LABEL else o1).copy()]
            return self._copied(outputs, o1, l1)
        self._check(x)
        n = x.shape[0]
        if 1 <= n <= SMALL_ROWS:
            return self._small(x, n, outputs)
        np = self._np
        out = np.empty((n, self.n_outputs), np.float64)
        label = np.empty(n, np.int32) if self.has_label else None
        if n >= PARALLEL_MIN_ROWS and self._threads > 1:
            self._parallel(x, out, label, n)
        elif n:
            self._call(x, out, label, 0, n)
        return self._pick(outputs, out, label)

    def _small(self, x: Any, n: int, outputs: Sequence[str]) -> list:
        """A checked batch of 1..SMALL_ROWS rows through this thread's buffers."""
        try:
            (xb, ob, lb), (xa, oa, la) = self._local.small
        except AttributeError:
            (xb, ob, lb), (xa, oa, la) = self._buffers()[4:]
        xb[:n] = x
        rc = self._prebuilt(xa, ctypes.c_int64(n), oa, la)
        if rc != 0:
            self._failed(rc, 0)
        return self._copied(outputs, ob[:n], lb[:n])

    def _copied(self, outputs: Sequence[str], out: Any, label: Any) -> list:
        """Copies of the buffers the caller asked for (the caller keeps its answer; the
        buffers stay ours); an output this library does not write is refused."""
        if len(outputs) == 1:
            which = self._buffer_of.get(outputs[0])
            if which is not None:
                return [(label if which == _LABEL else out).copy()]
        return self._pick(outputs, out.copy(), label.copy() if self.has_label else None)

    def _failed(self, rc: int, start: int) -> None:
        """Raises: InputError for a row the model refuses, else UnsupportedModelError."""
        if rc > 0:
            row = start + rc - 1
            raise InputError.at(row, "a category the model never saw in training (its encoder raises on "
                                     "unknown categories)")
        raise UnsupportedModelError(f"'{self.artifact.path}': native predict failed ({rc})")

    def _pick(self, outputs: Sequence[str], out: Any, label: Any) -> list:
        res = []
        for name in outputs:
            role = self._roles.get(name)
            if role == "label":
                res.append(label)
            elif role in ("probabilities", "prediction"):
                res.append(out)
            else:
                raise UnsupportedModelError(f"'{self.artifact.path}' has no output {name!r}")
        return res

    def _parallel(self, x: Any, out: Any, label: Any, n: int) -> None:
        """The batch in :data:`CHUNKS_PER_THREAD` chunks per thread, taken in turn by the calling
        thread and the workers, so a worker that wakes late (a halted vCPU on a VM: ~100 us)
        costs the share it did not take, never a whole slice: fixed halves made two threads as
        slow as one in half the first-load measurements here."""
        from concurrent.futures import ThreadPoolExecutor

        if self._pool is None:  # the calling thread works too: threads - 1 workers
            self._pool = ThreadPoolExecutor(max(1, self._threads - 1), thread_name_prefix="edgert-native")
        step = max(SMALL_ROWS, -(-n // (self._threads * CHUNKS_PER_THREAD)))
        starts = iter(range(0, n, step))  # next() on it is atomic under the GIL
        failed: list[tuple[int, BaseException]] = []

        def work() -> None:
            for s in starts:
                try:
                    self._call(x, out, label, s, min(n, s + step))
                except Exception as exc:  # re-raised below: the first refused row's error
                    failed.append((s, exc))

        jobs = [self._pool.submit(work) for _ in range(self._threads - 1)]
        try:
            work()
        finally:
            for j in jobs:  # every chunk finishes before the arrays are handed back (or freed)
                j.result()
        if failed:
            raise min(failed, key=lambda f: f[0])[1]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None
