"""numlin: a JIT-compiled numerical toolkit on Numba (GEMM, convolution, randomized SVD, autodiff).

Kernels compile on first use and are cached on disk (``cache=True``); importing numlin loads
neither Numba's compiler nor CUDA.
"""
from . import linalg, nn
from .linalg.gemm import gemm, matmul
from .nn.conv import col2im, conv2d, conv2d_backward, im2col

__version__ = "0.1.0"
__all__ = ["gemm", "matmul", "conv2d", "conv2d_backward", "im2col", "col2im", "linalg", "nn"]
