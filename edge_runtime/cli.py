"""``edgert``: the command line. Device commands import only the runtime; workstation commands
(``convert``, ``wrap``, ``demo``) import ``converters`` lazily and say what to install if absent.

Errors are one line on stderr and a non-zero exit; ``--debug`` shows the traceback.
Command groups that live in their own modules are listed in ``_COMMAND_MODULES``.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Optional

import click

from ._version import __version__
from .errors import EdgeRuntimeError

#: Modules that each define ``register(cli)`` to add their commands.
_COMMAND_MODULES: list[str] = [
    "edge_runtime.commands.predict",
    "edge_runtime.commands.workstation",
    "edge_runtime.commands.bench",
    "edge_runtime.commands.sync",
    "edge_runtime.commands.telemetry",
    "edge_runtime.commands.collector",
    "edge_runtime.commands.serve",
    "edge_runtime.commands.agent",
    "edge_runtime.commands.signing",  # after sync: adds `keys init-signing`
]


class _Group(click.Group):
    """Turns expected errors into one line on stderr (exit 2 for bad input, 1 otherwise)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (EdgeRuntimeError, OSError, ValueError) as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            msg = str(exc).strip().splitlines() or [type(exc).__name__]
            click.echo(f"edgert: error: {type(exc).__name__}: {msg[0]}", err=True)
            for extra in msg[1:]:
                click.echo(f"  {extra}", err=True)
            sys.exit(2 if isinstance(exc, ValueError) else 1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.version_option(__version__, prog_name="edgert")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """edge-runtime: verified scikit-learn models on devices, offline."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


for _module in _COMMAND_MODULES:
    importlib.import_module(_module).register(cli)


def main(argv: Optional[list[str]] = None) -> None:
    cli.main(args=argv, prog_name="edgert")


if __name__ == "__main__":  # pragma: no cover
    main()
