"""numlin's rsvd on a Dask array against ``dask.array.linalg.svd_compressed``, at equal accuracy.

Same array, same scheduler (Dask's threads, or a ``dask.distributed`` LocalCluster), same k and
oversampling. ``svd_compressed`` does no re-orthonormalisation between power steps and defaults
to ``n_power_iter=0``; it is given the smallest ``n_power_iter`` whose err/σ_{k+1} is at most
numlin's (numlin runs its defaults), then both are timed in paired rounds (alternating order,
median of ``svd_compressed time / numlin time``; > 1: numlin faster). Both results are fully
computed (U, S, Vt). numpy's BLAS is held to one thread in both (what Dask recommends with a
multi-threaded scheduler; numlin's rsvd does it itself).

err/σ_{k+1} = ||A - U S Vt||_2 / σ_{k+1}, the norm from the largest eigenvalue of the residual's
Gram matrix (float64, accumulated over row blocks), σ from the eigenvalues of AᵀA.

    python benchmarks/dask_vs_svd_compressed.py                       # 100000 x 1000, threads
    python benchmarks/dask_vs_svd_compressed.py --scheduler distributed
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def low_rank(m: int, n: int, seed: int = 0) -> np.ndarray:
    """scikit-learn's ``make_low_rank_matrix(m, n, effective_rank=50, tail_strength=0.3)``."""
    from sklearn.datasets import make_low_rank_matrix

    return make_low_rank_matrix(m, n, effective_rank=50, tail_strength=0.3, random_state=seed)


def spectral_error(A: np.ndarray, U, S, Vt, rows: int = 20_000) -> float:
    """||A - U S Vt||_2 from the Gram matrix of the residual, accumulated over row blocks."""
    U = np.asarray(U)
    G = np.zeros((A.shape[1], A.shape[1]))
    for i in range(0, A.shape[0], rows):
        E = A[i:i + rows].astype(np.float64) - (U[i:i + rows].astype(np.float64) * S) @ Vt.astype(np.float64)
        G += E.T @ E
    return float(np.sqrt(max(np.linalg.eigvalsh(G)[-1], 0.0)))


def run_case(A64: np.ndarray, dtype, rows: int, k: int, rounds: int, max_p: int, client=None) -> dict:
    import dask
    import dask.array as da
    from threadpoolctl import threadpool_limits

    import numlin as nl

    m, n = A64.shape
    s = np.sqrt(np.maximum(np.linalg.eigvalsh(A64.T @ A64)[::-1], 0.0))
    A = A64.astype(dtype)
    Ad = da.from_array(A, chunks=(rows, n))
    Ad = client.persist(Ad) if client is not None else Ad.persist()

    def numlin_run():
        U, S, Vt = nl.linalg.rsvd(Ad, k, random_state=0)
        return U.compute(), S, Vt

    def dask_run(p):
        u, sv, v = da.linalg.svd_compressed(Ad, k, n_power_iter=p, seed=0)
        return dask.compute(u, sv, v)

    with threadpool_limits(1, "blas"):
        numlin_run()  # JIT and worker warm-up
        e_nl = spectral_error(A64, *numlin_run()) / s[k]
        errs = {}
        for p in range(max_p + 1):
            errs[p] = spectral_error(A64, *dask_run(p)) / s[k]
            if errs[p] <= e_nl:
                break
        p_eq = min((p for p, e in errs.items() if e <= e_nl), default=None)
        p_use = max_p if p_eq is None else p_eq
        t_nl, t_dk, ratios = [], [], []
        for r in range(rounds):
            order = ("numlin", "dask") if r % 2 else ("dask", "numlin")
            t = {}
            for who in order:
                time.sleep(0.2)
                t0 = time.perf_counter()
                numlin_run() if who == "numlin" else dask_run(p_use)
                t[who] = time.perf_counter() - t0
            t_nl.append(t["numlin"])
            t_dk.append(t["dask"])
            ratios.append(t["dask"] / t["numlin"])
    return dict(shape=f"{m}x{n}", dtype=np.dtype(dtype).name, chunks=f"{rows}x{n}", k=k, err_numlin=e_nl,
                p=p_use, p_matched=p_eq is not None, err_dask=errs[p_use], errs=errs,
                numlin_s=statistics.median(t_nl), dask_s=statistics.median(t_dk), ratio=statistics.median(ratios),
                ratios=ratios)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="100000x1000")
    ap.add_argument("--chunk-rows", type=int, default=10_000)
    ap.add_argument("--dtypes", default="float64,float32")
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--max-p", type=int, default=14, help="largest n_power_iter tried for svd_compressed")
    ap.add_argument("--scheduler", choices=("threads", "distributed"), default="threads")
    ap.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes (1 thread each)")
    args = ap.parse_args()

    m, n = map(int, args.shape.split("x"))
    t0 = time.perf_counter()
    A64 = low_rank(m, n)
    print(f"make_low_rank_matrix({m}, {n}, effective_rank=50, tail_strength=0.3): {time.perf_counter() - t0:.1f} s",
          flush=True)
    client = cluster = None
    if args.scheduler == "distributed":
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    where = (f"LocalCluster({args.workers} processes x 1 thread)" if client else
             f"threaded scheduler ({__import__('os').cpu_count()} threads)")
    print(f"{where}; k = {args.k}, n_oversamples = 10 on both sides; numlin defaults (n_iter='auto')")
    print("| A | dtype | chunks | numlin s | svd_compressed s (n_power_iter) | ratio | err/σ_k+1 numlin vs dask |")
    print("|---|---|---|---|---|---|---|")
    try:
        for dt in args.dtypes.split(","):
            r = run_case(A64, np.dtype(dt), args.chunk_rows, args.k, args.rounds, args.max_p, client)
            note = "" if r["p_matched"] else " (not matched)"
            print(f"| {r['shape']} | {r['dtype']} | {r['chunks']} | {r['numlin_s']:.2f} | {r['dask_s']:.2f} "
                  f"({r['p']}{note}) | {r['ratio']:.2f} | {r['err_numlin']:.6f} vs {r['err_dask']:.6f} |", flush=True)
            print("    svd_compressed err/σ_k+1 by n_power_iter: "
                  + ", ".join(f"{p}: {e:.6f}" for p, e in r["errs"].items())
                  + "; ratios per round: " + ", ".join(f"{x:.2f}" for x in r["ratios"]), flush=True)
    finally:
        if client is not None:
            client.close()
            cluster.close()


if __name__ == "__main__":
    main()
