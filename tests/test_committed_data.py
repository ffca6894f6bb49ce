"""The committed test data (tests/data) is what scripts/make_test_bundles.py writes today: the
device-side tests load it instead of training, so a converter or manifest change that is not
regenerated would leave them testing yesterday's bundles.

Compared: every file's bytes, except where the content legitimately varies between runs:
- ``.onnx`` artifacts: skl2onnx names each graph with a fresh ``uuid4`` (the only difference between
  two runs), so the models are compared with the graph name cleared;
- ``manifest.json``: the ONNX artifacts' ``sha256`` (which follows that name), the ``created`` time
  and ``provenance.versions`` (the tools of whoever generated them) are left out; everything else
  (artifact sizes, golden rows, parity figures, reference statistics, inputs) must match.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
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


def _onnx_without_graph_name(blob: bytes) -> bytes:
    model = onnx.load_from_string(blob)
    model.graph.name = ""
    return model.SerializeToString(deterministic=True)


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
        return _onnx_without_graph_name(fresh) == _onnx_without_graph_name(committed)
    if name.endswith("manifest.json"):
        return _comparable_manifest(fresh) == _comparable_manifest(committed)
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
    renamed = onnx.load_from_string(blob)
    renamed.graph.name = "another-uuid"
    assert _same("model.onnx", renamed.SerializeToString(), blob)
