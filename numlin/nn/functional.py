"""Functional neural-network ops on Tensors (differentiable; defined in :mod:`numlin.autodiff.ops`)."""
from ..autodiff.ops import avg_pool2d, conv2d, cross_entropy, log_softmax, max_pool2d, relu, sigmoid, tanh

__all__ = ["conv2d", "max_pool2d", "avg_pool2d", "relu", "sigmoid", "tanh", "log_softmax", "cross_entropy"]
