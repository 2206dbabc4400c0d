"""Reverse-mode autodiff: Tensors, the GradientTape and the differentiable ops."""
from .ops import *  # noqa: F401,F403
from .ops import __all__ as _ops_all
from .tape import GradientTape, grad, value_and_grad
from .tensor import Tensor, Variable, as_tensor, constant

__all__ = ["Tensor", "Variable", "constant", "as_tensor", "GradientTape", "grad", "value_and_grad", *_ops_all]
