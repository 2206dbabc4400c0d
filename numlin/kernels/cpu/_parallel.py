"""``parallel_kernel``: the only way numlin's CPU kernels get ``parallel=True``.

Numba's ``workqueue`` threading layer aborts the process ("Concurrent access has been detected")
when two Python threads run parallel regions at once. :func:`numlin._dispatch.parallel_guard`
serialises them where that layer is in use (a no-op with ``tbb``/``omp``). Rather than each
call site remembering to take it, a kernel is declared with ``@parallel_kernel(...)`` instead of
``@njit(parallel=True, ...)``: calling it takes the guard, by construction.

The compiled dispatcher stays reachable as ``kernel.dispatcher`` (and attribute access falls
through to it: ``inspect_asm``, ``signatures``, ``py_func``...). Jitted code cannot call the
wrapper; no numlin kernel calls a parallel kernel from jitted code (``tests/test_threads.py``
checks that every ``parallel=True`` kernel is declared here).
"""
from __future__ import annotations

from numba import njit

from ... import _dispatch

__all__ = ["parallel_kernel", "ParallelKernel"]


class ParallelKernel:
    """A ``parallel=True`` Numba dispatcher whose calls hold :func:`~numlin._dispatch.parallel_guard`."""

    def __init__(self, dispatcher):
        self.dispatcher = dispatcher
        self.__wrapped__ = dispatcher.py_func
        self.__name__ = dispatcher.py_func.__name__
        self.__qualname__ = dispatcher.py_func.__qualname__
        self.__doc__ = dispatcher.py_func.__doc__
        self.__module__ = dispatcher.py_func.__module__

    def __call__(self, *args, **kwargs):
        if _dispatch._need_lock is False:  # decided, thread-safe layer: no lock (the hot path)
            return self.dispatcher(*args, **kwargs)
        with _dispatch.parallel_guard():
            return self.dispatcher(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.dispatcher, name)

    def __repr__(self) -> str:
        return f"<parallel_kernel {self.__module__}.{self.__qualname__}>"


def parallel_kernel(**options):
    """``@parallel_kernel(cache=True, nogil=True, ...)``: ``numba.njit(parallel=True, **options)``
    whose calls take numlin's threading-layer guard."""
    if "parallel" in options:
        raise TypeError("parallel_kernel: parallel=True is implied; do not pass it")

    def wrap(fn):
        return ParallelKernel(njit(parallel=True, **options)(fn))

    return wrap
