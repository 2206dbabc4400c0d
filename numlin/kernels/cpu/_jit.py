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

import numba  # noqa: E402  (after install)
from numba import uintp, vectorize  # noqa: E402
from numba.extending import intrinsic  # noqa: E402


def njit(*args, **options):
    """:func:`numba.njit` without the C-callable (``cfunc``) wrapper Numba otherwise compiles for
    every function: numlin calls its kernels from Python and from each other, never through a C
    function pointer. A small kernel compiles ~5 % faster (100 -> 96 ms); the cold first calls of
    the demo CNN's step, a convolution and rsvd took 4-8 % less (benchmarks/README.md, fourteenth
    session)."""
    options.setdefault("no_cfunc_wrapper", True)
    return numba.njit(*args, **options)

__all__ = ["njit", "vectorize", "intrinsic", "uintp"]
