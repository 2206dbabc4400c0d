"""The test harness's block scheduler for the CUDA simulator (tests/_cudasim.py) keeps the
simulator's semantics: barriers over a block's live threads, early returns, the syncthreads
reductions, and an exception in one thread raised by the launch without a hang."""
from __future__ import annotations

import numpy as np
import pytest
from numba import cuda, float64, int64  # module globals: the simulator swaps a kernel's global `cuda`

from tests.conftest import HAS_GPU

pytestmark = pytest.mark.skipif(HAS_GPU, reason="checks the simulator's scheduler (no GPU only)")


def test_installed():
    from numba.cuda.simulator import kernel

    assert kernel.BlockManager.run.__name__ == "_run"


def test_shared_memory_tree_reduction_with_early_returns():
    @cuda.jit
    def block_sums(x, out, n):
        sm = cuda.shared.array(64, float64)
        t = cuda.threadIdx.x
        i = cuda.blockIdx.x * 64 + t
        sm[t] = x[i] if i < n else 0.0
        cuda.syncthreads()
        step = 32
        while step > 0:
            if t < step:
                sm[t] += sm[t + step]
            cuda.syncthreads()
            step //= 2
        if t != 0:
            return  # the rest of the block is done; thread 0 meets no more barriers either
        out[cuda.blockIdx.x] = sm[0]

    x = np.arange(200, dtype=np.float64)
    out = np.zeros(4)
    block_sums[4, 64](x, out, 200)
    np.testing.assert_array_equal(out, [x[b * 64:(b + 1) * 64].sum() for b in range(4)])


def test_barrier_after_some_threads_returned():
    @cuda.jit
    def f(out):
        sm = cuda.shared.array(32, int64)
        t = cuda.threadIdx.x
        if t >= 20:
            return  # these twelve never reach the barrier
        sm[t] = t
        cuda.syncthreads()  # releases once the 20 live threads arrive
        out[t] = sm[19 - t]

    out = np.full(32, -1, np.int64)
    f[1, 32](out)
    np.testing.assert_array_equal(out[:20], np.arange(19, -1, -1))
    assert (out[20:] == -1).all()


def test_syncthreads_count_and_or():
    @cuda.jit
    def f(out):
        t = cuda.threadIdx.x
        out[0] = cuda.syncthreads_count(t % 3 == 0)
        out[1] = cuda.syncthreads_and(t < 100)
        out[2] = cuda.syncthreads_or(t == 7)
        out[3] = cuda.syncthreads_and(t < 10)

    out = np.zeros(4, np.int64)
    f[1, 30](out)
    np.testing.assert_array_equal(out, [10, 1, 1, 0])


def test_an_exception_in_one_thread_fails_the_launch_without_hanging():
    @cuda.jit
    def f(x):
        t = cuda.threadIdx.x
        if t == 5:
            x[1000] = 1.0  # out of bounds under the simulator
        cuda.syncthreads()  # the others wait here, then are aborted
        x[t] = 2.0

    x = np.zeros(16)
    with pytest.raises(IndexError, match=r"tid=\[5, 0, 0\]"):
        f[1, 16](x)
