"""Neural-network building blocks: convolution (im2col + GEMM) and, with autodiff, layers."""
from .conv import col2im, conv2d, conv2d_backward, im2col

__all__ = ["conv2d", "conv2d_backward", "im2col", "col2im"]
