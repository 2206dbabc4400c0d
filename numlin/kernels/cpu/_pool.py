"""Recycled memory for large CPU results: ``empty(shape, dtype)``.

A new large numpy array is fresh memory from the C library (``mmap``): the first write to each
4 KiB page traps into the kernel, which zeroes it, and on the 2-vCPU VMs numlin is measured on a
fault costs 2-10 us, more when two threads of the process fault at once (a part of a launch then
waits milliseconds for its pages). A training step that allocates every activation and gradient
afresh spent 40 % of its time there: ResNet-8's step at 2 threads took 90-109 ms with fresh
arrays, 52-60 ms with this module (benchmarks/README.md). Here a large result is a view of a
block this module keeps: once every view of a block is gone, the next result of a size that
fits reuses its pages.

Recycling is on inside :func:`recycling` blocks (per thread), which ``GradientTape`` opens while
it records and while it computes gradients: a training loop allocates the same shapes step
after step, while results elsewhere (a Dask worker's chunks under a memory limit, one large
product) are left to the C library. A block is free when nothing but this module refers to it
(its reference count: numpy makes every view of a view refer to the block itself). The blocks kept, free and in use, hold at most
``config.cpu_pool_bytes`` (``NUMLIN_CPU_POOL_MB``, 0 turns this off); past it, a result is a plain
``np.empty``. Results under :data:`MIN_BYTES` (64 KiB) are always plain: the C library's heap
reuses those itself. From glibc's ``mmap`` threshold (128 KiB by default) up, it does not: a
result of a few hundred KiB was fresh pages every time, and the demo CNN's step (activations of
128-512 KiB) took 530 page faults, 5.3 ms where it takes 3.3 ms recycled (benchmarks/README.md,
fourteenth session). :func:`clear` returns the free blocks to the system.
"""
from __future__ import annotations

import math
import sys
import threading

import numpy as np

from ..._config import config

__all__ = ["empty", "full", "zeros", "active", "clear", "recycling", "MIN_BYTES"]

#: results smaller than this are plain ``np.empty`` (the C library's heap serves them)
MIN_BYTES = 1 << 16
#: block sizes are multiples of this
_GRAIN = 1 << 16

_lock = threading.Lock()
_blocks: list = []  # uint8 arrays, oldest first
_held = 0  # bytes in _blocks
_local = threading.local()  # .depth: recycling() blocks open on this thread


def _refcounts(blocks: list) -> list:
    """Each block's reference count as seen from here (:data:`_FREE` is a free block's)."""
    return [sys.getrefcount(b) for b in blocks]


def _calibrate():
    """A free block's count in :func:`_refcounts`, measured (interpreters differ in the references
    they hold); None, and no recycling, where one view more does not count one more."""
    probe = [np.empty(1, np.uint8)]
    free = _refcounts(probe)[0]
    view = probe[0][:]
    held = _refcounts(probe)[0]
    del view
    return free if held == free + 1 and _refcounts(probe)[0] == free else None


_FREE = _calibrate()


def _take(size: int):
    """A free block of ``size .. 2 * size`` bytes (the smallest), or a new one, or None past the cap."""
    global _held
    counts = _refcounts(_blocks)
    best = -1
    for i, b in enumerate(_blocks):
        if counts[i] == _FREE and size <= b.size <= 2 * size and (best < 0 or b.size < _blocks[best].size):
            best = i
    if best >= 0:
        return _blocks[best]
    cap = config.cpu_pool_bytes
    if _held + size > cap:  # make room: drop free blocks, oldest first
        keep = []
        for i, b in enumerate(_blocks):
            if _held + size > cap and counts[i] == _FREE:
                _held -= b.size
            else:
                keep.append(b)
        _blocks[:] = keep
        if _held + size > cap:
            return None
    block = np.empty(size, np.uint8)
    _blocks.append(block)
    _held += size
    return block


def active() -> bool:
    """Whether results on this thread are recycled now (inside :func:`recycling`, pool on)."""
    return getattr(_local, "depth", 0) > 0 and config.cpu_pool_bytes > 0 and _FREE is not None


def empty(shape: tuple, dtype) -> np.ndarray:
    """An uninitialised C-ordered array of ``shape`` and ``dtype``; a large one inside
    :func:`recycling` reuses the memory of a dropped result (its ``base`` is then a block here)."""
    if not active():
        return np.empty(shape, dtype)
    dtype = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < MIN_BYTES:
        return np.empty(shape, dtype)
    size = -(-nbytes // _GRAIN) * _GRAIN
    with _lock:
        block = _take(size)
    if block is None:
        return np.empty(shape, dtype)
    return block[:nbytes].view(dtype).reshape(shape)


def full(shape: tuple, value: float, dtype) -> np.ndarray:
    """:func:`empty` filled with ``value`` (``np.full`` outside :func:`recycling`)."""
    if not active():
        return np.full(shape, value, dtype)
    out = empty(shape, dtype)
    out.fill(value)
    return out


def zeros(shape: tuple, dtype) -> np.ndarray:
    """:func:`full` of zeros (``np.zeros``, whose pages come zeroed, outside :func:`recycling`)."""
    return full(shape, 0, dtype) if active() else np.zeros(shape, dtype)


class _Recycling:
    """The block of :func:`recycling` (a plain class: entered on every tape and backward pass)."""

    __slots__ = ()

    def __enter__(self) -> None:
        _local.depth = getattr(_local, "depth", 0) + 1

    def __exit__(self, *exc) -> None:  # never below 0 (a tape may leave on another thread)
        _local.depth = max(0, getattr(_local, "depth", 0) - 1)


_RECYCLING = _Recycling()


def recycling() -> _Recycling:
    """A ``with`` block (per thread, nestable) inside which :func:`empty` reuses dropped results'
    memory."""
    return _RECYCLING


def clear() -> int:
    """Return the free blocks to the system; the bytes released."""
    global _held
    freed = 0
    with _lock:
        keep = []
        for b, count in zip(_blocks, _refcounts(_blocks)):
            if count == _FREE:
                freed += b.size
            else:
                keep.append(b)
        _blocks[:] = keep
        _held -= freed
    return freed
