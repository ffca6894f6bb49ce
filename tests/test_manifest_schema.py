"""docs/manifest.schema.json: a valid JSON Schema (2020-12) that the bundles the converters
write satisfy, and that refuses what the runtime refuses for the fields it can express (so an
app validating with it does not accept a bundle the runtime would reject)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest
from manifest_schema import problems_under, validator
from serve_support import serve_bench, two_bundles  # noqa: F401

from edge_runtime.bundle import Manifest
from edge_runtime.errors import BundleError

pytest.importorskip("jsonschema")


@pytest.fixture(scope="module")
def manifest(two_bundles: tuple[Path, Path]) -> dict[str, Any]:  # noqa: F811
    return json.loads((two_bundles[0] / "manifest.json").read_text())


def test_converted_bundles_validate_and_the_session_check_sees_them(
        two_bundles: tuple[Path, Path], tmp_path: Path) -> None:  # noqa: F811
    check = validator()
    for bundle in two_bundles:
        check.validate(json.loads((bundle / "manifest.json").read_text()))
    shutil.copytree(two_bundles[0], tmp_path / "b")
    from edge_runtime.bundle import pack_bundle

    pack_bundle(two_bundles[1], tmp_path / "b.tar.gz")
    (tmp_path / "hostile").mkdir()
    (tmp_path / "hostile" / "manifest.json").write_text('{"schema_version": "9.0"}')
    assert problems_under(tmp_path) == (2, [])  # the directory and the archive; hostile skipped


def test_a_regression_bundle_validates(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    from converters import convert

    X, y = load_diabetes(return_X_y=True)
    bundle = convert(Ridge().fit(X, y), X, tmp_path / "ridge", name="ridge", version="1.0.0")
    validator().validate(json.loads((bundle / "manifest.json").read_text()))


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(doc: dict[str, Any]) -> None:
        *head, last = path.split(".")
        node: Any = doc
        for key in head:
            node = node[int(key)] if key.isdigit() else node[key]
        if value is KeyError:
            del node[last]
        else:
            node[int(last) if last.isdigit() else last] = value
    return apply


@pytest.mark.parametrize("mutate", [
    _set("schema_version", "2.0"),
    _set("name", KeyError),
    _set("version", "1.0"),
    _set("task", "ranking"),
    _set("inputs.dtype", "int8"),
    _set("inputs.features", []),
    _set("inputs.features.0.name", 3),
    _set("inputs.features.0.allow_nan", "no"),
    _set("inputs.features.0.range", [1]),
    _set("artifacts", []),
    _set("artifacts.0.path", "../model.onnx"),
    _set("artifacts.0.path", "manifest.json"),
    _set("artifacts.0.format", "pickle"),
    _set("artifacts.0.precision", "fp8"),
    _set("artifacts.0.sha256", "ABC"),
    _set("artifacts.0.size", 0),
    _set("artifacts.0.input.dtype", "int64"),
    _set("artifacts.0.outputs", {"embedding": "s"}),
    _set("artifacts.0.label_encoding", "onehot"),
    _set("outputs", {}),
])
def test_the_schema_refuses_what_the_runtime_refuses(manifest: dict[str, Any], mutate: Any) -> None:
    doc = copy.deepcopy(manifest)
    mutate(doc)
    with pytest.raises(BundleError):
        Manifest(doc)
    assert list(validator().iter_errors(doc)), "the schema accepted a manifest the runtime refuses"
