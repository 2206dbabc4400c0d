"""CPU per-channel helpers of the convolution front-end: the bias broadcast into the output and
the bias gradient (``dy`` summed over every axis but the channel one)."""
from __future__ import annotations

import numpy as np
from .._jit import njit

from .._threads import launch, num_threads, split

__all__ = ["fill_bias", "channel_sum"]


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

    One pass over contiguous planes or rows: numpy's multi-axis ``sum`` strides across them and
    is several times slower on small gradients."""
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
