"""CPU im2col / col2im kernels and the small helpers the convolution front-end needs.

Layouts (``x`` C-contiguous; a chunk covers samples ``n0 .. n0+nb`` and output rows
``p0 .. p0+pc``; ``g`` groups of ``Cg`` channels):

* NCHW: ``x (N, C, H, W)``; ``cols (nb, C*R*S, pc*Q)`` C-contiguous, row ``(c*R + r)*S + s``
  (the filter's ``(K, Cg, R, S)`` order, so group ``gi`` owns a contiguous block of rows).
* NHWC: ``x (N, H, W, C)``; ``cols`` stored pixel-major, ``(nb, pc*Q, g, R, S, Cg)`` C-contiguous:
  each output pixel's patch is contiguous, channel fastest within a group (for ``g = 1`` the
  filter's ``(R, S, C, K)`` order).

``col2im`` is the adjoint: it *adds* each column entry into the input position it was read from.
"""
from __future__ import annotations

import numpy as np
from numba import njit, uintp

from ._threads import launch, num_threads, split

__all__ = ["im2col_into", "col2im_into", "fill_bias", "channel_sum", "zeros", "all_finite"]


@njit(cache=True, nogil=True)
def _q_range(Q, W, sw, pw, off):
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
                lo, hi = _q_range(Q, W, sw, pw, s * dw)
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
                lo, hi = _q_range(Q, W, sw, pw, s * dw)
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
               g.groups,
                     min(g.C, 64))


def fill_bias(y: np.ndarray, bias: np.ndarray, layout: str) -> None:
    """``y[...] = bias`` broadcast along the channel axis (1 for NCHW, 3 for NHWC)."""
    y[...] = bias[:, None, None] if layout == "NCHW" else bias


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def _channel_sum_planes(part, nparts, x3, out):
    """``out[c] = sum(x3[:, c, :])``: each ``(n, c)`` plane summed in the input dtype (vector
    lanes: reassociation, nothing else, is allowed), the planes of a channel in float64."""
    N, C, L = x3.shape
    for c in range((C) * part // nparts, (C) * (part + 1) // nparts):
        s = 0.0
        for n in range(N):
            p = x3.dtype.type(0)
            for i in range(L):
                p += x3[n, c, i]
            s += p
        out[c] = s


@njit(cache=True, nogil=True)
def _channel_sum_rows(part, nparts, x2, acc):
    """``acc[part] = sum(x2[r0:r1])`` over the ``part``-th of ``nparts`` runs of rows (float64,
    vectorised along the contiguous channel axis); the caller adds up ``acc``."""
    R, C = x2.shape
    acc[part, :] = 0.0
    for r in range(R * part // nparts, R * (part + 1) // nparts):
        for c in range(C):
            acc[part, c] += x2[r, c]


def channel_sum(dy: np.ndarray, layout: str) -> np.ndarray:
    """``dy`` summed over every axis but the channel one (the bias gradient), in ``dy``'s dtype.

    numpy's strided multi-axis ``sum`` took 57-80 us on the demo's (64, 32, 8, 8) and
    (64, 64, 4, 4) gradients; these kernels 7-11 us (2 threads)."""
    if not dy.flags.c_contiguous or dy.size == 0:
        return dy.sum(axis=(0, 2, 3) if layout == "NCHW" else (0, 1, 2))
    if layout == "NCHW":
        N, C = dy.shape[0], dy.shape[1]
        out = np.empty(C, np.float64)
        launch(_channel_sum_planes, split(dy.size), dy.reshape(N, C, -1), out)
    else:
        C = dy.shape[3]
        x2 = dy.reshape(-1, C)
        acc = np.empty((max(1, min(num_threads(), x2.shape[0] // 64)), C), np.float64)
        launch(_channel_sum_rows, acc.shape[0], x2, acc)
        out = acc.sum(axis=0)
    return out.astype(dy.dtype)


def zeros(shape: tuple, dtype) -> np.ndarray:
    return np.zeros(shape, dtype)


def all_finite(a: np.ndarray) -> bool:
    """Whether every value of ``a`` is finite."""
    return bool(np.isfinite(a).all())
