"""``python -m numlin compile``: fill the kernel cache ahead of use (a Docker image, a CI cache).

Each job runs one op's routes for one dtype through the public functions, at small sizes that
still take every code path (the kernels are compiled per dtype and argument layout, not per
size), in its own process; ``--jobs`` runs several at once. The kernels land where Numba caches
them (``NUMBA_CACHE_DIR`` if set), in a folder named after the register tiles of this machine
(:mod:`numlin.kernels.cpu._cache`), so the cache serves only machines of the same kind.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ._config import config

__all__ = ["OPS", "DTYPES", "warm", "main"]

DTYPES = ("float32", "float64")


def _matmul(dt) -> None:
    import numlin as nl

    rng = np.random.default_rng(0)

    def r(*shape):
        return rng.standard_normal(shape).astype(dt)

    nl.matmul(r(300, 200), r(200, 260))                       # packed, blocks per thread
    nl.matmul(r(40, 30), r(30, 50))                           # direct (unpacked)
    nl.matmul(r(8, 64, 64), r(8, 64, 64))                     # batched
    nl.matmul(r(4, 8, 8), r(8, 8))                            # small batched, one B
    nl.matmul(r(16, 100, 120), r(120, 90))                    # batched, shared B packed once
    nl.matmul(r(500, 400), r(400))                            # matrix x vector
    nl.matmul(r(300), r(300, 200))                            # vector x matrix
    nl.matmul(r(200, 300).T, r(200, 100))                     # transposed operand
    nl.gemm(r(64, 64), r(64, 64), r(64, 64), alpha=2.0, beta=0.5)


def _conv(dt) -> None:
    import numlin as nl

    rng = np.random.default_rng(0)

    def r(*shape):
        return rng.standard_normal(shape).astype(dt)

    from .kernels.cpu.blocking import blocking

    vw = blocking(dt).vw
    for x, w, kw in (
        (r(4, 16, 14, 14), r(16, 16, 3, 3), dict(padding=1)),               # stride 1: shifted copies
        (r(4, 16, 14, 14), r(32, 16, 3, 3), dict(stride=2, padding=1)),     # strided implicit GEMM
        (r(4, 16, 14, 14), r(32, 16, 1, 1), {}),                            # pointwise
        (r(4, 16, 14, 14), r(16, 1, 3, 3), dict(padding=1, groups=16)),     # depthwise
        (r(4, 16, 14, 14), r(16, 1, 3, 3), dict(stride=2, padding=1, groups=16)),
        (r(4, 1, 8, 8), r(8, 1, 3, 3), dict(padding=1)),                    # one input channel
        (r(2, 4, 3, 40), r(4, 4, 3, 3), dict(padding=1)),                   # rows past SHIFT_BLOCK_Q: plane copies
        (r(4, 8, max(1, vw // 4), min(4, vw)), r(8, 8, 3, 3), dict(padding=1)),  # one vector per plane
    ):
        b = r(w.shape[0])
        y = nl.conv2d(x, w, b, **kw)
        nl.conv2d_backward(np.ones_like(y), x, w, **kw)
    xh, wh = r(2, 10, 10, 8), r(3, 3, 8, 8)                                 # NHWC
    y = nl.conv2d(xh, wh, padding=1, layout="NHWC")
    nl.conv2d_backward(np.ones_like(y), xh, wh, padding=1, layout="NHWC")
    cols = nl.im2col(r(2, 3, 8, 8), 3, padding=1)
    nl.col2im(cols, (2, 3, 8, 8), 3, padding=1)


def _rsvd(dt) -> None:
    import scipy.sparse as sp

    import numlin as nl

    rng = np.random.default_rng(0)
    A = rng.standard_normal((400, 300)).astype(dt)
    nl.linalg.rsvd(A, 10, random_state=0)
    nl.linalg.pca(A, 5, random_state=0)
    nl.linalg.rsvd(sp.random(400, 300, density=0.05, format="csr", dtype=dt, random_state=0), 10, random_state=0)


def _autodiff(dt) -> None:
    import numlin as nl
    from numlin.demo import build_model

    model = build_model(dtype=np.dtype(dt).type)
    opt = nl.optim.Adam(1e-3)
    rng = np.random.default_rng(0)
    images = rng.random((64, 1, 8, 8)).astype(dt)
    labels = rng.integers(0, 10, 64)
    for _ in range(2):
        with nl.GradientTape() as tape:
            loss = nl.nn.cross_entropy(model(nl.Tensor(images)), labels)
        grads = tape.gradient(loss, model.parameters())
        opt.apply_gradients(zip(grads, model.parameters()))
    x = nl.constant(np.linspace(0.5, 2.0, 12).reshape(3, 4).astype(dt))
    with nl.GradientTape() as g:
        g.watch(x)
        y = nl.log(x) + nl.exp(x) * nl.sin(x) - nl.cos(x) / nl.sqrt(x) + nl.tanh(x) * nl.sigmoid(x) + nl.relu(x)
        out = nl.sum(y - nl.abs(x) + nl.mean(x, axis=0) + nl.max(x, axis=1, keepdims=True)) + nl.sum(x @ nl.transpose(x)) ** 2
    g.gradient(out, x)
    _batchnorm(dt)


def _batchnorm(dt) -> None:
    """BatchNorm2d's fused kernels (part of the ``autodiff`` job)."""
    import numlin as nl

    rng = np.random.default_rng(0)
    bn = nl.nn.BatchNorm2d(4, dtype=dt)
    x = nl.Tensor(rng.standard_normal((2, 4, 3, 3)).astype(dt))
    for training in (True, False):                            # fused forward and backward, both modes
        bn.train(training)
        with nl.GradientTape() as tape:
            tape.watch(x)
            loss = nl.sum(bn(x) ** 2)
        tape.gradient(loss, [x, bn.weight, bn.bias])
    with nl.GradientTape() as tape:                           # weight and bias only: no dx
        loss = nl.sum(bn(x.numpy()) ** 2)
    tape.gradient(loss, bn.parameters())


OPS = {"matmul": _matmul, "conv": _conv, "rsvd": _rsvd, "autodiff": _autodiff}


def warm(op: str, dtype: str) -> None:
    """Run ``op``'s routes for ``dtype`` in this process (compiling or loading their kernels)."""
    OPS[op](np.dtype(dtype))


def _job(op: str, dtype: str) -> tuple[str, str, float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", f"from numlin._precompile import warm; warm({op!r}, {dtype!r})"],
                          capture_output=True, text=True)
    err = "" if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["failed"])[-1]
    return op, dtype, time.perf_counter() - t0, err


def main(ops: list[str] | None = None, dtypes: list[str] | None = None, jobs: int | None = None,
         out=print) -> int:
    """Compile ``ops`` x ``dtypes`` (default: all) in ``jobs`` processes; returns an exit status."""
    from .kernels.cpu._cache import tile_tag

    ops = list(ops or OPS)
    dtypes = list(dtypes or DTYPES)
    jobs = jobs or max(1, os.cpu_count() or 1)
    where = config.numba_cache_dir or "the package's __pycache__ folders (or the user cache)"
    out(f"numlin compile: {len(ops) * len(dtypes)} jobs, {jobs} at once; kernels cached in {where}, "
        f"folder {tile_tag()}")
    t0 = time.perf_counter()
    failed = 0
    with ThreadPoolExecutor(jobs) as pool:
        for op, dt, sec, err in pool.map(lambda p: _job(*p), [(o, d) for o in ops for d in dtypes]):
            failed += bool(err)
            out(f"  {op:<9} {dt:<8} {sec:6.1f} s" + (f"  FAILED: {err}" if err else ""))
    out(f"done in {time.perf_counter() - t0:.1f} s")
    return 1 if failed else 0
