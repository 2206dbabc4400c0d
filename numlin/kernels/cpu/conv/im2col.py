"""CPU im2col / col2im: the column matrix of a convolution, and its adjoint.

Layouts (``x`` C-contiguous; a chunk covers samples ``n0 .. n0+nb`` and output rows
``p0 .. p0+pc``; ``g`` groups of ``Cg`` channels):

* NCHW: ``x (N, C, H, W)``; ``cols (nb, C*R*S, pc*Q)`` C-contiguous, row ``(c*R + r)*S + s``
  (the filter's ``(K, Cg, R, S)`` order, so group ``gi`` owns a contiguous block of rows).
* NHWC: ``x (N, H, W, C)``; ``cols`` stored pixel-major, ``(nb, pc*Q, g, R, S, Cg)`` C-contiguous:
  each output pixel's patch is contiguous, channel fastest within a group (for ``g = 1`` the
  filter's ``(R, S, C, K)`` order).

``col2im`` is the adjoint: it *adds* each column entry into the input position it was read from.
``g`` is a :class:`numlin._geometry.Conv2dGeometry`.
"""
from __future__ import annotations

import numpy as np
from .._jit import njit, uintp

from .._threads import launch, split

__all__ = ["im2col_into", "col2im_into"]


@njit(cache=True, nogil=True)
def q_range(Q, W, sw, pw, off):
    """Output columns ``q`` whose input column ``q*sw - pw + off`` lies in ``[0, W)``."""
    lo = 0
    if off - pw < 0:
        lo = (pw - off + sw - 1) // sw
    hi_excl = (W - 1 + pw - off) // sw + 1 if W - 1 + pw - off >= 0 else 0
    return min(lo, Q), max(min(hi_excl, Q), min(lo, Q))


@njit(cache=True, nogil=True)
def _im2col_nchw(part, nparts, x, cols, C, H, W, R, S, sh, sw, ph, pw, dh, dw, n0, nb, p0, pc, Q):
    """``x`` flat (N, C, H, W); ``cols`` flat (nb, C*R*S, pc*Q). Unsigned indices: no wraparound code."""
    zero = x.dtype.type(0)
    L = pc * Q
    for t in range((nb * C) * part // nparts, (nb * C) * (part + 1) // nparts):
        n = t // C
        c = t - n * C
        xin = uintp(((n0 + n) * C + c) * H * W)
        for r in range(R):
            for s in range(S):
                out = uintp(((n * C + c) * R * S + r * S + s) * L)
                lo, hi = q_range(Q, W, sw, pw, s * dw)
                w0 = s * dw - pw
                for pi in range(pc):
                    h = (p0 + pi) * sh - ph + r * dh
                    o = out + uintp(pi * Q)
                    src = xin + uintp(h * W + w0)
                    if Q < 16:  # short rows: one element loop, padding rows included (no slice copies)
                        hv = 0 <= h < H
                        for q in range(Q):
                            cols[o + q] = x[src + uintp(q * sw)] if hv and lo <= q < hi else zero
                        continue
                    if h < 0 or h >= H:
                        cols[o:o + Q] = zero
                        continue
                    cols[o:o + lo] = zero
                    if sw == 1:  # a contiguous run (an element loop, not a slice assignment, whose
                        for q in range(lo, hi):  # shape-mismatch message costs ~2 s of compile)
                            cols[o + q] = x[src + uintp(q)]
                    else:
                        for q in range(lo, hi):
                            cols[o + q] = x[src + uintp(q * sw)]
                    cols[o + hi:o + Q] = zero


@njit(cache=True, nogil=True)
def _im2col_nhwc(part, nparts, x, cols, H, W, C, R, S, sh, sw, ph, pw, dh, dw, n0, nb, p0, pc, Q, G):
    """``x`` flat (N, H, W, C); ``cols`` flat (nb, pc*Q, G, R, S, Cg): one contiguous patch per pixel."""
    Cg = C // G
    zero = x.dtype.type(0)
    RSC = R * S * C
    for t in range((nb * pc) * part // nparts, (nb * pc) * (part + 1) // nparts):
        n = t // pc
        pi = t - n * pc
        for q in range(Q):
            col = uintp(((n * pc + pi) * Q + q) * RSC)
            for r in range(R):
                h = (p0 + pi) * sh - ph + r * dh
                for s in range(S):
                    w = q * sw - pw + s * dw
                    valid = h >= 0 and h < H and w >= 0 and w < W
                    src = uintp((((n0 + n) * H + h) * W + w) * C) if valid else uintp(0)
                    for gi in range(G):
                        dst = col + uintp(((gi * R + r) * S + s) * Cg)
                        if valid:  # element loop: see _im2col_nchw
                            so = src + uintp(gi * Cg)
                            for ci in range(Cg):
                                cols[dst + uintp(ci)] = x[so + uintp(ci)]
                        else:
                            cols[dst:dst + Cg] = zero


@njit(cache=True, nogil=True)
def _col2im_nchw(part, nparts, cols, dx, C, H, W, R, S, sh, sw, ph, pw, dh, dw, n0, nb, p0, pc, Q):
    """Adjoint of ``_im2col_nchw`` (adds into ``dx``); one (sample, channel) per task, no races."""
    L = pc * Q
    for t in range((nb * C) * part // nparts, (nb * C) * (part + 1) // nparts):
        n = t // C
        c = t - n * C
        xin = uintp(((n0 + n) * C + c) * H * W)
        for r in range(R):
            for s in range(S):
                out = uintp(((n * C + c) * R * S + r * S + s) * L)
                lo, hi = q_range(Q, W, sw, pw, s * dw)
                w0 = s * dw - pw
                for pi in range(pc):
                    h = (p0 + pi) * sh - ph + r * dh
                    if h < 0 or h >= H:
                        continue
                    o = out + uintp(pi * Q)
                    dst = xin + uintp(h * W + w0)
                    if sw == 1 and Q >= 16:  # unit stride: element loop (see _im2col_nchw)
                        for q in range(lo, hi):
                            dx[dst + uintp(q)] += cols[o + uintp(q)]
                    else:
                        for q in range(lo, hi):
                            dx[dst + uintp(q * sw)] += cols[o + q]


@njit(cache=True, nogil=True)
def _col2im_nhwc(part, nparts, cols, dx, H, W, C, R, S, sh, sw, ph, pw, dh, dw, n0, nb, p0, pc, Q, G, CB):
    """Adjoint of ``_im2col_nhwc``; one (sample, block of CB channels) per task, no races."""
    Cg = C // G
    RSC = R * S * C
    nblk = (C + CB - 1) // CB
    for t in range((nb * nblk) * part // nparts, (nb * nblk) * (part + 1) // nparts):
        n = t // nblk
        c0 = (t - n * nblk) * CB
        c1 = min(C, c0 + CB)
        for pi in range(pc):
            for q in range(Q):
                col = uintp(((n * pc + pi) * Q + q) * RSC)
                for r in range(R):
                    h = (p0 + pi) * sh - ph + r * dh
                    if h < 0 or h >= H:
                        continue
                    for s in range(S):
                        w = q * sw - pw + s * dw
                        if w < 0 or w >= W:
                            continue
                        dst = uintp((((n0 + n) * H + h) * W + w) * C)
                        for gi in range(c0 // Cg, (c1 - 1) // Cg + 1):  # groups meeting [c0, c1)
                            a = max(c0, gi * Cg)
                            b = min(c1, gi * Cg + Cg)
                            src = col + uintp(((gi * R + r) * S + s) * Cg - gi * Cg)
                            for e in range(a, b):  # element loop (see _im2col_nchw)
                                dx[dst + uintp(e)] += cols[src + uintp(e)]


def _geom_args(geom):
    return (geom.R, geom.S, geom.sh, geom.sw, geom.ph0, geom.pw0, geom.dh, geom.dw)


def im2col_into(x: np.ndarray, cols_flat: np.ndarray, geom, n0: int, nb: int, p0: int, pc: int) -> None:
    """Write the columns of samples ``n0:n0+nb``, output rows ``p0:p0+pc`` into ``cols_flat``."""
    g = geom
    parts = split(cols_flat.size)
    if g.layout == "NCHW":
        launch(_im2col_nchw, parts, x.reshape(-1), cols_flat, g.C, g.H, g.W, *_geom_args(g), n0, nb, p0, pc, g.Q)
    else:
        launch(_im2col_nhwc, parts, x.reshape(-1), cols_flat, g.H, g.W, g.C, *_geom_args(g), n0, nb, p0, pc, g.Q,
               g.groups)


def col2im_into(cols_flat: np.ndarray, dx: np.ndarray, geom, n0: int, nb: int, p0: int, pc: int) -> None:
    """Add the chunk's columns into ``dx`` (C-contiguous) where im2col read them from."""
    g = geom
    parts = split(cols_flat.size)
    if g.layout == "NCHW":
        launch(_col2im_nchw, parts, cols_flat, dx.reshape(-1), g.C, g.H, g.W, *_geom_args(g), n0, nb, p0, pc, g.Q)
    else:
        launch(_col2im_nhwc, parts, cols_flat, dx.reshape(-1), g.H, g.W, g.C, *_geom_args(g), n0, nb, p0, pc, g.Q,
               g.groups, min(g.C, 64))
