"""Linear algebra: GEMM front-ends (and, from the rsvd issue, randomized SVD)."""
from .gemm import gemm, matmul

__all__ = ["gemm", "matmul"]
