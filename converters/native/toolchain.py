"""Compile generated C into one shared library per target with Debian's (cross) gcc, and record
what built it: compiler, version, flags and target triple go into each artifact's manifest entry.

Flags keep the arithmetic IEEE as written: ``-ffp-contract=off`` (gcc would otherwise fuse
``a * b + c`` into an FMA on aarch64, changing the last bit), no ``-ffast-math``; ``-std=c99``.
The optimisation level is the generator's (:attr:`Toolchain.opt`): ``-O3`` vectorises a dense
layer's loops without reordering a sum, ``-O2`` suits branchy trees (``-O3`` was no faster there).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from edge_runtime.native_abi import ARCHES, elf_arch, host_arch

from ..errors import ConversionError

#: target -> (compiler names to try, in order; Debian package that provides the cross one)
COMPILERS = {
    "x86_64": (("x86_64-linux-gnu-gcc", "gcc"), "gcc"),
    "aarch64": (("aarch64-linux-gnu-gcc",), "gcc-aarch64-linux-gnu"),
    "armv7": (("arm-linux-gnueabihf-gcc",), "gcc-arm-linux-gnueabihf"),
}
FLAGS = ("-std=c99", "-fPIC", "-shared", "-ffp-contract=off", "-fno-fast-math",
         "-fvisibility=hidden", "-Wl,--build-id=none", "-Wl,-z,noexecstack", "-s")
#: armhf's defaults, written out so the manifest says what the code needs
TARGET_FLAGS = {"armv7": ("-march=armv7-a", "-mfpu=vfpv3-d16", "-mfloat-abi=hard")}
COMPILE_TIMEOUT_S = 900


@dataclass(frozen=True)
class Toolchain:
    target: str
    compiler: str  # the executable's path
    version: str
    triple: str
    opt: str = "-O2"

    @property
    def flags(self) -> tuple[str, ...]:
        return (self.opt,) + FLAGS + TARGET_FLAGS.get(self.target, ())

    def describe(self) -> dict[str, object]:
        """The manifest's ``build`` record."""
        return {"compiler": Path(self.compiler).name, "compiler_version": self.version,
                "flags": list(self.flags), "triple": self.triple}


def parse_targets(targets: Optional[object]) -> list[str]:
    """``"x86_64,aarch64"`` or a list; default: this machine's architecture.

    Raises:
        ConversionError: an unknown target name, or an empty list.
    """
    if targets is None:
        here = host_arch()
        if here is None:
            raise ConversionError("this machine's architecture has no native target; pass targets=")
        return [here]
    items = targets.split(",") if isinstance(targets, str) else list(targets)  # type: ignore[call-overload]
    names = [str(t).strip() for t in items if str(t).strip()]
    bad = [t for t in names if t not in ARCHES]
    if bad or not names:
        raise ConversionError(f"native target {bad[0] if bad else '(none)'!r}: use {', '.join(ARCHES)}")
    return list(dict.fromkeys(names))


def find(target: str) -> Toolchain:
    """Raises: ConversionError naming the Debian package to install when no compiler is found."""
    names, package = COMPILERS[target]
    for name in names:
        exe = shutil.which(name)
        if exe is None:
            continue
        triple = _out([exe, "-dumpmachine"])
        if name == "gcc" and host_arch(triple.split("-")[0]) != target:
            continue
        return Toolchain(target, exe, _out([exe, "-dumpfullversion"]), triple)
    raise ConversionError(f"no C compiler for {target}: apt-get install {package} "
                          "(scripts/setup.d/60-cross.sh installs every cross toolchain)")


def _out(cmd: list[str]) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    if r.returncode != 0:
        raise ConversionError(f"{' '.join(cmd)} failed: {r.stderr.strip()[:500]}")
    return r.stdout.strip()


def compile_library(source: str, tc: Toolchain) -> bytes:
    """The shared library's bytes, checked to be an ELF for ``tc.target``.

    Raises:
        ConversionError: the compiler failed or produced a library for another machine.
    """
    with tempfile.TemporaryDirectory(prefix="edgert-native-") as tmp:
        c, so = Path(tmp) / "model.c", Path(tmp) / "model.so"
        c.write_text(source)
        cmd = [tc.compiler, *tc.flags, "-o", str(so), str(c), "-lm"]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S,
                               check=False, cwd=tmp)
        except subprocess.TimeoutExpired:
            raise ConversionError(f"{tc.compiler} took over {COMPILE_TIMEOUT_S} s on the {len(source)}-byte "
                                  "model source") from None
        if r.returncode != 0:
            raise ConversionError(f"{Path(tc.compiler).name} failed on the generated C: {r.stderr.strip()[:2000]}")
        data = so.read_bytes()
    got = elf_arch(data)
    if got != tc.target:
        raise ConversionError(f"{tc.compiler} built a {got} library, not {tc.target}")
    return data
