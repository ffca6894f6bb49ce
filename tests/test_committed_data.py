"""The committed test data (tests/data) is what scripts/make_test_bundles.py writes today: the
device-side tests load it instead of training, so a converter or manifest change that is not
regenerated would leave them testing yesterday's bundles.

Compared: every file's bytes, except where the content legitimately varies between runs or machines:
- ``.onnx`` artifacts: skl2onnx names each graph with a fresh ``uuid4``, so the graph name is
  cleared; the rest is compared field by field;
- ``manifest.json``: the ONNX artifacts' ``sha256`` (which follows that name), the ``created`` time
  and ``provenance.versions`` (the tools of whoever generated them) are left out; everything else
  (artifact sizes, golden rows, parity figures, reference statistics, inputs) is compared;
- in both, numbers that come out of training are compared within :data:`REL` + :data:`ABS`, not
  bit for bit: a fit depends on the machine's BLAS kernels (iris' LogisticRegression, stopped by its
  iteration limit, gave a weight of 0.0174 against 0.0198 and intercepts 0.014 apart, golden
  probabilities 5e-4 apart, on two AMD EPYC machines with the same wheels), so an exact check
  failed on a new machine with nothing stale. What it still catches is a converter or manifest
  change left unregenerated; the bundles' own parity and golden checks hold their numbers.
  Structure, names, shapes, types, labels, integers and strings must still match exactly, and a
  changed weight (``+1.0``) is still stale.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import pytest
from committed import DATA

pytest.importorskip("sklearn")
onnx = pytest.importorskip("onnx")

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
HINT = "regenerate with: python scripts/make_test_bundles.py"


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("make_test_bundles", ROOT / "scripts" / "make_test_bundles.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


#: tolerance for numbers that come out of training (see the module docstring)
REL, ABS = 2e-2, 5e-3


def _close(fresh: Any, committed: Any) -> bool:
    """``fresh`` and ``committed`` alike: same keys, lengths and types, numbers close, the rest equal."""
    if isinstance(fresh, dict):
        return (isinstance(committed, dict) and fresh.keys() == committed.keys()
                and all(_close(fresh[k], committed[k]) for k in fresh))
    if isinstance(fresh, list):
        return (isinstance(committed, list) and len(fresh) == len(committed)
                and all(_close(a, b) for a, b in zip(fresh, committed)))
    if isinstance(fresh, float) and isinstance(committed, float):
        return math.isclose(fresh, committed, rel_tol=REL, abs_tol=ABS) or (fresh != fresh and committed != committed)
    return type(fresh) is type(committed) and fresh == committed


def _onnx_doc(blob: bytes) -> dict:
    """The model as plain data: every field, the graph name cleared, each tensor's values as a
    list (so weights can be compared within the tolerance)."""
    from google.protobuf.json_format import MessageToDict
    from onnx import numpy_helper

    model = onnx.load_from_string(blob)
    model.graph.name = ""
    tensors = {}
    for init in model.graph.initializer:
        values = numpy_helper.to_array(init)
        tensors[init.name] = {"dtype": str(values.dtype), "shape": list(values.shape), "values": values.tolist()}
    del model.graph.initializer[:]
    return {"model": MessageToDict(model), "initializers": tensors}


def _comparable_manifest(raw: bytes) -> dict:
    doc = json.loads(raw)
    doc.pop("created", None)
    doc.get("provenance", {}).pop("versions", None)
    for art in doc.get("artifacts", []):
        if art.get("format") == "onnx":
            art.pop("sha256", None)
    return doc


def _same(name: str, fresh: bytes, committed: bytes) -> bool:
    if name.endswith(".onnx"):
        return _close(_onnx_doc(fresh), _onnx_doc(committed))
    if name.endswith("manifest.json"):
        return _close(_comparable_manifest(fresh), _comparable_manifest(committed))
    return fresh == committed


def _files(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "README.md"}


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("regenerated")
    _generator().generate(out)
    return out


def test_committed_test_data_is_what_the_generator_writes(fresh: Path) -> None:
    new, old = _files(fresh), _files(DATA)
    missing = sorted(set(new) - set(old))
    extra = sorted(set(old) - set(new))
    assert not missing, f"tests/data lacks {missing}; {HINT}"
    assert not extra, f"tests/data holds files the generator no longer writes: {extra}; {HINT}"
    stale = [name for name in new if not _same(name, new[name].read_bytes(), old[name].read_bytes())]
    assert not stale, f"stale committed test data: {', '.join('tests/data/' + s for s in stale)}; {HINT}"


def test_committed_manifests_match_their_own_artifacts() -> None:
    """The digests left out above are still right for the committed files themselves."""
    for manifest in sorted((DATA / "bundles").glob("*/manifest.json")):
        for art in json.loads(manifest.read_text())["artifacts"]:
            blob = (manifest.parent / art["path"]).read_bytes()
            assert hashlib.sha256(blob).hexdigest() == art["sha256"], f"{manifest.parent / art['path']}; {HINT}"


def test_the_comparison_sees_a_changed_model(fresh: Path) -> None:
    """A different model (not only another graph name) is stale: the check can fail."""
    blob = (fresh / "bundles" / "iris" / "model.onnx").read_bytes()
    model = onnx.load_from_string(blob)
    coefficients = next(a for node in model.graph.node for a in node.attribute if a.floats)
    coefficients.floats[0] += 1.0  # the LinearClassifier's first weight
    assert not _same("model.onnx", model.SerializeToString(), blob)
    assert _same("model.onnx", blob, blob)
    renamed = onnx.load_from_string(blob)
    renamed.graph.name = "another-uuid"
    assert _same("model.onnx", renamed.SerializeToString(), blob)
    model.graph.name = "another uuid"
    coefficients.floats[0] -= 1.0 - 1e-4  # what another machine's BLAS may leave: not stale
    assert _same("model.onnx", model.SerializeToString(), blob)


def test_the_comparison_sees_a_changed_manifest(fresh: Path) -> None:
    """Numbers within the tolerance pass; a changed label, key, length or type does not."""
    raw = (fresh / "bundles" / "iris" / "manifest.json").read_bytes()
    doc = json.loads(raw)

    def changed(edit: Any) -> bool:
        other = json.loads(raw)
        edit(other)
        return not _same("manifest.json", json.dumps(other).encode(), raw)

    def nudge(by: float) -> Any:
        return lambda d: d["golden"]["probabilities"][0].__setitem__(0, d["golden"]["probabilities"][0][0] + by)

    assert not changed(nudge(1e-5)) and changed(nudge(0.5))
    assert changed(lambda d: d["golden"].__setitem__("label", list(reversed(d["golden"]["label"]))))
    assert changed(lambda d: d["golden"]["probabilities"].pop())
    assert changed(lambda d: d.__setitem__("extra", 1))
    assert changed(lambda d: d["artifacts"][0].__setitem__("size", d["artifacts"][0]["size"] + 1))
    assert doc["golden"]["label"] != list(reversed(doc["golden"]["label"]))  # the edit above changes it
