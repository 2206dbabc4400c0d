"""Small products without packing: the direct micro-kernel over unpacked operands, and gemv.

Packing pays for itself only when a packed panel is reused from cache many times. A product of
a few million FMAs whose B fits in cache (:attr:`numlin._config.Config.gemm_direct_mnk`,
``gemm_direct_b_bytes``) runs faster reading B and C in place with the masked micro-kernel
(``DIRECT_MR`` rows a call, B and C with unit column stride), and a product with a vector
operand is memory-bound: :func:`gemv` streams A once, with no tiles at all.
"""
from __future__ import annotations

from .._jit import njit, uintp

from ..blocking import DIRECT_MR
from .microkernel import _micro_kernel_direct, _vector_width

__all__ = ["gemm_direct", "gemv", "_small_gemm"]


@njit(cache=True, nogil=True, inline="always")
def _small_gemm(m, n, k, alpha, a, aoff, ars, acs, b, boff, brs, bcs, beta, c, coff, crs, ccs):
    """Unpacked ``C = alpha*A@B + beta*C`` for small matrices: the direct micro-kernel over
    MR x VW tiles when B and C have unit column stride, plain loops otherwise."""
    VW = _vector_width(c)
    if bcs == 1 and ccs == 1 and k > 0:
        for i0 in range(0, m, DIRECT_MR):
            for j0 in range(0, n, VW):
                _micro_kernel_direct(k, a, aoff + i0 * ars, ars, acs, b, boff + j0, brs, c, coff + i0 * crs + j0,
                                     crs, alpha, beta, min(DIRECT_MR, m - i0), min(VW, n - j0))
        return
    for i in range(m):
        for j in range(n):
            s = c.dtype.type(0)
            for p in range(k):
                s += a[uintp(aoff + i * ars + p * acs)] * b[uintp(boff + p * brs + j * bcs)]
            q = uintp(coff + i * crs + j * ccs)
            c[q] = alpha * s if beta == 0 else alpha * s + beta * c[q]


@njit(cache=True, nogil=True)
def gemm_direct(t, parts, m, n, k, alpha, a, aoffs, ars, acs, b, boffs, brs, beta, c, coffs, crs, rparts):
    """Part ``t`` of ``parts`` of unpacked GEMMs (B and C with unit column stride; ``k > 0``) by
    the direct micro-kernel, over the batch and, within each product, over ``rparts`` runs of
    its ``DIRECT_MR``-row blocks (each run reads all of B, which stays in cache at these sizes).
    ``rparts == 1`` (whole products, a contiguous run of the batch per part) skips the divisions
    per product (a measurable share of a small product's time). Small products come
    here rather than to :func:`.loops.gemm_batched`, so a workload of small products never
    compiles the packed GEMM (seconds per dtype at a cold start; benchmarks/README.md)."""
    dt = c.dtype.type
    al = dt(alpha)
    be = dt(beta)
    mb = (m + DIRECT_MR - 1) // DIRECT_MR
    units = coffs.size * rparts
    for u in range(units * t // parts, units * (t + 1) // parts):
        if rparts == 1:
            i, r0, r1 = u, 0, m
        else:
            i = u // rparts
            j = u - i * rparts
            r0 = (mb * j // rparts) * DIRECT_MR
            r1 = min(m, (mb * (j + 1) // rparts) * DIRECT_MR)
        if r1 > r0:  # one call site: the micro-kernel is inlined once
            _small_gemm(r1 - r0, n, k, al, a, aoffs[i] + r0 * ars, ars, acs, b, boffs[i], brs, 1, be, c,
                        coffs[i] + r0 * crs, crs, 1)


@njit(cache=True, nogil=True, inline="always", fastmath={"reassoc", "contract"})
def _gemv_rows(r0, r1, k, al, be, a, ao, ars, acs, x, xo, xs, y, yo, ys):
    """Rows ``r0 .. r1`` of ``y = al * A @ x + be * y`` (``y`` not read when ``be == 0``).
    A's rows contiguous: dot products, four rows a sweep (vector lanes and FMAs: reassociation
    and contraction are the only licences taken, so NaN and Inf propagate). A's columns
    contiguous: axpy sweeps, four columns a sweep, over the block's y (in cache). Otherwise:
    strided dot products."""
    t = y.dtype.type
    if ars == 1 and acs != 1 and ys == 1:
        for r in range(r0, r1):
            q = uintp(yo + r)
            y[q] = t(0) if be == 0 else be * y[q]
        p = 0
        while p + 4 <= k:  # four columns a sweep: y's block loaded and stored once for four
            v0 = al * x[uintp(xo + p * xs)]
            v1 = al * x[uintp(xo + (p + 1) * xs)]
            v2 = al * x[uintp(xo + (p + 2) * xs)]
            v3 = al * x[uintp(xo + (p + 3) * xs)]
            b0 = ao + p * acs
            for r in range(r0, r1):
                y[uintp(yo + r)] += (v0 * a[uintp(b0 + r)] + v1 * a[uintp(b0 + acs + r)]
                                     + v2 * a[uintp(b0 + 2 * acs + r)] + v3 * a[uintp(b0 + 3 * acs + r)])
            p += 4
        for p in range(p, k):
            v = al * x[uintp(xo + p * xs)]
            base = ao + p * acs
            for r in range(r0, r1):
                y[uintp(yo + r)] += v * a[uintp(base + r)]
        return
    r = r0
    if acs == 1 and xs == 1:  # four rows a sweep: each x vector loaded once for four rows
        while r + 4 <= r1:
            b0 = ao + r * ars
            s0 = s1 = s2 = s3 = t(0)
            for p in range(k):
                v = x[uintp(xo + p)]
                s0 += a[uintp(b0 + p)] * v
                s1 += a[uintp(b0 + ars + p)] * v
                s2 += a[uintp(b0 + 2 * ars + p)] * v
                s3 += a[uintp(b0 + 3 * ars + p)] * v
            for d, sd in ((0, s0), (1, s1), (2, s2), (3, s3)):
                q = uintp(yo + (r + d) * ys)
                y[q] = al * sd if be == 0 else al * sd + be * y[q]
            r += 4
    for r in range(r, r1):
        base = ao + r * ars
        s = t(0)
        if acs == 1 and xs == 1:
            for p in range(k):
                s += a[uintp(base + p)] * x[uintp(xo + p)]
        else:
            for p in range(k):
                s += a[uintp(base + p * acs)] * x[uintp(xo + p * xs)]
        q = uintp(yo + r * ys)
        y[q] = al * s if be == 0 else al * s + be * y[q]


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})  # the flags the inlined body compiles with
def gemv(t, parts, m, k, alpha, a, aoffs, ars, acs, x, xoffs, xs, beta, y, yoffs, ys, rparts):
    """Part ``t`` of ``parts`` of a batch of ``y_i = alpha * A_i @ x_i + beta * y_i`` (A ``m x k``;
    ``k > 0``), over the batch and over ``rparts`` row blocks of each product."""
    dt = y.dtype.type
    al = dt(alpha)
    be = dt(beta)
    units = yoffs.size * rparts
    for u in range(units * t // parts, units * (t + 1) // parts):
        i = u // rparts
        j = u - i * rparts
        _gemv_rows(m * j // rparts, m * (j + 1) // rparts, k, al, be, a, aoffs[i], ars, acs, x, xoffs[i], xs, y,
                   yoffs[i], ys)
