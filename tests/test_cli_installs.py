"""Every command on two installs: the device install (``pip install .``, no extras, in a venv of
its own built once and cached under the pytest cache) and the full one (this test run's). Bad
input gets one line on stderr and the exit code of docs/cli.md, a missing extra is named before
any work, and ``edgert … | head -1`` exits 0."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli_grammar import commands

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(cmd: list[str], env: dict, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


@pytest.fixture(scope="session")
def device_python(request) -> Path:
    """A venv with ``pip install .`` and nothing else; the dependencies are installed once per
    setup.cfg (cached), the project itself is rebuilt from the checkout every session."""
    key = hashlib.sha256((ROOT / "setup.cfg").read_bytes() + (ROOT / "pyproject.toml").read_bytes()
                         ).hexdigest()[:12]
    cache = ROOT / "build" / "device-venv"  # not pytest's cache: CI runs with -p no:cacheprovider
    cache.mkdir(parents=True, exist_ok=True)
    base = cache / key
    py = base / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    wheels = cache / f"wheel-{os.getpid()}"
    shutil.rmtree(wheels, ignore_errors=True)
    built = _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
                 env, ROOT, timeout=600)
    assert built.returncode == 0, built.stderr
    wheel = next(wheels.glob("edge_runtime-*.whl"))
    if not py.exists():
        shutil.rmtree(base, ignore_errors=True)
        made = _run([sys.executable, "-m", "venv", str(base)], env, ROOT)
        assert made.returncode == 0, made.stderr
        first = _run([str(py), "-m", "pip", "install", "-q", str(wheel)], env, ROOT, timeout=900)
        assert first.returncode == 0, first.stderr
    again = _run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel)],
                 env, ROOT, timeout=600)
    assert again.returncode == 0, again.stderr
    shutil.rmtree(wheels, ignore_errors=True)
    probe = _run([str(py), "-c", "import importlib.util as u; print([m for m in ('sklearn', 'joblib', "
                  "'onnx', 'skl2onnx', 'tuf', 'waitress', 'pyarrow', 'matplotlib') if u.find_spec(m)])"],
                 env, ROOT)
    assert probe.stdout.strip() == "[]", f"the device venv has workstation packages: {probe.stdout}"
    return py


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Real inputs, good and bad, written by the full install."""
    import joblib
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from zoo import dataset

    import converters

    d = tmp_path_factory.mktemp("installs")
    X, y, X_te, _ = dataset("binary")
    est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    bundle = converters.convert(est, X, d / "bundle", holdout=X_te)
    names = json.loads((bundle / "manifest.json").read_text())["inputs"]["features"]
    header = ",".join(f["name"] for f in names)
    rows = "\n".join(",".join(repr(float(v)) for v in r) for r in X_te)
    (d / "in.csv").write_text(header + "\n" + rows + "\n")
    (d / "big.csv").write_text(header + "\n" + "\n".join([rows] * 60) + "\n")  # > a pipe's buffer out
    (d / "empty.csv").write_text("")
    (d / "header-only.csv").write_text(header + "\n")
    (d / "bad-header.csv").write_text("colour," + header + "\n1," + rows.splitlines()[0] + "\n")
    (d / "text.csv").write_text(header + "\n" + ",".join(["abc"] * len(names)) + "\n")
    (d / "garbage.tar.gz").write_bytes(b"\x1f\x8b not really gzip")
    (d / "not-a-pickle.joblib").write_text("just text\n")
    joblib.dump({"coef": [1, 2]}, d / "dict.joblib")
    joblib.dump(est, d / "model.joblib")
    (d / "sample.csv").write_text(header + "\n" + rows + "\n")
    (d / "notbundle").mkdir()
    (d / "root.json").write_text("{not json")
    (d / "store").mkdir()
    from collector.core import CollectorStore

    CollectorStore(d / "c.db").close()  # an empty collector database
    return {p.name.replace("-", "_").replace(".", "_"): p for p in d.iterdir()} | {"dir": d}


def _installs(device_python: Path, cli_env: dict) -> dict[str, tuple[list[str], dict]]:
    device_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {"device": ([str(device_python), "-m", "edge_runtime"], device_env),
            "full": ([sys.executable, "-m", "edge_runtime"], cli_env)}


def _one_error_line(r: subprocess.CompletedProcess, what: str) -> str:
    """The one ``edgert: error:`` line; besides it stderr may hold only progress lines (``… ``)
    and warnings before it, and the indented rest of a message that has several lines."""
    assert "Traceback" not in r.stderr, f"{what}: traceback\n{r.stderr}"
    lines = r.stderr.rstrip("\n").splitlines()
    errors = [i for i, ln in enumerate(lines) if ln.startswith("edgert: error:")]
    assert len(errors) == 1, f"{what}: expected one 'edgert: error:' line, got\n{r.stderr}"
    before, after = lines[:errors[0]], lines[errors[0] + 1:]
    assert all(ln.startswith(("… ", "edgert: warning:")) for ln in before), f"{what}:\n{r.stderr}"
    assert all(ln.startswith("  ") for ln in after), f"{what}:\n{r.stderr}"
    return lines[errors[0]]


#: (args, {install: (exit code, text in the error line)}); {name} is a path from ``files``. Where
#: the device install lacks a workstation extra, its line names the extra instead.
_EXTRA = (1, "extra")
MATRIX = [
    (["predict", "{dir}/nope", "{in_csv}"], (2, "does not exist"), None),
    (["predict", "{notbundle}", "{in_csv}"], (1, "manifest.json"), None),
    (["predict", "{garbage_tar_gz}", "{in_csv}"], (1, "BundleError"), None),
    (["predict", "{bundle}", "{empty_csv}"], (2, "no data rows"), None),
    (["predict", "{bundle}", "{header_only_csv}"], (2, "no data rows"), None),
    (["predict", "{bundle}", "{bad_header_csv}"], (2, "colour"), None),
    (["predict", "{bundle}", "{text_csv}"], (2, "row 1"), None),
    (["predict", "{bundle}", "{in_csv}", "-o", "{dir}/out.parquet"], (0, ""), (1, "parquet extra")),
    (["predict", "{bundle}", "{in_csv}", "--chunk-rows", "0"], (2, "chunk-rows"), None),
    (["inspect", "{notbundle}"], (1, "manifest.json"), None),
    (["verify", "{garbage_tar_gz}"], (1, "BundleError"), None),
    (["bench", "{bundle}", "--batch", "0"], (2, "batch"), None),
    (["bench", "{bundle}", "--profile", "no-such-device"], (2, "ProfileError"), None),
    (["bench", "{bundle}", "--plot", "{dir}/p.png", "--baseline", "{dict_joblib}"],
     (2, "not a fitted estimator"), _EXTRA),
    (["convert", "{not_a_pickle_joblib}", "--sample", "{sample_csv}", "-o", "{dir}/c1"],
     (2, "not a joblib/pickle file"), _EXTRA),
    (["convert", "{dict_joblib}", "--sample", "{sample_csv}", "-o", "{dir}/c2"],
     (2, "holds a dict, not a fitted estimator"), _EXTRA),
    (["convert", "{model_joblib}", "--sample", "{empty_csv}", "-o", "{dir}/c3"],
     (1, "empty CSV"), _EXTRA),
    (["wrap", "{in_csv}", "--sample", "{sample_csv}", "-o", "{dir}/w1"], (1, ".onnx"), _EXTRA),
    (["sync", "--repo", "{dir}", "--root", "{root_json}", "--state", "{store}"],
     (1, "not a JSON object"), (1, "sync extra")),
    (["serve", "{bundle}", "--port", "70000"], (2, "port"), None),
    (["rollback", "--state", "{store}"], (1, "roll back"), None),
    (["collector", "report", "--db", "{in_csv}"], (1, "not a database"), None),
    (["telemetry", "flush", "--state-dir", "{dir}/t", "--sink", "mqtt://127.0.0.1:9"],
     (0, ""), (1, "telemetry extra")),
]


@pytest.mark.parametrize("install", ["device", "full"])
def test_bad_input_matrix(install, device_python, cli_env, files):
    base, env = _installs(device_python, cli_env)[install]
    failures = []
    for args, full, device in MATRIX:
        argv = [a.format(**files) for a in args]
        r = _run(base + argv, env, files["dir"])
        want, text = device if install == "device" and device is not None else full
        what = f"[{install}] edgert {' '.join(args)}"
        if r.returncode != want:
            failures.append(f"{what}: exit {r.returncode}, documented {want}\n{r.stderr}")
            continue
        if want != 0:
            try:
                line = _one_error_line(r, what)
            except AssertionError as exc:
                failures.append(str(exc))
                continue
            if text not in line:
                failures.append(f"{what}: {text!r} not in {line!r}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("install", ["device", "full"])
def test_every_command_turns_bad_options_into_one_line(install, device_python, cli_env, files):
    """Walks the command tree, so a command added later is checked too."""
    base, env = _installs(device_python, cli_env)[install]
    failures = []
    for path, _cmd in commands():
        words = path.split()[1:]
        r = _run(base + words + ["--help"], env, files["dir"])
        if r.returncode != 0 or "Traceback" in r.stderr:
            failures.append(f"{path} --help: exit {r.returncode}\n{r.stderr}")
        r = _run(base + words + ["--no-such-option"], env, files["dir"])
        if r.returncode != 2 or r.stderr.strip().count("\n") or "No such option" not in r.stderr:
            failures.append(f"{path} --no-such-option: exit {r.returncode}\n{r.stderr}")
    assert not failures, "\n".join(failures)


#: A workstation command on the device install names its extra before doing anything.
NEEDS_EXTRA = [
    (["convert", "{model_joblib}", "--sample", "{sample_csv}", "-o", "{dir}/x1"], "convert"),
    (["demo", "-o", "{dir}/x2"], "convert"),
    (["wrap", "{in_csv}", "--sample", "{sample_csv}", "-o", "{dir}/x3"], "convert"),
    (["bench", "{bundle}", "--baseline", "{model_joblib}"], "convert"),
    (["bench", "{bundle}", "--plot", "{dir}/x.png"], "plot"),
    (["predict", "{bundle}", "{in_csv}", "-o", "{dir}/x.parquet"], "parquet"),
    (["sync", "--repo", "{dir}", "--root", "{root_json}", "--state", "{store}"], "sync"),
    (["agent", "--repo", "{dir}", "--root", "{root_json}", "--state", "{store}"], "sync"),
    (["publish", "{bundle}", "--repo", "{dir}/r", "--keys", "{dir}/k"], "convert"),
    (["keys", "init", "{dir}/k", "--repo", "{dir}/r"], "convert"),
    (["keys", "init-signing", "{dir}/k2"], "convert"),
    (["sign", "{bundle}", "--key", "{in_csv}"], "convert"),
    (["serve", "{bundle}"], "serve"),
]


def test_device_install_names_the_extra(device_python, cli_env, files):
    base, env = _installs(device_python, cli_env)["device"]
    failures = []
    for args, extra in NEEDS_EXTRA:
        r = _run(base + [a.format(**files) for a in args], env, files["dir"])
        what = f"[device] edgert {' '.join(args)}"
        if r.returncode != 1 or f"pip install 'edge-runtime[{extra}]'" not in r.stderr:
            failures.append(f"{what}: exit {r.returncode}\n{r.stderr}")
            continue
        try:
            _one_error_line(r, what)
        except AssertionError as exc:
            failures.append(str(exc))
    assert not failures, "\n".join(failures)
    assert not (files["dir"] / "x1").exists() and not (files["dir"] / "x.parquet").exists()


#: Commands that print lines, each piped into ``head -1``.
PRINTS_LINES = [
    ["predict", "{bundle}", "{big_csv}"],
    ["predict", "{bundle}", "{big_csv}", "--format", "csv", "--output-format", "jsonl", "--proba"],
    ["inspect", "{bundle}"],
    ["inspect", "--json", "{bundle}"],
    ["verify", "{bundle}"],
    ["profiles"],
    ["profiles", "--json"],
    ["versions", "--state", "{store}", "--json"],
    ["telemetry", "status", "--state-dir", "{dir}/t2"],
    ["collector", "report", "--db", "{c_db}"],
    ["collector", "report", "--db", "{c_db}", "--json"],
    ["bench", "{bundle}", "--backend", "numpy", "--cold-runs", "1", "--seconds", "0.05", "--batch", "1"],
    ["--help"],
    [],  # a bare group prints its help (exit 0), as --help does
    ["keys"],
]


@pytest.mark.parametrize("install", ["device", "full"])
def test_head_1_exits_0(install, device_python, cli_env, files):
    base, env = _installs(device_python, cli_env)[install]
    failures = []
    for args in PRINTS_LINES:
        argv = base + [a.format(**files) for a in args]
        producer = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                    cwd=files["dir"])
        head = subprocess.Popen(["head", "-1"], stdin=producer.stdout, stdout=subprocess.PIPE)
        assert producer.stdout is not None and producer.stderr is not None
        producer.stdout.close()  # head owns the read end now, as in a shell pipeline
        first, _ = head.communicate(timeout=120)
        err = producer.stderr.read().decode()
        code = producer.wait(timeout=120)
        producer.stderr.close()
        noise = [ln for ln in err.splitlines() if not ln.startswith("…")]
        if code != 0 or not first.strip() or noise:
            failures.append(f"[{install}] edgert {' '.join(args)} | head -1: exit {code}, "
                            f"first line {first[:60]!r}, stderr {err[-400:]!r}")
    assert not failures, "\n".join(failures)
