"""Small helpers shared by the CLI command modules."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any, Optional

import click


def require_extra(module: str, extra: str) -> Any:
    """Import ``module``, or fail with the install command of the extra that brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise click.ClickException(
            f"this command needs the {extra} extra ({exc.name or exc} is missing): "
            f"pip install 'edge-runtime[{extra}]'") from None


def require_converters() -> Any:
    """Import the workstation side, or fail with the install command."""
    return require_extra("converters", "convert")


def echo_json(obj: Any, out: Optional[Path] = None) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True, default=str)
    if out is None:
        click.echo(text)
    else:
        out.write_text(text + "\n")


def trust_option(f: Any) -> Any:
    """``--trust KEY.pem`` (repeatable): require bundles signed by one of these keys."""
    return click.option(
        "--trust", "trust", multiple=True, type=click.Path(exists=True),
        help="PEM public key (file with one or more keys, or a directory of *.pem) that bundles "
             "must be signed by; repeatable. Same as EDGERT_TRUST for this command and its "
             "worker processes.")(f)


def apply_trust(trust: tuple[str, ...]) -> None:
    """Make ``--trust`` the policy of this process and its children (``EDGERT_TRUST``), after
    checking the keys load, so every load on every path (workers, server, store) requires it.

    Raises:
        BundleError: a key is unreadable or not a supported public key.
    """
    if not trust:
        return
    import os

    from ..signing import ENV_TRUST, TrustedKeys

    TrustedKeys.load(list(trust))
    os.environ[ENV_TRUST] = os.pathsep.join(str(Path(t).resolve()) for t in trust)
