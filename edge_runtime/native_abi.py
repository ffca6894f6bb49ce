"""What a native artifact is, shared by the converter that builds it and the device that runs it:
the C ABI version, the architecture names, and the ELF header check that refuses a library built
for another machine *before* ``dlopen`` maps it (a foreign ELF would fail there at best; a
crafted one is not parsed by the dynamic loader at all)."""

from __future__ import annotations

import platform
import struct
from typing import Optional

from .errors import IntegrityError

#: the symbols and their signatures are documented in converters/native/ctext.py
ABI_VERSION = 1

#: our architecture name -> (ELF class: 1 = 32-bit, 2 = 64-bit, e_machine, names platform.machine() gives)
ARCHES: dict[str, tuple[int, int, tuple[str, ...]]] = {
    "x86_64": (2, 62, ("x86_64", "amd64")),
    "aarch64": (2, 183, ("aarch64", "arm64")),
    "armv7": (1, 40, ("armv7l", "armv7", "armv8l")),
}


def host_arch(machine: Optional[str] = None) -> Optional[str]:
    """Our name for this machine's architecture (``platform.machine()``), or None if unknown.
    ``armv8l`` is a 64-bit core running a 32-bit user space: it runs armv7 code."""
    m = (machine if machine is not None else platform.machine()).lower()
    return next((name for name, (_, _, aliases) in ARCHES.items() if m in aliases), None)


def elf_arch(data: bytes) -> str:
    """The architecture an ELF shared library is built for.

    Raises:
        IntegrityError: not a little-endian ELF shared object of a known architecture.
    """
    if len(data) < 64 or data[:4] != b"\x7fELF":
        raise IntegrityError("not an ELF file")
    ei_class, ei_data = data[4], data[5]
    if ei_data != 1:
        raise IntegrityError("not a little-endian ELF file")
    e_type, e_machine = struct.unpack_from("<HH", data, 16)
    if e_type != 3:  # ET_DYN
        raise IntegrityError(f"ELF type {e_type} is not a shared object")
    for name, (cls, machine, _) in ARCHES.items():
        if (cls, machine) == (ei_class, e_machine):
            return name
    raise IntegrityError(f"ELF machine {e_machine} (class {ei_class}) is not a supported architecture")
