"""Download policies for apps: local only, local + background update, or wait for latest.

Conditions (unmetered network, charging, idle) are callables supplied by the app; the device
profile's ``conditions`` table says which of them an update requires.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Mapping, Optional

from .agent import SyncConfig, sync_once

log = logging.getLogger("edge_runtime.sync")

POLICIES = ("local", "background", "latest")


def required_conditions(profile_conditions: Mapping[str, Any],
                        providers: Mapping[str, Callable[[], bool]]
                        ) -> dict[str, Callable[[], bool]]:
    """Map the profile's required conditions (``name = true``) to the app's callables.

    Raises:
        ValueError: the profile requires a condition the app supplies no callable for.
    """
    out = {}
    for name, wanted in profile_conditions.items():
        if not wanted:
            continue
        if name not in providers:
            raise ValueError(f"device profile requires condition '{name}' but the app gives "
                             f"no callable for it (has: {', '.join(providers) or 'none'})")
        out[name] = providers[name]
    return out


def open_model(cfg: SyncConfig, policy: str = "background", *, backend: str = "auto",
               probation: Optional[Mapping[str, Any]] = None) -> Any:
    """Return a :class:`~edge_runtime.hotswap.HotSwapModel` following ``policy``.

    ``local``: serve what is installed. ``latest``: sync first (fall back to the local model
    if that fails). ``background``: serve the local model now, sync in a thread, swap in.
    """
    from ..hotswap import HotSwapModel
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")

    def update() -> None:
        try:
            sync_once(cfg)
        except Exception as exc:  # noqa: BLE001 - the local model keeps serving
            log.warning("update failed: %s: %s", type(exc).__name__, exc)

    if policy == "latest":
        update()
    holder = HotSwapModel(cfg.state_dir, backend=backend,
                          probation=dict(probation) if probation else None)
    if policy == "background":
        def run() -> None:
            update()
            holder.refresh()
        holder.updater_thread = threading.Thread(target=run, daemon=True, name="edgert-sync")
        holder.updater_thread.start()
    return holder
