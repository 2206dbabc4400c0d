"""The list of numlin's CUDA kernels with their signatures, for the PTX build check.

``@kernel(sig, ...)`` is ``numba.cuda.jit`` (lazy: compiled at first launch for the argument
types) that also records ``(name, python function, signatures)`` in :data:`KERNELS`.
``python -m numlin.kernels.cuda._ptx`` compiles every recorded signature with
``numba.cuda.compile_ptx(..., cc=(9, 0))``; the tests run it in a process without the simulator.
"""
from __future__ import annotations

from typing import Callable

from numba import cuda

__all__ = ["KERNELS", "kernel", "MODULES"]

#: (qualified name, python function, signatures) of every kernel declared with :func:`kernel`
KERNELS: list[tuple[str, Callable, tuple]] = []

#: modules that declare kernels (imported by the PTX check)
MODULES = ("numlin.kernels.cuda.buffers", "numlin.kernels.cuda.conv.channels", "numlin.kernels.cuda.conv.depthwise",
           "numlin.kernels.cuda.elementwise", "numlin.kernels.cuda.gemm", "numlin.kernels.cuda.conv.im2col",
           "numlin.kernels.cuda.conv.implicit_forward", "numlin.kernels.cuda.rsvd", "numlin.kernels.cuda.pool",
           "numlin.kernels.cuda.softmax", "numlin.kernels.cuda.optim", "numlin.kernels.cuda.batchnorm")


def kernel(*signatures, **jit_options):
    """Declare a CUDA kernel: ``cuda.jit(**jit_options)`` plus a PTX-check entry per signature."""

    def decorate(fn: Callable):
        KERNELS.append((f"{fn.__module__}.{fn.__qualname__}", fn, signatures))
        return cuda.jit(**jit_options)(fn)

    return decorate
