"""Where edge-runtime keeps things on a device: an environment variable wins, then
platformdirs' per-user directory, then a plain fallback under the home directory (platformdirs
is optional so that Pyodide and minimal installs need nothing more)."""

from __future__ import annotations

import os
from pathlib import Path

_FALLBACK = {"data": (".local", "share"), "cache": (".cache",), "config": (".config",)}


def user_dir(kind: str, env_var: str) -> Path:
    """``kind`` is data, cache or config."""
    env = os.environ.get(env_var)
    if env:
        return Path(env)
    try:
        import platformdirs
    except ImportError:
        return Path.home().joinpath(*_FALLBACK[kind], "edge-runtime")
    return Path(getattr(platformdirs, f"user_{kind}_dir")("edge-runtime"))
