"""Where the CUDA implicit GEMM finds its column matrix in x: two small index tables.

The GEMM kernel's gather variant (``gemm._kernel_source(gather=True)``, launched by
:func:`numlin.kernels.cuda.gemm.gather_into`) reads its B tile straight from the input through
one table over the filter taps ``(c, r, s)`` and one over the output pixels ``(p, q)``, each entry
an offset into x plus a packed row/column shift, so that B element (tap, pixel) is
``x[n, c, p*sh - ph + r*dh, q*sw - pw + s*dw]`` or zero outside the image.

A shift is packed into one int32 as ``(h + 2**14) * 2**16 + (w + 2**15)``: rows within
``[-2**14, 2**14)``, columns within ``[-2**15, 2**15)`` (``numlin.nn._conv_plan`` sends any
other geometry to im2col + GEMM).
"""
from __future__ import annotations

import functools

import numpy as np
from numba import cuda

from .. import gemm
from ..arrays import device_key

__all__ = ["tables"]

_H_BIAS, _W_BIAS = 1 << 14, 1 << 15  # packed (h, w) table entries: (h + 2**14) * 2**16 + (w + 2**15)


def _packable(h: np.ndarray, w: np.ndarray) -> bool:
    return bool(h.size == 0 or (h.min() >= -_H_BIAS and h.max() < _H_BIAS and w.min() >= -_W_BIAS
                                and w.max() < _W_BIAS))


def _pack(off: np.ndarray, h: np.ndarray, w: np.ndarray) -> tuple:
    """Device ``(offsets, packed h/w)``, padded by one slice of ``gemm.GATHER_MAX_BK`` past a
    multiple of it (the kernel reads whole slices: up to ``t1base + nk*BK - 1``)."""
    pad = gemm.GATHER_MAX_BK
    n = -(-off.size // pad) * pad + pad
    o = np.zeros(n, np.int64)
    hw = np.zeros(n, np.int32)
    o[:off.size] = off
    hw[:off.size] = ((h + _H_BIAS) << 16) + (w + _W_BIAS)
    return cuda.to_device(o), cuda.to_device(hw)


def tables(g) -> tuple:
    """The device tables of geometry ``g`` on the current device, ``(taps..., pixels...)``
    (:func:`_device_tables`). Raises ValueError when a shift does not fit the packing."""
    tabs = _device_tables(device_key(), g.C // g.groups, g.H, g.W, g.R, g.S, g.P, g.Q, g.sh, g.sw, g.ph0,
                          g.pw0, g.dh, g.dw)
    if tabs is None:
        raise ValueError(f"implicit GEMM: the shifts of {g} do not fit the packed index tables")
    return tabs


@functools.lru_cache(maxsize=64)
def _device_tables(device: int, Cg: int, H: int, W: int, R: int, S: int, P: int, Q: int, sh: int, sw: int,
                   ph: int, pw: int, dh: int, dw: int):
    """Device tables of the implicit GEMM, ``(taps..., pixels...)``, or None when an entry does
    not fit the packing: taps ``(c, r, s)`` (C order, the filter's) -> offset in x, row and
    column shifts; output pixels ``(p, q)`` -> offset, top row, left column of their receptive
    field. Cached by geometry: every layer of a training step builds its tables once (the
    copies to the device are synchronous), and by device."""
    c, r, s = (a.ravel().astype(np.int64) for a in np.meshgrid(np.arange(Cg), np.arange(R), np.arange(S),
                                                                 indexing="ij"))
    th, tw = r * dh, s * dw
    p, q = (a.ravel().astype(np.int64) for a in np.meshgrid(np.arange(P), np.arange(Q), indexing="ij"))
    ph_, pw_ = p * sh - ph, q * sw - pw
    if not (_packable(th, tw) and _packable(ph_, pw_)):
        return None
    return _pack(c * H * W + th * W + tw, th, tw) + _pack(ph_ * W + pw_, ph_, pw_)
