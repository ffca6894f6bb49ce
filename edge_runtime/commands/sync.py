"""`edgert keys init`, `publish`, `sync`, `rollback`, `versions`."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Optional

import click

from ._util import echo_json, require_converters


def _publish_mod() -> Any:
    require_converters()
    import converters.publish as p
    return p


def register(cli: click.Group) -> None:
    @cli.group("keys")
    def keys() -> None:
        """Signing keys of a TUF model repository."""

    @keys.command("init")
    @click.argument("keys_dir", type=click.Path(path_type=Path))
    @click.option("--repo", "repo", type=click.Path(path_type=Path), required=True)
    @click.option("--threshold", multiple=True, help="role=N, e.g. root=2")
    def keys_init(keys_dir: Path, repo: Path, threshold: tuple[str, ...]) -> None:
        """Generate Ed25519 keys and an empty repository; prints the root to ship."""
        th = {k: int(v) for k, v in (t.split("=", 1) for t in threshold)}
        click.echo(str(_publish_mod().keys_init(keys_dir, repo, thresholds=th)))

    @cli.command("publish")
    @click.argument("bundle", required=False, type=click.Path(path_type=Path))
    @click.option("--repo", type=click.Path(path_type=Path), required=True)
    @click.option("--keys", "keys_dir", type=click.Path(path_type=Path), required=True)
    @click.option("--channel", default="stable")
    @click.option("--rollout", default="100%")
    @click.option("--min-runtime", default="0.0.0")
    @click.option("--revoke", metavar="VERSION")
    @click.option("--rotate", type=click.Choice(["targets", "snapshot", "timestamp"]))
    @click.option("--refresh", "do_refresh", is_flag=True, help="re-sign snapshot/timestamp")
    def publish(bundle: Optional[Path], repo: Path, keys_dir: Path, channel: str, rollout: str,
                min_runtime: str, revoke: Optional[str], rotate: Optional[str],
                do_refresh: bool) -> None:
        """Add a bundle as a signed TUF target (or revoke / rotate / refresh)."""
        p = _publish_mod()
        if revoke:
            click.echo("revoked " + ", ".join(p.revoke(revoke, repo, keys_dir)))
        elif rotate:
            click.echo(f"new {rotate} key {p.rotate_key(rotate, repo, keys_dir)}")
        elif do_refresh:
            p.refresh(repo, keys_dir)
        elif bundle is not None:
            click.echo(p.publish(bundle, repo, keys_dir, channel=channel, rollout=rollout,
                                 min_runtime=min_runtime))
        else:
            raise click.UsageError("give a BUNDLE, --revoke, --rotate or --refresh")

    @cli.command("sync")
    @click.option("--source", required=True, help="http(s) base URL or repository directory")
    @click.option("--root", "root", type=click.Path(exists=True, path_type=Path),
                  required=True, help="trusted root.json shipped with the app")
    @click.option("--state", type=click.Path(path_type=Path), default=None)
    @click.option("--channel", default="stable")
    @click.option("--pin", default=None)
    @click.option("--once", "mode", flag_value="once", default=True)
    @click.option("--daemon", "mode", flag_value="daemon")
    @click.option("--interval", default="1h", help="time between checks: 90, 30s, 15m, 1h")
    def sync(source: str, root: Path, state: Optional[Path], channel: str, pin: Optional[str],
             mode: str, interval: str) -> None:
        """Fetch, verify, smoke-test and activate the newest admitted version."""
        from ..sync.agent import SyncConfig, daemon, parse_interval, sync_once
        from ..sync.store import default_state_dir
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="edgert sync: %(message)s")
        cfg = SyncConfig(source=source, state_dir=state or default_state_dir(),
                         trusted_root=root.read_bytes(), channel=channel, pinned=pin)
        if mode == "daemon":
            daemon(cfg, parse_interval(interval))
        else:
            res = sync_once(cfg)
            echo_json({"action": res.action, "version": res.version, "log": res.log})

    @cli.command("rollback")
    @click.option("--state", type=click.Path(path_type=Path), default=None)
    @click.option("--to", "to", default=None)
    def rollback(state: Optional[Path], to: Optional[str]) -> None:
        """Switch back to the previous (or a given) installed version."""
        from ..sync.store import VersionStore
        data = VersionStore(state).rollback(to)
        click.echo(f"active: {data['current']}")

    @cli.command("versions")
    @click.option("--state", type=click.Path(path_type=Path), default=None)
    def versions(state: Optional[Path]) -> None:
        """Installed versions and the active record."""
        from ..sync.store import VersionStore
        s = VersionStore(state)
        d = s.read()
        echo_json({"installed": s.installed(), "current": d["current"],
                   "previous": d["previous"], "known_bad": d["known_bad"],
                   "history": d["history"][-10:]})
