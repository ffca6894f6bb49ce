"""docs/manifest.schema.json against the bundles the tests write: every manifest the runtime
accepts must validate (what an app on Android or iOS reads with the schema must be what the
runtime reads), checked once per session over pytest's temporary directory."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any, Iterator, Optional

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = ROOT / "docs" / "manifest.schema.json"
_MAX_MANIFEST = 4 * 1024 * 1024


def validator() -> Any:
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _manifests(root: Path) -> Iterator[tuple[str, bytes]]:
    for path in root.rglob("manifest.json"):
        if path.is_file() and not path.is_symlink() and path.stat().st_size <= _MAX_MANIFEST:
            yield str(path), path.read_bytes()
    for path in root.rglob("*.tar.gz"):
        raw = _manifest_in_archive(path)
        if raw is not None:
            yield f"{path}!manifest.json", raw


def _manifest_in_archive(path: Path) -> Optional[bytes]:
    try:
        with tarfile.open(path, "r:gz") as tar:
            member = tar.getmember("manifest.json")
            if not member.isfile() or member.size > _MAX_MANIFEST:
                return None
            fh = tar.extractfile(member)
            return fh.read() if fh else None
    except (OSError, KeyError, tarfile.TarError, EOFError):
        return None


def problems_under(root: Path) -> tuple[int, list[str]]:
    """(manifests checked, one line per manifest the runtime accepts but the schema refuses).
    Manifests the runtime refuses are the hostile-input tests' fixtures, not bundles."""
    from edge_runtime.bundle import Manifest
    from edge_runtime.errors import EdgeRuntimeError

    check = validator()
    checked, out = 0, []
    for where, raw in _manifests(root):
        try:
            manifest = Manifest.from_bytes(raw)
        except (EdgeRuntimeError, ValueError):
            continue
        checked += 1
        errors = sorted(check.iter_errors(manifest.data), key=lambda e: list(e.absolute_path))
        if errors:
            first = errors[0]
            at = "/".join(str(p) for p in first.absolute_path) or "(top)"
            out.append(f"{where}: {at}: {first.message[:200]}")
    return checked, out
