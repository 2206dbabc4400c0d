"""Numba, for the CPU kernel modules: ``njit``, ``vectorize``, ``intrinsic``, ``uintp``.

Every module of this folder that compiles code takes Numba's decorators from here (a structure
test checks it): importing this module first installs :mod:`._cache` (tile-keyed cache folders,
compile notices), which must happen before any kernel is decorated. Nothing else in
``numlin.kernels.cpu`` imports Numba at module level, so ``import numlin`` and the work that needs
no compiled code (0-d float64 arithmetic on the tape, array bookkeeping) never pay Numba's import
(~0.25 s) nor its first-use start-up (~0.5 s).
"""
from __future__ import annotations

from . import _cache

_cache.install()

from numba import njit, uintp, vectorize  # noqa: E402  (after install)
from numba.extending import intrinsic  # noqa: E402

__all__ = ["njit", "vectorize", "intrinsic", "uintp"]
