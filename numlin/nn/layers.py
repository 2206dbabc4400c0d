"""Layers: callable objects holding :class:`numlin.Variable` parameters (PyTorch's ``nn`` style).

Parameters are initialised as PyTorch does (Kaiming-uniform weights, ``U(-1/sqrt(fan_in),
1/sqrt(fan_in))`` biases), from ``random_state`` (an int seed or a ``numpy.random.Generator``).
"""
from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np

from .._validate import is_int
from ..autodiff import ops
from ..autodiff.tensor import Tensor, Variable

__all__ = ["Module", "Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "ReLU", "Flatten", "Sequential"]


def _rng(random_state: Any) -> np.random.Generator:
    return random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state)


def _positive_int(layer: str, name: str, v: Any) -> int:
    if not is_int(v):
        raise TypeError(f"{layer}: {name} must be an int, got {v!r}")
    if v < 1:
        raise ValueError(f"{layer}: {name} must be positive, got {v!r}")
    return int(v)


class Module:
    """Base class: ``__call__`` runs ``forward``; ``parameters()`` lists every Variable the module
    and its sub-modules hold, in definition order."""

    def forward(self, x: Any) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, x: Any) -> Tensor:
        return self.forward(x)

    def parameters(self) -> list[Variable]:
        """The trainable Variables, each once."""
        seen: dict[int, Variable] = {}
        for p in self._walk():
            seen.setdefault(id(p), p)
        return list(seen.values())

    def _walk(self) -> Iterator[Variable]:
        for v in vars(self).values():
            yield from _params_in(v)

    def to(self, device: str) -> "Module":
        """Move every parameter's value to ``device`` ("cpu" or "cuda") in place: the same Variable
        objects (earlier ``parameters()`` lists and optimizer state stay valid); returns the module."""
        if device not in ("cpu", "cuda"):
            raise ValueError(f"to: device must be 'cpu' or 'cuda', got {device!r}")
        for p in self.parameters():
            p._move(device)
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _params_in(v: Any) -> Iterator[Variable]:
    """Variables held by an attribute: directly, in sub-modules, or in lists/tuples/dicts of them."""
    if isinstance(v, Variable):
        yield v
    elif isinstance(v, Module):
        yield from v._walk()
    elif isinstance(v, (list, tuple)):
        for item in v:
            yield from _params_in(item)
    elif isinstance(v, dict):
        for item in v.values():
            yield from _params_in(item)


class Linear(Module):
    """``y = x @ weight + bias``.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool
    dtype : float32 (default) or float64
    random_state : int, Generator or None

    Attributes
    ----------
    weight : Variable, (in_features, out_features)
        Stored input-major (``x @ W``, as Keras and JAX), the transpose of PyTorch's layout.
    bias : Variable (out_features,) or None
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, dtype: Any = np.float32,
                 random_state: Any = None):
        self.in_features = _positive_int("Linear", "in_features", in_features)
        self.out_features = _positive_int("Linear", "out_features", out_features)
        rng = _rng(random_state)
        bound = 1.0 / math.sqrt(self.in_features)
        self.weight = Variable(rng.uniform(-bound, bound, (self.in_features, self.out_features)), dtype,
                               name="Linear.weight")
        self.bias = Variable(rng.uniform(-bound, bound, self.out_features), dtype, name="Linear.bias") if bias else None

    def forward(self, x: Any) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"Linear: input of shape {x.shape} does not end in in_features={self.in_features}")
        y = ops.matmul(x, self.weight)
        return y if self.bias is None else ops.add(y, self.bias)

    def __repr__(self) -> str:
        return f"Linear({self.in_features}, {self.out_features}, bias={self.bias is not None})"


class Conv2d(Module):
    """2-D convolution layer over NCHW input (numlin's im2col + GEMM :func:`numlin.conv2d`).

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, padding : as :func:`numlin.conv2d`
    bias : bool
    dtype, random_state : as :class:`Linear`

    Attributes
    ----------
    weight : Variable (out_channels, in_channels, kh, kw)
    bias : Variable (out_channels,) or None
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 bias: bool = True, *, dtype: Any = np.float32, random_state: Any = None):
        from .conv import conv_args

        self.in_channels = _positive_int("Conv2d", "in_channels", in_channels)
        self.out_channels = _positive_int("Conv2d", "out_channels", out_channels)
        # validated now, with numlin.conv2d's rules and messages (not at the first forward)
        self.kernel_size = conv_args("Conv2d", kernel_size, stride=stride, padding=padding)[0]
        self.stride, self.padding = stride, padding
        rng = _rng(random_state)
        fan_in = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        bound = 1.0 / math.sqrt(fan_in)
        self.weight = Variable(rng.uniform(-bound, bound, (self.out_channels, self.in_channels, *self.kernel_size)),
                               dtype, name="Conv2d.weight")
        self.bias = Variable(rng.uniform(-bound, bound, self.out_channels), dtype, name="Conv2d.bias") if bias else None

    def forward(self, x: Any) -> Tensor:
        return ops.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)

    def __repr__(self) -> str:
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding})")


class MaxPool2d(Module):
    """Max pooling (:func:`numlin.autodiff.ops.max_pool2d`); ``stride`` defaults to ``kernel_size``."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0):
        from .conv import pool_args

        pool_args(type(self).__name__, kernel_size, stride, padding)  # validated now, not at the first forward
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: Any) -> Tensor:
        return ops.max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def __repr__(self) -> str:
        return f"MaxPool2d({self.kernel_size})"


class AvgPool2d(MaxPool2d):
    """Average pooling (:func:`numlin.autodiff.ops.avg_pool2d`); ``stride`` defaults to ``kernel_size``."""

    def forward(self, x: Any) -> Tensor:
        return ops.avg_pool2d(x, self.kernel_size, self.stride, self.padding)

    def __repr__(self) -> str:
        return f"AvgPool2d({self.kernel_size})"


class ReLU(Module):
    """``max(x, 0)``."""

    def forward(self, x: Any) -> Tensor:
        return ops.relu(x)

    def __repr__(self) -> str:
        return "ReLU()"


class Flatten(Module):
    """Collapse every axis but the first (the batch): ``(N, ...) -> (N, prod(...))``."""

    def forward(self, x: Any) -> Tensor:
        return ops.flatten(x, 1)

    def __repr__(self) -> str:
        return "Flatten()"


class Sequential(Module):
    """Layers applied in order; ``model[i]`` is the i-th layer, ``len(model)`` their number."""

    def __init__(self, *layers: Module):
        for i, layer in enumerate(layers):
            if not callable(layer):
                raise TypeError(f"Sequential: layer {i} ({type(layer).__name__}) is not callable")
        self.layers = list(layers)

    def forward(self, x: Any) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(layer) for layer in self.layers)
        return f"Sequential(\n  {inner}\n)"
