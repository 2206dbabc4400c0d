"""Reverse-mode autodiff: Tensors, the GradientTape, the differentiable ops and the function
transformations (grad, value_and_grad, jacobian, hessian, jvp, hvp)."""
from .functional import hessian, hvp, jacobian, jvp
from .ops import *  # noqa: F401,F403
from .ops import __all__ as _ops_all
from .tape import GradientTape, grad, value_and_grad
from .tensor import Tensor, Variable, as_tensor, constant

__all__ = ["Tensor", "Variable", "constant", "as_tensor", "GradientTape", "grad", "value_and_grad", "jacobian",
           "hessian", "jvp", "hvp", *_ops_all]
