"""Where edge-runtime keeps things on a device: one rule for every location.

The rule, for each kind of directory:

1. its environment variable, when set and not empty, is used as is;
2. else platformdirs' per-user directory of that kind for the app ``edge-runtime``;
3. else (platformdirs is not installed: a device-only install, Pyodide) the same layout under
   the home directory: ``~/.local/share``, ``~/.cache``, ``~/.config`` + ``/edge-runtime``.

Kinds: the device's **state** (the version store with its installed versions, ``active.json`` and
device id, and the telemetry outbox beside it in ``telemetry/``) is ``$EDGERT_STATE_DIR``, else
the user **data** dir; routing and native-library caches are ``$EDGERT_CACHE_DIR``, else the user
cache dir; device profiles are ``$EDGERT_PROFILES_DIR``, else ``profiles/`` in the user config dir.

Why the data dir for the state, and not the user *state* dir: what it holds cannot be recreated
offline (the signed model versions a device serves, its device id that fixes its rollout share),
which is what XDG's data dir is for; XDG's state dir is for history and logs that may be lost.
The version store always lived there; only the telemetry outbox defaulted to the user state dir
(``~/.local/state/edge-runtime`` on Linux; macOS and Windows have one directory for both). A
device upgraded from then keeps using its outbox where it is (:func:`telemetry_state_dir`), so no
recorded window is stranded.
"""

from __future__ import annotations

import os
from pathlib import Path

APP = "edge-runtime"
STATE_ENV = "EDGERT_STATE_DIR"
CACHE_ENV = "EDGERT_CACHE_DIR"
PROFILES_ENV = "EDGERT_PROFILES_DIR"
NATIVE_ENV = "EDGERT_NATIVE_DIR"

#: under the home directory when platformdirs is absent (its layout on Linux, XDG variables unset)
_FALLBACK = {"data": (".local", "share"), "state": (".local", "state"), "cache": (".cache",),
             "config": (".config",)}
#: the directory under a state root that the telemetry outbox and live metrics live in
TELEMETRY = "telemetry"


def platform_dir(kind: str) -> Path:
    """platformdirs' per-user ``kind`` directory (data, state, cache or config), else its Linux
    layout under the home directory: the steps 2 and 3 of the rule, without the variable."""
    try:
        import platformdirs
    except ImportError:
        return Path.home().joinpath(*_FALLBACK[kind], APP)
    return Path(getattr(platformdirs, f"user_{kind}_dir")(APP))


def user_dir(kind: str, env_var: str) -> Path:
    """``$env_var`` if set and not empty, else :func:`platform_dir` of ``kind``."""
    env = os.environ.get(env_var)
    return Path(env) if env else platform_dir(kind)


def state_dir() -> Path:
    """The device's state root (version store, device id, ``telemetry/``): ``$EDGERT_STATE_DIR``,
    else the user data dir."""
    return user_dir("data", STATE_ENV)


def telemetry_state_dir() -> Path:
    """The state root the telemetry outbox and live metrics use by default: :func:`state_dir`,
    except on a device whose outbox is still in the user *state* dir (where it defaulted before
    the rule above) and not yet in the data dir; then that one, so its windows are uploaded."""
    root = state_dir()
    if os.environ.get(STATE_ENV) or (root / TELEMETRY).exists():
        return root
    legacy = platform_dir("state")
    return legacy if legacy != root and (legacy / TELEMETRY).is_dir() else root


def cache_dir() -> Path:
    """Measured routing choices and extracted native libraries: ``$EDGERT_CACHE_DIR``, else the
    user cache dir."""
    return user_dir("cache", CACHE_ENV)


def native_dir() -> Path:
    """Extracted native libraries: ``$EDGERT_NATIVE_DIR``, else ``native/`` in :func:`cache_dir`."""
    env = os.environ.get(NATIVE_ENV)
    return Path(env) if env else cache_dir() / "native"


def profiles_dir() -> Path:
    """The user's device profiles: ``$EDGERT_PROFILES_DIR``, else ``profiles/`` in the user
    config dir."""
    env = os.environ.get(PROFILES_ENV)
    return Path(env) if env else platform_dir("config") / "profiles"
