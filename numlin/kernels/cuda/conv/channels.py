"""CUDA per-channel helpers of the convolution front-end: the bias broadcast into the output and
the bias gradient (``dy`` summed over every axis but the channel one), as
``numlin.kernels.cpu.conv.channels``."""
from __future__ import annotations

import numpy as np
from numba import cuda, float32, float64, int64

from .._registry import kernel
from ..arrays import flat as _flat
from ..elementwise import grid_1d
from ..reductions import block_sum

__all__ = ["fill_bias", "channel_sum"]


@kernel(*[(t[:], t[:], int64, int64, int64) for t in (float32, float64)])
def broadcast_channels(y, bias, total, K, inner):
    """``y[i] = bias[(i // inner) % K]``: bias along the channel axis (inner = P*Q NCHW, 1 NHWC)."""
    for idx in range(cuda.grid(1), total, cuda.gridsize(1)):
        y[idx] = bias[(idx // inner) % K]


@kernel(*[(t[:], t[:], int64, int64, int64) for t in (float32, float64)])
def sum_channels(dy, out, outer, K, inner):
    """``out[k] = sum over (o, i) of dy[(o*K + k)*inner + i]``: one block per channel, tree reduction."""
    k = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    buf = cuda.shared.array(256, float64)
    acc = 0.0
    for j in range(tid, outer * inner, cuda.blockDim.x):
        o = j // inner
        acc += dy[(o * K + k) * inner + (j - o * inner)]
    buf[tid] = acc
    total = block_sum(buf)
    if tid == 0:
        out[k] = total


# --------------------------------------------------------------------------- host side
def fill_bias(y, bias, layout: str) -> None:
    """``y[...] = bias`` broadcast along the channel axis (1 for NCHW, 3 for NHWC)."""
    K = bias.shape[0]
    inner = y.shape[2] * y.shape[3] if layout == "NCHW" else 1
    total = int(np.prod(y.shape, dtype=np.int64))
    broadcast_channels[grid_1d(total)](_flat(y), bias, total, K, inner)


def channel_sum(dy, layout: str):
    """``dy`` summed over every axis but the channel one (the bias gradient), in ``dy``'s dtype."""
    K = dy.shape[1] if layout == "NCHW" else dy.shape[3]
    inner = dy.shape[2] * dy.shape[3] if layout == "NCHW" else 1
    outer = int(np.prod(dy.shape, dtype=np.int64)) // (K * inner)
    out = cuda.device_array(K, dy.dtype)
    sum_channels[K, 256](_flat(dy), out, outer, K, inner)
    return out
