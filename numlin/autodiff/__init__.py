"""Reverse-mode autodiff: Tensors, the GradientTape, the differentiable ops and the function
transformations (grad, value_and_grad, jacobian, hessian, jvp, hvp)."""
from .functional import hessian, hvp, jacobian, jvp
from .nn_ops import avg_pool2d, conv2d, cross_entropy, log_softmax, max_pool2d
from .ops import (abs, add, broadcast_to, cast, cos, divide, exp, flatten, log, matmul, max, mean, multiply, negative,
                  ones_like, power, relu, reshape, sigmoid, sign, sin, sqrt, stack, subtract, sum, tanh, transpose,
                  zeros_like)
from .tape import GradientTape, grad, value_and_grad
from .tensor import Tensor, Variable, as_tensor, constant

__all__ = ["Tensor", "Variable", "constant", "as_tensor", "GradientTape", "grad", "value_and_grad", "jacobian",
           "hessian", "jvp", "hvp",
           # ops
           "add", "subtract", "multiply", "divide", "power", "negative", "exp", "log", "sin", "cos", "tanh", "sqrt",
           "abs", "relu", "sigmoid", "sign", "sum", "mean", "max", "reshape", "transpose", "flatten", "broadcast_to",
           "matmul", "ones_like", "zeros_like", "cast", "stack",
           # nn_ops
           "conv2d", "max_pool2d", "avg_pool2d", "log_softmax", "cross_entropy"]
