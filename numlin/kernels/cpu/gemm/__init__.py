"""CPU GEMM: BLIS's five loops around an LLVM-vector micro-kernel, split as BLIS splits them.

* :mod:`.microkernel`: the ``MR x NR`` register tile as LLVM IR, in four variants (BLIS ``kernels/``)
* :mod:`.pack`: packing blocks of A and panels of B into the micro-kernel's layout (``packm``)
* :mod:`.loops`: the macro-kernel and the loops around it, one kernel entry per launch shape (``frame/3``)
* :mod:`.small`: products too small to repay packing (direct micro-kernel) and matrix x vector
* :mod:`.plan`: which of those a product takes, and the launches (:func:`matmul_into`, :func:`matmul_sum_into`)
* :mod:`.operands`: strided descriptors of host arrays and per-thread workspaces

Tile sizes and other constants compiled into the kernels are in :mod:`..blocking`; switches and
thresholds read at call time are ``config.gemm_*`` (:mod:`numlin._config`).
"""
from __future__ import annotations

from .loops import add_partial_sums, gemm_batched, gemm_blocks, workspace_size
from .operands import strided, workspace
from .plan import add_partials, matmul_into, matmul_sum_into

__all__ = ["matmul_into", "matmul_sum_into", "add_partials", "strided", "workspace", "workspace_size",
           "gemm_blocks", "gemm_batched", "add_partial_sums"]
