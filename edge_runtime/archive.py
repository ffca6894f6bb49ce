"""A ``.tar.gz`` reader whose memory and work are bounded before any header is believed.

Python's ``tarfile`` reads a PAX extended header or a GNU long-name header whole into memory,
whatever size its header block declares (a 3 GB PAX header in a 3 MB ``.tar.gz`` took 3.1 GB and
62 s), and decompresses whatever the gzip stream holds. Wrapping it would not help: the
allocation happens inside ``tarfile`` after it has read the size. A bundle needs only a few
regular files with short names, so parsing the 512-byte headers here is smaller and safer:

* :class:`LimitedGunzip` decompresses at most ``limit`` bytes (the caller raises the limit once
  the manifest says how much the archive should hold) and raises :class:`UnsafeArchiveError` past
  it; it reads the compressed file in 64 KiB chunks and checks the gzip CRC at the end;
* :class:`TarReader` knows USTAR/GNU headers (octal and base-256 sizes, checksums), PAX ``x``/``g``
  records (``path``, ``size``; sparse files refused) and GNU ``L``/``K`` long names, and refuses
  a PAX header over ``MAX_PAX_BYTES`` or a long name over ``MAX_LONG_NAME_BYTES`` from the size in
  its header block, before reading it. Member data is handed out in chunks of ``CHUNK`` bytes.

Which members a bundle may hold is not decided here: see :func:`edge_runtime.bundle.read_archive`.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Callable, Optional

from .errors import BundleError, UnsafeArchiveError

BLOCK = 512
CHUNK = 64 * 1024
MAX_PAX_BYTES = 64 * 1024
MAX_LONG_NAME_BYTES = 4096
#: what one member may add besides its data: its header, a PAX header and a GNU long name
HEADER_ALLOWANCE = 2 * BLOCK + MAX_PAX_BYTES + MAX_LONG_NAME_BYTES
#: the end-of-archive blocks and the padding up to tar's 10 KiB records (GNU tar's default)
END_ALLOWANCE = 20 * BLOCK + 2 * BLOCK
_ZERO_BLOCK = bytes(BLOCK)
_REGULAR = (b"0", b"\0", b"7")


def padded(size: int) -> int:
    """``size`` rounded up to whole 512-byte blocks, as stored in the archive."""
    return -(-size // BLOCK) * BLOCK


class LimitedGunzip(io.RawIOBase):
    """The decompressed bytes of a gzip file, refusing to produce more than ``limit`` of them."""

    def __init__(self, fh: BinaryIO, limit: int, origin: str):
        self._fh = fh
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._tail = b""
        self.limit = limit
        self.produced = 0
        self.origin = origin

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Raises: UnsafeArchiveError past ``limit``; BundleError on a damaged gzip stream."""
        view = memoryview(buffer).cast("B")
        if not len(view):
            return 0
        room = self.limit - self.produced
        if room <= 0:
            if self._inflate(1):
                raise UnsafeArchiveError(f"{self.origin}: archive unpacks to more than "
                                         f"{self.limit} bytes (the manifest's sizes allow no more)")
            return 0
        out = self._inflate(min(len(view), room))
        view[:len(out)] = out
        self.produced += len(out)
        return len(out)

    def _inflate(self, n: int) -> bytes:
        try:
            while not self._z.eof:
                data = self._tail or self._fh.read(CHUNK)
                if not data:
                    raise BundleError(f"{self.origin}: not a readable bundle archive (the gzip "
                                      "stream is truncated)")
                out = self._z.decompress(data, n)
                self._tail = self._z.unconsumed_tail
                if out:
                    return out
        except zlib.error as exc:
            raise BundleError(f"{self.origin}: not a readable bundle archive ({exc})") from None
        return b""


@dataclass(frozen=True)
class Member:
    """One archive entry as its headers describe it (PAX and GNU long names applied)."""

    name: str
    size: int
    type: bytes  # the USTAR type flag: b"0" file, b"2" symlink, b"5" directory, ...

    def isfile(self) -> bool:
        return self.type in _REGULAR

    def islink(self) -> bool:
        return self.type in (b"1", b"2")

    def isdir(self) -> bool:
        return self.type == b"5"


class TarReader:
    """Members of a tar stream, one header at a time, with bounded extended headers."""

    def __init__(self, stream: LimitedGunzip):
        self.stream = stream
        self.origin = stream.origin
        self._left = 0  # data + padding of the current member not yet read

    def next_member(self) -> Optional[Member]:
        """The next member, or None at the end-of-archive marker (or a clean end of stream).

        Raises:
            UnsafeArchiveError: an oversize PAX header or long name, a sparse file.
            BundleError: a damaged header (checksum, number fields, truncation).
        """
        self._skip_rest()
        pax: dict[str, str] = {}
        long_name: Optional[str] = None
        while True:
            block = self._read(BLOCK, at_header=True)
            if not block or block == _ZERO_BLOCK:
                return None
            name, size, kind = self._header(block)
            if kind in (b"x", b"g", b"L", b"K"):
                cap = MAX_PAX_BYTES if kind in (b"x", b"g") else MAX_LONG_NAME_BYTES
                what = "PAX header" if kind in (b"x", b"g") else "GNU long name"
                if size > cap:
                    raise UnsafeArchiveError(f"{self.origin}: archive has a {size}-byte {what} "
                                             f"(at most {cap} bytes)")
                data = self._read(padded(size))[:size]
                if kind == b"x":
                    pax.update(self._pax(data))
                elif kind == b"L":
                    long_name = self._text(data.split(b"\0", 1)[0])
                continue  # 'g' (global) and 'K' (long link target) change nothing we accept
            if "size" in pax:
                if not pax["size"].isdigit() or len(pax["size"]) > 18:
                    raise BundleError(f"{self.origin}: archive PAX size {pax['size'][:20]!r} "
                                      "is not a byte count")
                size = int(pax["size"])
            name = pax.get("path", long_name if long_name is not None else name)
            self._left = padded(size)
            return Member(name=name, size=size, type=kind)

    def copy_data(self, member: Member, write: Callable[[bytes], object]) -> None:
        """Pass the member's data to ``write`` in chunks of at most ``CHUNK`` bytes."""
        left = member.size
        while left:
            chunk = self._read(min(left, CHUNK))
            write(chunk)
            left -= len(chunk)
        self._left = padded(member.size) - member.size

    def finish(self) -> None:
        """Read to the end of the gzip stream (bounded by the limit) so its CRC is checked."""
        self._skip_rest()
        buf = bytearray(CHUNK)
        while self.stream.readinto(buf):
            pass

    # --- parsing ---------------------------------------------------------------------------
    def _header(self, block: bytes) -> tuple[str, int, bytes]:
        stored = block[148:156]
        unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
        signed = unsigned - 256 * sum(b > 127 for b in block[:148] + block[156:])
        if self._number(stored, "checksum") not in (unsigned, signed):
            raise BundleError(f"{self.origin}: not a readable bundle archive (a tar header's "
                              "checksum is wrong)")
        name = block[:100].split(b"\0", 1)[0]
        if block[257:263] == b"ustar\0":  # POSIX: a prefix may carry the leading directories
            prefix = block[345:500].split(b"\0", 1)[0]
            if prefix:
                name = prefix + b"/" + name
        return self._text(name), self._number(block[124:136], "size"), block[156:157]

    def _number(self, field: bytes, what: str) -> int:
        if field[:1] == b"\x80":  # GNU base-256 for values over 8 GiB (0xff would be negative)
            return int.from_bytes(field[1:], "big")
        digits = field.replace(b"\0", b" ").strip()
        if not digits:
            return 0
        if len(digits) > 12 or not all(48 <= c <= 55 for c in digits):
            raise BundleError(f"{self.origin}: not a readable bundle archive (a tar header's "
                              f"{what} field is not an octal number)")
        return int(digits, 8)

    def _pax(self, data: bytes) -> dict[str, str]:
        """``"<length> <key>=<value>\\n"`` records (the length counts the whole record)."""
        out: dict[str, str] = {}
        pos = 0
        while pos < len(data):
            space = data.find(b" ", pos, pos + 20)
            length = data[pos:space]
            if space < 0 or not length.isdigit() or not 0 < int(length) <= len(data) - pos:
                raise BundleError(f"{self.origin}: not a readable bundle archive (a PAX record "
                                  "has no valid length)")
            record = data[space + 1:pos + int(length)]
            key, eq, value = record.partition(b"=")
            if not eq or not record.endswith(b"\n"):
                raise BundleError(f"{self.origin}: not a readable bundle archive (a PAX record "
                                  "is malformed)")
            out[self._text(key)] = self._text(value[:-1])
            pos += int(length)
        if any(k.startswith("GNU.sparse") for k in out):
            raise UnsafeArchiveError(f"{self.origin}: archive holds a sparse file; only plain "
                                     "files are allowed")
        return out

    def _text(self, raw: bytes) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UnsafeArchiveError(f"{self.origin}: archive has a member name that is not "
                                     f"UTF-8 ({raw[:40]!r})") from None

    # --- reading ---------------------------------------------------------------------------
    def _skip_rest(self) -> None:
        while self._left:
            self._left -= len(self._read(min(self._left, CHUNK)))

    def _read(self, n: int, at_header: bool = False) -> bytes:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = self.stream.readinto(view[got:])
            if not k:
                break
            got += k
        if got == 0 and at_header:
            return b""
        if got < n:
            raise BundleError(f"{self.origin}: archive is truncated (a member or header is cut "
                              "short)")
        return bytes(buf)
