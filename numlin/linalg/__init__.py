"""Linear algebra: GEMM front-ends, randomized SVD and PCA."""
from .._api import gemm, matmul
from .rsvd import PCAResult, pca, rsvd, rsvd_error_estimate

__all__ = ["gemm", "matmul", "rsvd", "rsvd_error_estimate", "pca", "PCAResult"]
