"""Where the CPU implicit GEMMs find their column matrix in x (they never store it).

The column matrix of an NCHW convolution has a row per filter tap ``(c, r, s)`` and a column per
output pixel ``t = n*P*Q + p*Q + q``; its entry is ``x[n, c, p*sh - ph + r*dh, q*sw - pw + s*dw]``
or 0 in the padding. Two ways to reach it without writing it:

* *pixel segments* (:func:`pixel_segments`): a block of columns split into runs of consecutive
  ``q`` within one output row, one sample and one NR-wide micro-panel, so that every row of the
  block is, per segment, a zero run, a run of x along its row and a zero run; the packing
  routines of :mod:`.implicit_forward` and :mod:`.implicit_dw` copy them;
* *shifted copies* (stride 1, :func:`shift_copies`): x copied once per filter column ``s`` into
  planes of ``Q``-wide rows, shifted and zeroed at the edges; then every row of a sample's column
  matrix is one contiguous run of a plane (at offset :func:`tap_offsets`), read in place.
"""
from __future__ import annotations

import functools

import numpy as np
from .._jit import njit, uintp

from ...._config import config
from .im2col import q_range

__all__ = ["SHIFT_BLOCK_Q", "SEG_COL", "SEG_LEN", "SEG_XOFF", "SEG_H0", "SEG_Q0", "q_ranges", "pixel_segments",
           "tap_offsets", "shift_copies", "shift_bytes", "copy_parts"]


#: widest output rows (``Q``) whose shifted copies are made a sample and filter column at a
#: time (:func:`_shift_blocks`); wider rows plane by plane (:func:`_shift_planes`)
SHIFT_BLOCK_Q = 32


@functools.lru_cache(maxsize=256)
def q_ranges(Q: int, W: int, sw: int, pw: int, S: int, dw: int) -> tuple[np.ndarray, np.ndarray]:
    """Per filter column ``s``: the output columns ``qlo[s] .. qhi[s]`` whose input column
    ``q*sw - pw + s*dw`` lies inside x (:func:`.im2col.q_range`), as read-only int64 arrays for
    the kernels, one pair per geometry (cached). Computed by Python (S values): a compiled
    function returning two arrays cost every convolution program ~0.4 s of compiling."""
    lo_hi = [q_range.py_func(Q, W, sw, pw, s * dw) for s in range(S)]
    qlo, qhi = np.array([a for a, _ in lo_hi], np.int64), np.array([b for _, b in lo_hi], np.int64)
    qlo.flags.writeable = qhi.flags.writeable = False
    return qlo, qhi


# columns of the segment table
SEG_COL, SEG_LEN, SEG_XOFF, SEG_H0, SEG_Q0 = 0, 1, 2, 3, 4


@njit(cache=True, nogil=True)
def pixel_segments(j0, nc, ncp, PQ, Q, CHW, sh, ph, NR, seg, span=0, first=0, n0=0):
    """Split columns ``j0 .. j0+nc`` into runs within one output row and one NR micro-panel.

    Column ``t`` is pixel ``t mod PQ`` of sample ``t // PQ``; with ``span > 0``, pixel
    ``first + t mod span`` of sample ``n0 + t // span`` (the last ``span`` pixels of each
    sample, say). Row ``i`` of ``seg``: first column (relative to ``j0``), length, offset of its
    sample in x, input row of filter row 0 (``p*sh - ph``), first ``q``. Columns ``nc .. ncp``
    (the zero padding of the last micro-panel) get segments whose input row is never valid.
    Returns the number of segments.
    """
    if span == 0:
        span = PQ
    ns = 0
    j = 0
    while j < ncp:
        room = NR - j % NR
        if j < nc:
            t = j0 + j
            n = t // span
            pq = first + t - n * span
            p = pq // Q
            q = pq - p * Q
            L = min(Q - q, nc - j, room, span - (t - n * span))
            seg[ns, SEG_XOFF] = (n0 + n) * CHW
            seg[ns, SEG_H0] = p * sh - ph
            seg[ns, SEG_Q0] = q
        else:
            L = min(ncp - j, room)
            seg[ns, SEG_XOFF] = 0
            seg[ns, SEG_H0] = -(1 << 40)  # no input row: zeros
            seg[ns, SEG_Q0] = 0
        seg[ns, SEG_COL] = j
        seg[ns, SEG_LEN] = L
        ns += 1
        j += L
    return ns


@functools.lru_cache(maxsize=256)
def tap_offsets(Cg: int, C: int, R: int, S: int, dh: int, Q: int, HQ: int) -> np.ndarray:
    """``toff[(c*R + r)*S + s]``: where the run of tap ``(c, r, s)`` (a group's channel ``c < Cg``)
    starts in one sample's shifted copies (:func:`shift_copies`, planes of ``HQ`` values).
    Read-only int64, one per geometry (cached): the kernels only read it, and computing it in
    Python spares every convolution program a compiled function and Numba's ``np.empty``."""
    c = np.arange(Cg, dtype=np.int64)[:, None, None]
    r = np.arange(R, dtype=np.int64)[None, :, None]
    s = np.arange(S, dtype=np.int64)[None, None, :]
    toff = ((s * C + c) * HQ + r * (dh * Q)).reshape(-1)
    toff.flags.writeable = False
    return toff


def shift_copies(t, parts, x, xs, n0, m, C, H, W, S, ph, pw, dw, Hp, Q, qlo, qhi):
    """Part ``t`` of ``parts`` of the shifted copies of samples ``n0 .. n0+m`` of x (stride 1):
    ``xs[n, s, c, hh, q] = x[n0 + n, c, hh - ph, q - pw + s*dw]``, 0 outside x, for ``hh < Hp``,
    ``q < Q`` (``qlo``, ``qhi``: :func:`q_ranges`). Then the column-matrix row of tap ``(c, r, s)``
    at output pixel ``t = p*Q + q`` is ``xs[n, s, c]``'s element ``r*dh*Q + t``: a contiguous run
    along the pixels, rows and samples' edges zeroed. Rows of up to :data:`SHIFT_BLOCK_Q` values
    take :func:`_shift_blocks`, wider ones :func:`_shift_planes` (a program compiles the one its
    shapes need)."""
    kernel = _shift_blocks if Q <= SHIFT_BLOCK_Q else _shift_planes
    kernel(t, parts, x, xs, n0, m, C, H, W, S, ph, pw, dw, Hp, Q, qlo, qhi)


@njit(cache=True, nogil=True)
def _shift_planes(t, parts, x, xs, n0, m, C, H, W, S, ph, pw, dw, Hp, Q, qlo, qhi):
    """:func:`shift_copies` a plane ``pl = (n*S + s)*C + c`` at a time, each row a zero run, a
    copied run and a zero run."""
    zero = xs.dtype.type(0)
    for pl in range(m * S * C * t // parts, m * S * C * (t + 1) // parts):
        n = pl // (S * C)
        s = (pl - n * S * C) // C
        c = pl - n * S * C - s * C
        for hh in range(Hp):
            d = (pl * Hp + hh) * Q
            h = hh - ph
            a = qlo[s]
            b = qhi[s]
            if h < 0 or h >= H:
                a = b = Q
            src = (((n0 + n) * C + c) * H + h) * W - pw + s * dw
            for u in range(a):
                xs[uintp(d + u)] = zero
            for u in range(a, b):
                xs[uintp(d + u)] = x[uintp(src + u)]
            for u in range(b, Q):
                xs[uintp(d + u)] = zero


@njit(cache=True, nogil=True)
def _shift_blocks(t, parts, x, xs, n0, m, C, H, W, S, ph, pw, dw, Hp, Q, qlo, qhi):
    """:func:`shift_copies` the ``C`` planes ``(n, s, c)`` of one ``ns = n*S + s`` at a time: the
    block zeroed in one run, then x's rows copied over it. Writes the copied part twice but has
    no per-row zero runs, which dominate short rows (up to :data:`SHIFT_BLOCK_Q` values; for
    wide rows the double write costs more than it saves)."""
    zero = xs.dtype.type(0)
    HQ = Hp * Q
    h0 = max(0, ph)  # rows hh = h + ph of xs that hold a row h of x
    h1 = min(Hp, H + ph)
    for ns in range(m * S * t // parts, m * S * (t + 1) // parts):
        n = ns // S
        s = ns - n * S
        d0 = ns * C * HQ
        for u in range(C * HQ):
            xs[uintp(d0 + u)] = zero
        a = qlo[s]
        b = qhi[s]
        for c in range(C):
            src0 = (((n0 + n) * C + c) * H - ph) * W - pw + s * dw
            dc = d0 + c * HQ
            for hh in range(h0, h1):
                d = dc + hh * Q
                src = src0 + hh * W
                for u in range(a, b):
                    xs[uintp(d + u)] = x[uintp(src + u)]


def shift_bytes(g, dtype) -> int:
    """Bytes of one sample's shifted copies of x (:func:`shift_copies`), stride 1."""
    return g.S * g.C * (g.P + g.dh * (g.R - 1)) * g.Q * np.dtype(dtype).itemsize


def copy_parts(g, m: int, parts: int) -> int:
    """Parts for :func:`shift_copies` of ``m`` samples: as many as the kernel after it has, but
    one while the copy is smaller than a launch's grain (waking a thread costs more)."""
    elems = m * g.S * g.C * (g.P + g.dh * (g.R - 1)) * g.Q
    return max(1, min(parts, m * g.S * (1 if g.Q <= SHIFT_BLOCK_Q else g.C), elems // config.threads_grain))
