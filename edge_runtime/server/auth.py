"""Optional bearer token for ``edgert serve --token-file``.

The token lives in a file (never on the command line, where ``ps`` shows it to every user) and
is compared in constant time. ``/healthz`` stays open so a supervisor's liveness probe needs no
secret; it says only ``{"status": "ok"}``. Every other path, unknown ones included, answers 401
without the token, so an unauthenticated client learns nothing about the model."""

from __future__ import annotations

import hmac
import os
import stat
from pathlib import Path
from typing import Optional

from ..errors import ServeConfigError

#: paths served without the token (liveness only: it names no model)
OPEN_PATHS = frozenset({"/healthz"})
#: a token file larger than this is not a token
_MAX_TOKEN_FILE = 4096
_MIN_TOKEN = 16
CHALLENGE = 'Bearer realm="edgert"'


def read_token(path: str) -> bytes:
    """The token in ``path`` (surrounding whitespace removed).

    Raises:
        ServeConfigError: unreadable, too large, shorter than 16 characters, not ASCII, or readable
            by other users (chmod 600 it).
    """
    p = Path(path)
    try:
        st = p.stat()
        if not stat.S_ISREG(st.st_mode):
            raise ServeConfigError(f"--token-file {path}: not a regular file")
        if st.st_size > _MAX_TOKEN_FILE:
            raise ServeConfigError(f"--token-file {path}: {st.st_size} bytes; a token file holds one "
                                   f"token of at most {_MAX_TOKEN_FILE} bytes")
        raw = p.read_bytes()
    except OSError as exc:
        raise ServeConfigError(f"--token-file {path}: {exc.strerror or exc}") from None
    if os.name == "posix" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ServeConfigError(f"--token-file {path}: readable by other users (mode "
                               f"{stat.S_IMODE(st.st_mode):03o}); run chmod 600 {path}")
    token = raw.strip()
    if not token.isascii() or any(c <= 32 or c == 127 for c in token):
        raise ServeConfigError(f"--token-file {path}: the token must be printable ASCII without spaces")
    if len(token) < _MIN_TOKEN:
        raise ServeConfigError(f"--token-file {path}: the token is {len(token)} characters; use at least "
                               f"{_MIN_TOKEN} (python3 -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return token


def authorized(token: Optional[bytes], header: Optional[str]) -> bool:
    """Whether an ``Authorization`` header carries ``token`` (always true without a token)."""
    if token is None:
        return True
    if not header:
        return False
    scheme, _, given = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    try:
        given_bytes = given.strip().encode("ascii")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(given_bytes, token)
