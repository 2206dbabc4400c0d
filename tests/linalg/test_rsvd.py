"""nl.linalg.rsvd / pca / rsvd_error_estimate against exact SVDs (numpy/scipy) and scikit-learn."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from numba import cuda
from scipy.sparse.linalg import aslinearoperator

import numlin as nl
from tests.conftest import HAS_GPU


def _matrix(rng, m, n, decay, dtype=np.float64):
    """A = U diag(s) Vᵀ with a known spectrum: fast (geometric) or slow (power-law) decay."""
    r = min(m, n)
    U, _ = np.linalg.qr(rng.standard_normal((m, r)))
    V, _ = np.linalg.qr(rng.standard_normal((n, r)))
    s = 0.7 ** np.arange(r) if decay == "fast" else 1.0 / (1.0 + np.arange(r)) ** 0.5
    return ((U * s) @ V.T).astype(dtype), s


def _spectral_err(A, U, S, Vt):
    return np.linalg.norm(A.astype(np.float64) - (np.asarray(U, np.float64) * S) @ Vt, 2)


@pytest.mark.parametrize("decay,bound", [("fast", 1.1), ("slow", 1.5)])
@pytest.mark.parametrize("shape", [(300, 200), (150, 400)])
def test_error_against_sigma_k_plus_1(rng, decay, bound, shape):
    A, s = _matrix(rng, *shape, decay)
    k = 10
    U, S, Vt = nl.linalg.rsvd(A, k, n_iter=2, n_oversamples=10, random_state=0)
    assert U.shape == (shape[0], k) and S.shape == (k,) and Vt.shape == (k, shape[1])
    assert _spectral_err(A, U, S, Vt) <= bound * s[k]
    np.testing.assert_allclose(U.T @ U, np.eye(k), atol=1e-10)
    np.testing.assert_allclose(Vt @ Vt.T, np.eye(k), atol=1e-10)
    assert np.all(np.diff(S) <= 0)
    if decay == "fast":
        np.testing.assert_allclose(S, s[:k], rtol=1e-8)


def test_default_settings_match_sklearn_accuracy(rng):
    from sklearn.datasets import make_low_rank_matrix
    from sklearn.utils.extmath import randomized_svd

    A = make_low_rank_matrix(600, 500, effective_rank=50, tail_strength=0.3, random_state=0)
    s = np.linalg.svd(A, compute_uv=False)
    ours = _spectral_err(A, *nl.linalg.rsvd(A, 20, random_state=1)) / s[20]
    theirs = _spectral_err(A, *randomized_svd(A, 20, random_state=1)) / s[20]
    assert ours <= theirs * (1 + 1e-3)


def test_float32_stays_float32(rng):
    A, s = _matrix(rng, 200, 120, "fast", np.float32)
    U, S, Vt = nl.linalg.rsvd(A, 5, random_state=0)
    assert U.dtype == S.dtype == Vt.dtype == np.float32
    np.testing.assert_allclose(S, s[:5], rtol=1e-4)


def test_same_seed_same_result_and_generators(rng):
    A, _ = _matrix(rng, 120, 90, "slow")
    r1 = nl.linalg.rsvd(A, 7, random_state=42)
    r2 = nl.linalg.rsvd(A, 7, random_state=42)
    for x, y in zip(r1, r2):
        np.testing.assert_array_equal(x, y)
    r3 = nl.linalg.rsvd(A, 7, random_state=np.random.default_rng(42))
    np.testing.assert_array_equal(r3[1], r1[1])
    nl.linalg.rsvd(A, 7, random_state=np.random.RandomState(0))


@pytest.mark.parametrize("normalizer", ["auto", "qr", "lu", "none"])
def test_normalizers(rng, normalizer):
    A, s = _matrix(rng, 200, 150, "fast")
    U, S, Vt = nl.linalg.rsvd(A, 8, n_iter=3, normalizer=normalizer, random_state=0)
    assert _spectral_err(A, U, S, Vt) <= 1.1 * s[8]


def test_flip_sign_rule(rng):
    A, _ = _matrix(rng, 100, 80, "fast")
    U, S, Vt = nl.linalg.rsvd(A, 6, random_state=0)
    idx = np.argmax(np.abs(U), axis=0)
    assert np.all(U[idx, np.arange(6)] > 0)
    U2, _, Vt2 = nl.linalg.rsvd(A, 6, random_state=0, flip_sign=False)
    np.testing.assert_allclose(np.abs(U2), np.abs(U), atol=1e-12)
    np.testing.assert_allclose((U2 * S) @ Vt2, (U * S) @ Vt, atol=1e-10)


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_sparse_and_linear_operator_agree_with_dense(rng, fmt):
    A = sp.random(300, 200, density=0.05, random_state=3, format=fmt, dtype=np.float64)
    dense = A.toarray()
    U0, S0, Vt0 = nl.linalg.rsvd(dense, 5, n_iter=4, random_state=0)
    U1, S1, Vt1 = nl.linalg.rsvd(A, 5, n_iter=4, random_state=0)
    U2, S2, Vt2 = nl.linalg.rsvd(aslinearoperator(A), 5, n_iter=4, random_state=0)
    for S in (S1, S2):
        np.testing.assert_allclose(S, S0, rtol=1e-10)
    for U, Vt in ((U1, Vt1), (U2, Vt2)):
        np.testing.assert_allclose((U * S0) @ Vt, (U0 * S0) @ Vt0, atol=1e-9)


def test_sparse_is_never_densified(rng, monkeypatch):
    A = sp.random(400, 300, density=0.02, random_state=1, format="csr")

    def boom(*a, **k):
        raise AssertionError("densified")

    monkeypatch.setattr(sp.csr_matrix, "toarray", boom)
    monkeypatch.setattr(sp.csr_matrix, "todense", boom)
    nl.linalg.rsvd(A, 4, random_state=0)
    nl.linalg.pca(A, 3, random_state=0)


@pytest.mark.parametrize("tol_factor", [3.0, 1.5])
def test_tol_mode_meets_its_tolerance(rng, tol_factor):
    A, s = _matrix(rng, 250, 200, "fast")
    tol = tol_factor * s[15]
    U, S, Vt = nl.linalg.rsvd(A, 60, tol=tol, random_state=0)
    assert _spectral_err(A, U, S, Vt) <= tol
    assert U.shape[1] < 60  # stopped before the cap
    assert nl.linalg.rsvd_error_estimate(A, U, random_state=1) >= _spectral_err(A, U, S, Vt) * 0.5


def test_tol_mode_capped_by_k(rng):
    A, s = _matrix(rng, 120, 100, "slow")
    U, S, Vt = nl.linalg.rsvd(A, 12, tol=1e-12, random_state=0)
    assert U.shape[1] == 12


def test_wide_matrices_are_transposed_internally(rng):
    A, s = _matrix(rng, 60, 300, "fast")
    U, S, Vt = nl.linalg.rsvd(A, 5, random_state=0)
    assert U.shape == (60, 5) and Vt.shape == (5, 300)
    np.testing.assert_allclose(S, s[:5], rtol=1e-8)


def test_integer_input_computes_in_float64():
    A = np.arange(60).reshape(10, 6) % 7
    U, S, Vt = nl.linalg.rsvd(A, 2, random_state=0)
    assert S.dtype == np.float64


def test_pca_matches_sklearn_full_pca(rng):
    from sklearn.decomposition import PCA

    X = rng.standard_normal((300, 40)) @ rng.standard_normal((40, 40)) + 5.0
    ref = PCA(n_components=4, svd_solver="full").fit(X)
    res = nl.linalg.pca(X, 4, n_iter=4, random_state=0)
    np.testing.assert_allclose(res.mean_, ref.mean_, rtol=1e-12)
    np.testing.assert_allclose(res.explained_variance_, ref.explained_variance_, rtol=1e-6)
    np.testing.assert_allclose(res.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=1e-6)
    # same subspace (signs may differ): |cosines| of matched components near 1
    np.testing.assert_allclose(np.abs(np.sum(res.components_ * ref.components_, axis=1)), 1.0, atol=1e-6)
    # scores inherit the components' randomized error (angles ~1e-3 at |cos| - 1 ~ 1e-6)
    np.testing.assert_allclose(np.abs(res.transform(X)), np.abs(ref.transform(X)), rtol=1e-3, atol=1e-3)


def test_pca_sparse_equals_dense(rng):
    X = sp.random(200, 50, density=0.1, random_state=2, format="csr")
    a = nl.linalg.pca(X, 3, n_iter=4, random_state=0)
    b = nl.linalg.pca(X.toarray(), 3, n_iter=4, random_state=0)
    np.testing.assert_allclose(a.singular_values_, b.singular_values_, rtol=1e-10)
    np.testing.assert_allclose(a.explained_variance_ratio_, b.explained_variance_ratio_, rtol=1e-10)


@pytest.mark.parametrize("call,exc,match", [
    (lambda A: nl.linalg.rsvd(A, 0), ValueError, "k must be"),
    (lambda A: nl.linalg.rsvd(A, 31), ValueError, "k must be"),
    (lambda A: nl.linalg.rsvd(A, 2.5), TypeError, "k must be"),
    (lambda A: nl.linalg.rsvd(A[0], 2), ValueError, "2-D"),
    (lambda A: nl.linalg.rsvd(A, 2, normalizer="svd"), ValueError, "normalizer"),
    (lambda A: nl.linalg.rsvd(A, 2, n_iter=-1), ValueError, "n_iter"),
    (lambda A: nl.linalg.rsvd(A, 2, n_oversamples=-3), ValueError, "n_oversamples"),
    (lambda A: nl.linalg.rsvd(A, 2, tol=0.0), ValueError, "tol"),
    (lambda A: nl.linalg.rsvd(A, 2, random_state="x"), TypeError, "random_state"),
    (lambda A: nl.linalg.rsvd(A.astype(np.complex128), 2), TypeError, "complex128"),
])
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call(np.ones((40, 30)))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_is_rejected(bad):
    A = np.ones((20, 10))
    A[3, 4] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        nl.linalg.rsvd(A, 2)
    with pytest.raises(ValueError, match="NaN or Inf"):
        nl.linalg.rsvd(sp.csr_matrix(A), 2)


@pytest.mark.parametrize("shape", [(40, 24), (20, 44)] if not HAS_GPU else [(3000, 1500), (800, 4000)])
def test_device_rsvd_matches_host(rng, shape):
    A, s = _matrix(rng, *shape, "fast")
    U, S, Vt = nl.linalg.rsvd(cuda.to_device(A), 4, n_iter=2, random_state=0)
    assert type(U).__module__.startswith("numba.cuda")
    Uh = U.copy_to_host()
    Uc, Sc, Vtc = nl.linalg.rsvd(A, 4, n_iter=2, random_state=0)
    np.testing.assert_allclose(S, Sc, rtol=1e-8)
    np.testing.assert_allclose(S, s[:4], rtol=1e-8)
    np.testing.assert_allclose(Uh, Uc, atol=1e-8)  # same sign rule
    np.testing.assert_allclose(Vt, Vtc, atol=1e-8)


@pytest.mark.parametrize("dtype,cond", [(np.float64, 1e3), (np.float64, 1e12), (np.float32, 1e2), (np.float32, 1e6)])
def test_tall_orthonormalisation_any_conditioning(rng, dtype, cond):
    """CholeskyQR2 for tall sketches, Householder when the sketch is too ill-conditioned."""
    from numlin.linalg._operators import Host

    m, l = 4000, 30
    U, _ = np.linalg.qr(rng.standard_normal((m, l)))
    V, _ = np.linalg.qr(rng.standard_normal((l, l)))
    Y = ((U * np.logspace(0, -np.log10(cond), l)) @ V.T).astype(dtype)
    Q = Host().orth(Y.copy(), "qr")
    eps = np.finfo(dtype).eps
    assert np.abs(Q.T.astype(np.float64) @ Q - np.eye(l)).max() < 100 * eps * l
    # same column space as Y: projecting Y onto Q loses nothing
    resid = np.linalg.norm(Y - Q @ (Q.T @ Y)) / np.linalg.norm(Y)
    assert resid < 100 * eps * l * (1 if dtype == np.float64 else 10)


def test_device_tol_mode_meets_its_tolerance(rng):
    A, s = _matrix(rng, *((2000, 600) if HAS_GPU else (48, 20)), "fast")
    tol = 3.0 * s[6]
    U, S, Vt = nl.linalg.rsvd(cuda.to_device(A), 12, tol=tol, random_state=0)
    assert _spectral_err(A, U.copy_to_host(), S, Vt) <= tol


# --------------------------------------------------------------------------- issue 16 ("Trust")
def test_pca_explained_variance_ratio_with_large_mean():
    """Total variance from centred sums: Σx² − m·μ² cancelled to negative ratios in float32."""
    from sklearn.decomposition import PCA

    X = np.random.default_rng(0).standard_normal((400, 16)).astype(np.float32) + 1e4
    res = nl.linalg.pca(X, 3, n_iter=10, random_state=0)  # (a flat spectrum: converged subspace)
    ref = PCA(3, svd_solver="full").fit(X.astype(np.float64))
    np.testing.assert_allclose(res.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=2e-3)
    Xs = sp.csr_matrix(X)
    res_s = nl.linalg.pca(Xs, 3, n_iter=10, random_state=0)
    np.testing.assert_allclose(res_s.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=2e-3)


def test_pca_constant_data_ratio_is_nan_like_sklearn():
    """Total variance 0: scikit-learn's PCA gives nan ratios (0/0, RuntimeWarning); so does numlin."""
    with pytest.warns(RuntimeWarning, match="total variance is 0"):
        res = nl.linalg.pca(np.ones((50, 8)), 2, random_state=0)
    assert np.all(np.isnan(res.explained_variance_ratio_))
    np.testing.assert_array_equal(res.explained_variance_, 0.0)


def test_complex_linear_operator_is_rejected():
    from scipy.sparse.linalg import LinearOperator

    A = np.ones((20, 10)) + 1j
    op = LinearOperator(A.shape, matvec=lambda x: A @ x, rmatvec=lambda y: A.conj().T @ y, dtype=np.complex128)
    with pytest.raises(TypeError, match="complex128"):
        nl.linalg.rsvd(op, 2)
    with pytest.raises(TypeError, match="complex128"):
        nl.linalg.pca(op, 2)


def test_pca_components_signs_match_sklearn_pca(rng):
    from sklearn.decomposition import PCA

    X = rng.standard_normal((200, 12)) @ rng.standard_normal((12, 12))
    ref = PCA(4, svd_solver="full").fit(X)
    res = nl.linalg.pca(X, 4, random_state=0)
    np.testing.assert_allclose(res.components_, ref.components_, atol=1e-6)
    idx = np.argmax(np.abs(res.components_), axis=1)
    assert np.all(res.components_[np.arange(4), idx] > 0)


def test_device_rsvd_returns_all_factors_on_device(rng):
    A, s = _matrix(rng, 40, 24, "fast")
    for dA, tol in ((cuda.to_device(A), None), (cuda.to_device(A), 3.0 * s[5]), (cuda.to_device(A.T.copy()), None)):
        U, S, Vt = nl.linalg.rsvd(dA, 6, tol=tol, random_state=0)
        for x in (U, S, Vt):
            assert type(x).__module__.startswith("numba.cuda"), type(x)
        Uc, Sc, Vtc = nl.linalg.rsvd(dA.copy_to_host(), 6, tol=tol, random_state=0)
        np.testing.assert_allclose(S.copy_to_host(), Sc, rtol=1e-6)  # CholeskyQR2 on the device
        np.testing.assert_allclose(Vt.copy_to_host(), Vtc, atol=1e-6)


def test_concurrent_rsvd_restores_blas_threads(rng):
    import threading

    from threadpoolctl import threadpool_info

    def blas_threads():
        return [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]

    A, _ = _matrix(rng, 300, 200, "fast")
    if True:  # no outer threadpool_limits: OpenBLAS ignores limits set from other threads then
        before = blas_threads()
        errors = []

        def work(i):
            try:
                for j in range(4):
                    if (i + j) % 2:
                        nl.linalg.rsvd(A, 5, random_state=i)
                    else:
                        nl.linalg.pca(A, 5, random_state=i)
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert not errors
        assert blas_threads() == before


def test_zero_matrix_with_tol_returns_rank_zero():
    U, S, Vt = nl.linalg.rsvd(np.zeros((30, 20)), 5, tol=1e-3, random_state=0)
    assert U.shape == (30, 0) and S.shape == (0,) and Vt.shape == (0, 20)


def _bad_linop(m, n, out_shape):
    from scipy.sparse.linalg import LinearOperator

    class Bad(LinearOperator):
        def __init__(self):
            super().__init__(np.float64, (m, n))

        def _matmat(self, X):
            return np.ones((out_shape[0], X.shape[1] - out_shape[1]))

        def _rmatmat(self, Y):
            return np.ones((n, Y.shape[1]))

    return Bad()


@pytest.mark.parametrize("out_shape", [(30, 1), (29, 0), (31, 0)])
def test_linear_operator_wrong_shape_is_value_error(out_shape):
    with pytest.raises(ValueError, match=r"A\.matmat.*\(30, 20\)"):
        nl.linalg.rsvd(_bad_linop(30, 20, out_shape), 3, random_state=0)


@pytest.mark.parametrize("fmt", ["lil", "dok"])
def test_lil_and_dok_are_converted(fmt):
    A = sp.random(60, 40, density=0.1, random_state=0, format="csr")
    _, S0, _ = nl.linalg.rsvd(A, 3, random_state=0)
    _, S1, _ = nl.linalg.rsvd(A.asformat(fmt), 3, random_state=0)
    np.testing.assert_allclose(S1, S0, rtol=1e-12)
    nl.linalg.pca(A.asformat(fmt), 3, random_state=0)


@pytest.mark.parametrize("kw", [dict(k=True), dict(n_oversamples=True), dict(tol=True), dict(n_iter=True),
                                dict(n_iter=False), dict(n_oversamples=False)])
def test_bool_arguments_are_type_errors(kw):
    kw = {"k": 3, **kw}
    name = [n for n in kw if isinstance(kw[n], bool)][0]
    with pytest.raises(TypeError, match=name):
        nl.linalg.rsvd(np.ones((20, 10)), **kw)


def test_np_matrix_is_taken_as_ndarray(rng):
    A, _ = _matrix(rng, 40, 30, "fast")
    r0 = nl.linalg.rsvd(A, 3, random_state=0)
    r1 = nl.linalg.rsvd(np.matrix(A), 3, random_state=0)
    for x, y in zip(r0, r1):
        assert type(y) is np.ndarray
        np.testing.assert_allclose(y, x)
    p = nl.linalg.pca(np.matrix(A), 3, random_state=0)
    assert type(p.components_) is np.ndarray


def test_blas_single_thread_interleaved_threads_restore_original():
    """A enters, B enters, A leaves, B leaves: each block used to restore what it found on entry
    (B found 1), leaving numpy's BLAS on one thread for good."""
    from threadpoolctl import threadpool_info

    from numlin._dispatch import blas_single_thread

    def blas_threads():
        return [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]

    before = blas_threads()
    if not before or max(before) == 1:
        pytest.skip("BLAS already runs on one thread")
    a, b = blas_single_thread(), blas_single_thread()
    a.__enter__()
    b.__enter__()
    a.__exit__(None, None, None)
    assert set(blas_threads()) == {1}  # B is still inside
    b.__exit__(None, None, None)
    assert blas_threads() == before


_BLAS_IN_BLOCK = """
import json
import numpy as np
from threadpoolctl import threadpool_info
from numlin._dispatch import blas_single_thread
with blas_single_thread():
    import scipy.linalg  # what rsvd's factorizations call, loaded (if not yet) inside the block
    print(json.dumps([(d["filepath"], d["num_threads"]) for d in threadpool_info() if d["user_api"] == "blas"]))
"""


def test_blas_single_thread_covers_scipys_blas_loaded_after_numpys():
    """In a process that had not imported scipy.linalg, the block's controller saw numpy's
    OpenBLAS only, and scipy's (loaded by rsvd's first factorization) kept every core."""
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _BLAS_IN_BLOCK], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    libs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert libs and all(n == 1 for _, n in libs), libs  # numpy's and (wheels) scipy's own OpenBLAS


def test_flat_spectrum_default_at_least_as_accurate_as_sklearn():
    """n_iter="auto" iterates until the Ritz values settle: on randn(100, 80), k = 2, numlin's
    default PCA was 6x less accurate than scikit-learn's randomized PCA (median over seeds)."""
    import warnings

    from sklearn.decomposition import PCA

    ours, theirs = [], []
    for seed in range(12):
        X = np.random.default_rng(seed).standard_normal((100, 80))
        s = np.linalg.svd(X - X.mean(axis=0), compute_uv=False)[:2]
        ours.append(np.max(np.abs(nl.linalg.pca(X, 2, random_state=seed).singular_values_ - s) / s))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = PCA(2, svd_solver="randomized", random_state=seed).fit(X)
        theirs.append(np.max(np.abs(ref.singular_values_ - s) / s))
    assert np.median(ours) <= np.median(theirs)


@pytest.mark.parametrize("decay", [0.9, 0.7])
@pytest.mark.parametrize("j", [8, 15, 30])
def test_tol_mode_rank_is_near_optimal(decay, j):
    """σ_i = decay^i: the error meets tol and the rank is at most max(1.25 r*, r* + 4), r* the
    smallest rank meeting tol (the a-posteriori bound used as a stopping rule returned the cap)."""
    rng = np.random.default_rng(j)
    s = decay ** np.arange(200)
    U0, _ = np.linalg.qr(rng.standard_normal((300, 200)))
    V0, _ = np.linalg.qr(rng.standard_normal((200, 200)))
    A = (U0 * s) @ V0.T
    tol = 2 * s[j]
    r_star = int(np.argmax(s <= tol))  # ||A - A_r||_2 = s[r]
    for seed in range(3):
        U, S, Vt = nl.linalg.rsvd(A, 80, tol=tol, random_state=seed)
        assert _spectral_err(A, U, S, Vt) <= tol
        assert r_star <= S.size <= max(1.25 * r_star, r_star + 4)


# --------------------------------------------------------------------------- bad-input sweep
def _nan_linop():
    from scipy.sparse.linalg import LinearOperator

    return LinearOperator((20, 10), matvec=lambda x: np.full(20, np.nan), rmatvec=lambda y: np.full(10, np.nan),
                          matmat=lambda X: np.full((20, X.shape[1]), np.nan), dtype=np.float64)


_OK = np.random.default_rng(0).standard_normal((20, 10))
_NAN = _OK.copy()
_NAN[2, 3] = np.nan
_INF = _OK.copy()
_INF[0, 0] = -np.inf

_SWEEP = [
    # (A, k, kwargs, exception, message fragment)
    ("abc", 2, {}, TypeError, "A must be"),
    (None, 2, {}, TypeError, "A must be"),
    (np.array([[object()] * 3] * 3), 1, {}, TypeError, "object"),
    (_OK.astype(np.float16), 2, {}, TypeError, "float16"),
    (_OK.astype(np.complex64), 2, {}, TypeError, "complex64"),
    (sp.csr_matrix(_OK.astype(np.complex128)), 2, {}, TypeError, "complex128"),
    (_NAN, 2, {}, ValueError, "NaN or Inf"),
    (_INF, 2, {}, ValueError, "NaN or Inf"),
    (sp.csr_matrix(_NAN), 2, {}, ValueError, "NaN or Inf"),
    ("linop-nan", 2, {}, ValueError, "NaN or Inf"),
    (np.zeros((0, 5)), 1, {}, ValueError, "k must be|at least 2 samples"),
    (np.zeros((0, 0)), 1, {}, ValueError, "k must be|at least 2 samples"),
    (np.zeros(5), 1, {}, ValueError, "2-D"),
    (np.zeros((2, 3, 4)), 1, {}, ValueError, "2-D"),
    (_OK, 0, {}, ValueError, "k must be"),
    (_OK, -1, {}, ValueError, "k must be"),
    (_OK, 11, {}, ValueError, "k must be"),
    (_OK, True, {}, TypeError, "k must be"),
    (_OK, 2.0, {}, TypeError, "k must be"),
    (_OK, "2", {}, TypeError, "k must be"),
    (_OK, None, {}, TypeError, "k must be"),
    (_OK, 2, {"n_oversamples": -1}, ValueError, "n_oversamples"),
    (_OK, 2, {"n_oversamples": True}, TypeError, "n_oversamples"),
    (_OK, 2, {"n_oversamples": 1.5}, TypeError, "n_oversamples"),
    (_OK, 2, {"n_oversamples": "10"}, TypeError, "n_oversamples"),
    (_OK, 2, {"n_iter": "fast"}, ValueError, "n_iter"),
    (_OK, 2, {"n_iter": -2}, ValueError, "n_iter"),
    (_OK, 2, {"n_iter": 2.5}, TypeError, "n_iter"),
    (_OK, 2, {"n_iter": None}, TypeError, "n_iter"),
    (_OK, 2, {"n_iter": False}, TypeError, "n_iter"),
    (_OK, 2, {"normalizer": "svd"}, ValueError, "normalizer"),
    (_OK, 2, {"normalizer": "QR"}, ValueError, "normalizer"),
    (_OK, 2, {"normalizer": None}, TypeError, "normalizer"),
    (_OK, 2, {"normalizer": 1}, TypeError, "normalizer"),
    (_OK, 2, {"tol": 0.0}, ValueError, "tol"),
    (_OK, 2, {"tol": -1.0}, ValueError, "tol"),
    (_OK, 2, {"tol": float("nan")}, ValueError, "tol"),
    (_OK, 2, {"tol": "1e-3"}, TypeError, "tol"),
    (_OK, 2, {"tol": True}, TypeError, "tol"),
    (_OK, 2, {"random_state": "seed"}, TypeError, "random_state"),
    (_OK, 2, {"random_state": 1.5}, TypeError, "random_state"),
]


@pytest.mark.parametrize("fn", ["rsvd", "pca"])
@pytest.mark.parametrize("A,k,kw,exc,match", _SWEEP)
def test_bad_input_sweep(fn, A, k, kw, exc, match):
    """Every bad argument gives the right exception type, its message naming the argument."""
    if isinstance(A, str) and A == "linop-nan":
        A = _nan_linop()
    f = getattr(nl.linalg, fn)
    with pytest.raises(exc, match=match):
        f(A, k, **kw)


@pytest.mark.parametrize("call,exc,match", [
    (lambda: nl.linalg.pca(np.ones((1, 5)), 1), ValueError, "at least 2 samples"),
    (lambda: nl.linalg.pca(_OK, 2, n_components=2), TypeError, "n_components"),
    (lambda: nl.linalg.rsvd(_OK, 2, bogus=1), TypeError, "bogus"),
])
def test_bad_input_pca_specific(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
