"""numlin: a JIT-compiled numerical toolkit on Numba (GEMM, convolution, randomized SVD, autodiff).

Kernels compile on first use and are cached on disk (``cache=True``); importing numlin loads
neither Numba's compiler nor CUDA.
"""
from ._api import conv2d, gemm, matmul  # first: it imports the subpackages below in a working order
from . import autodiff, linalg, nn, optim, testing
from .autodiff import (GradientTape, Tensor, Variable, abs, add, cast, constant, cos, divide, exp, flatten, grad,
                       hessian, hvp, jacobian, jvp, log, max, mean, multiply, negative, power, relu, reshape, sigmoid,
                       sign, sin, sqrt, subtract, sum, tanh, transpose, value_and_grad)
from .nn.conv import col2im, conv2d_backward, im2col

__version__ = "0.1.0"
__all__ = ["gemm", "matmul", "conv2d", "conv2d_backward", "im2col", "col2im", "linalg", "nn", "optim", "testing",
           "autodiff", "Tensor", "Variable", "constant", "GradientTape", "grad", "value_and_grad", "jacobian",
           "hessian", "jvp", "hvp", "add", "subtract",
           "multiply", "divide", "power", "negative", "exp", "log", "sin", "cos", "tanh", "sqrt", "abs", "relu",
           "sigmoid", "sign", "sum", "mean", "max", "reshape", "transpose", "flatten", "cast"]
