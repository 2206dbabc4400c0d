"""nl.linalg.rsvd and nl.matmul on Dask arrays: against the in-memory numlin result and numpy,
several chunk layouts and both float dtypes; a dask.distributed cluster run (worker processes);
peak worker memory on an array larger than the memory given to the workers."""
from __future__ import annotations

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

import numlin as nl  # noqa: E402
from numlin.linalg import _dask as nd  # noqa: E402


def _matrix(m, n, dtype, seed=0):
    """A with a known, fast-decaying spectrum (σ_i = 0.8^i) plus a flat tail of 1e-6."""
    rng = np.random.default_rng(seed)
    r = min(m, n)
    U, _ = np.linalg.qr(rng.standard_normal((m, r)))
    V, _ = np.linalg.qr(rng.standard_normal((n, r)))
    s = np.maximum(0.8 ** np.arange(r), 1e-6)
    return ((U * s) @ V.T).astype(dtype), s


def _tol(dtype, scale=1.0):
    return scale * 50 * np.finfo(dtype).eps ** 0.5 if dtype == np.float32 else scale * 1e-9


def _same_factors(U, S, Vt, ref, dtype):
    """Equal to the in-memory numlin result up to rounding: same S, same signed U and Vt."""
    U0, S0, Vt0 = ref
    tol = 100 * np.finfo(dtype).eps
    np.testing.assert_allclose(S, S0, rtol=tol, atol=tol * S0[0])
    # singular vectors of well-separated values (ratio 0.8) agree to ~eps·σ1/(σ_i - σ_{i+1})
    vtol = 1e4 * np.finfo(dtype).eps
    np.testing.assert_allclose(U, U0, atol=vtol)
    np.testing.assert_allclose(Vt, Vt0, atol=vtol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape,chunks", [
    ((600, 80), (150, 80)),     # tall, even row blocks
    ((601, 80), (97, 80)),      # tall, ragged last block
    ((600, 80), (600, 80)),     # one block
    ((600, 80), (200, 20)),     # chunked along columns too: rechunked by rows
    ((80, 500), (16, 500)),     # wide (m < n), row blocks: the transposed path
])
def test_rsvd_matches_in_memory_numlin(dtype, shape, chunks):
    A, s = _matrix(*shape, dtype)
    k = 8
    Ad = da.from_array(A, chunks=chunks)
    U, S, Vt = nl.linalg.rsvd(Ad, k, random_state=3)
    assert isinstance(U, da.Array) and isinstance(S, np.ndarray) and isinstance(Vt, np.ndarray)
    assert U.shape == (shape[0], k) and U.dtype == S.dtype == Vt.dtype == dtype
    assert U.numblocks[1] == 1
    Uc = U.compute()
    _same_factors(Uc, S, Vt, nl.linalg.rsvd(A, k, random_state=3), dtype)
    # and against numpy's exact SVD
    np.testing.assert_allclose(S, s[:k], rtol=_tol(dtype))
    eye_tol = 10 * _tol(dtype)
    np.testing.assert_allclose(Uc.T.astype(np.float64) @ Uc, np.eye(k), atol=eye_tol)
    np.testing.assert_allclose(Vt.astype(np.float64) @ Vt.T, np.eye(k), atol=eye_tol)
    err = np.linalg.norm(A.astype(np.float64) - (Uc.astype(np.float64) * S) @ Vt, 2)
    assert err <= 1.01 * s[k] + 1e3 * np.finfo(dtype).eps


@pytest.mark.parametrize("normalizer", ["qr", "lu", "none"])
def test_normalizers_and_fixed_iterations(normalizer):
    A, s = _matrix(500, 60, np.float64, seed=1)
    Ad = da.from_array(A, chunks=(120, 60))
    U, S, Vt = nl.linalg.rsvd(Ad, 6, n_iter=2, normalizer=normalizer, random_state=0)
    ref = nl.linalg.rsvd(A, 6, n_iter=2, normalizer=normalizer, random_state=0)
    np.testing.assert_allclose(S, ref[1], rtol=1e-9)
    assert np.linalg.norm(A - (U.compute() * S) @ Vt, 2) <= 1.01 * s[6]


def test_tol_mode_and_error_estimate():
    A, s = _matrix(700, 90, np.float64, seed=2)
    Ad = da.from_array(A, chunks=(100, 90))
    U, S, Vt = nl.linalg.rsvd(Ad, 60, tol=1e-2, random_state=0)
    Uc = U.compute()
    assert np.linalg.norm(A - (Uc * S) @ Vt, 2) <= 1e-2
    ref = nl.linalg.rsvd(A, 60, tol=1e-2, random_state=0)
    assert S.size == ref[1].size < 60  # stopped before the cap, where the in-memory run stops
    np.testing.assert_allclose(S, ref[1], rtol=1e-9)
    est = nl.linalg.rsvd_error_estimate(Ad, U, random_state=1)
    # the 10·sqrt(2/π) bound is loose: the rank tol mode picks is tight, so est may exceed tol
    assert np.linalg.norm(A - Uc @ (Uc.T @ A), 2) <= est


def test_ill_conditioned_sketch_falls_back_to_tsqr():
    """Exactly rank 3 with l = 13: the Gram matrices are singular, CholeskyQR fails, tsqr takes
    over and the result is still right."""
    rng = np.random.default_rng(4)
    A = rng.standard_normal((400, 3)) @ rng.standard_normal((3, 50))
    Ad = da.from_array(A, chunks=(100, 50))
    U, S, Vt = nl.linalg.rsvd(Ad, 3, random_state=0)
    np.testing.assert_allclose(S, np.linalg.svd(A, compute_uv=False)[:3], rtol=1e-10)
    Uc = U.compute()
    np.testing.assert_allclose(Uc.T @ Uc, np.eye(3), atol=1e-10)


def test_integer_input_computes_in_float64():
    A = np.arange(60 * 12).reshape(60, 12) % 7
    U, S, Vt = nl.linalg.rsvd(da.from_array(A, chunks=(15, 12)), 3, random_state=0)
    assert S.dtype == np.float64
    np.testing.assert_allclose(S, nl.linalg.rsvd(A, 3, random_state=0)[1], rtol=1e-12)


def test_bad_input():
    A = da.from_array(np.ones((20, 5)), chunks=(5, 5))
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, min\(m, n\)\] = \[1, 5\]"):
        nl.linalg.rsvd(A, 6)
    with pytest.raises(ValueError, match=r"A must be 2-D, got shape \(20,\)"):
        nl.linalg.rsvd(da.ones(20, chunks=5), 1)
    with pytest.raises(TypeError, match="unsupported dtype complex128"):
        nl.linalg.rsvd(da.ones((20, 5), chunks=5, dtype=complex), 1)
    bad = np.random.default_rng(0).standard_normal((40, 6))
    bad[33, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        nl.linalg.rsvd(da.from_array(bad, chunks=(10, 6)), 2)
    x = da.ones((20, 5), chunks=(5, 5))
    unknown = x[x[:, 0] > 0]
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        nl.linalg.rsvd(unknown, 2)
    with pytest.raises(TypeError, match="pca: Dask arrays are not supported"):
        nl.linalg.pca(A, 2)


def test_column_chunks_are_rechunked_by_rows():
    A = da.ones((1000, 300), chunks=(100, 50))
    B = nd.as_row_chunked("rsvd", A)
    assert B.numblocks[1] == 1 and B.shape == A.shape


# --------------------------------------------------------------------------- matmul
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sa,ca,sb,cb", [
    ((130, 70), (40, 30), (70, 50), (30, 20)),      # aligned k chunks: tree reduction over 3 blocks
    ((130, 70), (40, 25), (70, 50), (30, 50)),      # misaligned k chunks: Dask unifies them
    ((130, 70), (130, 70), (70, 50), (70, 50)),     # one block each
    ((3, 40, 20), (1, 20, 10), (20, 30), (10, 15)),  # batched a, 2-D b broadcast
    ((70,), (30,), (70, 50), (30, 20)),             # 1-D a
    ((130, 70), (40, 30), (70,), (30,)),            # 1-D b
])
def test_matmul_against_numpy(dtype, sa, ca, sb, cb):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(sa).astype(dtype)
    b = rng.standard_normal(sb).astype(dtype)
    c = nl.matmul(da.from_array(a, chunks=ca), da.from_array(b, chunks=cb))
    assert isinstance(c, da.Array) and c.dtype == dtype
    ref = a.astype(np.float64) @ b.astype(np.float64)
    assert c.shape == ref.shape
    tol = 10 * np.finfo(dtype).eps * np.sqrt(a.shape[-1])
    np.testing.assert_allclose(c.compute(), ref, rtol=tol, atol=tol * np.abs(ref).max())


def test_matmul_uses_numlin_gemm_per_block(monkeypatch):
    calls = []
    orig = nd._gemm
    monkeypatch.setattr(nd, "_gemm", lambda a, b: calls.append((a.shape, b.shape)) or orig(a, b))
    a = da.ones((40, 30), chunks=(20, 10))
    b = da.ones((30, 8), chunks=(10, 8))
    np.testing.assert_array_equal(nl.matmul(a, b).compute(scheduler="sync"), np.full((40, 8), 30.0))
    assert sorted(calls) == [((20, 10), (10, 8))] * 6  # 2 row blocks x 3 k blocks


def test_matmul_mixed_numpy_and_promotion():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((50, 20)).astype(np.float32)
    b = rng.standard_normal((20, 10))
    c = nl.matmul(da.from_array(a, chunks=(10, 20)), b)
    assert c.dtype == np.float64
    np.testing.assert_allclose(c.compute(), a.astype(np.float64) @ b, rtol=1e-12)


def test_matmul_and_gemm_errors():
    a = da.ones((4, 3), chunks=2)
    with pytest.raises(ValueError, match=r"shapes \(4, 3\) and \(4, 2\) do not match"):
        nl.matmul(a, da.ones((4, 2), chunks=2))
    with pytest.raises(TypeError, match="dtype int64"):
        nl.matmul(a, da.ones((3, 2), chunks=2, dtype=np.int64))
    with pytest.raises(TypeError, match="out= is not supported for Dask arrays"):
        nl.matmul(a, da.ones((3, 2), chunks=2), out=np.empty((4, 2)))
    with pytest.raises(ValueError, match="0-d"):
        nl.matmul(da.ones(()), a)
    with pytest.raises(TypeError, match=r"gemm: Dask arrays are not supported.*nl.matmul"):
        nl.gemm(a, np.ones((3, 2)))


def test_block_threads_setting():
    old = nd.block_threads(2)
    try:
        assert nd.block_threads() == 2
        a = da.ones((300, 200), chunks=(100, 200))
        np.testing.assert_array_equal(nl.matmul(a, np.ones((200, 3))).compute(), np.full((300, 3), 200.0))
    finally:
        nd.block_threads(old)
    with pytest.raises(ValueError, match="positive int"):
        nd.block_threads(0)


def test_import_numlin_does_not_import_dask():
    import subprocess
    import sys

    code = "import sys, numlin, numlin.linalg; print('dask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- dask.distributed
_WORKER_MIB = 500


@pytest.fixture(scope="module")
def cluster_client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  memory_limit=f"{_WORKER_MIB}MiB", worker_class=distributed.Nanny) as cluster:
        with distributed.Client(cluster) as client:
            yield client


def test_rsvd_and_matmul_on_a_distributed_cluster(cluster_client):
    A, s = _matrix(3000, 120, np.float64, seed=5)
    Ad = da.from_array(A, chunks=(500, 120))
    U, S, Vt = nl.linalg.rsvd(Ad, 10, random_state=0)
    Uc = U.compute()
    _same_factors(Uc, S, Vt, nl.linalg.rsvd(A, 10, random_state=0), np.float64)
    b = np.random.default_rng(0).standard_normal((120, 7))
    np.testing.assert_allclose(nl.matmul(Ad, b).compute(), A @ b, rtol=1e-12, atol=1e-14)
    # each worker process ran numlin's kernels (loaded from Numba's cache, compiled at most once)
    loaded = cluster_client.run(lambda: "numlin.kernels.cpu.gemm" in __import__("sys").modules)
    assert len(loaded) == 2 and all(loaded.values())


def _worker_peak_rss():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def test_out_of_core_peak_memory(cluster_client):
    """A lazily generated 800 000 x 200 float64 array (1.28 GB, never materialised) is larger than
    the 2 x 500 MiB given to the workers; its rank-10 SVD runs with each worker's peak RSS bounded
    by its baseline plus a few chunks and the tall m x l factors."""
    m, n, rows, k = 800_000, 200, 25_000, 10
    A = da.random.default_rng(7).standard_normal((m, n), chunks=(rows, n))
    assert A.nbytes > 2 * _WORKER_MIB * 2**20
    base = cluster_client.run(_worker_peak_rss)
    U, S, Vt = nl.linalg.rsvd(A, k, n_iter=1, random_state=0)
    assert U.shape == (m, k) and np.all(np.isfinite(S))
    # Gaussian noise: the top singular values sit near sqrt(m) + sqrt(n) (Marchenko–Pastur edge)
    assert 0.9 * (np.sqrt(m) + np.sqrt(n)) <= S[0] <= 1.1 * (np.sqrt(m) + np.sqrt(n))
    peak = cluster_client.run(_worker_peak_rss)
    chunk = rows * n * 8
    tall = m * (2 * (k + 10)) * 8  # the persisted m x l sketches, split between the workers
    print({w: (base[w] / 2**20, peak[w] / 2**20) for w in peak})
    for w in peak:
        assert peak[w] - base[w] <= 6 * chunk + tall, (peak[w] - base[w]) / 2**20
