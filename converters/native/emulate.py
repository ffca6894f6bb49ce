"""Run a library built for another architecture under qemu-user, to measure its parity at
conversion time: a small driver, cross-compiled for the same target, ``dlopen``s the very
library that goes into the bundle, calls ``edgert_predict`` on rows read from a file (all at
once, or one call per row) and writes the outputs back. No ARM root file system is needed: the
cross toolchain's own libc (``/usr/<triple>``) is the dynamic loader's root (``qemu -L``)."""

from __future__ import annotations

import atexit
import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..errors import ConversionError
from .toolchain import Toolchain

QEMU = {"aarch64": "qemu-aarch64-static", "armv7": "qemu-arm-static", "x86_64": "qemu-x86_64-static"}
RUN_TIMEOUT_S = 600

DRIVER = r"""
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
typedef int32_t (*predict_t)(const float *, int64_t, double *, int32_t *);
typedef int32_t (*count_t)(void);
int main(int argc, char **argv) {
    if (argc != 6) return 2;
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) { fprintf(stderr, "%s\n", dlerror()); return 3; }
    predict_t predict = (predict_t)dlsym(h, "edgert_predict");
    count_t nf = (count_t)dlsym(h, "edgert_n_features"), no = (count_t)dlsym(h, "edgert_n_outputs");
    if (!predict || !nf || !no) return 4;
    int64_t n = atoll(argv[4]); int by_row = atoi(argv[5]);
    int32_t d = nf(), k = no();
    float *x = malloc(sizeof(float) * (size_t)(n * d + 1));
    double *o = malloc(sizeof(double) * (size_t)(n * k + 1));
    int32_t *l = malloc(sizeof(int32_t) * (size_t)(n + 1));
    FILE *f = fopen(argv[2], "rb");
    if (!f || fread(x, sizeof(float), (size_t)(n * d), f) != (size_t)(n * d)) return 5;
    fclose(f);
    if (by_row) { for (int64_t i = 0; i < n; ++i) if (predict(x + i * d, 1, o + i * k, l + i)) return 6; }
    else if (predict(x, n, o, l)) return 6;
    f = fopen(argv[3], "wb");
    if (!f) return 7;
    fwrite(o, sizeof(double), (size_t)(n * k), f);
    fwrite(l, sizeof(int32_t), (size_t)n, f);
    fclose(f);
    return 0;
}
"""


def qemu_for(target: str) -> str:
    """Raises: ConversionError naming the package when qemu-user is missing."""
    exe = shutil.which(QEMU[target])
    if exe is None:
        raise ConversionError(f"{QEMU[target]} is needed to check the {target} library's parity: "
                              "apt-get install qemu-user-static (scripts/setup.d/60-cross.sh)")
    return exe


@functools.cache
def _driver(compiler: str) -> Path:
    """The parity driver for one cross compiler, built once per process (a conversion runs it
    for every parity, NaN and golden probe)."""
    d = Path(tempfile.mkdtemp(prefix="edgert-qemu-driver-"))
    atexit.register(shutil.rmtree, d, True)
    (d / "driver.c").write_text(DRIVER)
    r = subprocess.run([compiler, "-O1", "-o", str(d / "driver"), str(d / "driver.c"), "-ldl"],
                       capture_output=True, text=True, timeout=120, check=False)
    if r.returncode != 0:
        raise ConversionError(f"cannot build the parity driver with {compiler}: {r.stderr[:1000]}")
    return d / "driver"


def run_foreign(library: bytes, tc: Toolchain, x: np.ndarray, n_outputs: int, by_row: bool
                ) -> tuple[np.ndarray, np.ndarray]:
    """(outputs float64 (n, n_outputs), labels int32 (n,)) of ``library`` on float32 rows ``x``.

    Raises:
        ConversionError: the driver cannot be built or the emulated run fails.
    """
    qemu = qemu_for(tc.target)
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = x.shape[0]
    with tempfile.TemporaryDirectory(prefix="edgert-qemu-") as tmp:
        t = Path(tmp)
        (t / "model.so").write_bytes(library)
        x.tofile(t / "in.bin")
        sysroot = f"/usr/{tc.triple}"
        r = subprocess.run([qemu, "-L", sysroot, str(_driver(tc.compiler)), str(t / "model.so"), str(t / "in.bin"),
                            str(t / "out.bin"), str(n), "1" if by_row else "0"],
                           capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False)
        if r.returncode != 0:
            raise ConversionError(f"the {tc.target} library failed under {Path(qemu).name} "
                                  f"(exit {r.returncode}): {r.stderr[:1000]}")
        raw = (t / "out.bin").read_bytes()
    out = np.frombuffer(raw[: n * n_outputs * 8], dtype=np.float64).reshape(n, n_outputs)
    labels = np.frombuffer(raw[n * n_outputs * 8:], dtype=np.int32)
    return out, labels
