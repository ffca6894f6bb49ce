"""Serve the browser demo on 127.0.0.1, fully offline: the page, Pyodide and onnxruntime-web
from ``tests/js/node_modules`` (installed by ``scripts/setup.d/30-node-pyodide.sh``; nothing
big is vendored into git), a bundle directory and our wheel, all from one origin.

    python examples/browser/serve.py --bundle demo-bundle [--wheel dist/edge_runtime-*.whl]
    # then open http://127.0.0.1:8000/

URL map: ``/`` this folder, ``/pyodide/`` npm pyodide, ``/ort/`` onnxruntime-web's ``dist``,
``/bundle/`` the bundle, ``/edge_runtime.whl`` the wheel (built from the checkout when not given).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import posixpath
import subprocess
import sys
import tempfile
import threading
import urllib.parse
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NODE_MODULES = ROOT / "tests" / "js" / "node_modules"


class DemoHandler(http.server.SimpleHTTPRequestHandler):
    """Static files from a few roots chosen by URL prefix; no directory listings, no uploads."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
                      ".json": "application/json", ".whl": "application/zip", ".zip": "application/zip",
                      ".onnx": "application/octet-stream"}

    def __init__(self, *args, mounts: dict[str, Path], files: dict[str, Path], **kwargs):
        self.mounts = mounts
        self.files = files
        super().__init__(*args, **kwargs)

    def translate_path(self, path: str) -> str:
        clean = posixpath.normpath(urllib.parse.unquote(path.split("?", 1)[0].split("#", 1)[0]))
        if clean in self.files:
            return str(self.files[clean])
        for prefix, root in sorted(self.mounts.items(), key=lambda kv: -len(kv[0])):
            if clean == prefix.rstrip("/") or clean.startswith(prefix):
                self.directory = str(root)
                return super().translate_path("/" + clean[len(prefix):])
        return str(Path(self.directory) / "__missing__")

    def list_directory(self, path):  # type: ignore[override]
        self.send_error(404, "no directory listings")
        return None

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_request(self, code: object = "-", size: object = "-") -> None:  # errors only
        if str(getattr(code, "value", code)).startswith(("4", "5")):
            super().log_request(code, size)


def build_wheel(out_dir: Path) -> Path:
    """A wheel of the checkout (pure Python), for pages served straight from a clone."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", str(ROOT), "-w",
                    str(out_dir)], check=True)
    return sorted(out_dir.glob("edge_runtime-*.whl"))[-1]


def make_server(bundle: Path, wheel: Path, port: int = 0,
                node_modules: Path = NODE_MODULES) -> http.server.ThreadingHTTPServer:
    """A server bound to 127.0.0.1 (``port=0``: a free port; read ``server.server_address``).

    Raises:
        FileNotFoundError: the node modules, bundle or wheel are missing (says what to run).
    """
    for need in (node_modules / "pyodide" / "pyodide.mjs", node_modules / "onnxruntime-web" / "dist",
                 bundle / "manifest.json", wheel):
        if not need.exists():
            raise FileNotFoundError(f"{need} is missing (run scripts/setup.d/30-node-pyodide.sh; "
                                    "make a bundle with `python -m edge_runtime demo -o demo-bundle`)")
    mounts = {"/pyodide/": node_modules / "pyodide", "/ort/": node_modules / "onnxruntime-web" / "dist",
              "/bundle/": bundle, "/": HERE}
    handler = functools.partial(DemoHandler, mounts=mounts, files={"/edge_runtime.whl": wheel},
                                directory=str(HERE))
    return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)


def serve_in_thread(server: http.server.ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="browser-demo", daemon=True)
    thread.start()
    return thread


def main(argv: Optional[list[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=Path("demo-bundle"))
    ap.add_argument("--wheel", type=Path, default=None)
    ap.add_argument("--port", type=int, default=8000)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or build_wheel(Path(tmp))
        server = make_server(args.bundle.resolve(), wheel.resolve(), args.port)
        host, port = server.server_address[:2]
        print(f"serving the edge-runtime browser demo on http://{host}:{port}/ (Ctrl-C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()


if __name__ == "__main__":
    main()
