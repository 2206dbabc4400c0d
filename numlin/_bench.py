"""Benchmarks behind ``python -m numlin bench``: numlin against its anchor, paired, median ratio.

Method (benchmarks/README.md): same process, same thread count (numba's threads for numlin, the
BLAS pool limited to the same number through threadpoolctl), each round times a block of the
anchor and a block of numlin after one warm-up call each, in alternating order, with a pause
before every block: OpenBLAS's idle workers spin for a while after each call and would steal a
core from whatever runs next on a 2-core machine. The reported ratio is the median over rounds
of ``anchor time / numlin time`` (> 1: numlin is faster).
"""
from __future__ import annotations

import contextlib
import json
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

__all__ = ["paired", "Row", "gemm_rows", "conv_rows", "rsvd_rows", "autodiff_rows", "resnet8_rows", "torch_resnet8", "op_overhead_us", "preload_anchors", "run"]


@dataclass
class Row:
    table: str
    case: str
    dtype: str
    threads: int
    flops: float
    numlin_s: float
    anchor_s: float
    ratio: float
    anchor: str
    note: str = ""

    def cells(self) -> list[str]:
        gf = lambda t: f"{self.flops / t / 1e9:8.1f}" if self.flops else "       -"  # noqa: E731
        return [self.case, self.dtype, str(self.threads), f"{self.numlin_s * 1e3:9.3f}", f"{self.anchor_s * 1e3:9.3f}",
                gf(self.numlin_s), gf(self.anchor_s), f"{self.ratio:5.2f}", self.note]


def _block(fn: Callable[[], object], reps: int, pause: float) -> float:
    time.sleep(pause)
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def paired(numlin_fn: Callable[[], object], anchor_fn: Callable[[], object], *, rounds: int = 5, reps: int = 3,
           pause: float = 0.25) -> tuple[float, float, float]:
    """Median ``(numlin seconds, anchor seconds, anchor/numlin ratio)`` over paired rounds."""
    t_n, t_a, ratios = [], [], []
    for r in range(rounds):
        order = (numlin_fn, anchor_fn) if r % 2 else (anchor_fn, numlin_fn)
        times = {id(f): _block(f, reps, pause) for f in order}
        t_n.append(times[id(numlin_fn)])
        t_a.append(times[id(anchor_fn)])
        ratios.append(t_a[-1] / t_n[-1])
    return statistics.median(t_n), statistics.median(t_a), statistics.median(ratios)


def preload_anchors() -> None:
    """Import PyTorch before numlin starts Numba's OpenMP threading layer.

    Numba's ``omp`` layer loads the system ``libgomp``; a PyTorch imported afterwards reuses it
    instead of its own, and its 2-thread CNN step then took 8 ms instead of 2.2 ms here (its
    convolutions too). Imported first, PyTorch keeps its runtime and numlin loses nothing."""
    try:
        import torch  # noqa: F401
    except ImportError:
        pass


@contextlib.contextmanager
def blas_threads(n: int):
    """Limit numpy's BLAS to ``n`` threads (threadpoolctl), if threadpoolctl is installed."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - bench extra not installed
        yield False
        return
    with threadpool_limits(n, user_api="blas"):
        yield True


def gemm_rows(quick: bool, threads: int) -> list[Row]:
    """Square GEMMs (n = 512, 1024, 2048; 512 and 1024 with --quick), 10 000 batched 8x8, the rsvd
    sketch shape and 2048-long matrix x vector products on either side, vs numpy."""
    import numlin as nl

    rng = np.random.default_rng(0)
    rounds, reps = (3, 2) if quick else (7, 3)
    rows = []
    sizes = (512, 1024) if quick else (512, 1024, 2048)
    for dtype in (np.float32, np.float64):
        for n in sizes:
            a = rng.standard_normal((n, n)).astype(dtype)
            b = rng.standard_normal((n, n)).astype(dtype)
            c = np.empty((n, n), dtype)
            tn, ta, r = paired(lambda: nl.matmul(a, b, out=c), lambda: np.matmul(a, b, out=c), rounds=rounds, reps=reps)
            rows.append(Row("gemm", f"{n}x{n} @ {n}x{n}", np.dtype(dtype).name, threads, 2.0 * n**3, tn, ta, r,
                            "numpy.matmul (OpenBLAS)"))
        bsz = 10_000
        a = rng.standard_normal((bsz, 8, 8)).astype(dtype)
        b = rng.standard_normal((bsz, 8, 8)).astype(dtype)
        c = np.empty((bsz, 8, 8), dtype)
        tn, ta, r = paired(lambda: nl.matmul(a, b, out=c), lambda: np.matmul(a, b, out=c), rounds=rounds,
                           reps=reps * 5, pause=0.05)
        rows.append(Row("gemm", f"{bsz} x (8x8 @ 8x8)", np.dtype(dtype).name, threads, 2.0 * bsz * 512, tn, ta, r,
                        "numpy.matmul"))
        m, k, n = 20_000, 1_000, 30
        a = rng.standard_normal((m, k)).astype(dtype)
        b = rng.standard_normal((k, n)).astype(dtype)
        c = np.empty((m, n), dtype)
        tn, ta, r = paired(lambda: nl.matmul(a, b, out=c), lambda: np.matmul(a, b, out=c), rounds=rounds, reps=reps)
        rows.append(Row("gemm", f"{m}x{k} @ {k}x{n}", np.dtype(dtype).name, threads, 2.0 * m * n * k, tn, ta, r,
                        "numpy.matmul (OpenBLAS)"))
        n = 2048  # matrix x vector, both sides (memory-bound: GFLOP/s here is 2 x the elements of A read)
        a = rng.standard_normal((n, n)).astype(dtype)
        x = rng.standard_normal(n).astype(dtype)
        y = np.empty(n, dtype)
        for name, fn, an in ((f"{n}x{n} @ {n} (matvec)", lambda: nl.matmul(a, x, out=y), lambda: np.matmul(a, x, out=y)),
                             (f"{n} @ {n}x{n} (vecmat)", lambda: nl.matmul(x, a, out=y), lambda: np.matmul(x, a, out=y))):
            tn, ta, r = paired(fn, an, rounds=rounds, reps=reps * 10, pause=0.05)
            rows.append(Row("gemm", name, np.dtype(dtype).name, threads, 2.0 * n * n, tn, ta, r, "numpy.matmul"))
    return rows


def conv_rows(quick: bool, threads: int) -> list[Row]:
    """N = 8, 3x3, padding 1, float32 NCHW layers vs PyTorch CPU (oneDNN): forward, and forward +
    backward (dx, dw, db); the ResNet-style dense layers, then MobileNet-style depthwise ones
    (``groups == C``, rows "dw ...")."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:  # pragma: no cover - torch is a test/bench extra
        print("conv table skipped: PyTorch is not installed (pip install torch==2.13.0)")
        return []
    import numlin as nl

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    rounds, reps = (3, 2) if quick else (5, 3)
    rows = []
    # (H = W, C, K, groups, stride)
    dense = ((56, 64, 64, 1, 1), (14, 256, 256, 1, 1)) if quick else (
        (56, 64, 64, 1, 1), (28, 128, 128, 1, 1), (14, 256, 256, 1, 1))
    depthwise = ((56, 128, 128, 128, 2), (14, 512, 512, 512, 1)) if quick else (
        (112, 32, 32, 32, 1), (56, 128, 128, 128, 2), (28, 256, 256, 256, 1), (14, 512, 512, 512, 1),
        (7, 1024, 1024, 1024, 1))
    for hw, c, k, groups, stride in dense + depthwise:
        kw = dict(padding=1, stride=stride, groups=groups)
        name = (f"dw {hw}x{hw} {c}" + (f" s{stride}" if stride > 1 else "")) if groups > 1 else f"{hw}x{hw} {c}->{k}"
        x = rng.standard_normal((8, c, hw, hw)).astype(np.float32)
        w = (rng.standard_normal((k, c // groups, 3, 3)) * 0.05).astype(np.float32)
        b = rng.standard_normal(k).astype(np.float32)
        dy = rng.standard_normal(nl.conv2d(x, w, b, **kw).shape).astype(np.float32)
        tx, tw, tb, tdy = (torch.from_numpy(a) for a in (x, w, b, dy))
        flops = 2.0 * dy.size * (c // groups) * 9
        tn, ta, r = paired(lambda: nl.conv2d(x, w, b, **kw), lambda: F.conv2d(tx, tw, tb, **kw),
                           rounds=rounds, reps=reps, pause=0.05)
        rows.append(Row("conv", f"{name} fwd", "float32", threads, flops, tn, ta, r, "PyTorch CPU (oneDNN)"))
        txg, twg, tbg = (t.clone().requires_grad_() for t in (tx, tw, tb))

        def torch_fb():
            y = F.conv2d(txg, twg, tbg, **kw)
            torch.autograd.grad(y, (txg, twg, tbg), tdy)

        def numlin_fb():
            nl.conv2d(x, w, b, **kw)
            nl.conv2d_backward(dy, x, w, **kw)

        tn, ta, r = paired(numlin_fb, torch_fb, rounds=rounds, reps=reps, pause=0.05)
        rows.append(Row("conv", f"{name} fwd+bwd", "float32", threads, 3 * flops, tn, ta, r,
                        "PyTorch CPU (oneDNN)"))
    return rows


def rsvd_rows(quick: bool, threads: int) -> list[Row]:
    """k = 20 randomized SVD of make_low_rank_matrix (effective rank 50, tail 0.3) vs
    scikit-learn's randomized_svd (defaults), with err/σ_{k+1} (spectral) for both; and the
    seed talk's rank-15 case against the full np.linalg.svd."""
    try:
        from sklearn.datasets import make_low_rank_matrix
        from sklearn.utils.extmath import randomized_svd
    except ImportError:  # pragma: no cover
        print("rsvd table skipped: scikit-learn is not installed")
        return []
    import numlin as nl

    rounds, reps = (3, 1) if quick else (5, 2)
    rows = []
    shapes = ((2000, 2000),) if quick else ((2000, 2000), (20000, 1000))

    def err(A, U, S, Vt, sk1):
        return np.linalg.norm(A - (U * S) @ Vt, 2) / sk1

    for m, n in shapes:
        A64 = make_low_rank_matrix(m, n, effective_rank=50, tail_strength=0.3, random_state=0)
        s = np.linalg.svd(A64, compute_uv=False)
        for dtype in (np.float64, np.float32):
            A = A64.astype(dtype)
            k = 20
            tn, ta, r = paired(lambda: nl.linalg.rsvd(A, k, random_state=0),
                               lambda: randomized_svd(A, k, random_state=0), rounds=rounds, reps=reps, pause=0.1)
            e_n = err(A64, *nl.linalg.rsvd(A, k, random_state=0), s[k])
            e_a = err(A64, *randomized_svd(A, k, random_state=0), s[k])
            rows.append(Row("rsvd", f"{m}x{n} k={k}", np.dtype(dtype).name, threads, 0.0, tn, ta, r,
                            "scikit-learn randomized_svd", f"err/s_k+1 {e_n:.4f} vs {e_a:.4f}"))
    # the seed talk's rank-15 approximation, against the full SVD
    A = make_low_rank_matrix(2000, 1000, effective_rank=50, tail_strength=0.3, random_state=1)
    s = np.linalg.svd(A, compute_uv=False)
    tn, ta, r = paired(lambda: nl.linalg.rsvd(A, 15, random_state=0),
                       lambda: np.linalg.svd(A, full_matrices=False), rounds=3, reps=1, pause=0.1)
    e_n = err(A, *nl.linalg.rsvd(A, 15, random_state=0), s[15])
    rows.append(Row("rsvd", "2000x1000 k=15 (seed)", "float64", threads, 0.0, tn, ta, r, "np.linalg.svd (full)",
                    f"err/s_k+1 {e_n:.4f} vs 1 (exact)"))
    return rows


def op_overhead_us(n: int = 400, repeats: int = 7) -> tuple[float, float]:
    """Python overhead of one autodiff op: microseconds per ``nl.add`` of two 1-element tensors,
    (outside a tape, inside a recording tape with the operand watched), the kernel itself being
    a few nanoseconds; median over ``repeats`` runs of ``n`` ops (a fresh tape each)."""
    import numlin as nl

    a, b = nl.constant(np.ones(1, np.float32)), nl.constant(np.ones(1, np.float32))
    nl.add(a, b)
    bare, taped = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            nl.add(a, b)
        bare.append((time.perf_counter() - t0) / n)
        with nl.GradientTape() as tape:
            tape.watch(a)
            t0 = time.perf_counter()
            for _ in range(n):
                nl.add(a, b)
            taped.append((time.perf_counter() - t0) / n)
    return statistics.median(bare) * 1e6, statistics.median(taped) * 1e6


def autodiff_rows(quick: bool, threads: int) -> list[Row]:
    """One training step (forward, cross-entropy, gradients, Adam) of the demo's CNN on a batch of
    64 digits-sized images, float32, vs the same model in PyTorch CPU; at numba's thread count and
    at 1 thread. The note gives the ops recorded per step and numlin's Python overhead per op."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        print("autodiff table skipped: PyTorch is not installed (pip install torch==2.13.0)")
        return []
    import numlin as nl
    from numlin.demo import build_model, train_step

    rng = np.random.default_rng(0)
    x = rng.random((64, 1, 8, 8), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    model = build_model()
    opt = nl.optim.Adam(1e-3)
    tm = torch.nn.Sequential(
        torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(256, 10))
    topt = torch.optim.Adam(tm.parameters(), 1e-3)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def torch_step():
        topt.zero_grad()
        loss = torch.nn.functional.cross_entropy(tm(tx), ty)
        loss.backward()
        topt.step()

    xt = nl.Tensor(x)
    with nl.GradientTape() as tape:  # ops recorded per step
        nl.nn.cross_entropy(model(xt), y)
    n_ops = len(tape._nodes)
    bare, taped = op_overhead_us()
    flops = 3 * 2.0 * 64 * (32 * 9 * 64 + 64 * 32 * 9 * 16 + 256 * 10)
    rounds, reps = (3, 10) if quick else (5, 20)
    rows = _step_rows("CNN train step, batch 64", f"{n_ops} ops fwd; per-op overhead {bare:.1f} us ({taped:.1f} us taped)",
                      flops, lambda: train_step(model, opt, xt, y), torch_step, threads, rounds, reps)
    return rows + resnet8_rows(quick, threads)


def _step_rows(case: str, note: str, flops: float, numlin_step, torch_step, threads: int, rounds: int,
               reps: int) -> list[Row]:
    """Paired rows of a training step against PyTorch at numba's thread count and at 1 thread."""
    import numba
    import torch

    rows = []
    for thr in sorted({threads, 1}, reverse=True):
        numba.set_num_threads(thr)
        torch.set_num_threads(thr)
        try:
            tn, ta, r = paired(numlin_step, torch_step, rounds=rounds, reps=reps, pause=0.05)
        finally:
            numba.set_num_threads(threads)
            torch.set_num_threads(threads)
        rows.append(Row("autodiff", case, "float32", thr, flops, tn, ta, r, "PyTorch CPU", note))
    return rows


def torch_resnet8(num_classes: int = 10):
    """PyTorch's twin of :func:`numlin.demo.build_resnet8` (same layers, same order)."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.shortcut = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                             if stride != 1 or cin != cout else None)

        def forward(self, x):
            h = torch.relu(self.bn1(self.conv1(x)))
            h = self.bn2(self.conv2(h))
            return torch.relu(h + (x if self.shortcut is None else self.shortcut(x)))

    return nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), Block(16, 16, 1),
                         Block(16, 32, 2), Block(32, 64, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(64, num_classes))


def resnet8_rows(quick: bool, threads: int) -> list[Row]:
    """One training step (forward, cross-entropy, gradients, Adam) of ResNet-8 on 64 images of
    32x32x3, float32, train mode, vs the same model in PyTorch CPU; at numba's thread count and
    at 1 thread."""
    import torch

    import numlin as nl
    from numlin.demo import build_resnet8, train_step

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    model = build_resnet8()
    opt = nl.optim.Adam(1e-3)
    tm = torch_resnet8()
    topt = torch.optim.Adam(tm.parameters(), 1e-3)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    xt = nl.Tensor(x)

    def torch_step():
        topt.zero_grad()
        torch.nn.functional.cross_entropy(tm(tx), ty).backward()
        topt.step()

    # forward FLOPs of the convolutions and the head (output pixels x filter size x 2); a step is ~3x
    convs = [(32, 3, 16, 3), (32, 16, 16, 3), (32, 16, 16, 3), (16, 16, 32, 3), (16, 32, 32, 3), (16, 16, 32, 1),
             (8, 32, 64, 3), (8, 64, 64, 3), (8, 32, 64, 1)]
    flops = 3 * 2.0 * 64 * (sum(p * p * cin * cout * k * k for p, cin, cout, k in convs) + 64 * 10)
    rounds, reps = (3, 5) if quick else (5, 10)
    return _step_rows("ResNet-8 train step, 64x3x32x32", "BatchNorm2d, residual blocks, Adam", flops,
                      lambda: train_step(model, opt, xt, y), torch_step, threads, rounds, reps)


TABLES = {"gemm": gemm_rows, "conv": conv_rows, "rsvd": rsvd_rows, "autodiff": autodiff_rows}


def run(tables: list[str] | None = None, quick: bool = False, json_path: str | None = None, out=print) -> list[Row]:
    """Run the benchmark tables, print them, optionally write JSON; returns the rows."""
    import numba

    preload_anchors()  # normally done by the CLI before anything starts numba's threads
    threads = numba.get_num_threads()
    rows: list[Row] = []
    with blas_threads(threads) as limited:
        if not limited:
            out("note: threadpoolctl is not installed; numpy's BLAS thread count is not pinned")
        for name in tables or list(TABLES):
            t0 = time.perf_counter()
            new = TABLES[name](quick, threads)
            rows += new
            out(_format(name, new, new[0].anchor if new else ""))
            out(f"({name}: {time.perf_counter() - t0:.0f} s)\n")
    if json_path:
        meta = {"machine": platform.processor() or platform.machine(), "threads": threads, "quick": quick,
                "numpy": np.__version__, "numba": numba.__version__}
        with open(json_path, "w") as fh:
            json.dump({"meta": meta, "rows": [asdict(r) for r in rows]}, fh, indent=1)
    return rows


def _format(name: str, rows: list[Row], anchor: str) -> str:
    head = ["case", "dtype", "thr", "numlin ms", "anchor ms", "nl GF/s", "anc GF/s", "ratio", "note"]
    cells = [head] + [r.cells() for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    lines = [f"== {name}: numlin vs {anchor}; ratio = anchor time / numlin time (> 1: numlin faster)"]
    for c in cells:
        lines.append("  ".join(x.rjust(w) if i else x.ljust(w) for i, (x, w) in enumerate(zip(c, widths))))
    return "\n".join(lines)
