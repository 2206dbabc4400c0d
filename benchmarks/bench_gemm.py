"""asv benchmarks for GEMM: numlin and its anchor (numpy/OpenBLAS) side by side.

``time_*`` are asv's own timings; ``track_ratio`` is the paired, same-process ratio
(anchor time / numlin time, > 1: numlin faster) that benchmarks/README.md quotes;
``track_compile_s`` is the first-call JIT compile time with an empty Numba cache, kept out of
every timed body (setup warms up).
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

import numlin as nl
from numlin._bench import blas_threads, paired


def _threads():
    import numba

    return numba.get_num_threads()


class SquareGemm:
    params = ([512, 1024, 2048], ["float32", "float64"])
    param_names = ["n", "dtype"]
    timeout = 300

    def setup(self, n, dtype):
        rng = np.random.default_rng(0)
        self.a = rng.standard_normal((n, n)).astype(dtype)
        self.b = rng.standard_normal((n, n)).astype(dtype)
        self.c = np.empty((n, n), dtype)
        self._limit = blas_threads(_threads())
        self._limit.__enter__()
        nl.matmul(self.a, self.b, out=self.c)  # compile / load from cache outside the timing

    def teardown(self, n, dtype):
        self._limit.__exit__(None, None, None)

    def time_numlin(self, n, dtype):
        nl.matmul(self.a, self.b, out=self.c)

    def time_numpy(self, n, dtype):
        np.matmul(self.a, self.b, out=self.c)

    def track_ratio(self, n, dtype):
        return paired(lambda: nl.matmul(self.a, self.b, out=self.c),
                      lambda: np.matmul(self.a, self.b, out=self.c), rounds=5, reps=3)[2]

    track_ratio.unit = "numpy time / numlin time"


class BatchedSmall:
    params = ([8, 16, 32], ["float32", "float64"])
    param_names = ["size", "dtype"]

    def setup(self, size, dtype):
        rng = np.random.default_rng(0)
        batch = 10_000 if size <= 16 else 2_000
        self.a = rng.standard_normal((batch, size, size)).astype(dtype)
        self.b = rng.standard_normal((batch, size, size)).astype(dtype)
        self.c = np.empty_like(self.a)
        nl.matmul(self.a, self.b, out=self.c)

    def time_numlin(self, size, dtype):
        nl.matmul(self.a, self.b, out=self.c)

    def time_numpy(self, size, dtype):
        np.matmul(self.a, self.b, out=self.c)

    def track_ratio(self, size, dtype):
        return paired(lambda: nl.matmul(self.a, self.b, out=self.c),
                      lambda: np.matmul(self.a, self.b, out=self.c), rounds=5, reps=10, pause=0.05)[2]

    track_ratio.unit = "numpy time / numlin time"


class TallSkinny:
    """The shape of randomized SVD's passes: (20000 x 1000) @ (1000 x 30)."""

    params = (["float32", "float64"],)
    param_names = ["dtype"]

    def setup(self, dtype):
        rng = np.random.default_rng(0)
        self.a = rng.standard_normal((20_000, 1_000)).astype(dtype)
        self.b = rng.standard_normal((1_000, 30)).astype(dtype)
        self.c = np.empty((20_000, 30), dtype)
        nl.matmul(self.a, self.b, out=self.c)

    def time_numlin(self, dtype):
        nl.matmul(self.a, self.b, out=self.c)

    def time_numpy(self, dtype):
        np.matmul(self.a, self.b, out=self.c)


class MatrixVector:
    """2048 x 2048 @ 2048 and 2048 @ 2048 x 2048 (numlin's gemv: memory-bound)."""

    params = (["matvec", "vecmat"], ["float32", "float64"])
    param_names = ["side", "dtype"]

    def setup(self, side, dtype):
        rng = np.random.default_rng(0)
        self.a = rng.standard_normal((2048, 2048)).astype(dtype)
        self.x = rng.standard_normal(2048).astype(dtype)
        self.y = np.empty(2048, dtype)
        self.ops = (self.a, self.x) if side == "matvec" else (self.x, self.a)
        self._limit = blas_threads(_threads())
        self._limit.__enter__()
        nl.matmul(*self.ops, out=self.y)

    def teardown(self, side, dtype):
        self._limit.__exit__(None, None, None)

    def time_numlin(self, side, dtype):
        nl.matmul(*self.ops, out=self.y)

    def time_numpy(self, side, dtype):
        np.matmul(*self.ops, out=self.y)

    def track_ratio(self, side, dtype):
        return paired(lambda: nl.matmul(*self.ops, out=self.y), lambda: np.matmul(*self.ops, out=self.y),
                      rounds=5, reps=30, pause=0.05)[2]

    track_ratio.unit = "numpy time / numlin time"


class Compile:
    timeout = 600

    def track_compile_s(self):
        """Seconds for import + first float32 and float64 matmul with an empty Numba cache."""
        code = ("import time, numpy as np; t=time.perf_counter(); import numlin as nl\n"
                "for dt in (np.float32, np.float64):\n"
                "    x = np.ones((300, 300), dt); nl.matmul(x, x); nl.matmul(np.ones((3, 8, 8), dt), np.ones((8, 8), dt))\n"
                "print(time.perf_counter() - t)")
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])

    track_compile_s.unit = "seconds"
