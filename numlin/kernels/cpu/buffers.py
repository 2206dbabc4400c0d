"""Whole-buffer helpers the front-ends use on any kernel's operands (host arrays): a zero-filled
result and a finiteness check. Same names in ``numlin.kernels.cuda.buffers``."""
from __future__ import annotations

import numpy as np

from . import _pool

__all__ = ["zeros", "all_finite"]


def zeros(shape: tuple, dtype) -> np.ndarray:
    """An array of ``shape`` and ``dtype`` holding zeros."""
    return _pool.zeros(shape, dtype)


def all_finite(a: np.ndarray) -> bool:
    """Whether every value of ``a`` is finite."""
    return bool(np.isfinite(a).all())
