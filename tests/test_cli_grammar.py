"""The CLI grammar of docs/cli.md, checked on click's command tree as it is at test time, so a
command or option added later is held to the same rules (each failure says what to add)."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from edge_runtime.backends import backend_names
from edge_runtime.cli import cli

pytestmark = pytest.mark.device

DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def walk(cmd: click.Command, path: tuple[str, ...] = ("edgert",)):
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            yield from walk(sub, (*path, name))


def commands() -> list[tuple[str, click.Command]]:
    return [(" ".join(p), c) for p, c in walk(cli) if len(p) > 1]


def shown_names(opt: click.Option) -> list[str]:
    hidden = set(getattr(opt, "hidden_names", ()))
    return [n for n in (*opt.opts, *opt.secondary_opts) if n not in hidden]


def options() -> list[tuple[str, click.Option]]:
    return [(path, p) for path, cmd in commands() for p in cmd.params
            if isinstance(p, click.Option) and not p.hidden]


def long_name(opt: click.Option) -> str:
    return next(n for n in shown_names(opt) if n.startswith("--"))


def doc_rows(header: str) -> dict[str, str]:
    """The first cell (in backticks) -> the row, of the table whose header starts with ``header``."""
    rows, inside = {}, False
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith(f"| {header} |"):
            inside = True
        elif inside and not line.startswith("|"):
            inside = False
        elif inside:
            m = re.match(r"\| `([^`]+)` \|", line)
            if m:
                rows[m.group(1)] = line
    return rows


def test_every_command_and_option_has_help():
    missing = [f"{path}: the command's docstring" for path, cmd in commands() if not (cmd.help or "").strip()]
    missing += [f"{path} {long_name(o)}: help=..." for path, o in options() if not (o.help or "").strip()]
    assert not missing, "add help text to:\n  " + "\n  ".join(missing)


def test_every_command_is_in_docs():
    documented = doc_rows("command")
    missing = [path for path, _ in commands() if path not in documented]
    assert not missing, ("add a row to the Commands table of docs/cli.md for each of:\n"
                         + "\n".join(f"| `{p}` | what it does |" for p in missing))


def test_every_option_is_in_docs_with_its_kind():
    documented = doc_rows("option")
    missing, wrong = [], []
    for path, opt in options():
        name = long_name(opt)
        row = documented.get(name)
        kind = "flag" if opt.is_flag else "value"
        if row is None:
            missing.append(f"| `{name}` | {kind} | {opt.help} ({path.removeprefix('edgert ')}) |")
        elif f"| {kind} |" not in row:
            wrong.append(f"{path} {name} is a {kind}; docs/cli.md says: {row}")
    assert not missing, "add to the Options table of docs/cli.md:\n" + "\n".join(sorted(set(missing)))
    assert not wrong, "\n".join(wrong)


def test_one_name_one_kind_and_one_short_spelling():
    kinds: dict[str, set[str]] = {}
    shorts: dict[str, set[str]] = {}
    for _path, opt in options():
        name = long_name(opt)
        kinds.setdefault(name, set()).add("flag" if opt.is_flag else "value")
        for short in (n for n in shown_names(opt) if not n.startswith("--")):
            shorts.setdefault(short, set()).add(name)
    both = {n: k for n, k in kinds.items() if len(k) > 1}
    assert not both, f"these options are a flag in one command and take a value in another: {both}"
    many = {s: n for s, n in shorts.items() if len(n) > 1}
    assert not many, f"one short option, several long names: {many}"


def test_output_is_spelled_output():
    odd = [f"{path} {n}" for path, o in options() for n in shown_names(o)
           if n in ("--out", "--out-dir", "--outdir", "--output-file", "--outfile", "-O")]
    assert not odd, f"spell the output option -o/--output (docs/cli.md): {odd}"


def test_exit_codes_documented():
    rows = {line.split("|")[1].strip() for line in DOC.read_text(encoding="utf-8").splitlines()
            if re.match(r"\| \d \|", line)}
    assert {"0", "1", "2", "3"} <= rows


def test_deprecated_spellings_still_work(tmp_path):
    from click.testing import CliRunner

    r = CliRunner().invoke(cli, ["convert", "--help"])
    assert r.exit_code == 0 and "--output" in r.output and "--out " not in r.output
    r = CliRunner().invoke(cli, ["convert", "m.joblib", "--sample", "s.csv", "--out", "x"])
    assert "No such option" not in r.output  # --out parsed; the missing files fail instead


@pytest.mark.parametrize("command", ["predict", "bench", "serve", "verify"])
def test_backend_help_lists_every_backend(command):
    from click.testing import CliRunner

    r = CliRunner().invoke(cli, [command, "--help"], terminal_width=200)
    text = " ".join(r.output.split())
    missing = [b for b in backend_names() if b not in text]
    assert not missing, (f"`edgert {command} --help` should name the backends {missing} "
                         "(edge_runtime/commands/predict.py BACKEND_HELP)")


def test_an_unexpected_error_is_one_line_with_a_debug_hint():
    """What no code raised on purpose (a KeyError in a command) still reaches the user as one
    line and exit 1, and --debug shows the real exception."""
    from click.testing import CliRunner

    from edge_runtime.cli import _Group

    @click.group(cls=_Group)
    @click.option("--debug", is_flag=True)
    @click.pass_context
    def group(ctx: click.Context, debug: bool) -> None:
        ctx.ensure_object(dict)
        ctx.obj["debug"] = debug

    @group.command()
    def boom() -> None:
        {}["missing"]  # noqa: B018 - the bug under test

    r = CliRunner().invoke(group, ["boom"])
    assert r.exit_code == 1
    assert r.stderr.splitlines() == [
        "edgert: error: KeyError: 'missing' (unexpected; re-run with --debug for the traceback)"]
    r = CliRunner().invoke(group, ["--debug", "boom"])
    assert isinstance(r.exception, KeyError)


def test_a_broken_pipe_that_is_not_stdout_is_an_error(cli_env):
    """Only a reader of stdout going away (``| head``) ends quietly: a BrokenPipeError from a
    socket (an upload to a collector that hung up) is a failure, exit 1."""
    import subprocess
    import sys

    code = ("import click\nfrom edge_runtime.cli import _Group\n"
            "@click.group(cls=_Group)\n@click.pass_context\ndef g(ctx):\n    ctx.ensure_object(dict)\n"
            "@g.command()\ndef upload():\n    raise BrokenPipeError(32, 'Broken pipe')\n"
            "g.main(['upload'])\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env,
                       timeout=60)
    assert r.returncode == 1
    assert r.stderr.splitlines() == ["edgert: error: BrokenPipeError: [Errno 32] Broken pipe"]
