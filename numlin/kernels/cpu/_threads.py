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

Placement: a pool thread woken by a launch may be queued on the launching thread's CPU while
another CPU idles (on VMs an idle vCPU counts as unavailable to the wake-up placement, and the
load balancer leaves the two cache-hot threads sharing one CPU for milliseconds: the launch then
takes twice as long). Each part therefore starts by checking its CPU (``sched_getcpu``) against
those the launch's other parts run on and, on a collision, moves itself to another CPU of the
process's affinity mask (set the mask without those CPUs, then restore it at once: nothing stays
pinned, so several numlin processes on one machine do not crowd onto the same CPUs).
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

from ..._config import config

__all__ = ["launch", "num_threads", "split"]

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_lock = threading.Lock()


_get_num_threads = None


def num_threads() -> int:
    """Threads a launch may use: Numba's setting for the calling thread (``numba.set_num_threads``
    is per thread). The first call goes through :func:`numba.get_num_threads`, which starts Numba's
    threading layer; later ones read the setting straight from it (``get_num_threads`` takes two
    locks to check that the layer is started: ~2 us, at every op's launch)."""
    global _get_num_threads
    if _get_num_threads is None:
        from numba import get_num_threads
        from numba.np.ufunc import parallel

        n = get_num_threads()
        _get_num_threads = getattr(parallel, "_get_num_threads", None) or get_num_threads
        return n
    return _get_num_threads()


def split(work: int) -> int:
    """Parts for a launch over ``work`` elements: one per thread, at least
    ``config.threads_grain`` each (a part's wake-up must not cost more than it saves)."""
    return max(1, min(num_threads(), work // config.threads_grain))


def _cpu_reader():
    """``sched_getcpu`` from the C library, or None where it (or ``os.sched_setaffinity``) is missing."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    try:
        import ctypes

        fn = ctypes.CDLL(None).sched_getcpu
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_int
    fn.argtypes = []
    return fn if fn() >= 0 else None


_getcpu = _cpu_reader()


def _spread(taken: set) -> None:
    """Run the calling thread on a CPU no other part of its launch runs on, if there is one."""
    cpu = _getcpu()
    if cpu in taken:
        try:
            mask = os.sched_getaffinity(0)
            free = mask - taken
            if free:
                os.sched_setaffinity(0, free)  # migrates now
                os.sched_setaffinity(0, mask)  # and lets the scheduler move it later
                cpu = _getcpu()
        except OSError:  # a mask the process may not set (containers, cpusets changed meanwhile)
            pass
    taken.add(cpu)


def _part(kernel, t: int, parts: int, args: tuple, taken: set | None) -> None:
    if taken is not None:
        _spread(taken)
    kernel(t, parts, *args)


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
    taken = {_getcpu()} if _getcpu is not None else None
    futures = [pool.submit(_part, kernel, t, parts, args, taken) for t in range(1, parts)]
    try:
        kernel(0, parts, *args)
    finally:
        for f in futures:
            f.result()
