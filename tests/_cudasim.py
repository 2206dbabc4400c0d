"""A faster block scheduler for Numba's CUDA simulator (test harness only).

The simulator (numba-cuda's ``numba.cuda.simulator``) runs every thread of a block as a Python
thread. Its ``BlockManager.run`` finds the moment to release a ``syncthreads()`` by polling every
live thread's ``is_alive()`` and ``syncthreads_blocked`` in a loop that never sleeps: on a
block of 256 threads the poller takes most of the GIL from the threads it waits for (the device
rsvd test made 17 million ``is_alive`` calls in 37 s, two thirds of its time).

:func:`install` replaces that loop with a condition-variable barrier of the same semantics:

- ``syncthreads()`` returns when every thread of the block that has not finished has reached it
  (a thread that returned early no longer counts, as in the simulator);
- an exception in one thread aborts the block: threads waiting at (or later reaching) a
  ``syncthreads()`` raise ``RuntimeError``, and the launch raises the first thread's exception,
  its message prefixed with the thread and block indices (the simulator's ``BlockThread`` does
  that);
- ``syncthreads_count`` / ``_and`` / ``_or`` and grid-group ``sync()`` go through ``syncthreads``.

Blocks still run one after another and threads are still Python threads, so races the simulator
exposes stay exposed. :func:`install` changes nothing (and returns False) if the simulator's
classes are not the ones this was written against (numba-cuda 0.2x-0.3x).
"""
from __future__ import annotations

import threading

import numpy as np

__all__ = ["install"]


class _Barrier:
    """The live threads of one block meet here; ``leave`` when a thread ends."""

    def __init__(self, n: int):
        self.cv = threading.Condition()
        self.live = n
        self.waiting = 0
        self.generation = 0
        self.failed: threading.Thread | None = None

    def _release(self) -> None:  # caller holds cv
        self.waiting = 0
        self.generation += 1
        self.cv.notify_all()

    def wait(self) -> None:
        with self.cv:
            if self.failed is not None:
                raise RuntimeError("abort flag set on syncthreads call")
            gen = self.generation
            self.waiting += 1
            if self.waiting == self.live:
                self._release()
            else:
                while gen == self.generation and self.failed is None:
                    self.cv.wait()
            if self.failed is not None:
                raise RuntimeError("abort flag set on syncthreads clear")

    def leave(self, failed: bool) -> None:
        with self.cv:
            self.live -= 1
            if failed and self.failed is None:
                self.failed = threading.current_thread()
                self.cv.notify_all()
            elif self.live and self.waiting == self.live:
                self._release()


def _syncthreads(self) -> None:
    self._manager._barrier.wait()


def _run(self, grid_point, *args) -> None:
    from numba.cuda.simulator.kernel import BlockThread

    points = list(np.ndindex(*self._block_dim))
    barrier = self._barrier = _Barrier(len(points))

    def target():
        ok = False
        try:
            self._f(*args)
            ok = True
        finally:
            barrier.leave(failed=not ok)

    threads = [BlockThread(target, self, grid_point, p, self._debug) for p in points]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    first = barrier.failed
    if first is not None and getattr(first, "exception", None):
        raise first.exception[0].with_traceback(first.exception[1])
    for t in threads:
        if t.exception:
            raise t.exception[0].with_traceback(t.exception[1])


def install() -> bool:
    """Swap the simulator's block scheduler for :func:`_run` (once). Returns whether it did."""
    try:
        from numba.cuda.simulator import kernel
    except ImportError:
        return False
    bm, bt = getattr(kernel, "BlockManager", None), getattr(kernel, "BlockThread", None)
    if bm is None or bt is None or not hasattr(bm, "run") or not hasattr(bt, "syncthreads"):
        return False
    if getattr(bm.run, "__name__", "") == "_run":
        return True
    bm.run = _run
    bt.syncthreads = _syncthreads
    return True
