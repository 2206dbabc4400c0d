"""Python threads for the CPU kernels: ``launch(kernel, parts, *args)``.

A kernel launched here is a serial ``@njit(nogil=True)`` function whose first two arguments are
its part ``t`` and the number of parts; :func:`launch` runs ``kernel(t, parts, *args)`` for every
``t`` on numlin's worker threads, the calling thread taking part 0, and returns when all are
done (re-raising the first error). The compiled code releases the GIL, so the parts run at once.

Why not ``parallel=True``: Numba compiles a parallel function's loop body a second time as a
gufunc and links every callee into both, so a kernel around the GEMM micro-kernels cost 2-3x
its serial compile time (and loads slowly from the cache); serial kernels compile once and
serve the one-thread case too. Python threads also need no threading layer: concurrent calls
from several Python threads are safe with any layer, ``workqueue`` included.

The number of threads is :func:`numba.get_num_threads` (``NUMBA_NUM_THREADS``,
``numba.set_num_threads``), read at each launch.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = ["launch", "num_threads", "split"]

#: elements of work per part below which a launch stays on the calling thread: waking a pool
#: thread and handing it the GIL costs 50-100 us on the 2-core VMs (futex wake-up of an idle
#: vCPU), and these kernels stream a few elements per nanosecond
GRAIN = 1 << 18

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_lock = threading.Lock()


def num_threads() -> int:
    """Threads a launch may use: Numba's setting for the calling thread."""
    from numba import get_num_threads

    return get_num_threads()


def split(work: int) -> int:
    """Parts for a launch over ``work`` elements: one per thread, at least :data:`GRAIN` each."""
    return max(1, min(num_threads(), work // GRAIN))


def _workers(n: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size < n:
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="numlin")  # the old one drains by itself
            _pool_size = n
        return _pool


def launch(kernel, parts: int, *args) -> None:
    """Run ``kernel(t, parts, *args)`` for ``t`` in ``range(parts)``, part 0 on this thread."""
    if parts <= 1:
        kernel(0, 1, *args)
        return
    pool = _workers(parts - 1)
    futures = [pool.submit(kernel, t, parts, *args) for t in range(1, parts)]
    try:
        kernel(0, parts, *args)
    finally:
        for f in futures:
            f.result()
