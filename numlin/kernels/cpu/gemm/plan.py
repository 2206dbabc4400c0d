"""Which path a product takes, and the launches: the Python entry points of the CPU GEMM.

:func:`matmul_into` chooses, per call, from the shapes, strides and sizes and from the knobs in
:data:`numlin._config.config` (``gemm_*``, read at call time so that tests and A/B timings steer
routes with :func:`numlin._config.override`):

1. a vector operand: :func:`.small.gemv` (memory-bound; no tiles);
2. a product up to ``gemm_direct_mnk`` FMAs whose B fits ``gemm_direct_b_bytes`` and whose B and C
   (or A and C, through Cᵀ = Bᵀ Aᵀ) have unit column stride: :func:`.small.gemm_direct`, in place;
3. otherwise packed (:mod:`.loops`), with Cᵀ = Bᵀ Aᵀ when that fills the register tiles better:
   a batch sharing one B packs it once per thread; little work stays on the calling thread; a
   batch spreads over the threads; a few large products cut each C into a grid of blocks.

Below ``gemm_parallel_mnk`` (the batch's m*n*k plus ``gemm_item_cost`` per product) a call stays
on the calling thread: a launch on the pool costs more than it saves.
"""
from __future__ import annotations

import numpy as np

from ...._config import config
from ...._strided import Strided, gemm_dims
from .._threads import launch, num_threads
from ..blocking import DIRECT_MR, blocking
from .loops import (_scale, add_partial_sums, gemm_batched, gemm_batched_shared_b, gemm_batched_sum, gemm_blocks,
                    workspace_size)
from .operands import _readonly, _rows_contiguous, workspace
from .small import gemm_direct, gemv

__all__ = ["matmul_into", "matmul_sum_into", "add_partials"]


def matmul_into(a: Strided, b: Strided, c: Strided, alpha: float = 1.0, beta: float = 0.0) -> None:
    """``C = alpha * A @ B + beta * C`` over descriptors of one float dtype (from :func:`.operands.strided`).

    ``a`` is ``(..., m, k)``, ``b`` ``(..., k, n)``, ``c`` ``(..., m, n)``; the batch dims of ``a``
    and ``b`` broadcast to those of ``c``; ``c`` does not overlap ``a`` or ``b`` (checked by the caller).
    """
    m, n, k, batch, nb = gemm_dims(a, b, c)
    if nb == 0 or m == 0 or n == 0:
        return
    if k == 0 or alpha == 0:  # C = beta * C, A and B not read (BLAS); the kernels below assume neither
        _scale_each(c, batch, m, n, beta)
        return
    a, b = _readonly(a), _readonly(b)
    dtype = c.buf.dtype
    bl = blocking(dtype)
    threads = num_threads()
    one_item = m * n * max(k, 1)
    small_mnk = config.gemm_small_mnk
    # too little work to repay a launch on several threads
    one_thread = nb * (one_item + config.gemm_item_cost) < config.gemm_parallel_mnk
    if config.gemm_gemv and k > 0 and (n == 1 or m == 1):  # matrix x vector: memory-bound, no tiles
        if n != 1:  # a row vector times a matrix: Cᵀ = Bᵀ Aᵀ
            a, b, c = b.mT, a.mT, c.mT
            m, n = n, m
        aoffs, boffs, coffs = a.batch_offsets(batch), b.batch_offsets(batch), c.batch_offsets(batch)
        args = (m, k, alpha, a.buf, aoffs, a.strides[-2], a.strides[-1], b.buf, boffs, b.strides[-2], beta, c.buf,
                coffs, c.strides[-2])
        if one_thread or threads == 1:
            launch(gemv, 1, *args, 1)
            return
        rparts = max(1, min(threads // nb, m // 16)) if nb < threads else 1
        launch(gemv, min(threads, nb * rparts), *args, rparts)
        return
    if k > 0 and one_item <= config.gemm_direct_mnk[dtype.itemsize]:
        b_bytes = config.gemm_direct_b_bytes
        if not b.strides[-1] == c.strides[-1] == 1:
            if a.strides[-2] == c.strides[-2] == 1:  # Cᵀ = Bᵀ Aᵀ reads in place
                a, b, c = b.mT, a.mT, c.mT
                m, n = n, m
        if c.strides[-1] == 1 and b.strides[-1] != 1 and k * n * dtype.itemsize <= b_bytes:
            b = _rows_contiguous(b, batch)  # one small B (a transposed weight): copied, not packed per call
        if b.strides[-1] == c.strides[-1] == 1 and k * n * dtype.itemsize <= b_bytes:
            aoffs, boffs, coffs = a.batch_offsets(batch), b.batch_offsets(batch), c.batch_offsets(batch)
            direct = (m, n, k, alpha, a.buf, aoffs, a.strides[-2], a.strides[-1], b.buf, boffs, b.strides[-2], beta,
                      c.buf, coffs, c.strides[-2])
            if one_thread or threads == 1:
                launch(gemm_direct, 1, *direct, 1)
                return
            rparts = min(-(-m // DIRECT_MR), max(1, threads // nb))
            launch(gemm_direct, min(threads, nb * rparts), *direct, rparts)
            return
    if _tile_use(n, m, bl) > 1.15 * _tile_use(m, n, bl):
        # Cᵀ = Bᵀ Aᵀ fills the MR x NR register tiles better (e.g. n = 16 against NR = 32)
        a, b, c = b.mT, a.mT, c.mT
        m, n = n, m
    kc = min(bl.kc, max(k, 1))
    mc = min(bl.mc, -(-m // bl.mr) * bl.mr)
    nc = min(bl.nc, -(-n // bl.nr) * bl.nr)
    wsize = workspace_size(dtype, kc, mc, nc)
    aoffs, boffs, coffs = a.batch_offsets(batch), b.batch_offsets(batch), c.batch_offsets(batch)
    args = (a.buf, aoffs, a.strides[-2], a.strides[-1], b.buf, boffs, b.strides[-2], b.strides[-1], beta,
            c.buf, coffs, c.strides[-2], c.strides[-1])
    if config.gemm_share_b and nb > 1 and one_item > small_mnk and (boffs == boffs[0]).all():
        # one B for the whole batch (a filter against per-sample columns): pack it once per thread
        parts = 1 if one_thread else min(threads, nb)
        launch(gemm_batched_shared_b, parts, m, n, k, alpha, a.buf, aoffs, a.strides[-2], a.strides[-1], b.buf,
               int(boffs[0]), b.strides[-2], b.strides[-1], beta, c.buf, coffs, c.strides[-2], c.strides[-1],
               workspace(dtype, wsize * parts), wsize, kc, mc, nc)
        return
    if one_thread or threads == 1:
        if nb == 1 and one_item > small_mnk:  # one product: the kernel the threaded case uses, one block
            launch(gemm_blocks, 1, 1, m, n, k, alpha, a.buf, int(aoffs[0]), a.strides[-2], a.strides[-1], b.buf,
                   int(boffs[0]), b.strides[-2], b.strides[-1], beta, c.buf, int(coffs[0]), c.strides[-2],
                   c.strides[-1], workspace(dtype, wsize), wsize, kc, mc, nc)
            return
        launch(gemm_batched, 1, m, n, k, alpha, *args, workspace(dtype, wsize), wsize, kc, mc, nc, small_mnk)
        return
    if nb >= threads or one_item <= small_mnk:
        parts = min(threads, nb)
        launch(gemm_batched, parts, m, n, k, alpha, *args, workspace(dtype, wsize * parts), wsize, kc, mc, nc,
               small_mnk)
        return
    # A few large products: parallelise inside each one instead of across them.
    tm, tn = _thread_grid(-(-m // bl.mr), -(-n // bl.nr), threads)
    work = workspace(dtype, wsize * tm * tn)
    for i in range(nb):
        launch(gemm_blocks, tm * tn, tn, m, n, k, alpha, a.buf, int(aoffs[i]), a.strides[-2], a.strides[-1],
               b.buf, int(boffs[i]), b.strides[-2], b.strides[-1], beta,
               c.buf, int(coffs[i]), c.strides[-2], c.strides[-1], work, wsize, kc, mc, nc)


def matmul_sum_into(a: Strided, b: Strided, c: Strided, beta: float = 0.0) -> None:
    """``C = beta * C + sum_t A[t] @ B[t]`` over the leading axis of ``a`` and ``b``.

    ``a`` is ``(nb, ..., m, k)``, ``b`` ``(nb, ..., k, n)``, ``c`` ``(..., m, n)``: one reduction per
    matrix of ``c`` (e.g. per group of a grouped convolution). A thread's partial sums stay in
    registers/cache through its run of products; no per-product partial matrices are written.
    """
    a, b = _readonly(a), _readonly(b)
    nb = a.shape[0]
    cbatch = tuple(c.shape[:-2])
    m, n, k = c.shape[-2], c.shape[-1], a.shape[-1]
    dtype = c.buf.dtype
    bl = blocking(dtype)
    if _tile_use(n, m, bl) > 1.15 * _tile_use(m, n, bl):  # sum_t Bᵀ Aᵀ = Cᵀ fills the tiles better
        a, b, c = b.mT, a.mT, c.mT
        m, n = n, m
    ng = int(np.prod(cbatch, dtype=np.int64))
    if nb == 0 or k == 0:  # an empty sum: C = beta * C
        _scale_each(c, cbatch, m, n, beta)
        return
    aoffs = a.batch_offsets((nb,) + cbatch).reshape(nb, ng)
    boffs = b.batch_offsets((nb,) + cbatch).reshape(nb, ng)
    coffs = c.batch_offsets(cbatch)
    kc = min(bl.kc, max(k, 1))
    mc = min(bl.mc, -(-m // bl.mr) * bl.mr)
    nc = min(bl.nc, -(-n // bl.nr) * bl.nr)
    wsize = workspace_size(dtype, kc, mc, nc)
    work_items = nb * (m * n * max(k, 1) + config.gemm_item_cost)
    parts = 1 if work_items < config.gemm_parallel_mnk else max(1, min(num_threads(), nb))
    work = workspace(dtype, wsize * parts)
    tmp = workspace(dtype, max(1, (parts - 1) * m * n), "gemm.sum")
    for g in range(ng):
        coff = int(coffs[g])
        launch(gemm_batched_sum, parts, m, n, k, 1.0, a.buf, np.ascontiguousarray(aoffs[:, g]), a.strides[-2],
               a.strides[-1], b.buf, np.ascontiguousarray(boffs[:, g]), b.strides[-2], b.strides[-1], beta,
               c.buf, coff, c.strides[-2], c.strides[-1], tmp, work, wsize, kc, mc, nc)
        add_partials(parts, nb, m, n, c.buf, coff, c.strides[-2], c.strides[-1], tmp)


def _scale_each(c: Strided, batch: tuple, m: int, n: int, beta: float) -> None:
    """``C = beta * C`` for every ``m x n`` matrix of ``c`` over ``batch`` (``beta == 0`` writes
    zeros without reading C)."""
    for off in c.batch_offsets(batch):
        _scale(c.buf, int(off), c.strides[-2], c.strides[-1], m, n, c.buf.dtype.type(beta))


def add_partials(parts: int, items: int, m: int, n: int, c, coff: int, crs: int, ccs: int, tmp) -> None:
    """``C += `` the partial sums in ``tmp`` of the parts after the first of a reduction over
    ``items`` in runs of ``ceil(items / parts)`` (:func:`.loops.gemm_batched_sum`), those that got any."""
    per = -(-items // parts)
    nsums = sum(1 for t in range(1, parts) if t * per < items)
    if nsums:
        launch(add_partial_sums, parts if m * n >= 1 << 14 else 1, m, n, c, coff, crs, ccs, tmp, nsums)


def _thread_grid(mt: int, nt: int, threads: int) -> tuple[int, int]:
    """Split an ``mt x nt`` grid of micro-tiles among ``threads``: the ``(tm, tn)`` with
    ``tm * tn <= threads`` whose largest block has the fewest tiles (ties: more threads used)."""
    best = (mt * nt + 1, 0, 1, 1)
    for tm in range(1, threads + 1):
        tn = threads // tm
        load = -(-mt // tm) * -(-nt // tn)
        cand = (load, -(tm * tn), tm, tn)
        best = min(best, cand)
    return best[2], best[3]


def _tile_use(m: int, n: int, bl) -> float:
    """Fraction of the MR x NR micro-tiles covering an m x n product that holds real entries."""
    return m / (-(-m // bl.mr) * bl.mr) * n / (-(-n // bl.nr) * bl.nr)
