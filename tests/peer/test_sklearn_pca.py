"""Ported from scikit-learn 1.9.1, sklearn/decomposition/tests/test_pca.py (the
``svd_solver="randomized"`` cases), adapted to ``nl.linalg.pca`` with minimal changes and the
upstream test names.

Adaptation: ``PCA(n_components=k, svd_solver="randomized", random_state=r).fit(X)`` ->
``nl.linalg.pca(X, k, random_state=r)``; ``fit_transform(X)`` -> ``pca(X, k).transform(X)``.
Not ported (API numlin lacks): whitening, inverse_transform, get_covariance/get_precision,
score/noise_variance_, n_components=None/"mle"/float, feature names, array API, the solver
selection tests, and the sparse tests run with the arpack/covariance_eigh solvers only.
Deliberately different (kept as tests of numlin's documented behaviour): numlin has no
``fit_transform``, whose scikit-learn result is ``U * S``; ``PCAResult.transform(X)`` projects,
``(X - mean_) @ components_.T``, which equals ``U * S`` only up to the randomized residual
(~1e-4 relative on these flat spectra). test_pca_explained_variance_empirical and
test_pca_singular_values therefore compare the projections' variances/norms with rtol 1e-3
where upstream has 1e-7 (the other assertions unchanged).
"""
import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn import datasets
from sklearn.decomposition import PCA

import numlin as nl

iris = datasets.load_iris()


@pytest.mark.parametrize(
    "X",
    [
        np.random.RandomState(0).randn(100, 80),
        datasets.make_classification(100, 80, n_informative=78, random_state=0)[0],
        np.random.RandomState(0).randn(10, 100),
    ],
    ids=["random-tall", "correlated-tall", "random-wide"],
)
def test_pca_explained_variance_empirical(X):
    pca = nl.linalg.pca(X, 2, random_state=0)
    X_pca = pca.transform(X)
    # DELIBERATELY DIFFERENT: transform(X), not U * S (module docstring): rtol 1e-3
    assert_allclose(pca.explained_variance_, np.var(X_pca, ddof=1, axis=0), rtol=1e-3)

    expected_result = np.linalg.eig(np.cov(X, rowvar=False))[0]
    expected_result = sorted(expected_result, reverse=True)[:2]
    assert_allclose(pca.explained_variance_, expected_result, rtol=5e-3)


def test_pca_singular_values_consistency():
    rng = np.random.RandomState(0)
    n_samples, n_features = 100, 80
    X = rng.randn(n_samples, n_features)

    pca_full = PCA(n_components=2, svd_solver="full", random_state=rng)
    pca_full.fit(X)
    pca_other = nl.linalg.pca(X, 2, random_state=rng)

    assert_allclose(pca_full.singular_values_, pca_other.singular_values_, rtol=5e-3)


def test_pca_singular_values():
    rng = np.random.RandomState(0)
    n_samples, n_features = 100, 80
    X = rng.randn(n_samples, n_features)

    pca = nl.linalg.pca(X, 2, random_state=rng)
    X_trans = pca.transform(X)

    # DELIBERATELY DIFFERENT: transform(X), not U * S (module docstring): rtol 1e-3
    assert_allclose(np.sum(pca.singular_values_**2), np.linalg.norm(X_trans, "fro") ** 2, rtol=1e-3)
    assert_allclose(pca.singular_values_, np.sqrt(np.sum(X_trans**2, axis=0)), rtol=1e-3)

    n_samples, n_features = 100, 110
    X = rng.randn(n_samples, n_features)

    pca = nl.linalg.pca(X, 3, random_state=rng)
    X_trans = pca.transform(X)
    X_trans /= np.sqrt(np.sum(X_trans**2, axis=0))
    X_trans[:, 0] *= 3.142
    X_trans[:, 1] *= 2.718
    X_hat = np.dot(X_trans, pca.components_)
    pca = nl.linalg.pca(X_hat, 3, random_state=rng)
    assert_allclose(pca.singular_values_, [3.142, 2.718, 1.0])


def test_pca_check_projection():
    rng = np.random.RandomState(0)
    n, p = 100, 3
    X = rng.randn(n, p) * 0.1
    X[:10] += np.array([3, 4, 5])
    Xt = 0.1 * rng.randn(1, p) + np.array([3, 4, 5])

    Yt = nl.linalg.pca(X, 2).transform(Xt)
    Yt /= np.sqrt((Yt**2).sum())

    assert_allclose(np.abs(Yt[0][0]), 1.0, rtol=5e-3)


def test_pca_check_projection_list():
    X = [[1.0, 0.0], [0.0, 1.0]]
    pca = nl.linalg.pca(X, 1, random_state=0)
    X_trans = pca.transform(np.asarray(X))
    assert X_trans.shape, (2, 1)
    assert_allclose(X_trans.mean(), 0.00, atol=1e-12)
    assert_allclose(X_trans.std(), 0.71, rtol=5e-3)


def test_pca_deterministic_output():
    rng = np.random.RandomState(0)
    X = rng.rand(10, 10)

    transformed_X = np.zeros((20, 2))
    for i in range(20):
        pca = nl.linalg.pca(X, 2, random_state=rng)
        transformed_X[i, :] = pca.transform(X)[0]
    assert_allclose(transformed_X, np.tile(transformed_X[0, :], 20).reshape(20, 2))


def test_pca_randomized_svd_n_oversamples():
    rng = np.random.RandomState(0)
    n_features = 100
    X = rng.randn(1_000, n_features)

    pca_randomized = nl.linalg.pca(X, 1, n_oversamples=n_features, random_state=0)
    pca_full = PCA(n_components=1, svd_solver="full").fit(X)
    pca_arpack = PCA(n_components=1, svd_solver="arpack", random_state=0).fit(X)

    assert_allclose(np.abs(pca_full.components_), np.abs(pca_arpack.components_))
    assert_allclose(np.abs(pca_randomized.components_), np.abs(pca_arpack.components_))


@pytest.mark.parametrize("copy", [True, False])
def test_variance_correctness(copy):
    """Check the accuracy of PCA's internal variance calculation"""
    rng = np.random.RandomState(0)
    X = rng.randn(1000, 200)
    pca = nl.linalg.pca(X, 200, random_state=0)  # PCA() keeps min(n_samples, n_features)
    pca_var = pca.explained_variance_ / pca.explained_variance_ratio_
    true_var = np.var(X, ddof=1, axis=0).sum()
    np.testing.assert_allclose(pca_var, true_var)
