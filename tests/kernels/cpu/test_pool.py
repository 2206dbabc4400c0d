"""Recycled memory for large CPU results (numlin.kernels.cpu._pool): a dropped result's block is
reused, a block with any live view never is, the cap holds, and small results stay plain."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from numlin.kernels.cpu import _pool

SHAPE = (64, 16, 32, 32)  # 4 MiB of float32


@pytest.fixture(autouse=True)
def _fresh_pool(configure):
    configure(cpu_pool_bytes=64 << 20)
    _pool.clear()
    with _pool.recycling():
        yield
    _pool.clear()


def test_outside_a_recycling_block_results_are_plain():
    def other_thread(out):
        out.append(_pool.empty(SHAPE, np.float32))

    got = []
    t = threading.Thread(target=other_thread, args=(got,))  # the block is per thread
    t.start()
    t.join()
    assert got[0].base is None


def test_a_tape_recycles_while_recording_and_computing_gradients():
    import numlin as nl

    x = nl.Variable(np.ones(SHAPE, np.float32))
    seen = []
    orig = _pool.empty

    def spy(shape, dtype):
        out = orig(shape, dtype)
        seen.append(out.base is not None)
        return out

    _pool.empty = spy
    try:
        _pool._local.depth -= 1  # leave the fixture's block: only the tape's own count now
        with nl.GradientTape() as tape:
            y = nl.relu(x) * 2.0
        g = tape.gradient(y, x)
        _pool._local.depth += 1
    finally:
        _pool.empty = orig
    assert seen and all(seen), seen
    assert _pool.empty(SHAPE, np.float32).base is not None  # back in the fixture's block
    np.testing.assert_array_equal(g.numpy(), np.full(SHAPE, 2.0, np.float32))


def test_a_dropped_result_is_reused():
    a = _pool.empty(SHAPE, np.float32)
    assert a.shape == SHAPE and a.dtype == np.float32 and a.flags.c_contiguous and a.flags.writeable
    block = id(a.base)
    del a
    b = _pool.empty(SHAPE, np.float32)
    assert id(b.base) == block


def test_a_block_with_a_live_view_is_not_reused():
    a = _pool.empty(SHAPE, np.float32)
    v = a[5:9].transpose(1, 0, 2, 3)[::2]  # a view of a view: numpy's base is the block itself
    block = id(a.base)
    del a
    b = _pool.empty(SHAPE, np.float32)
    assert id(b.base) != block
    b.fill(1.0)
    v[...] = 2.0
    assert (b == 1.0).all()  # no aliasing
    del v
    c = _pool.empty(SHAPE, np.float32)
    assert id(c.base) == block


def test_other_dtypes_and_sizes_share_blocks_up_to_twice_their_size():
    a = _pool.empty((1 << 20,), np.float64)  # 8 MiB
    block = id(a.base)
    del a
    b = _pool.empty((3 << 19,), np.float32)  # 6 MiB: fits the 8 MiB block
    assert id(b.base) == block and b.dtype == np.float32
    del b
    c = _pool.empty((1 << 19,), np.float32)  # 2 MiB: under half the block, a new one
    assert id(c.base) != block


def test_small_results_and_a_zero_cap_are_plain(configure):
    small = _pool.empty((100, 100), np.float32)  # 40 KB: the C library's heap reuses it
    assert small.base is None
    mid = _pool.empty((256, 256), np.float32)  # 256 KiB: glibc would map fresh pages for it
    assert mid.base is not None
    configure(cpu_pool_bytes=0)
    big = _pool.empty(SHAPE, np.float32)
    assert big.base is None


def test_the_cap_holds_and_free_blocks_make_room(configure):
    configure(cpu_pool_bytes=10 << 20)
    a = _pool.empty(SHAPE, np.float32)
    b = _pool.empty(SHAPE, np.float32)
    c = _pool.empty(SHAPE, np.float32)  # 12 MiB in use > 10: a plain array
    assert a.base is not None and b.base is not None and c.base is None
    assert _pool._held <= 10 << 20
    del a, b
    d = _pool.empty((1 << 21,), np.float32)  # 8 MiB: the two free 4 MiB blocks are dropped for it
    assert d.base is not None and d.base.size >= 8 << 20 and _pool._held <= 10 << 20


def test_a_result_over_the_cap_is_plain(configure):
    configure(cpu_pool_bytes=2 << 20)
    assert _pool.empty(SHAPE, np.float32).base is None


def test_clear_releases_only_free_blocks():
    a = _pool.empty(SHAPE, np.float32)
    b = _pool.empty(SHAPE, np.float32)
    del b
    assert _pool.clear() == 4 << 20
    assert a.base is not None and _pool._held == 4 << 20


def test_threads_never_get_one_block_at_once():
    errors = []

    pooled = []

    def work(i):
        with _pool.recycling():  # per thread
            for _ in range(200):
                x = _pool.empty((1 << 18,), np.float32)  # 1 MiB
                pooled.append(x.base is not None)
                x.fill(i)
                if not (x == i).all():
                    errors.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and all(pooled)


def test_a_tape_left_on_another_thread_does_not_fail():
    import numlin as nl

    tape = nl.GradientTape()
    tape.__enter__()
    errors = []

    def leave():
        try:
            tape.__exit__(None, None, None)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=leave)
    t.start()
    t.join()
    assert not errors
    # what the tape left open on this thread: its place on this thread's tape stack, and the count
    from numlin.autodiff._record import STACK

    STACK.tapes.remove(tape)
    _pool._local.depth -= 1
