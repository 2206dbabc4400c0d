"""Slow, obviously right float64 references, one per op, and the tolerances derived from them."""
from __future__ import annotations

import numpy as np


def matmul_ref(a, b):
    """numpy.matmul semantics by broadcasting and summing products, in float64."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    # (..., m, k, 1) * (..., 1, k, n) summed over k
    out = (a2[..., :, :, None] * b2[..., None, :, :]).sum(axis=-2)
    if a.ndim == 1:
        out = out[..., 0, :]
    if b.ndim == 1:
        out = out[..., 0]
    return out


def gemm_bound(a, b, dtype, c=None, alpha=1.0, beta=0.0):
    """Elementwise forward-error bound for ``alpha*a@b + beta*c`` computed in ``dtype``.

    The classical bound for a length-k dot product, |fl(x.y) - x.y| <= gamma_k |x|.|y| with
    gamma_k = k u / (1 - k u), any summation order, plus rounding of the alpha/beta update.
    """
    u = np.finfo(dtype).eps / 2
    k = np.shape(a)[-1]
    gamma = (k + 2) * u / (1 - (k + 2) * u)
    bound = gamma * abs(alpha) * np.abs(matmul_ref_fast(a, b))
    if c is not None and beta != 0:
        bound = bound + 2 * u * abs(beta) * np.abs(np.asarray(c, np.float64))
    return bound + np.finfo(dtype).tiny


def matmul_ref_fast(a, b):
    """|a| @ |b| in float64 via numpy (for bounds only)."""
    return np.matmul(np.abs(np.asarray(a, np.float64)), np.abs(np.asarray(b, np.float64)))


def assert_matmul_close(got, a, b, *, ref=None, c0=None, alpha=1.0, beta=0.0):
    """Check ``got`` against the float64 reference within the dtype/k-derived bound."""
    got = np.asarray(got)
    if ref is None:
        ref = alpha * (matmul_ref(a, b) if np.size(a) * np.shape(b)[-1] <= 4_000_000 else
                       np.matmul(np.asarray(a, np.float64), np.asarray(b, np.float64)))
        if c0 is not None and beta != 0:
            ref = ref + beta * np.asarray(c0, np.float64)
    bound = gemm_bound(a, b, got.dtype, c0, alpha, beta)
    err = np.abs(got.astype(np.float64) - ref)
    assert got.shape == np.shape(ref), (got.shape, np.shape(ref))
    assert np.all(np.isfinite(got)), "non-finite values in result"
    worst = np.max(err / bound) if err.size else 0.0
    assert worst <= 1.0, f"error {worst:.3g}x over the bound (max abs err {err.max():.3g})"
