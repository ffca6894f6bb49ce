"""Download policy per app, as mobile model downloaders offer it: use the local model only,
use the local model and update in the background, or wait for the latest before serving —
each gated on conditions (unmetered network, charging, idle) that the app supplies as
callables; which ones are required comes from the app or the device profile's ``conditions``."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from .errors import SyncError

MODES = ("local_only", "background", "latest")


@dataclass
class DownloadPolicy:
    mode: str = "background"
    required: dict[str, bool] = field(default_factory=dict)  # condition name -> must be true
    probes: dict[str, Callable[[], bool]] = field(default_factory=dict)  # supplied by the app

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise SyncError(f"download policy mode {self.mode!r} is not one of {MODES}")

    @classmethod
    def from_profile(cls, profile: Any, mode: str = "background",
                     probes: Optional[dict[str, Callable[[], bool]]] = None) -> DownloadPolicy:
        required = {k: bool(v) for k, v in (getattr(profile, "conditions", None) or {}).items()}
        return cls(mode=mode, required=required, probes=dict(probes or {}))

    def unmet(self) -> list[str]:
        """Required conditions that do not hold now (an unknown condition counts as unmet:
        on a metered link, downloading by mistake costs the owner money)."""
        out = []
        for name, needed in self.required.items():
            if not needed:
                continue
            probe = self.probes.get(name)
            try:
                ok = bool(probe()) if probe is not None else False
            except Exception:  # noqa: BLE001 - a failing probe must not crash the app
                ok = False
            if not ok:
                out.append(name)
        return out

    def may_download(self) -> bool:
        return self.mode != "local_only" and not self.unmet()


def open_model(agent: Any, policy: DownloadPolicy, **model_kw: Any) -> Any:
    """A :class:`~edge_runtime.hotswap.HotSwapModel` served according to ``policy``:
    ``latest`` syncs first (when the conditions allow) and then serves; ``background`` serves
    the local model at once and syncs in a daemon thread; ``local_only`` never downloads."""
    from ..hotswap import HotSwapModel

    if policy.mode == "latest" and policy.may_download():
        try:
            agent.sync_once()
        except SyncError as exc:
            agent.echo(f"latest version unavailable ({exc}); serving the local one")
    model = HotSwapModel(agent.store.root, **model_kw)
    if policy.mode == "background" and policy.may_download():
        def run() -> None:
            try:
                agent.sync_once()
            except SyncError as exc:
                agent.echo(f"background sync failed: {exc}")
            model.refresh(force=True)

        threading.Thread(target=run, name="edgert-sync", daemon=True).start()
    return model
