"""Source text that makes a child Python refuse some imports, as if those packages were not
installed: the import-boundary, core-without-numpy, TensorFlow-free and no-onnxruntime tests all
prepend it to the script they run in a fresh interpreter."""

from __future__ import annotations

import textwrap
from typing import Iterable

_TEMPLATE = textwrap.dedent("""
    import sys, importlib.abc, importlib.util
    BLOCKED = {blocked!r}  # the child script may read it
    class _Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"blocked for this test: {{name}}")
            return None
    sys.meta_path.insert(0, _Block())
    # code that probes with find_spec (is it installed?) must see the same answer
    importlib.util.find_spec = (lambda f: (lambda n, *a: None if n.split(".")[0] in BLOCKED else f(n, *a)))(
        importlib.util.find_spec)
""")


def blocker(blocked: Iterable[str]) -> str:
    """Python source blocking every top-level package in ``blocked`` (and its submodules)."""
    return _TEMPLATE.format(blocked=sorted(set(blocked)))
