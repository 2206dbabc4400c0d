"""Out-of-core randomized SVD: the top-k SVD of a lazily generated matrix larger than memory.

A (m x n) is generated from a seed, block by block, every time a pass reads it and never held
whole: ``A_i = X_i diag(s) W + noise * (R_i - 1/2)`` with ``X_i`` Gaussian (rows x r),
``s_j = 0.9^j`` (r = 30 components), ``W`` a fixed orthonormal r x n matrix and ``R_i`` uniform
noise (uniform: numpy draws it ~10x faster than Gaussians, so generation does not swamp the
passes). Reports the size, the wall time of ``nl.linalg.rsvd`` (U left lazy, then U's blocks
computed and dropped), the peak RSS of the process (threaded scheduler: all the work is in this
process; sampled every 50 ms and ru_maxrss) and the recovered singular values against the
planted ones.

    python benchmarks/dask_out_of_core.py --rows 5000000 --cols 1000 --chunk-rows 20000   # 40 GB
"""
from __future__ import annotations

import argparse
import resource
import threading
import time

import numpy as np


def _block(block_id, rows_per, n, r, seed, noise, W, s):
    i = block_id[0]
    rng = np.random.default_rng([seed, i])
    X = rng.standard_normal((rows_per, r))
    out = np.empty((rows_per, n))
    rng.random(out=out)
    out -= 0.5
    out *= noise
    out += (X * s) @ W
    return out


def lazy_matrix(m: int, n: int, rows: int, *, r: int = 30, seed: int = 0, noise: float = 1.0):
    """The lazily generated A (a dask array chunked by rows) and the planted spectrum."""
    import dask.array as da

    if m % rows:
        raise ValueError(f"--rows {m} must be a multiple of --chunk-rows {rows}")
    rng = np.random.default_rng(seed)
    W = np.linalg.qr(rng.standard_normal((n, r)))[0].T
    # scale so that the planted singular values (||X_j|| ~ sqrt(m)) stand well above the noise
    # (uniform noise of variance noise²/12: its top singular value ~ noise (sqrt(m) + sqrt(n)) / sqrt(12))
    s = 3.0 * noise * 0.9 ** np.arange(r)
    A = da.map_blocks(_block, dtype=np.float64, chunks=((rows,) * (m // rows), (n,)), rows_per=rows, n=n, r=r,
                      seed=seed, noise=noise, W=W, s=s, meta=np.empty((0, 0)))
    return A, s * np.sqrt(m)


class PeakRSS:
    """Peak resident set size of this process: a 50 ms sampler (psutil) and ru_maxrss."""

    def __enter__(self):
        import psutil

        self.proc, self.peak, self.stop = psutil.Process(), 0, threading.Event()

        def run():
            while not self.stop.is_set():
                self.peak = max(self.peak, self.proc.memory_info().rss)
                time.sleep(0.05)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        self.start_rss = self.proc.memory_info().rss
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--cols", type=int, default=1_000)
    ap.add_argument("--chunk-rows", type=int, default=20_000)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--n-iter", default="auto")
    args = ap.parse_args()

    import dask
    import numlin as nl

    m, n, rows, k = args.rows, args.cols, args.chunk_rows, args.k
    n_iter = args.n_iter if args.n_iter == "auto" else int(args.n_iter)
    A, planted = lazy_matrix(m, n, rows)
    # warm up the kernels on a small array (JIT out of the timing)
    nl.linalg.rsvd(lazy_matrix(4 * rows, n, rows)[0], k, n_iter=1, random_state=0)
    mem = __import__("psutil").virtual_memory().total
    print(f"A: {m} x {n} float64 = {A.nbytes / 1e9:.1f} GB (machine memory {mem / 2**30:.1f} GiB), chunks "
          f"{rows} x {n} = {rows * n * 8 / 2**20:.0f} MiB, k = {k}, n_iter = {n_iter}, scheduler: "
          f"{dask.config.get('scheduler', 'threads')} ({__import__('os').cpu_count()} threads)", flush=True)
    with PeakRSS() as pk:
        t0 = time.perf_counter()
        U, S, Vt = nl.linalg.rsvd(A, k, n_iter=n_iter, random_state=0)
        t1 = time.perf_counter()
        norms = (U ** 2).sum(axis=0).compute()  # materialise U's blocks (and drop them)
        t2 = time.perf_counter()
    print(f"rsvd: {t1 - t0:.1f} s (S, Vt and lazy U); computing U's blocks: {t2 - t1:.1f} s; total {t2 - t0:.1f} s")
    print(f"peak RSS: {pk.peak / 2**30:.2f} GiB sampled, {pk.maxrss / 2**30:.2f} GiB ru_maxrss "
          f"(start {pk.start_rss / 2**30:.2f} GiB); A is {A.nbytes / max(pk.maxrss, 1):.0f}x that")
    print(f"U columns' norms in [{norms.min():.6f}, {norms.max():.6f}]")
    rel = np.abs(S[:10] - planted[:10]) / planted[:10]
    print(f"S[:5] = {np.array2string(S[:5], precision=1)}; planted {np.array2string(planted[:5], precision=1)}; "
          f"max rel. diff over the top 10: {rel.max():.2e}")


if __name__ == "__main__":
    main()
