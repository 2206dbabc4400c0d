"""Threads: the CPU kernels are serial ``nogil`` kernels run on Python threads
(:mod:`numlin.kernels.cpu._threads`), never Numba parallel regions, so concurrent calls from
Python threads are safe with any threading layer, ``workqueue`` included (which aborts the
process on concurrent parallel regions)."""
from __future__ import annotations

import ast
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import numlin

CPU = pathlib.Path(numlin.__file__).parent / "kernels" / "cpu"


def _parallel_njits(path: pathlib.Path) -> list:
    """``parallel=True`` passed to anything (njit, jit, vectorize(target='parallel')) in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg == "parallel" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                    found.append((path.name, node.lineno))
                if kw.arg == "target" and isinstance(kw.value, ast.Constant) and kw.value.value == "parallel":
                    found.append((path.name, node.lineno))
    return found


def test_no_parallel_njit_in_the_cpu_kernels():
    """Structural: no CPU kernel is ``parallel=True`` (nor a parallel ufunc): they are serial
    ``nogil`` kernels run on Python threads by :func:`numlin.kernels.cpu._threads.launch`, so no
    call enters Numba's threading layer, whose ``workqueue`` flavour aborts on concurrent use."""
    offenders = [hit for p in sorted(CPU.glob("*.py")) for hit in _parallel_njits(p)]
    assert offenders == []


def test_launch_runs_every_part_and_reraises_a_part_error():
    from numba import njit

    from numlin.kernels.cpu._threads import launch

    @njit(nogil=True)
    def fill(part, nparts, out, fail):
        for i in range(out.size * part // nparts, out.size * (part + 1) // nparts):
            out[i] = part + 1
        if fail and part == nparts - 1:
            raise ValueError("part failed")

    out = np.zeros(10)
    launch(fill, 3, out, False)
    assert out.tolist() == [1, 1, 1, 2, 2, 2, 3, 3, 3, 3]
    with pytest.raises(ValueError, match="part failed"):  # the last part runs on a worker thread
        launch(fill, 3, out, True)


SCRIPT = textwrap.dedent("""
    import threading, sys
    import numpy as np
    import numlin as nl
    from numba.np.ufunc import parallel

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    xh, wh = x.transpose(0, 2, 3, 1).copy(), w.transpose(2, 3, 1, 0).copy()

    def jobs():
        ref_cols = nl.im2col(x, 3, padding=1)
        ref_y = nl.conv2d(xh, wh, layout="NHWC", padding=1)
        dy = np.ones(ref_y.shape)
        ref_bw = nl.conv2d_backward(dy, xh, wh, layout="NHWC", padding=1)
        return ref_cols, ref_y, dy, ref_bw

    ref_cols, ref_y, dy, ref_bw = jobs()  # compile, and the answers

    def train_step(seed):
        r = np.random.default_rng(seed)
        model = nl.nn.Sequential(nl.nn.Conv2d(3, 4, 3, padding=1), nl.nn.ReLU(), nl.nn.MaxPool2d(2),
                                 nl.nn.Flatten(), nl.nn.Linear(36, 5))
        for p in model.parameters():  # fixed weights: every thread's step is the same
            p.assign(0.1 * r.standard_normal(p.shape))
        opt = nl.optim.Adam(1e-2)
        sgd = nl.optim.SGD(1e-2, momentum=0.9)
        images = r.standard_normal((2, 3, 6, 6))
        labels = np.array([1, 3])
        for i in range(2):
            with nl.GradientTape() as tape:
                loss = nl.nn.cross_entropy(model(nl.Tensor(images)), labels)
            grads = tape.gradient(loss, model.parameters())
            (opt if i == 0 else sgd).apply_gradients(zip(grads, model.parameters()))
        return float(loss.numpy())

    base = train_step(7)
    errors = []

    def worker(t):
        try:
            for _ in range(3):
                cols = nl.im2col(x, 3, padding=1)
                y = nl.conv2d(xh, wh, layout="NHWC", padding=1)
                bw = nl.conv2d_backward(dy, xh, wh, layout="NHWC", padding=1)
                assert np.array_equal(cols, ref_cols), "im2col"
                assert np.allclose(y, ref_y), "conv2d NHWC"
                for a, b in zip(bw, ref_bw):
                    assert np.allclose(a, b), "conv2d_backward"
                loss = train_step(7)
                assert abs(loss - base) < 1e-9, ("training step", loss, base)
        except BaseException as e:
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert parallel._threading_layer == "workqueue", parallel._threading_layer
    assert not errors, errors
    print("ok")
""")


def test_workqueue_concurrent_calls_from_threads():
    """With ``NUMBA_THREADING_LAYER=workqueue``, im2col, NHWC conv2d, conv2d_backward and a
    training step (nn + tape + optim) from 4 Python threads at once: no abort, right answers."""
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue", NUMBA_NUM_THREADS="2")
    r = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, (r.returncode, r.stdout[-2000:], r.stderr[-4000:])
    assert r.stdout.strip().endswith("ok")


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs sched_setaffinity (Linux)")
def test_a_part_moves_off_a_cpu_another_part_runs_on_and_pins_nothing():
    """A woken pool thread queued on the launching thread's CPU moves itself to a free CPU of the
    process's mask, and the mask is left as it was (no pinning)."""
    import threading

    from numlin.kernels.cpu import _threads

    if _threads._getcpu is None:
        pytest.skip("no sched_getcpu in this C library")
    mask = os.sched_getaffinity(0)
    seen = {}

    def body():
        here = _threads._getcpu()
        taken = {here}
        _threads._spread(taken)
        seen.update(before=here, after=_threads._getcpu(), taken=set(taken), mask=os.sched_getaffinity(0))

    th = threading.Thread(target=body)
    th.start()
    th.join()
    assert seen["mask"] == mask
    if len(mask) > 1:
        assert seen["after"] != seen["before"]
        assert seen["taken"] == {seen["before"], seen["after"]}
    else:
        assert seen["taken"] == {seen["before"]}


def _counting_kernel():
    from numba import njit

    @njit(nogil=True)
    def count(part, nparts, hits):
        hits[part] += 1

    return count


def test_every_part_runs_exactly_once_over_many_launches_of_varying_width():
    """A pool wider than some launches: the idle workers must neither run a part twice nor run one
    of another launch (tasks carry their launch's generation)."""
    from numlin.kernels.cpu import _threads

    count = _counting_kernel()
    rng = np.random.default_rng(0)
    hits = np.zeros(4, np.int64)
    want = np.zeros(4, np.int64)
    _threads.launch(count, 4, np.zeros(4, np.int64))  # a pool of three workers
    for parts in rng.integers(2, 5, 300):
        _threads.launch(count, int(parts), hits)
        want[:parts] += 1
    np.testing.assert_array_equal(hits, want)


def test_launches_from_several_python_threads_at_once_are_all_complete():
    import threading

    from numlin.kernels.cpu import _threads

    count = _counting_kernel()
    outs = [np.zeros(3, np.int64) for _ in range(4)]

    def work(h):
        for _ in range(200):
            _threads.launch(count, 3, h)

    ths = [threading.Thread(target=work, args=(h,)) for h in outs]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    for h in outs:  # a launch that found the pool busy ran its parts itself: still every part once
        np.testing.assert_array_equal(h, [200, 200, 200])


def test_a_failing_part_on_the_caller_waits_for_the_others_and_the_pool_goes_on():
    from numba import njit

    from numlin.kernels.cpu._threads import launch

    @njit(nogil=True)
    def fill(part, nparts, out, fail_part):
        out[part] = part + 1
        if part == fail_part:
            raise ValueError("part failed")

    out = np.zeros(3)
    with pytest.raises(ValueError, match="part failed"):
        launch(fill, 3, out, 0)
    assert out.tolist() == [1, 2, 3]  # the workers' parts finished before the error came back
    out[:] = 0
    launch(fill, 3, out, -1)
    assert out.tolist() == [1, 2, 3]
