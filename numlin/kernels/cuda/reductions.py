"""Reductions on the device: a block's tree sum (for the kernels that reduce in shared memory)."""
from __future__ import annotations

from numba import cuda

__all__ = ["block_sum"]


@cuda.jit(device=True, inline=True)
def block_sum(buf):
    """The sum of ``buf[:blockDim.x]`` (shared memory, one value per thread; ``blockDim.x`` a
    power of two), by a tree into ``buf[0]``, which it returns. Every thread of the block
    calls it; ``buf`` must not be written again before all have read the result."""
    tid = cuda.threadIdx.x
    cuda.syncthreads()
    step = cuda.blockDim.x // 2
    while step > 0:
        if tid < step:
            buf[tid] += buf[tid + step]
        cuda.syncthreads()
        step //= 2
    return buf[0]
