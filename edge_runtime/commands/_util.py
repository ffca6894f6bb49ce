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
