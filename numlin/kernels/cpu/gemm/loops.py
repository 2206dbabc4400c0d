"""The loops around the micro-kernel: macro-kernel, BLIS loops 1-3, and their threaded and batched forms.

BLIS's ``frame/3``. One product runs the ``jc`` (``nc`` columns of C), ``pc`` (``kc`` of the
depth: one packed B panel) and ``ic`` (``mc`` rows: one packed A block) loops in
:func:`_gemm_items`, the macro-kernel the ``jr``/``ir`` loops over ``MR x NR`` tiles. A kernel
entry (``gemm_*``) is one part of a launch on Python threads (:func:`.._threads.launch`: its
first arguments are the part ``t`` and the number of parts) and works in slice ``t`` of a
workspace of :func:`workspace_size` elements per part, so parts share nothing and need no
barriers. Every entry reaches the micro-kernel through one call site of :func:`_gemm_items`, so
its body is compiled once per entry.
"""
from __future__ import annotations

import numpy as np
from .._jit import njit

from ..blocking import blocking
from .microkernel import _micro_kernel, _tile_shape
from .pack import _pack_a, _pack_b
from .small import _small_gemm

__all__ = ["workspace_size", "gemm_strided_serial", "gemm_blocks", "gemm_batched", "gemm_batched_shared_b",
           "gemm_batched_sum", "add_partial_sums", "_macro_kernel", "_add_edge_tile", "_scale"]


def workspace_size(dtype, kc: int, mc: int, nc: int) -> int:
    """Elements of workspace one thread needs: packed A, packed B and an MR x NR edge tile."""
    bl = blocking(dtype)
    return mc * kc + kc * nc + bl.mr * bl.nr + 64


@njit(cache=True, nogil=True)
def _macro_kernel(kc, mc, nc, ap, bp, c, coff, crs, ccs, alpha, beta, ct):
    """C block (``mc x nc`` at ``c[coff + i*crs + j*ccs]``) = alpha * Ap @ Bp + beta * C."""
    MR, NR = _tile_shape(ap)
    zero = c.dtype.type(0)
    for jr in range(0, nc, NR):
        cols = min(NR, nc - jr)
        for ir_ in range(0, mc, MR):
            rows = min(MR, mc - ir_)
            cij = coff + ir_ * crs + jr * ccs
            full = rows == MR and cols == NR and ccs == 1
            # one call site (the micro-kernel is inlined per site): a full tile into C, an edge tile
            # into ct with beta 0, then added to C
            if full:
                dst, doff, drs, dbeta = c, cij, crs, beta
            else:
                dst, doff, drs, dbeta = ct, 0, NR, zero
            _micro_kernel(kc, ap, ir_ * kc, bp, jr * kc, dst, doff, drs, alpha, dbeta)
            if not full:
                _add_edge_tile(ct, NR, rows, cols, c, cij, crs, ccs, beta)


@njit(cache=True, nogil=True, inline="always")
def _add_edge_tile(ct, NR, rows, cols, c, coff, crs, ccs, beta):
    """``C[:rows, :cols] = T + beta * C`` for an edge tile ``T`` computed into ``ct`` (row stride
    NR) by a micro-kernel with beta 0; ``beta == 0`` does not read C."""
    for i in range(rows):
        for j in range(cols):
            k = coff + i * crs + j * ccs
            if beta == 0:
                c[k] = ct[i * NR + j]
            else:
                c[k] = ct[i * NR + j] + beta * c[k]


@njit(cache=True, nogil=True)
def _scale(c, coff, crs, ccs, m, n, beta):
    """``C = beta * C``; ``beta == 0`` writes zeros without reading C (BLAS rule)."""
    for i in range(m):
        for j in range(n):
            k = coff + i * crs + j * ccs
            c[k] = 0 if beta == 0 else beta * c[k]


#: zero per-item offsets: a single product through :func:`_gemm_items` (a frozen constant)
_ONE_ITEM = np.zeros(1, np.int64)


@njit(cache=True, nogil=True, inline="always")  # a call of _gemm_items: no compiled layer of its own
def gemm_strided_serial(m, n, k, alpha, a, aoff, ars, acs, b, boff, brs, bcs, beta, c, coff, crs, ccs,
                        work, kc_blk, mc_blk, nc_blk):
    """``C = alpha * A @ B + beta * C`` on one thread over strided descriptors (BLIS loops 1-3).

    ``work`` holds at least ``workspace_size`` elements (packed A, packed B, edge tile).
    """
    _gemm_items(m, n, k, alpha, a, aoff, _ONE_ITEM, ars, acs, b, boff, brs, bcs, beta, c, coff, _ONE_ITEM, crs, ccs,
                0, 1, work, kc_blk, mc_blk, nc_blk)


# inlined into its callers: a layer compiled apart is optimised and emitted again inside every
# caller it is linked into (its own compile cost the 512² matmul ~0.6 s per dtype)
@njit(cache=True, nogil=True, inline="always")
def _gemm_items(m, n, k, alpha, a, aoff, aoffs, ars, acs, b, boff, brs, bcs, beta, c, coff, coffs, crs, ccs, lo, hi,
                work, kc_blk, mc_blk, nc_blk):
    """Products ``lo .. hi`` sharing one B: ``C_i = alpha * A_i @ B + beta * C_i`` with A_i at
    ``aoff + aoffs[i]`` and C_i at ``coff + coffs[i]`` (one product: ``lo, hi = 0, 1`` and zero
    offsets). Each ``kc x nc`` panel of B is packed once and reused by every product (BLIS
    loops 1-3, the product loop inside the panel loop); ``work`` holds ``workspace_size``.
    ``k > 0`` and ``alpha != 0``: the planner (:func:`.plan.matmul_into`) scales C itself
    otherwise, so no kernel links in :func:`_scale`."""
    MR, NR = _tile_shape(work)
    ap_n = (mc_blk + MR - 1) // MR * MR * kc_blk
    bp_n = (nc_blk + NR - 1) // NR * NR * kc_blk
    if work.size < ap_n + bp_n + MR * NR:
        raise ValueError("gemm workspace too small")
    t = c.dtype.type
    alpha = t(alpha)
    beta = t(beta)
    if m == 0 or n == 0:
        return
    ap = work[:ap_n]
    bp = work[ap_n:ap_n + bp_n]
    ct = work[ap_n + bp_n:ap_n + bp_n + MR * NR]
    for jc in range(0, n, nc_blk):
        nc = min(nc_blk, n - jc)
        for pc in range(0, k, kc_blk):
            kc = min(kc_blk, k - pc)
            beta_p = beta if pc == 0 else t(1)
            _pack_b(b, boff + pc * brs + jc * bcs, brs, bcs, kc, nc, bp)
            for i in range(lo, hi):
                for ic in range(0, m, mc_blk):
                    mc = min(mc_blk, m - ic)
                    _pack_a(a, aoff + aoffs[i] + ic * ars + pc * acs, ars, acs, mc, kc, ap)
                    _macro_kernel(kc, mc, nc, ap, bp, c, coff + coffs[i] + ic * crs + jc * ccs, crs, ccs, alpha,
                                  beta_p, ct)


@njit(cache=True, nogil=True)
def gemm_blocks(t, parts, tn, m, n, k, alpha, a, aoff, ars, acs, b, boff, brs, bcs, beta, c, coff, crs, ccs,
                work, wsize, kc_blk, mc_blk, nc_blk):
    """Part ``t`` of one GEMM whose C is cut into a ``parts / tn`` x ``tn`` grid of MR/NR-aligned
    blocks (:func:`._threads.launch`, one block per thread): the serial BLIS loops on block ``t``
    with slice ``t`` of ``work`` (``wsize`` elements each); no barriers."""
    MR, NR = _tile_shape(work)
    tm = parts // tn
    mt = (m + MR - 1) // MR
    nt = (n + NR - 1) // NR
    ti = t // tn
    tj = t - ti * tn
    m0 = min(m, (mt * ti // tm) * MR)
    m1 = min(m, (mt * (ti + 1) // tm) * MR)
    n0 = min(n, (nt * tj // tn) * NR)
    n1 = min(n, (nt * (tj + 1) // tn) * NR)
    if m1 > m0 and n1 > n0:  # one product through _gemm_items (one inlining, not two)
        _gemm_items(m1 - m0, n1 - n0, k, alpha, a, aoff + m0 * ars, _ONE_ITEM, ars, acs, b, boff + n0 * bcs, brs, bcs,
                    beta, c, coff + m0 * crs + n0 * ccs, _ONE_ITEM, crs, ccs, 0, 1, work[t * wsize:(t + 1) * wsize],
                    kc_blk, mc_blk, nc_blk)


@njit(cache=True, nogil=True)
def gemm_batched(t, parts, m, n, k, alpha, a, aoffs, ars, acs, b, boffs, brs, bcs, beta, c, coffs, crs, ccs,
                 work, wsize, kc_blk, mc_blk, nc_blk, small):
    """Part ``t`` of ``parts`` (a contiguous run of the batch) of the GEMMs
    ``C_i = alpha * A_i @ B_i + beta * C_i``.

    ``aoffs[i]``, ``boffs[i]``, ``coffs[i]`` locate matrix ``i``; the strides are shared. Matrices
    with ``m*n*k <= small`` skip packing (the branch sits outside the loop so the per-matrix
    path stays a straight call); larger ones pack into slice ``t`` of ``work``.
    """
    dt = c.dtype.type
    al = dt(alpha)
    be = dt(beta)
    nb = coffs.size
    lo = nb * t // parts
    hi = nb * (t + 1) // parts
    if m * n * k <= small:
        for i in range(lo, hi):
            _small_gemm(m, n, k, al, a, aoffs[i], ars, acs, b, boffs[i], brs, bcs, be, c, coffs[i], crs, ccs)
    else:
        w = work[t * wsize:(t + 1) * wsize]
        for i in range(lo, hi):
            gemm_strided_serial(m, n, k, al, a, aoffs[i], ars, acs, b, boffs[i], brs, bcs, be, c, coffs[i], crs, ccs,
                                w, kc_blk, mc_blk, nc_blk)


@njit(cache=True, nogil=True)
def gemm_batched_shared_b(t, parts, m, n, k, alpha, a, aoffs, ars, acs, b, boff, brs, bcs, beta, c, coffs, crs, ccs,
                          work, wsize, kc_blk, mc_blk, nc_blk):
    """Part ``t`` of ``parts`` (a contiguous run of products) of a batch of GEMMs sharing one B
    (e.g. a filter); each part packs B's panels once, into slice ``t`` of ``work``."""
    nb = coffs.size
    per = (nb + parts - 1) // parts
    lo = t * per
    hi = min(nb, lo + per)
    if lo < hi:
        _gemm_items(m, n, k, alpha, a, 0, aoffs, ars, acs, b, boff, brs, bcs, beta, c, 0, coffs, crs, ccs, lo, hi,
                    work[t * wsize:(t + 1) * wsize], kc_blk, mc_blk, nc_blk)


@njit(cache=True, nogil=True)
def gemm_batched_sum(t, parts, m, n, k, alpha, a, aoffs, ars, acs, b, boffs, brs, bcs, beta, c, coff, crs, ccs, tmp,
                     work, wsize, kc_blk, mc_blk, nc_blk):
    """Part ``t`` of ``parts`` of ``C = beta * C + alpha * sum_i A_i @ B_i`` (a reduction over the
    batch, e.g. a filter gradient over samples): each part accumulates a contiguous run of
    products, part 0 into C, part ``t`` into the ``m x n`` slice ``t - 1`` of ``tmp``;
    :func:`add_partial_sums` then adds those to C."""
    nb = aoffs.size
    per = (nb + parts - 1) // parts
    lo = t * per
    hi = min(nb, lo + per)
    w = work[t * wsize:(t + 1) * wsize]
    for i in range(lo, hi):
        if t == 0:  # one call site below: the GEMM body is compiled (and inlined) once
            dst, doff, drs, dcs, be = c, coff, crs, ccs, beta if i == lo else 1.0
        else:
            dst, doff, drs, dcs, be = tmp, (t - 1) * m * n, n, 1, 0.0 if i == lo else 1.0
        gemm_strided_serial(m, n, k, alpha, a, aoffs[i], ars, acs, b, boffs[i], brs, bcs, be, dst, doff, drs, dcs,
                            w, kc_blk, mc_blk, nc_blk)


@njit(cache=True, nogil=True)
def add_partial_sums(t, parts, m, n, c, coff, crs, ccs, tmp, nsums):
    """Part ``t`` of ``parts`` (a run of rows) of ``C += sum_s tmp[s]`` over the first ``nsums``
    ``m x n`` partial sums of :func:`gemm_batched_sum`."""
    for s in range(nsums):
        base = s * m * n
        for i in range(m * t // parts, m * (t + 1) // parts):
            for j in range(n):
                c[coff + i * crs + j * ccs] += tmp[base + i * n + j]
