"""numlin: a JIT-compiled numerical toolkit on Numba (GEMM, convolution, randomized SVD, autodiff).

Kernels compile on first use and are cached on disk (``cache=True``); importing numlin loads
neither Numba's compiler nor CUDA.
"""
from .linalg.gemm import gemm, matmul

__version__ = "0.1.0"
__all__ = ["gemm", "matmul"]
