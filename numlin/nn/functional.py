"""Functional neural-network ops on Tensors (differentiable; defined in :mod:`numlin.autodiff.nn_ops`
and :mod:`numlin.autodiff.ops`, batch normalisation in :mod:`numlin.nn._batchnorm`)."""
from ..autodiff.nn_ops import avg_pool2d, conv2d, cross_entropy, log_softmax, max_pool2d
from ..autodiff.ops import relu, sigmoid, tanh
from ._batchnorm import batch_norm

__all__ = ["conv2d", "max_pool2d", "avg_pool2d", "relu", "sigmoid", "tanh", "log_softmax", "cross_entropy",
           "batch_norm"]
