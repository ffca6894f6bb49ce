"""Small helpers shared by the CLI command modules."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import click

#: The extra that brings each optional module a command may need (named in the error).
EXTRA_OF: dict[str, str] = {
    "converters": "convert", "joblib": "convert", "sklearn": "convert", "skl2onnx": "convert",
    "onnx": "convert", "model_signing": "convert", "cryptography": "verify", "tuf": "sync",
    "waitress": "serve", "pyarrow": "parquet", "tqdm": "batch", "matplotlib": "plot",
    "rich": "bench", "paho": "telemetry", "ai_edge_litert": "litert", "flatbuffers": "litert",
}


class MissingExtraError(click.ClickException):
    """An optional module a command needs is not installed; names the extra that brings it."""

    exit_code = 1


def require_extra(modules: Union[str, Sequence[str]], extra: Optional[str] = None) -> Any:
    """Import ``modules`` (one name or several) before the command does any work, or fail with
    the install command of the extra that brings the first missing one; returns the first module.

    ``extra`` defaults to :data:`EXTRA_OF` of each module's top-level package.
    """
    names = [modules] if isinstance(modules, str) else list(modules)
    imported = []
    for name in names:
        try:
            imported.append(importlib.import_module(name))
        except ImportError as exc:
            missing = exc.name or name
            need = extra or EXTRA_OF.get(name.split(".")[0]) or EXTRA_OF.get(missing.split(".")[0], "dev")
            raise MissingExtraError(
                f"this command needs the {need} extra ({missing} is missing): "
                f"pip install 'edge-runtime[{need}]'") from None
    return imported[0]


def require_converters() -> Any:
    """Import the workstation side (and what it imports lazily), or fail with the install command."""
    return require_extra(("converters", "joblib", "sklearn", "skl2onnx", "onnx"), "convert")


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


class AliasedOption(click.Option):
    """An option whose extra names (``hidden_names``) still work but are not shown in --help:
    the deprecated spellings kept so old scripts keep running (``--out`` for ``--output``)."""

    def __init__(self, *args: Any, hidden_names: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hidden_names = tuple(hidden_names)

    def get_help_record(self, ctx: click.Context) -> Optional[tuple[str, str]]:
        shown = (self.opts, self.secondary_opts)
        self.opts = [o for o in self.opts if o not in self.hidden_names]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts, self.secondary_opts = shown


def output_option(dest: str = "output", **kwargs: Any) -> Any:
    """``-o/--output`` (``--out`` still accepted, unlisted): the one spelling of "write here"."""
    kwargs.setdefault("help", "Where to write the output.")
    return click.option("-o", "--output", "--out", dest, cls=AliasedOption, hidden_names=("--out",),
                        **kwargs)
