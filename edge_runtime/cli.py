"""``edgert``: the command line. Device commands import only the runtime; workstation commands
(``convert``, ``wrap``, ``demo``) import ``converters`` lazily and say what to install if absent.

Errors are one line on stderr and a non-zero exit; ``--debug`` shows the traceback.
Command groups that live in their own modules are listed in ``_COMMAND_MODULES``.
"""

from __future__ import annotations

import importlib
import sqlite3
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


#: Exit codes (docs/cli.md): 0 ok, 1 runtime error, 2 usage or input error, 3 budget breach
#: (``bench``) or a refused candidate (``sync --once``).
EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_BREACH = 0, 1, 2, 3

_DEBUG_HINT = "re-run with --debug for the traceback"


def error_line(exc: BaseException, *, unexpected: bool = False) -> list[str]:
    """The lines a user sees for ``exc``: ``edgert: error: Type: first line`` (more lines only
    when the message itself has them), with a --debug hint for errors nobody raised on purpose."""
    msg = str(exc).strip().splitlines() or [type(exc).__name__]
    first = f"edgert: error: {type(exc).__name__}: {msg[0]}"
    if unexpected:
        first += f" (unexpected; {_DEBUG_HINT})"
    return [first] + [f"  {extra}" for extra in msg[1:]]


def exit_code_of(exc: BaseException) -> int:
    """2 for bad input (ValueError, including InputError and ProfileError; a file that is not
    there), 1 for everything else."""
    if isinstance(exc, (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError)):
        return EXIT_USAGE
    return EXIT_RUNTIME


def _stdout_is_gone() -> bool:
    """Whether our stdout is a pipe whose reader has gone (its write end polls as an error), so
    a BrokenPipeError from a socket (an upload, a download) is never mistaken for ``| head``."""
    import select

    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file: no pipe to lose
        return False
    if not hasattr(select, "poll"):  # Windows: no way to tell, and no `head` either
        return True
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))


def _quiet_broken_pipe() -> None:
    """The reader of our stdout went away (``edgert versions | head -1``): that is not an error.
    Point stdout at /dev/null so the interpreter's final flush cannot complain either."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


class _Group(click.Group):
    """Turns every error into one line on stderr and its documented exit code; --debug re-raises."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 - the one place that turns anything into a line
            if isinstance(exc, BrokenPipeError) and _stdout_is_gone():
                _quiet_broken_pipe()
                sys.exit(EXIT_OK)
            if ctx.obj and ctx.obj.get("debug"):
                raise
            expected = isinstance(exc, (EdgeRuntimeError, OSError, ValueError, sqlite3.DatabaseError))
            for line in error_line(exc, unexpected=not expected):
                click.echo(line, err=True)
            sys.exit(exit_code_of(exc) if expected else EXIT_RUNTIME)


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


#: click >= 8.2 raises this for a group called without a command (8.1 printed the help itself).
_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())


def main(argv: Optional[list[str]] = None) -> None:
    """The ``edgert`` entry point: click's own errors (usage, missing extras) become one line too."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = cli.main(args=args, prog_name="edgert", standalone_mode=False)
        code = code if isinstance(code, int) else EXIT_OK
    except _NO_ARGS_IS_HELP as exc:  # `edgert`, `edgert keys`: the help, as a request for it
        click.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
        code = EXIT_OK
    except click.exceptions.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "edgert"
        click.echo(f"edgert: error: {exc.format_message()} (see '{where} --help')", err=True)
        code = EXIT_USAGE
    except click.exceptions.ClickException as exc:
        click.echo(f"edgert: error: {exc.format_message()}", err=True)
        code = exc.exit_code
    except click.exceptions.Abort:
        click.echo("edgert: interrupted", err=True)
        code = EXIT_RUNTIME
    except BrokenPipeError:
        _quiet_broken_pipe()
        code = EXIT_OK
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_broken_pipe()
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
