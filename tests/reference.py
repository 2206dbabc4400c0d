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


def conv2d_ref(x, w, b=None, *, stride=1, padding=0, dilation=1, groups=1, layout="NCHW", dy=None):
    """torch.nn.functional.conv2d in float64 (explicit asymmetric padding for 'same'), and with
    ``dy`` its autograd gradients; NHWC by transposing to NCHW and back. Returns a dict."""
    import torch
    import torch.nn.functional as F

    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    if layout == "NHWC":
        x, w = x.transpose(0, 3, 1, 2), w.transpose(3, 2, 0, 1)
    R, S = w.shape[2:]
    dh, dw = pair(dilation)
    if padding == "same":
        th, tw = dh * (R - 1), dw * (S - 1)
        pads = (tw // 2, tw - tw // 2, th // 2, th - th // 2)  # F.pad order: left, right, top, bottom
    elif padding == "valid":
        pads = (0, 0, 0, 0)
    else:
        ph, pw = pair(padding)
        pads = (pw, pw, ph, ph)
    tx = torch.tensor(x, requires_grad=True)
    tw_ = torch.tensor(w, requires_grad=True)
    tb = None if b is None else torch.tensor(np.asarray(b, np.float64), requires_grad=True)
    y = F.conv2d(F.pad(tx, pads), tw_, tb, stride=pair(stride), dilation=(dh, dw), groups=groups)
    out = {}
    to_layout = (lambda t: t.transpose(0, 2, 3, 1)) if layout == "NHWC" else (lambda t: t)  # noqa: E731
    out["y"] = to_layout(y.detach().numpy())
    if dy is not None:
        g = np.asarray(dy, np.float64)
        g = g.transpose(0, 3, 1, 2) if layout == "NHWC" else g
        y.backward(torch.tensor(g))
        out["dx"] = to_layout(tx.grad.numpy())
        out["dw"] = tw_.grad.numpy().transpose(2, 3, 1, 0) if layout == "NHWC" else tw_.grad.numpy()
        out["db"] = g.sum(axis=(0, 2, 3))
    return out


def assert_equal_non_finite(got, want, tol: float = 1e-12):
    """``got`` equals ``want`` NaN for NaN and inf for inf, its finite values within ``tol``
    (relative and absolute)."""
    got, want = np.asarray(got), np.asarray(want)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def max_pool_ref(x, kernel, stride, padding):
    """Max pooling of NCHW ``x``, window by window: ``(y, argmax)`` with argmax the flat index
    ``h * W + w`` in the plane of the window's first NaN if it holds one, else of its first
    maximum (row-major scan; padding never wins)."""
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    P, Q = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    y = np.empty((N, C, P, Q), x.dtype)
    arg = np.empty((N, C, P, Q), np.int64)
    for n, c, p, q in np.ndindex(N, C, P, Q):
        cells = [(h, w) for h in range(p * sh - ph, p * sh - ph + kh) for w in range(q * sw - pw, q * sw - pw + kw)
                 if 0 <= h < H and 0 <= w < W]
        vals = [x[n, c, h, w] for h, w in cells]
        nan = [i for i, v in enumerate(vals) if v != v]
        i = nan[0] if nan else int(np.argmax(vals))  # np.argmax: the first maximum
        y[n, c, p, q] = vals[i]
        arg[n, c, p, q] = cells[i][0] * W + cells[i][1]
    return y, arg
