"""GPU benchmark: check numlin's CUDA kernels, then time them against the vendor library.

One call on the GPU machine (well under 5 minutes):

    python3 benchmarks/gpu_bench.py [--out DIR] [--quick] [--only SECTION ...]

1. correctness at real sizes (float32/float64, layouts, batched, alpha/beta) against float64;
2. kernel resources (registers, local memory, shared memory) per specialisation;
3. GEMM: numlin (``nl.matmul`` on numba device arrays, ``out=`` given) against cuBLAS through
   CuPy (TF32 off: CUPY_TF32 is unset), CUDA events after warm-up, median of repeated calls,
   same card, same process; tile-shape variants at n = 4096.

Prints a short table last; writes ``gpu_bench.json`` to ``--out``.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.pop("CUPY_TF32", None)

from numba import cuda  # noqa: E402

import numlin as nl  # noqa: E402
from numlin._config import override  # noqa: E402
from numlin.kernels.cuda import gemm as cg  # noqa: E402
from numlin.kernels.cuda import strided  # noqa: E402


def _events_ms(fn, reps: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    cuda.synchronize()
    times = []
    for _ in range(reps):
        s, e = cuda.event(), cuda.event()
        s.record()
        fn()
        e.record()
        e.synchronize()
        times.append(cuda.event_elapsed_time(s, e))
    return statistics.median(times)


def _rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm((got.astype(np.float64) - ref).ravel()) / max(np.linalg.norm(ref.ravel()), 1e-300))


def check(rng, log) -> list[dict]:
    """Correctness at real sizes; every output poisoned first, fresh random inputs each case."""
    rows = []
    cases = [
        ("square", (1024, 1024, 1024), "C", "C"), ("edges", (1001, 777, 515), "C", "C"),
        ("A^T", (640, 480, 333), "F", "C"), ("B^T", (640, 480, 333), "C", "F"), ("both^T", (257, 129, 1000), "F", "F"),
        ("tall-skinny", (20000, 30, 1000), "C", "C"), ("k=1", (300, 200, 1), "C", "C"),
    ]
    for dt in (np.float32, np.float64):
        tol = 1e-5 if dt == np.float32 else 1e-13
        for name, (m, n, k), la, lb in cases:
            a = rng.standard_normal((m, k)).astype(dt)
            b = rng.standard_normal((k, n)).astype(dt)
            da = cuda.to_device(np.asfortranarray(a) if la == "F" else a)
            db = cuda.to_device(np.asfortranarray(b) if lb == "F" else b)
            out = cuda.to_device(np.full((m, n), np.nan, dt))
            nl.matmul(da, db, out=out)
            err = _rel_err(out.copy_to_host(), a.astype(np.float64) @ b.astype(np.float64))
            rows.append({"case": f"matmul {name} {m}x{n}x{k}", "dtype": np.dtype(dt).name, "rel_err": err, "ok": err < tol})
        # batched + broadcast, gemm with alpha/beta/transposes
        a = rng.standard_normal((16, 200, 96)).astype(dt)
        b = rng.standard_normal((96, 72)).astype(dt)
        got = nl.matmul(cuda.to_device(a), cuda.to_device(b)).copy_to_host()
        err = _rel_err(got, np.matmul(a.astype(np.float64), b.astype(np.float64)))
        rows.append({"case": "matmul batched 16x200x96 @ 96x72", "dtype": np.dtype(dt).name, "rel_err": err, "ok": err < tol})
        a = rng.standard_normal((500, 700)).astype(dt)
        b = rng.standard_normal((600, 500)).astype(dt)
        c0 = rng.standard_normal((700, 600)).astype(dt)
        dc = cuda.to_device(c0)
        nl.gemm(cuda.to_device(a), cuda.to_device(b), dc, alpha=0.5, beta=-1.5, trans_a=True, trans_b=True)
        ref = 0.5 * a.T.astype(np.float64) @ b.T.astype(np.float64) - 1.5 * c0
        err = _rel_err(dc.copy_to_host(), ref)
        rows.append({"case": "gemm a^T b^T alpha/beta", "dtype": np.dtype(dt).name, "rel_err": err, "ok": err < tol})
    for r in rows:
        log(f"  {'ok  ' if r['ok'] else 'FAIL'} {r['dtype']:8s} {r['case']:40s} rel err {r['rel_err']:.2e}")
    return rows


def resources(log) -> dict:
    """Registers, local memory (spills) and shared memory of every compiled GEMM kernel."""
    out = {}
    kernels = list(cg.KERNELS_BY_DTYPE.items()) + [(f"{k[0]} {k[1]}{' gather' if k[2] else ''}", v)
                                                   for k, v in cg._variants.items()]
    for name, fn in kernels:
        regs, local, shared = fn.get_regs_per_thread(), fn.get_local_mem_per_thread(), fn.get_shared_mem_per_block()
        for sig in regs:
            row = {"registers": regs[sig], "local_bytes": local[sig], "shared_bytes": shared[sig]}
            out[f"{name} {sig}"] = row
            layout = "/".join(getattr(t, "layout", "") for t in sig if hasattr(t, "layout"))
            log(f"  {name:48s} [{layout}] registers {row['registers']}, local (spill) bytes {row['local_bytes']}, "
                f"shared bytes {row['shared_bytes']}")
    return out


def bench_gemm(rng, sizes, reps, log, variants) -> list[dict]:
    import cupy

    rows = []
    for dt in (np.float32, np.float64):
        for n in sizes:
            a = cupy.asarray(rng.standard_normal((n, n)).astype(dt))
            b = cupy.asarray(rng.standard_normal((n, n)).astype(dt))
            c = cupy.empty((n, n), dt)
            da, db, dc = cuda.as_cuda_array(a), cuda.as_cuda_array(b), cuda.as_cuda_array(c)
            flops = 2.0 * n**3
            t_cublas = _events_ms(lambda: cupy.matmul(a, b, out=c), reps)
            ref = c.astype(cupy.float64)
            configs = [("default", None)] + ([(str(v), v) for v in variants.get(np.dtype(dt).name, [])] if n == sizes[0] else [])
            for label, tile in configs:
                if tile is None:
                    fn = lambda: nl.matmul(da, db, out=dc)  # noqa: E731
                else:
                    A, B, C = (strided(x, writable=w) for x, w in ((da, False), (db, False), (dc, True)))
                    fn = lambda: cg.matmul_into(A, B, C, 1.0, 0.0, tile=tile)  # noqa: E731
                try:
                    c.fill(cupy.nan)
                    t_nl = _events_ms(fn, reps)
                    err = float(cupy.linalg.norm(c.astype(cupy.float64) - ref) / cupy.linalg.norm(ref))
                except Exception as exc:
                    log(f"  {label}: failed {type(exc).__name__}: {exc}")
                    continue
                row = {"n": n, "dtype": np.dtype(dt).name, "tiles": label, "numlin_ms": t_nl, "cublas_ms": t_cublas,
                       "numlin_tflops": flops / t_nl / 1e9, "cublas_tflops": flops / t_cublas / 1e9,
                       "ratio": t_cublas / t_nl, "rel_diff_vs_cublas": err}
                rows.append(row)
                log(f"  {row['dtype']} n={n} {label}: numlin {row['numlin_tflops']:.1f} TFLOP/s, cuBLAS "
                    f"{row['cublas_tflops']:.1f}, ratio {row['ratio']:.3f}, diff {err:.1e}")
            del a, b, c, ref
            cupy.get_default_memory_pool().free_all_blocks()
    return rows


def bench_small(rng, reps, log) -> list[dict]:
    import cupy

    rows = []
    for dt in (np.float32, np.float64):
        a = cupy.asarray(rng.standard_normal((10_000, 8, 8)).astype(dt))
        b = cupy.asarray(rng.standard_normal((10_000, 8, 8)).astype(dt))
        c = cupy.empty_like(a)
        da, db, dc = cuda.as_cuda_array(a), cuda.as_cuda_array(b), cuda.as_cuda_array(c)
        t_nl = _events_ms(lambda: nl.matmul(da, db, out=dc), reps)
        t_cp = _events_ms(lambda: cupy.matmul(a, b, out=c), reps)
        rows.append({"case": "10000 x 8x8", "dtype": np.dtype(dt).name, "numlin_ms": t_nl, "cupy_ms": t_cp, "ratio": t_cp / t_nl})
        log(f"  {np.dtype(dt).name} 10000 x (8x8 @ 8x8): numlin {t_nl:.3f} ms, cupy {t_cp:.3f} ms, ratio {t_cp / t_nl:.2f}")
    return rows


def bench_conv(rng, reps, log) -> list[dict]:
    """N = 32, 3x3, padding 1, float32 NCHW: numlin vs cuDNN (PyTorch, TF32 off), forward and fwd+bwd."""
    import torch
    import torch.nn.functional as F

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    rows = []
    for hw, c, k in ((56, 64, 64), (28, 128, 128), (14, 256, 256)):
        x = torch.randn(32, c, hw, hw, device="cuda")
        w = torch.randn(k, c, 3, 3, device="cuda") * 0.05
        b = torch.randn(k, device="cuda")
        dy = torch.randn(32, k, hw, hw, device="cuda")
        dx_, dw_, db_ = (cuda.as_cuda_array(t) for t in (x, w, b))
        ddy = cuda.as_cuda_array(dy)
        flops = 2.0 * 32 * k * hw * hw * c * 9
        y_nl = nl.conv2d(dx_, dw_, db_, padding=1)
        ref = F.conv2d(x.double(), w.double(), b.double(), padding=1)
        err = float((torch.as_tensor(y_nl, device="cuda").double() - ref).norm() / ref.norm())
        t_nl = _events_ms(lambda: nl.conv2d(dx_, dw_, db_, padding=1), reps)
        t_cd = _events_ms(lambda: F.conv2d(x, w, b, padding=1), reps)
        xg, wg, bg = x.clone().requires_grad_(), w.clone().requires_grad_(), b.clone().requires_grad_()

        def torch_fb():
            y = F.conv2d(xg, wg, bg, padding=1)
            torch.autograd.grad(y, (xg, wg, bg), dy)

        def nl_fb():
            nl.conv2d(dx_, dw_, db_, padding=1)
            nl.conv2d_backward(ddy, dx_, dw_, padding=1)

        gx, gw, gb = nl.conv2d_backward(ddy, dx_, dw_, padding=1)
        y = F.conv2d(xg, wg, bg, padding=1)
        rx, rw, rb = torch.autograd.grad(y, (xg, wg, bg), dy)
        gerr = max(float((torch.as_tensor(gv, device="cuda") - rv).norm() / rv.norm())
                   for gv, rv in ((gx, rx), (gw, rw), (gb, rb)))
        t_nl_fb = _events_ms(nl_fb, reps)
        t_cd_fb = _events_ms(torch_fb, reps)
        # where the time goes: the implicit GEMM with each tile shape, the old im2col + GEMM
        # forward, and the backward's two halves (dx by the implicit GEMM on dy; dW by the
        # split-K implicit GEMM, and by im2col + GEMM as before)
        from numlin.nn import conv as cv

        parts = {}
        gather = cg.gather_into
        for label, tile in (("short", cg.tiles(np.float32, 64)), ("long", cg.tiles(np.float32))):
            try:
                cg.gather_into = functools.partial(gather, tile=tile)
                parts[f"fwd_implicit_{label}_ms"] = _events_ms(lambda: nl.conv2d(dx_, dw_, db_, padding=1), reps)
            except Exception as exc:
                log(f"  implicit {label} tiles failed: {type(exc).__name__}: {exc}")
            finally:
                cg.gather_into = gather
        with override(conv_fused=False):  # the im2col + GEMM path, as before the implicit GEMMs
            parts["fwd_explicit_ms"] = _events_ms(lambda: nl.conv2d(dx_, dw_, db_, padding=1), reps)
            y_ex = nl.conv2d(dx_, dw_, db_, padding=1)
            parts["explicit_rel_err"] = float((torch.as_tensor(y_ex, device="cuda").double() - ref).norm() / ref.norm())
            parts["bwd_dw_explicit_ms"] = _events_ms(
                lambda: cv._conv2d_backward(ddy, dx_, dw_, need_dx=False, padding=1), reps)
            parts["bwd_dx_explicit_ms"] = _events_ms(
                lambda: cv._conv2d_backward(ddy, dx_, dw_, need_dw=False, padding=1), reps)
        parts["bwd_dx_ms"] = _events_ms(lambda: cv._conv2d_backward(ddy, dx_, dw_, need_dw=False, padding=1), reps)
        parts["bwd_dw_ms"] = _events_ms(lambda: cv._conv2d_backward(ddy, dx_, dw_, need_dx=False, padding=1), reps)
        log("  " + f"{hw}x{hw} {c}->{k} parts: " + ", ".join(f"{kk} {v:.3g}" for kk, v in parts.items()))
        row = {"layer": f"{hw}x{hw} {c}->{k}", **parts, "fwd_numlin_ms": t_nl, "fwd_cudnn_ms": t_cd, "fwd_ratio": t_cd / t_nl,
               "fwd_numlin_tflops": flops / t_nl / 1e9, "fwd_cudnn_tflops": flops / t_cd / 1e9,
               "fb_numlin_ms": t_nl_fb, "fb_cudnn_ms": t_cd_fb, "fb_ratio": t_cd_fb / t_nl_fb, "rel_err": err,
               "grad_rel_err": gerr}
        rows.append(row)
        log(f"  {row['layer']}: fwd numlin {t_nl:.3f} ms ({row['fwd_numlin_tflops']:.1f} TF) cuDNN {t_cd:.3f} ms "
            f"({row['fwd_cudnn_tflops']:.1f} TF) ratio {row['fwd_ratio']:.2f}; fwd+bwd {t_nl_fb:.3f} vs {t_cd_fb:.3f} "
            f"ratio {row['fb_ratio']:.2f}; err {err:.1e}/{gerr:.1e}")
    rows += _bench_depthwise(reps, log)
    return rows


def _bench_depthwise(reps, log) -> list[dict]:
    """MobileNet-style depthwise layers (groups == C, 3x3, pad 1, N = 32, float32): the direct
    kernels (``kernels/cuda/conv/depthwise.py``) and, for comparison, the implicit GEMM they replace,
    against cuDNN."""
    import torch
    import torch.nn.functional as F

    rows = []
    for hw, c, st in ((112, 32, 1), (56, 128, 2), (28, 256, 1), (14, 512, 1), (7, 1024, 1)):
        kw = dict(padding=1, stride=st, groups=c)
        x = torch.randn(32, c, hw, hw, device="cuda")
        w = torch.randn(c, 1, 3, 3, device="cuda") * 0.3
        b = torch.randn(c, device="cuda")
        y = F.conv2d(x, w, b, **kw)
        dy = torch.randn_like(y)
        dx_, dw_, db_, ddy = (cuda.as_cuda_array(t) for t in (x, w, b, dy))
        xg, wg, bg = x.clone().requires_grad_(), w.clone().requires_grad_(), b.clone().requires_grad_()
        ref = F.conv2d(x.double(), w.double(), b.double(), **kw)
        rx, rw, rb = torch.autograd.grad(F.conv2d(xg.double(), wg.double(), bg.double(), **kw), (xg, wg, bg), dy.double())
        err = float((torch.as_tensor(nl.conv2d(dx_, dw_, db_, **kw), device="cuda").double() - ref).norm() / ref.norm())
        grads = nl.conv2d_backward(ddy, dx_, dw_, **kw)
        gerr = max(float((torch.as_tensor(gv, device="cuda").double() - rv).norm() / rv.norm())
                   for gv, rv in zip(grads, (rx, rw, rb)))

        def torch_fb():
            torch.autograd.grad(F.conv2d(xg, wg, bg, **kw), (xg, wg, bg), dy)

        def nl_fb():
            nl.conv2d(dx_, dw_, db_, **kw)
            nl.conv2d_backward(ddy, dx_, dw_, **kw)

        row = {"layer": f"dw {hw}x{hw} {c}" + (f" s{st}" if st > 1 else ""), "rel_err": err, "grad_rel_err": gerr,
               "fwd_numlin_ms": _events_ms(lambda: nl.conv2d(dx_, dw_, db_, **kw), reps),
               "fwd_cudnn_ms": _events_ms(lambda: F.conv2d(x, w, b, **kw), reps),
               "fb_numlin_ms": _events_ms(nl_fb, reps), "fb_cudnn_ms": _events_ms(torch_fb, reps)}
        try:
            with override(conv_depthwise=False):  # the implicit GEMM, as before the direct kernels
                row["fwd_implicit_ms"] = _events_ms(lambda: nl.conv2d(dx_, dw_, db_, **kw), reps)
        except Exception as exc:
            log(f"  implicit depthwise failed: {type(exc).__name__}: {exc}")
        flops = 2.0 * y.numel() * 9
        row.update(fwd_ratio=row["fwd_cudnn_ms"] / row["fwd_numlin_ms"], fb_ratio=row["fb_cudnn_ms"] / row["fb_numlin_ms"],
                   fwd_numlin_tflops=flops / row["fwd_numlin_ms"] / 1e9, fwd_cudnn_tflops=flops / row["fwd_cudnn_ms"] / 1e9)
        rows.append(row)
        log(f"  {row['layer']}: fwd numlin {row['fwd_numlin_ms']:.3f} ms (implicit GEMM "
            f"{row.get('fwd_implicit_ms', float('nan')):.3f}) cuDNN {row['fwd_cudnn_ms']:.3f} ratio {row['fwd_ratio']:.2f}; "
            f"fwd+bwd {row['fb_numlin_ms']:.3f} vs {row['fb_cudnn_ms']:.3f} ratio {row['fb_ratio']:.2f}; "
            f"err {err:.1e}/{gerr:.1e}")
    return rows


def bench_rsvd(rng, reps, log) -> list[dict]:
    """Randomized SVD on the device vs torch.svd_lowrank (q = k + 5, niter = 2) on an 8192² float32
    matrix of known spectrum; error ||A - U S Vt||_2 / σ_{k+1} by 30 steps of power iteration."""
    import torch

    rows = []
    n, k = 8192, 20
    g = torch.Generator(device="cuda").manual_seed(0)
    for decay in ("fast", "slow"):
        r = 256
        Uq, _ = torch.linalg.qr(torch.randn(n, r, device="cuda", generator=g))
        Vq, _ = torch.linalg.qr(torch.randn(n, r, device="cuda", generator=g))
        idx = torch.arange(r, device="cuda", dtype=torch.float32)
        s = 0.8 ** idx if decay == "fast" else 1.0 / (1.0 + idx) ** 0.5
        A = ((Uq * s) @ Vq.T).contiguous()
        dA = cuda.as_cuda_array(A)

        def spec_err(U, S, V):  # U (n,k) S (k,) V (n,k), torch tensors
            x = torch.randn(n, 1, device="cuda", generator=g)
            for _ in range(30):
                y = A @ x - U @ (S[:, None] * (V.T @ x))
                x = A.T @ y - V @ (S[:, None] * (U.T @ y))
                x = x / x.norm()
            y = A @ x - U @ (S[:, None] * (V.T @ x))
            return float(y.norm() / s[k])

        t_nl = _events_ms(lambda: nl.linalg.rsvd(dA, k, random_state=0), reps)
        U, S, Vt = nl.linalg.rsvd(dA, k, random_state=0)
        e_nl = spec_err(torch.as_tensor(U, device="cuda"), torch.as_tensor(S, device="cuda"),
                        torch.as_tensor(np.ascontiguousarray(Vt.T), device="cuda"))
        t_t = _events_ms(lambda: torch.svd_lowrank(A, q=k + 5, niter=2), reps)
        Ut, St, Vt_ = torch.svd_lowrank(A, q=k + 5, niter=2)
        e_t = spec_err(Ut[:, :k], St[:k], Vt_[:, :k])
        rows.append({"case": f"{n}x{n} k={k} {decay} decay", "numlin_ms": t_nl, "torch_ms": t_t, "ratio": t_t / t_nl,
                     "numlin_err": e_nl, "torch_err": e_t})
        log(f"  {n}x{n} k={k} {decay}: numlin {t_nl:.2f} ms (err/s_k+1 {e_nl:.4f}), torch.svd_lowrank {t_t:.2f} ms "
            f"({e_t:.4f}), ratio {t_t / t_nl:.2f}")
    return rows


def bench_autodiff(rng, reps, log) -> list[dict]:
    """The demo's CNN on the device: one training step (batch 64, float32) of numlin vs the same
    model in PyTorch CUDA (cuDNN), then the whole demo (12 epochs) with its test accuracy."""
    import torch

    from numlin.demo import build_model, main as demo_main, train_step

    x = rng.random((64, 1, 8, 8), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    model = build_model().to("cuda")
    opt = nl.optim.Adam(1e-3)
    xt = nl.Tensor(x, device="cuda")
    tm = torch.nn.Sequential(
        torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(256, 10)).cuda()
    topt = torch.optim.Adam(tm.parameters(), 1e-3)
    tx, ty = torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda()

    def torch_step():
        topt.zero_grad()
        torch.nn.functional.cross_entropy(tm(tx), ty).backward()
        topt.step()

    t_nl = _events_ms(lambda: train_step(model, opt, xt, y), reps)
    t_t = _events_ms(torch_step, reps)
    log(f"  train step, batch 64: numlin {t_nl:.2f} ms, PyTorch CUDA {t_t:.2f} ms, ratio {t_t / t_nl:.2f}")
    row = {"case": "CNN train step b64", "numlin_ms": t_nl, "torch_ms": t_t, "ratio": t_t / t_nl}
    try:
        t0 = time.time()
        res = demo_main("cuda", 12, out=lambda line: None)
        row.update(demo_test_accuracy=res.test_accuracy, demo_train_s=res.train_seconds)
        log(f"  demo on cuda: test accuracy {res.test_accuracy:.4f}, training {res.train_seconds:.1f} s "
            f"(total {time.time() - t0:.1f} s)")
    except ImportError as exc:  # scikit-learn may be missing from the GPU image
        log(f"  demo on cuda skipped: {exc}")
    return [row]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=".")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", choices=["all", "gemm", "conv", "rsvd", "autodiff"], default=["all"], nargs="+",
                   help="run these sections (after the checks)")
    args = p.parse_args()
    lines: list[str] = []

    def log(s=""):
        print(s, flush=True)
        lines.append(s)

    def want(section: str) -> bool:
        return "all" in args.only or section in args.only

    t0 = time.time()
    dev = cuda.get_current_device()
    name = dev.name.decode() if isinstance(dev.name, bytes) else dev.name
    import cupy
    import numba

    log(f"device {name}, cc {dev.compute_capability}, SMs {dev.MULTIPROCESSOR_COUNT}; numba {numba.__version__}, "
        f"numpy {np.__version__}, cupy {cupy.__version__}")
    rng = np.random.default_rng(7)
    log("== correctness")
    checks = check(rng, log)
    log(f"(t={time.time() - t0:.0f}s)")
    sizes = (4096,) if args.quick else (4096, 8192)
    variants = {"float32": [cg.Tiles(128, 128, 8, 8, 8, 4)],
                "float64": [cg.Tiles(128, 64, 8, 8, 4, 2), cg.Tiles(64, 64, 8, 4, 4, 2)]}
    gemm, conv, small, rs, ad = [], [], [], [], []
    if want("gemm"):
        log("== GEMM vs cuBLAS (CuPy, TF32 off)")
        gemm = bench_gemm(rng, sizes, 5 if args.quick else 10, log, variants)
        log(f"(t={time.time() - t0:.0f}s)")
    if want("conv"):
        log("== conv2d vs cuDNN (PyTorch, TF32 off), N=32, 3x3, pad 1, float32")
        conv = bench_conv(rng, 10, log)
        log(f"(t={time.time() - t0:.0f}s)")
    if want("rsvd"):
        log("== randomized SVD vs torch.svd_lowrank, float32")
        rs = bench_rsvd(rng, 5, log)
        log(f"(t={time.time() - t0:.0f}s)")
    if want("autodiff"):
        log("== autodiff: the demo's CNN vs PyTorch CUDA, float32")
        ad = bench_autodiff(rng, 20, log)
        log(f"(t={time.time() - t0:.0f}s)")
    if "all" in args.only:
        log("== many small matrices")
        small = bench_small(rng, 20, log)
    log("== kernel resources")
    res = resources(log)
    log("")
    log("| n | dtype | tiles | numlin TFLOP/s | cuBLAS TFLOP/s | numlin/cuBLAS |")
    log("|---|---|---|---|---|---|")
    for r in gemm:
        log(f"| {r['n']} | {r['dtype']} | {r['tiles']} | {r['numlin_tflops']:.1f} | {r['cublas_tflops']:.1f} | {r['ratio']:.3f} |")
    log("| layer | fwd numlin/cuDNN | fwd+bwd numlin/cuDNN | numlin fwd TFLOP/s |")
    log("|---|---|---|---|")
    for r in conv:
        log(f"| {r['layer']} | {r['fwd_ratio']:.2f} | {r['fb_ratio']:.2f} | {r['fwd_numlin_tflops']:.1f} |")
    bad = [c for c in checks if not c["ok"]]
    log(f"correctness: {len(checks) - len(bad)}/{len(checks)} ok; total {time.time() - t0:.0f}s")
    with open(os.path.join(args.out, "gpu_bench.json"), "w") as fh:
        json.dump({"device": name, "checks": checks, "gemm": gemm, "conv": conv, "rsvd": rs, "autodiff": ad, "small": small, "resources": res}, fh, indent=1)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
