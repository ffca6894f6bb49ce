from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def cli_env() -> dict:
    """Environment for running the checkout's real CLI as `python -m edge_runtime`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


#: No scikit-learn: the device install (``pytest -m device`` there; scripts/test.sh runs it).
WORKSTATION_SIDE_MISSING = importlib.util.find_spec("sklearn") is None


def pytest_ignore_collect(collection_path: Path, config) -> bool | None:
    """On the device install, test modules without a ``pytest.mark.device`` test are not even
    imported: most fit scikit-learn models at import or in fixtures, and a collection error would
    hide the device tests' own results. Modules with device tests import the workstation side lazily."""
    if (WORKSTATION_SIDE_MISSING and collection_path.suffix == ".py"
            and collection_path.name.startswith("test_")):
        return "pytest.mark.device" not in collection_path.read_text(encoding="utf-8")
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On CI a test skipped for a missing setup step fails instead: scripts/setup.d must have
    installed the real service, and a silent skip would hide a broken install step."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI") and "setup.d" in str(report.longrepr):
        report.outcome = "failed"


@pytest.fixture(scope="session")
def bundles(tmp_path_factory):
    """Zoo case -> its converted bundle, converted once per session for every suite that needs it."""
    from zoo import dataset, fitted

    import converters

    cache = {}

    def get(case):
        if case.id not in cache:
            X, _, X_te, _ = dataset(case.data)
            cache[case.id] = converters.convert(fitted(case.id), X, tmp_path_factory.mktemp(case.id),
                                                holdout=X_te)
        return cache[case.id]

    return get


def pytest_terminal_summary(terminalreporter):
    """The counts of ONNX's node tests on the numpy backend (passed / skipped by type /
    failed) and which source covers the registered kernels, when those tests ran."""
    checked = getattr(terminalreporter.config, "_manifest_schema_checked", None)
    if checked:
        terminalreporter.write_line(f"docs/manifest.schema.json: {checked} bundle manifests written by "
                                    "this session validated")
    if not any(f in (getattr(r, "nodeid", None) or "") for reps in terminalreporter.stats.values()
               for r in reps for f in ("test_numpy_node_tests.py", "test_numpy_differential.py")):
        return
    from onnx_node_cases import summary

    for line in summary(terminalreporter.stats):
        terminalreporter.write_line(line)


@pytest.fixture(scope="session", autouse=True)
def bundles_match_the_published_manifest_schema(tmp_path_factory, request):
    """After the session: every bundle the tests wrote that the runtime accepts validates
    against docs/manifest.schema.json (an error at teardown names the first mismatches)."""
    yield
    try:
        import jsonschema  # noqa: F401
    except ImportError:
        return
    from manifest_schema import problems_under

    checked, problems = problems_under(tmp_path_factory.getbasetemp())
    request.config._manifest_schema_checked = checked  # shown in the terminal summary
    assert not problems, "bundles the runtime accepts but docs/manifest.schema.json refuses:\n" + \
        "\n".join(problems[:20])
