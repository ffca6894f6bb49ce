"""docs/manifest.schema.json against the bundles the tests write: every manifest the runtime
accepts must validate (what an app on Android or iOS reads with the schema must be what the
runtime reads), checked once per session over pytest's temporary directory."""

from __future__ import annotations

import json
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
    """The archive's ``manifest.json``, read with the runtime's bounded reader: ``tarfile``
    spent 79 s of a test run on the hostile-archive tests' bombs (a 3 GB PAX header in 3 MB)."""
    from edge_runtime.archive import LimitedGunzip, TarReader
    from edge_runtime.errors import EdgeRuntimeError

    try:
        with path.open("rb") as fh:
            tar = TarReader(LimitedGunzip(fh, 64 * 1024 * 1024, str(path)))
            while True:
                member = tar.next_member()
                if member is None:
                    return None
                if member.name == "manifest.json":
                    if not member.isfile() or member.size > _MAX_MANIFEST:
                        return None
                    out = bytearray()
                    tar.copy_data(member, out.extend)
                    return bytes(out)
    except (OSError, EOFError, EdgeRuntimeError):
        return None


def problems_under(root: Path) -> tuple[int, list[str]]:
    """(manifests checked, one line per manifest the runtime accepts but the schema refuses).
    Manifests the runtime refuses are the hostile-input tests' fixtures, not bundles."""
    check = validator()
    checked, out = 0, []
    seen: dict[bytes, Optional[str]] = {}  # half the manifests a run writes are copies: judged once
    for where, raw in _manifests(root):
        if raw not in seen:
            seen[raw] = _problem(check, raw)
        problem = seen[raw]
        if problem is not None:
            checked += 1
            if problem:
                out.append(f"{where}: {problem}")
    return checked, out


def _problem(check: Any, raw: bytes) -> Optional[str]:
    """None when the runtime refuses the manifest, "" when the schema accepts it, else the
    first mismatch."""
    from edge_runtime.bundle import Manifest
    from edge_runtime.errors import EdgeRuntimeError

    try:
        manifest = Manifest.from_bytes(raw)
    except (EdgeRuntimeError, ValueError):
        return None
    errors = sorted(check.iter_errors(manifest.data), key=lambda e: list(e.absolute_path))
    if not errors:
        return ""
    at = "/".join(str(p) for p in errors[0].absolute_path) or "(top)"
    return f"{at}: {errors[0].message[:200]}"
