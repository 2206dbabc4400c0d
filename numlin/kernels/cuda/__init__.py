"""CUDA kernels (``@cuda.jit``) and the device-array helpers the front-ends use with them.

Every kernel is declared through :func:`._registry.kernel`, which records its signatures so that
the test suite can compile each one to PTX for compute capability 9.0 even on machines without a
GPU (where the kernels themselves run under Numba's CUDA simulator).
"""
from __future__ import annotations

from .arrays import as_array, cast, check_out, contiguous, empty, strided, transpose_last2, workspace
from . import depthwise, elementwise, gemm, im2col, implicit_gemm, optim, pool, softmax

__all__ = ["as_array", "cast", "contiguous", "empty", "check_out", "strided", "transpose_last2", "workspace",
           "depthwise", "elementwise", "gemm", "im2col", "implicit_gemm", "optim", "pool", "softmax"]
