"""Native libraries for aarch64 and armv7 against the host's scikit-learn, two ways:

- at conversion time (slow, in the default suite where the cross toolchains and qemu-user are
  installed, scripts/setup.d/60-cross.sh): every library's parity is measured, the ARM ones by a
  cross-built driver that dlopens them under qemu-user;
- on the device side (opt-in ``-m arm``, downloads an ARM Python on first use): the runtime's own
  native backend, in an emulated CPython (benchmarks/arm/run.sh), loads the TUF-installed
  version's library for its architecture with ctypes and answers exactly as scikit-learn on the host.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("x86_64", "aarch64", "armv7")
TOOLS = ("gcc", "aarch64-linux-gnu-gcc", "arm-linux-gnueabihf-gcc", "qemu-aarch64-static", "qemu-arm-static")

pytestmark = pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS) or os.uname().machine != "x86_64",
                                reason="needs an x86_64 host with the cross toolchains and qemu-user "
                                       "(scripts/setup.d/60-cross.sh)")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    from sklearn.datasets import make_classification
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

    import converters
    from converters.signing import init_signing_key

    X, y = make_classification(3000, 10, n_informative=6, n_classes=3, random_state=0)
    X = X.astype(np.float32).astype(np.float64)
    d = tmp_path_factory.mktemp("native-arm")
    priv, pub = init_signing_key(d / "owner")
    out = {"X": X[1000:], "pub": pub}
    for name, est in (("forest", RandomForestClassifier(10, max_depth=6, random_state=0)),
                      ("boosting", GradientBoostingClassifier(n_estimators=15, random_state=0))):
        est.fit(X[:1000], y[:1000])
        out[name] = (est, converters.convert(est, X[:1000], d / name, formats=["native"], targets=list(TARGETS),
                                             holdout=X[1000:], sign_with=priv))
    return out


@pytest.mark.slow
def test_every_target_library_passes_parity_at_conversion(converted) -> None:
    import edge_runtime

    for name in ("forest", "boosting"):
        _, path = converted[name]
        arts = {a.extra["arch"]: a for a in edge_runtime.open_bundle(path).manifest.artifacts}
        assert sorted(arts) == sorted(TARGETS)
        for arch, art in arts.items():
            p = art.parity
            assert p["passed"] and p["rows"] == 2000 and p["label_agreement"] == 1.0
            assert ("emulation" in p["backend"]) == (arch != "x86_64")
            assert art.extra["build"]["triple"].startswith({"x86_64": "x86_64", "aarch64": "aarch64",
                                                            "armv7": "arm-linux-gnueabihf"}[arch])
            # trees: bit-identical; softmax (boosting, 3 classes) may differ in the last bit
            assert p["probabilities_max_abs_diff"] <= (0.0 if name == "forest" else 1e-15)


DEVICE_SCRIPT = r"""
import json, os, platform, sys
import numpy as np
import edge_runtime
bundle, rows, out = sys.argv[1:4]
model = edge_runtime.load(bundle, backend="native")  # vouched for by the store's TUF record
x = np.load(rows)
proba = model.predict_proba(x)
one = np.concatenate([model.predict_proba(x[i:i + 1]) for i in range(7)])
np.save(out, np.concatenate([proba, one]))
print(json.dumps({"machine": platform.machine(), "artifact": model.artifact.path, "numpy": np.__version__}))
"""


@pytest.fixture()
def _only_when_asked(request: pytest.FixtureRequest) -> None:
    expr = request.config.option.markexpr or ""
    if "arm" not in expr.replace("not arm", ""):
        pytest.skip("opt-in: run with pytest -m arm")


@pytest.mark.arm
@pytest.mark.slow
@pytest.mark.parametrize("arch", ["aarch64", "armv7"])
def test_the_device_backend_runs_the_arm_library_under_emulation(arch, converted, tmp_path, _only_when_asked):
    from edge_runtime.bundle import pack_bundle
    from edge_runtime.sync.store import VersionStore

    est, bundle = converted["forest"]
    # the emulated device has no 'cryptography' for signatures: the sync agent's route instead
    store = VersionStore(tmp_path / "state")
    installed = store.install("1.0.0", pack_bundle(bundle, tmp_path / "b.tar.gz"), via_tuf=True)
    rows = np.ascontiguousarray(converted["X"][:500], np.float32)
    np.save(tmp_path / "rows.npy", rows)
    (tmp_path / "device.py").write_text(DEVICE_SCRIPT)
    env = {**os.environ, "EDGERT_NATIVE_DIR": str(tmp_path / "libs"), "EDGERT_CACHE_DIR": str(tmp_path / "cache")}
    r = subprocess.run(["bash", str(ROOT / "benchmarks" / "arm" / "run.sh"), arch, "--python",
                        str(tmp_path / "device.py"), str(installed), str(tmp_path / "rows.npy"),
                        str(tmp_path / "out.npy")], capture_output=True, text=True, timeout=1800, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    info = json.loads(r.stdout.strip().splitlines()[-1])
    assert info["artifact"] == f"model.{arch}.so" and info["machine"] in (("aarch64",) if arch == "aarch64"
                                                                          else ("armv7l", "armv8l"))
    got = np.load(tmp_path / "out.npy")
    want = est.predict_proba(rows)
    assert np.array_equal(got, np.concatenate([want, want[:7]]))
