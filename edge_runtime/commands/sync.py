"""Signed updates: ``keys init`` and ``publish`` (workstation), ``sync``, ``rollback``,
``versions`` (device)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Optional

import click

from ._util import apply_trust, echo_json, require_converters, require_extra, trust_option

#: ``edgert sync --once`` exit status when the pass refused a candidate (marked bad with the
#: reason; the device keeps serving its current version). 0: up to date or updated; 1: the
#: sync itself failed (network, repository, lock); 2: bad arguments.
EXIT_REJECTED = 3


def register(cli: click.Group) -> None:
    cli.add_command(keys)
    cli.add_command(publish)
    cli.add_command(sync)
    cli.add_command(rollback)
    cli.add_command(versions)


@click.group()
def keys() -> None:
    """Signing keys of a model repository."""


@keys.command("init")
@click.argument("keys_dir", type=click.Path(file_okay=False))
@click.option("--repo", required=True, type=click.Path(file_okay=False), help="Repository directory to create.")
@click.option("--threshold", "thresholds", multiple=True, metavar="ROLE=N",
              help="Keys (and signatures needed) per role, e.g. --threshold root=2.")
def keys_init(keys_dir: str, repo: str, thresholds: tuple[str, ...]) -> None:
    """Create Ed25519 keys for root/targets/snapshot/timestamp and an empty signed repository."""
    require_converters()
    require_extra("tuf", "sync")
    from converters.publish import init_keys

    th = {}
    for item in thresholds:
        role, _, n = item.partition("=")
        if role not in ("root", "targets", "snapshot", "timestamp") or not n.isdigit() or int(n) < 1:
            raise click.BadParameter(f"{item!r}: expected ROLE=N with ROLE one of root, targets, "
                                     "snapshot, timestamp")
        th[role] = int(n)
    trusted = init_keys(Path(keys_dir), Path(repo), thresholds=th)
    click.echo(f"keys in {keys_dir} (keep root-*.pem offline); repository in {repo}")
    click.echo(f"ship {trusted} with your app as its trusted root")


def _share(text: str) -> float:
    t = text.strip()
    try:
        v = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected a share such as 10% or 0.1") from None
    if not 0 < v <= 1:
        raise click.BadParameter(f"{text!r}: the share must be in (0, 100%]")
    return v


@click.command()
@click.argument("bundle", required=False, type=click.Path(exists=True))
@click.option("--repo", required=True, type=click.Path(file_okay=False),
              help="Repository directory (from `edgert keys init`).")
@click.option("--keys", "keys_dir", required=True, type=click.Path(file_okay=False),
              help="Directory of the repository's signing keys.")
@click.option("--channel", default="stable", show_default=True, help="Release channel devices follow.")
@click.option("--rollout", default="100%", show_default=True, help="Share of devices, e.g. 10%.")
@click.option("--min-runtime", default=None, help="Oldest edge-runtime version that may install it.")
@click.option("--min-agreement", type=click.FloatRange(0.0, 1.0), default=None,
              help="Probation: share of labels that must match the device's previous version (default 0.9).")
@click.option("--max-relative-error", type=click.FloatRange(0.0, 100.0), default=None,
              help="Probation (regression): largest sum|new-old|/sum|old| against the previous version (default 0.1).")
@click.option("--probation-predictions", type=click.IntRange(1), default=None,
              help="Probation length in predictions (default: the device profile's).")
@click.option("--probation-minutes", type=click.IntRange(1), default=None,
              help="Probation length in minutes (default: the device profile's).")
@click.option("--revoke", "revoke_version", default=None, metavar="NAME@VERSION",
              help="Withdraw a published version instead of publishing.")
@click.option("--reason", default="revoked by the publisher", show_default=True,
              help="With --revoke: why, as devices will log it.")
@click.option("--rotate", type=click.Choice(["targets", "snapshot", "timestamp"]), default=None,
              help="Replace an online role's key (new root version).")
@click.option("--refresh-timestamp", is_flag=True, help="Only re-sign the timestamp (cron).")
@click.option("--backend", default="auto", show_default=True,
              help="Backend the golden rows are checked on before signing (as `edgert verify`).")
@click.option("--sign-key", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Also sign the bundle itself (model.sig, OpenSSF model-signing) with this PEM "
                   "private key, the model owner's (not a TUF role key).")
def publish(bundle: Optional[str], repo: str, keys_dir: str, channel: str, rollout: str,
            min_runtime: Optional[str], min_agreement: Optional[float], max_relative_error: Optional[float],
            probation_predictions: Optional[int], probation_minutes: Optional[int],
            revoke_version: Optional[str], reason: str, rotate: Optional[str],
            refresh_timestamp: bool, backend: str, sign_key: Optional[str]) -> None:
    """Add BUNDLE (directory or .tar.gz) to the signed repository as a model target, once it
    passes the checks of `edgert verify` (a bundle a device would refuse is never signed)."""
    require_converters()
    require_extra("tuf", "sync")
    from converters import publish as pub

    if revoke_version:
        name, _, version = revoke_version.partition("@")
        if not version:
            raise click.BadParameter("--revoke takes NAME@VERSION")
        pub.revoke(name, version, Path(repo), Path(keys_dir), reason=reason)
        click.echo(f"revoked {name} {version}")
    elif rotate:
        pub.rotate_key(rotate, Path(repo), Path(keys_dir))
        click.echo(f"rotated the {rotate} key; devices trust it through the new root version")
    elif refresh_timestamp:
        pub.refresh_timestamp(Path(repo), Path(keys_dir))
        click.echo("timestamp re-signed")
    else:
        if not bundle:
            raise click.UsageError("BUNDLE is required (or --revoke / --rotate / --refresh-timestamp)")
        if sign_key:
            require_extra("model_signing", "convert")
            from converters.signing import sign_bundle

            signed = sign_bundle(bundle, sign_key)
            click.echo(f"signed {bundle} with key {signed['key'][:16]}…")
        path = pub.publish(bundle, Path(repo), Path(keys_dir), channel=channel, rollout=_share(rollout),
                           min_runtime=min_runtime, backend=backend, min_agreement=min_agreement,
                           probation={"max_relative_error": max_relative_error,
                                      "predictions": probation_predictions, "minutes": probation_minutes})
        click.echo(f"published {path} (channel {channel}, rollout {rollout})")


def _state(state: Optional[str]) -> Optional[Path]:
    return Path(state) if state else None


#: The options that build a SyncAgent, shared by ``edgert sync`` and ``edgert agent``.
_AGENT_OPTIONS = [
    click.option("--repo", "repo", required=True, help="Repository base URL (https://…) or directory."),
    click.option("--root", "root_file", required=True, type=click.Path(exists=True, dir_okay=False),
                 help="The trusted root.json shipped with the app."),
    click.option("--state", default=None,
                 help="State directory (default: $EDGERT_STATE_DIR or the user data dir; docs/paths.md)."),
    click.option("--model", default=None, help="Model name to follow (default: any)."),
    click.option("--channel", default="stable", show_default=True, help="Release channel to follow."),
    click.option("--device-id", default=None, help="Stable id for rollout buckets (default: random, kept)."),
    click.option("--profile", default=None,
                 help="Device profile name or .toml path (probation, trial limits, signing policy)."),
    click.option("--download-timeout", default=600.0, show_default=True, type=click.FloatRange(min=1.0),
                 help="Seconds one file (metadata or model) may take to download, silence included, "
                      "before the pass gives up."),
    click.option("--keep", default=3, show_default=True, type=click.IntRange(min=2),
                 help="Versions kept on disk (bad ones are deleted first; the current version and "
                      "the one a rollback returns to are always kept)."),
    click.option("--trial-timeout", default=None, type=click.FloatRange(min=0.1),
                 help="Seconds a new version's load and smoke test may take (its trial process is "
                      "then killed and the version marked bad). Default: the profile's, else 60."),
    click.option("--trial-memory", default=None, type=click.IntRange(min=16), metavar="MIB",
                 help="Address-space limit of the trial process in MiB. Default: the profile's, "
                      "else 2048 or the device's memory if smaller."),
    trust_option,
]
interval_option = click.option("--interval", default="1h", show_default=True,
                               help="Daemon interval: 30s, 15m, 1h.")


def agent_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a command with the SyncAgent options (see :func:`build_agent`)."""
    for option in reversed(_AGENT_OPTIONS):
        f = option(f)
    return f


def build_agent(*, repo: str, root_file: str, state: Optional[str], model: Optional[str], channel: str,
                device_id: Optional[str], profile: Optional[str], download_timeout: float,
                keep: int = 3, trial_timeout: Optional[float] = None, trial_memory: Optional[int] = None,
                trust: tuple[str, ...] = (), echo: Callable[[str], None]) -> Any:
    """The SyncAgent those options describe.

    Raises:
        SyncError: the trusted root cannot be read, or python-tuf is missing.
    """
    from ..profiles import load_profile
    from ..sync.agent import SyncAgent, trusted_root_bytes

    apply_trust(trust)  # with --trust, each bundle must also carry the model owner's signature
    return SyncAgent(repo, trusted_root_bytes(Path(root_file)), _state(state), model=model,
                     channel=channel, device_id=device_id,
                     profile=load_profile(profile) if profile else None,
                     download_timeout_s=download_timeout, keep=keep, trial_timeout_s=trial_timeout,
                     trial_memory_mb=trial_memory, echo=echo)


def parse_interval(interval: str) -> float:
    """``30s``, ``15m``, ``1h`` or plain seconds.

    Raises:
        click.BadParameter: anything else, or not positive.
    """
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        seconds = float(interval[:-1]) * units[interval[-1]] if interval[-1:] in units else float(interval)
    except (ValueError, IndexError):
        seconds = -1.0
    if not seconds > 0:
        raise click.BadParameter(f"--interval {interval!r}: use e.g. 30s, 15m, 1h")
    return seconds


@click.command()
@agent_options
@click.option("--once", "mode", flag_value="once", default=True,
              help="One pass, then exit (the default; exit 3 when a candidate was refused).")
@click.option("--daemon", "mode", flag_value="daemon", help="Run a pass every --interval, forever.")
@interval_option
def sync(mode: str, interval: str, **options: Any) -> None:
    """Fetch, verify, activate the newest admitted model version (one line per decision).

    With --trust, each bundle must also carry the model owner's signature (checked at install
    and at every activation), whatever key signed the TUF metadata.

    With --once, exits 3 when the new version was refused and marked bad (the current one keeps
    serving), 1 when the sync itself failed. --daemon never exits because of a bad version.
    """
    require_extra("tuf", "sync")
    agent = build_agent(**options, echo=lambda line: click.echo(f"sync: {line}"))
    if mode == "daemon":
        agent.daemon(parse_interval(interval))
        return
    result = agent.sync_once()
    click.echo(f"sync: current version {result.version or 'none'}"
               + (" (updated)" if result.changed else ""))
    if result.rejected:
        version, reason = result.rejected
        click.echo(f"edgert: rejected {version}: {' '.join(reason.split())}", err=True)
        sys.exit(EXIT_REJECTED)


_state_option = click.option("--state", default=None,
                             help="State directory (default: $EDGERT_STATE_DIR or the user data dir; docs/paths.md).")


@click.command()
@_state_option
@click.option("--to", "to", default=None, help="Version to return to (default: the newest good one).")
@click.option("--reason", default="manual rollback", show_default=True,
              help="Why the abandoned version is bad (kept in active.json, shown by versions).")
def rollback(state: Optional[str], to: Optional[str], reason: str) -> None:
    """Return to the newest good (or a given) version; the abandoned one is marked bad."""
    from ..sync.store import VersionStore

    now = VersionStore(_state(state)).rollback(reason, to=to)
    click.echo(f"rolled back: current version {now}")


@click.command()
@_state_option
@click.option("--json", "as_json", is_flag=True, help="Print versions and history as JSON.")
def versions(state: Optional[str], as_json: bool) -> None:
    """Installed versions: state (installed, probation, good, bad), which one is current and
    which one a rollback returns to, why each bad one is bad, and the recent history."""
    from ..sync.store import VersionStore

    store = VersionStore(_state(state))
    rows = store.describe()
    history = store.read_active()["history"]
    if as_json:
        echo_json({"versions": rows, "history": history[-20:]})
        return
    for r in rows:
        role = "current" if r["current"] else "rollback target" if r["rollback_target"] else ""
        where = "" if r["path"] or r["current"] else " (removed)"
        click.echo(f"{r['version']:<14} {r['state'] + where:<14} {role:<16} {r['reason']}".rstrip())
    for h in history[-5:]:
        click.echo(f"  {h['time']} {h['event']:<9} {h['version']} {h['reason']}".rstrip())
