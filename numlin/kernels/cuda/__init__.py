"""CUDA kernels (``@cuda.jit``) and the device-array helpers the front-ends use with them.

Every kernel is declared through :func:`._registry.kernel`, which records its signatures so that
the test suite can compile each one to PTX for compute capability 9.0 even on machines without a
GPU (where the kernels themselves run under Numba's CUDA simulator).
"""
from __future__ import annotations

from .arrays import as_array, check_out, empty, strided, transpose_last2, workspace
from .elementwise import cast, contiguous, full
from . import buffers, conv, elementwise, gemm, optim, pool, softmax

__all__ = ["as_array", "cast", "contiguous", "empty", "full", "check_out", "strided", "transpose_last2", "workspace",
           "buffers", "conv", "elementwise", "gemm", "optim", "pool", "softmax"]
