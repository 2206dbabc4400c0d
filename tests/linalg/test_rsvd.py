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
    (lambda A: nl.linalg.rsvd(A, 2.5), ValueError, "k must be"),
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
    from numlin.linalg.rsvd import _Host

    m, l = 4000, 30
    U, _ = np.linalg.qr(rng.standard_normal((m, l)))
    V, _ = np.linalg.qr(rng.standard_normal((l, l)))
    Y = ((U * np.logspace(0, -np.log10(cond), l)) @ V.T).astype(dtype)
    Q = _Host().orth(Y.copy(), "qr")
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
