"""Second and third derivatives through the ops with dedicated backward kernels (conv2d, max and
average pooling, fused softmax cross-entropy) against PyTorch's double backward
(``torch.autograd.grad(..., create_graph=True)``, float64), then the CUDA backend against the CPU
on the same data (the simulator without a GPU, so tiny sizes there).

What is checked per op: Hessian-vector products ``d/dz <grad f(z), v>`` over all inputs at once
(they include the mixed x/w blocks of conv2d), mixed derivatives of functions linear in each
argument (where the seed of a backward kernel does not depend on the input, so only the backward
op's own vjp is exercised), and a third derivative through nested tapes.
"""
from __future__ import annotations

import numpy as np
import pytest

import numlin as nl
from numlin.kernels.cpu import pool as cpool
from tests.conftest import HAS_GPU

torch = pytest.importorskip("torch")
F = torch.nn.functional

pytestmark = [pytest.mark.filterwarnings("ignore::RuntimeWarning"),  # the simulator's inf arithmetic
              pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")]  # PyTorch's, on a copy


# --------------------------------------------------------------------------- helpers
def _tol(dtype) -> float:
    """Relative tolerance for results of a few hundred accumulated products in ``dtype``."""
    return 1000 * float(np.finfo(dtype).eps)


def _close(got, want, dtype=np.float64):
    """``got`` within ``_tol(dtype)`` of ``want``, relative to the largest entry of ``want``."""
    got, want = np.asarray(got), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    err = float(np.abs(got - want).max(initial=0.0))
    assert err <= _tol(dtype) * scale, f"max abs error {err:.3g} > {_tol(dtype):.3g} * {scale:.3g}"


def _nl_hvp(f, args, u, vs, device=None, dtype=np.float64):
    """numlin: gradients of ``L = sum(f(*args) * u)`` and ``d/dargs sum_i <dL/dargs_i, vs_i>``,
    by two nested tapes."""
    ts = [nl.Tensor(np.asarray(a, dtype), device=device) for a in args]
    ut = nl.Tensor(np.asarray(u, dtype), device=device)
    vt = [nl.Tensor(np.asarray(v, dtype), device=device) for v in vs]
    with nl.GradientTape() as outer:
        outer.watch(ts)
        with nl.GradientTape() as inner:
            inner.watch(ts)
            loss = nl.sum(f(*ts) * ut)
        gs = inner.gradient(loss, ts)
        s = nl.sum(gs[0] * vt[0])
        for g, v in zip(gs[1:], vt[1:]):
            s = s + nl.sum(g * v)
    hs = outer.gradient(s, ts, unconnected_gradients="zero")
    return [g.numpy() for g in gs], [h.numpy() for h in hs]


def _torch_hvp(f, args, u, vs):
    """PyTorch's double backward of the same quantities as :func:`_nl_hvp`."""
    ts = [torch.tensor(np.asarray(a, np.float64), requires_grad=True) for a in args]
    loss = (f(*ts) * torch.tensor(u)).sum()
    gs = torch.autograd.grad(loss, ts, create_graph=True)
    s = sum((g * torch.tensor(v)).sum() for g, v in zip(gs, vs))
    hs = torch.autograd.grad(s, ts, allow_unused=True)
    hs = [torch.zeros_like(t) if h is None else h for t, h in zip(ts, hs)]
    return [g.detach().numpy() for g in gs], [h.numpy() for h in hs]


def _compare_hvp(rng, f_nl, f_torch, args, dtype=np.float64):
    """Draw the seed ``u`` and directions ``vs``, then compare gradients and HVPs with PyTorch."""
    y = f_torch(*[torch.tensor(np.asarray(a, np.float64)) for a in args])
    u = rng.standard_normal(tuple(y.shape))
    vs = [rng.standard_normal(np.shape(a)) for a in args]
    g_nl, h_nl = _nl_hvp(f_nl, args, u, vs, dtype=dtype)
    g_t, h_t = _torch_hvp(f_torch, args, u, vs)
    for got, want in zip(g_nl + h_nl, g_t + h_t):
        _close(got, want, dtype)
    return h_t


# --------------------------------------------------------------------------- conv2d
def _torch_conv(layout, **kw):
    """PyTorch's conv2d taking numlin's operand layouts (NHWC x, RSCK w, and output)."""
    if layout == "NCHW":
        return lambda x, w, b=None: F.conv2d(x, w, b, **kw)
    return lambda x, w, b=None: F.conv2d(x.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1), b, **kw).permute(0, 2, 3, 1)


def _shapes(layout, N, C, H, W, K, R, S, groups):
    x = (N, C, H, W) if layout == "NCHW" else (N, H, W, C)
    w = (K, C // groups, R, S) if layout == "NCHW" else (R, S, C // groups, K)
    return x, w


# (layout, N, C, H, W, K, R, S, conv kwargs): strides, paddings, dilations, groups, depthwise,
# pointwise, "same" with an odd total padding, "valid", both layouts (PyTorch takes the same
# keywords; its "same" also puts the odd padding row at the end)
CONV_CASES = {
    "plain": ("NCHW", 2, 3, 6, 5, 4, 3, 3, dict()),
    "stride2_pad1": ("NCHW", 2, 3, 7, 7, 4, 3, 3, dict(stride=2, padding=1)),
    "mixed_geometry": ("NCHW", 1, 2, 9, 8, 3, 3, 2, dict(stride=(2, 1), padding=(1, 2), dilation=(2, 1))),
    "groups2": ("NCHW", 2, 4, 6, 6, 6, 3, 3, dict(padding=1, groups=2)),
    "depthwise": ("NCHW", 2, 3, 6, 7, 3, 3, 3, dict(padding=1, groups=3)),
    "depthwise_multiplier_strided": ("NCHW", 1, 3, 7, 7, 6, 3, 3, dict(stride=2, padding=1, groups=3)),
    "same_even_kernel_dilated": ("NCHW", 1, 2, 6, 7, 3, 2, 4, dict(padding="same", dilation=2)),
    "valid": ("NCHW", 1, 2, 5, 6, 3, 2, 3, dict(padding="valid")),
    "pointwise": ("NCHW", 2, 3, 4, 5, 4, 1, 1, dict()),
    "nhwc_stride2_pad1": ("NHWC", 2, 3, 7, 6, 4, 3, 3, dict(stride=2, padding=1)),
    "nhwc_groups2_dilated": ("NHWC", 1, 4, 7, 7, 4, 3, 3, dict(padding=2, dilation=2, groups=2)),
    "nhwc_same": ("NHWC", 1, 3, 5, 6, 2, 3, 2, dict(padding="same")),
    "nhwc_depthwise": ("NHWC", 1, 3, 6, 6, 3, 3, 3, dict(padding=1, groups=3)),
}


@pytest.mark.parametrize("case", list(CONV_CASES))
def test_conv2d_hessian_vector_products_match_torch(rng, case):
    layout, N, C, H, W, K, R, S, kw = CONV_CASES[case]
    xs, ws = _shapes(layout, N, C, H, W, K, R, S, kw.get("groups", 1))
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws) * 0.5, rng.standard_normal(K)
    conv_t = _torch_conv(layout, **kw)
    h_t = _compare_hvp(rng, lambda x, w, b: nl.tanh(nl.conv2d(x, w, b, layout=layout, **kw)),
                       lambda x, w, b: torch.tanh(conv_t(x, w, b)), [x, w, b])
    assert all(np.abs(h).max() > 1e-3 for h in h_t)  # every block of the HVP is exercised


@pytest.mark.parametrize("case", ["stride2_pad1", "mixed_geometry", "groups2", "depthwise", "pointwise",
                                  "same_even_kernel_dilated", "nhwc_stride2_pad1", "nhwc_groups2_dilated"])
def test_conv2d_mixed_derivatives_of_the_bilinear_map_match_torch(rng, case):
    """``L = <u, conv2d(x, w)>`` is linear in each operand: ``d/dw <dL/dx, v>`` and
    ``d/dx <dL/dw, m>`` come from the input- and filter-gradient ops' own vjps alone, and
    ``d/du`` of them from the convolution."""
    layout, N, C, H, W, K, R, S, kw = CONV_CASES[case]
    xs, ws = _shapes(layout, N, C, H, W, K, R, S, kw.get("groups", 1))
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    conv_t = _torch_conv(layout, **kw)
    u = rng.standard_normal(tuple(conv_t(torch.tensor(x), torch.tensor(w)).shape))
    v, m = rng.standard_normal(xs), rng.standard_normal(ws)

    xt, wt, ut = nl.Tensor(x), nl.Tensor(w), nl.Tensor(u)
    with nl.GradientTape(persistent=True) as outer:
        outer.watch([xt, wt, ut])
        with nl.GradientTape() as inner:
            inner.watch([xt, wt])
            loss = nl.sum(nl.conv2d(xt, wt, layout=layout, **kw) * ut)
        gx, gw = inner.gradient(loss, [xt, wt])
        sx, sw = nl.sum(gx * v), nl.sum(gw * m)
    got = outer.gradient(sx, [wt, ut]) + outer.gradient(sw, [xt, ut])

    tx, tw, tu = (torch.tensor(a, requires_grad=True) for a in (x, w, u))
    tgx, tgw = torch.autograd.grad((conv_t(tx, tw) * tu).sum(), [tx, tw], create_graph=True)
    want = (torch.autograd.grad((tgx * torch.tensor(v)).sum(), [tw, tu], retain_graph=True)
            + torch.autograd.grad((tgw * torch.tensor(m)).sum(), [tx, tu]))
    for a, b in zip(got, want):
        _close(a.numpy(), b.numpy())


def test_conv2d_third_derivative_by_three_tapes_matches_torch(rng):
    """``d/dx <d/dw <d/dx L, v1>, v2>`` of ``L = <u, conv2d(x, w)^3>``: the backward ops'
    backward ops are differentiated again."""
    kw = dict(stride=2, padding=1, groups=2)
    x, w = rng.standard_normal((1, 4, 6, 6)), rng.standard_normal((4, 2, 3, 3)) * 0.5
    u = rng.standard_normal((1, 4, 3, 3))
    v1, v2 = rng.standard_normal(x.shape), rng.standard_normal(w.shape)

    xt, wt = nl.Tensor(x), nl.Tensor(w)
    with nl.GradientTape() as t3:
        t3.watch(xt)
        with nl.GradientTape() as t2:
            t2.watch(wt)
            with nl.GradientTape() as t1:
                t1.watch(xt)
                loss = nl.sum(nl.conv2d(xt, wt, **kw) ** 3 * u)
            s1 = nl.sum(t1.gradient(loss, xt) * v1)
        s2 = nl.sum(t2.gradient(s1, wt) * v2)
    got = t3.gradient(s2, xt).numpy()

    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    tl = (F.conv2d(tx, tw, **kw) ** 3 * torch.tensor(u)).sum()
    (g1,) = torch.autograd.grad(tl, tx, create_graph=True)
    (g2,) = torch.autograd.grad((g1 * torch.tensor(v1)).sum(), tw, create_graph=True)
    (want,) = torch.autograd.grad((g2 * torch.tensor(v2)).sum(), tx)
    assert np.abs(want.numpy()).max() > 1e-2
    _close(got, want.numpy())


def test_conv2d_second_derivative_in_float32_matches_torch(rng):
    layout, N, C, H, W, K, R, S, kw = CONV_CASES["stride2_pad1"]
    xs, ws = _shapes(layout, N, C, H, W, K, R, S, 1)
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws) * 0.3, rng.standard_normal(K)
    _compare_hvp(rng, lambda x, w, b: nl.tanh(nl.conv2d(x, w, b, **kw)),
                 lambda x, w, b: torch.tanh(F.conv2d(x, w, b, **kw)), [x, w, b], dtype=np.float32)


def test_conv2d_second_derivatives_match_finite_differences(rng):
    x, w = rng.standard_normal((1, 4, 5, 5)), rng.standard_normal((4, 2, 3, 3)) * 0.5
    nl.testing.check_grads(lambda x, w: nl.sigmoid(nl.conv2d(x, w, stride=(1, 2), padding=1, groups=2)),
                           [x, w], order=2, n_directions=2, random_state=rng)


def test_nl_grad_of_grad_through_conv2d(rng):
    """``nl.grad(nl.grad(f))`` of a scalar function of a scalar, through conv2d and its bias:
    ``f(a) = sum(tanh(conv2d(a x, w, a b)))``."""
    x, w, b = rng.standard_normal((1, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3)) * 0.3, rng.standard_normal(3)

    def f(a):
        return nl.sum(nl.tanh(nl.conv2d(x * a, w, b * a, padding=1)))

    got = float(nl.grad(nl.grad(f))(nl.constant(0.7)))
    ta = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    tf = torch.tanh(F.conv2d(torch.tensor(x) * ta, torch.tensor(w), torch.tensor(b) * ta, padding=1)).sum()
    (d1,) = torch.autograd.grad(tf, ta, create_graph=True)
    (d2,) = torch.autograd.grad(d1, ta)
    assert got == pytest.approx(float(d2), rel=_tol(np.float64), abs=_tol(np.float64))


# --------------------------------------------------------------------------- pooling
# (kernel, stride, padding)
POOL_CASES = [(2, None, 0), (2, 1, 0), (3, 2, 1), ((3, 2), (1, 2), (1, 0)), (2, 1, 1), (3, 3, 0)]


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("k,s,p", POOL_CASES, ids=str)
def test_pool_hessian_vector_products_match_torch(rng, kind, k, s, p):
    """``pool(x * x) ** 2``: the backward kernel's seed depends on x, so the second derivative
    goes through the backward op's vjp (the gather or average pooling itself)."""
    x = rng.standard_normal((2, 3, 7, 6))  # continuous draws: no ties between window entries
    nl_pool = nl.nn.max_pool2d if kind == "max" else nl.nn.avg_pool2d
    t_pool = F.max_pool2d if kind == "max" else F.avg_pool2d  # count_include_pad=True: numlin's rule
    st = k if s is None else s
    h_t = _compare_hvp(rng, lambda x: nl_pool(x * x, k, s, p) ** 2, lambda x: t_pool(x * x, k, st, p) ** 2, [x])
    assert np.abs(h_t[0]).max() > 1e-3


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("k,s,p", POOL_CASES[2:5], ids=str)
def test_pool_backward_ops_are_differentiated_twice(rng, kind, k, s, p):
    """``L = <y, pool(x)>``: ``dL/dx`` is the backward op applied to ``y`` alone, so
    ``d/dy <dL/dx, v>`` is the backward op's adjoint (max: the gather at the argmax; avg:
    average pooling) and ``d/dv`` of ``<d/dy <dL/dx, v>, z>`` its adjoint's adjoint."""
    x = rng.standard_normal((1, 2, 7, 6))
    nl_pool = nl.nn.max_pool2d if kind == "max" else nl.nn.avg_pool2d
    t_pool = F.max_pool2d if kind == "max" else F.avg_pool2d
    st = k if s is None else s
    y_shape = tuple(t_pool(torch.tensor(x), k, st, p).shape)
    y, v, z = rng.standard_normal(y_shape), rng.standard_normal(x.shape), rng.standard_normal(y_shape)

    xt, yt, vt = nl.Tensor(x), nl.Tensor(y), nl.Tensor(v)
    with nl.GradientTape() as t3:
        t3.watch(vt)
        with nl.GradientTape() as t2:
            t2.watch([yt, vt])
            with nl.GradientTape() as t1:
                t1.watch(xt)
                loss = nl.sum(nl_pool(xt, k, s, p) * yt)
            s1 = nl.sum(t1.gradient(loss, xt) * vt)
        gy = t2.gradient(s1, yt)
        s2 = nl.sum(gy * z)
    gv = t3.gradient(s2, vt)

    tx, ty, tv = (torch.tensor(a, requires_grad=True) for a in (x, y, v))
    (tgx,) = torch.autograd.grad((t_pool(tx, k, st, p) * ty).sum(), tx, create_graph=True)
    (tgy,) = torch.autograd.grad((tgx * tv).sum(), ty, create_graph=True)
    (tgv,) = torch.autograd.grad((tgy * torch.tensor(z)).sum(), tv)
    _close(gy.numpy(), tgy.detach().numpy())
    _close(gv.numpy(), tgv.numpy())


def test_max_pool_gather_is_the_adjoint_of_the_backward_scatter(rng):
    """``<scatter(g), h> = <g, gather(h)>`` on the CPU kernels, windows in the padding included."""
    x = rng.standard_normal((2, 3, 5, 6))
    for k, s, p in [((3, 3), (2, 2), (1, 1)), ((2, 2), (1, 1), (1, 1)), ((2, 3), (2, 1), (0, 1))]:
        y, arg = cpool.max_pool2d(x, k, s, p)
        g, h = rng.standard_normal(y.shape), rng.standard_normal(x.shape)
        gathered = cpool.max_pool2d_gather(h, arg, y.shape)
        np.testing.assert_array_equal(gathered, np.take_along_axis(h.reshape(2, 3, -1), arg.reshape(2, 3, -1),
                                                                   2).reshape(y.shape))
        lhs = float(np.sum(cpool.max_pool2d_backward(g, arg, x.shape) * h))
        assert lhs == pytest.approx(float(np.sum(g * gathered)), rel=_tol(np.float64))


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_second_derivatives_match_finite_differences(rng, kind):
    pool = nl.nn.max_pool2d if kind == "max" else nl.nn.avg_pool2d
    x = rng.standard_normal((1, 2, 5, 5))
    nl.testing.check_grads(lambda x: nl.tanh(pool(nl.sin(x), 3, 2, 1)), [x], order=2, n_directions=2,
                           random_state=rng)


# --------------------------------------------------------------------------- cross-entropy
@pytest.mark.parametrize("squared", [False, True], ids=["loss", "loss_squared"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_hessian_vector_products_match_torch(rng, reduction, squared):
    """Logits ``a @ b``: the HVP over both factors goes through the fused backward's recorded
    softmax; squared, the backward's seed depends on ``a`` and ``b`` too."""
    a, b = rng.standard_normal((5, 4)), rng.standard_normal((4, 6))
    labels = np.array([0, 5, 2, 2, 3])
    p = 2 if squared else 1
    h_t = _compare_hvp(rng, lambda a, b: nl.nn.cross_entropy(a @ b, labels, reduction) ** p,
                       lambda a, b: F.cross_entropy(a @ b, torch.tensor(labels), reduction=reduction) ** p, [a, b])
    assert all(np.abs(h).max() > 1e-3 for h in h_t)


def test_cross_entropy_mixed_derivative_in_the_seed_matches_torch(rng):
    """``L = <u, cross_entropy(x, reduction="none")>``: ``d/du <dL/dx, v>`` is
    ``<softmax(x) - onehot, v>`` per row, the backward op's vjp with respect to its seed."""
    x, u, v = rng.standard_normal((4, 3)), rng.standard_normal(4), rng.standard_normal((4, 3))
    labels = np.array([2, 0, 1, 2])
    xt, ut = nl.Tensor(x), nl.Tensor(u)
    with nl.GradientTape() as outer:
        outer.watch(ut)
        with nl.GradientTape() as inner:
            inner.watch(xt)
            loss = nl.sum(nl.nn.cross_entropy(xt, labels, "none") * ut)
        s = nl.sum(inner.gradient(loss, xt) * v)
    got = outer.gradient(s, ut).numpy()
    tx, tu = torch.tensor(x, requires_grad=True), torch.tensor(u, requires_grad=True)
    (g,) = torch.autograd.grad((F.cross_entropy(tx, torch.tensor(labels), reduction="none") * tu).sum(), tx,
                               create_graph=True)
    (want,) = torch.autograd.grad((g * torch.tensor(v)).sum(), tu)
    _close(got, want.numpy())


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_third_derivative_matches_torch(rng, reduction):
    """``d/dx <d/dx <d/dx L, v1>, v2>`` of the loss of logits ``x * x`` (whose square makes the
    seed of every backward depend on x)."""
    x, labels = rng.standard_normal((4, 5)), np.array([4, 0, 1, 1])
    v1, v2 = rng.standard_normal(x.shape), rng.standard_normal(x.shape)
    xt = nl.Tensor(x)
    with nl.GradientTape() as t3:
        t3.watch(xt)
        with nl.GradientTape() as t2:
            t2.watch(xt)
            with nl.GradientTape() as t1:
                t1.watch(xt)
                loss = nl.sum(nl.nn.cross_entropy(xt * xt, labels, reduction))
            s1 = nl.sum(t1.gradient(loss, xt) * v1)
        s2 = nl.sum(t2.gradient(s1, xt) * v2)
    got = t3.gradient(s2, xt).numpy()

    tx = torch.tensor(x, requires_grad=True)
    tl = F.cross_entropy(tx * tx, torch.tensor(labels), reduction=reduction).sum()
    (g1,) = torch.autograd.grad(tl, tx, create_graph=True)
    (g2,) = torch.autograd.grad((g1 * torch.tensor(v1)).sum(), tx, create_graph=True)
    (want,) = torch.autograd.grad((g2 * torch.tensor(v2)).sum(), tx)
    _close(got, want.numpy())


def test_cross_entropy_hvp_function_and_finite_differences(rng):
    x, labels = rng.standard_normal((3, 4)), np.array([1, 3, 0])
    v = rng.standard_normal(x.shape)
    got = nl.hvp(lambda t: nl.nn.cross_entropy(t, labels), (nl.Tensor(x),), (nl.Tensor(v),))
    tx = torch.tensor(x, requires_grad=True)
    (g,) = torch.autograd.grad(F.cross_entropy(tx, torch.tensor(labels)), tx, create_graph=True)
    (want,) = torch.autograd.grad((g * torch.tensor(v)).sum(), tx)
    _close(got.numpy() if isinstance(got, nl.Tensor) else got[0].numpy(), want.numpy())
    nl.testing.check_grads(lambda t: nl.nn.cross_entropy(t * 2.0, labels, "none"), [x], order=3,
                           n_directions=2, random_state=rng)


# --------------------------------------------------------------------------- a small network
def test_cnn_loss_hessian_vector_product_matches_torch(rng):
    """conv2d -> relu -> max pool -> conv2d (strided, grouped) -> avg pool -> cross-entropy,
    an HVP over the input and both filters."""
    x = rng.standard_normal((2, 2, 8, 8))
    w1, w2 = rng.standard_normal((4, 2, 3, 3)) * 0.4, rng.standard_normal((6, 2, 3, 3)) * 0.4
    labels = np.array([1, 5])

    def f_nl(x, w1, w2):
        h = nl.nn.max_pool2d(nl.tanh(nl.conv2d(x, w1, padding=1)), 2)
        h = nl.nn.avg_pool2d(nl.conv2d(h, w2, stride=1, padding=1, groups=2), 2, 2)
        return nl.nn.cross_entropy(nl.reshape(nl.mean(h, (2, 3)), (2, 6)), labels)

    def f_t(x, w1, w2):
        h = F.max_pool2d(torch.tanh(F.conv2d(x, w1, padding=1)), 2)
        h = F.avg_pool2d(F.conv2d(h, w2, stride=1, padding=1, groups=2), 2, 2)
        return F.cross_entropy(h.mean((2, 3)), torch.tensor(labels))

    _compare_hvp(rng, lambda *a: nl.reshape(f_nl(*a), (1,)), lambda *a: f_t(*a).reshape(1), [x, w1, w2])


# --------------------------------------------------------------------------- CUDA against the CPU
CUDA_CASES = {
    "conv_nchw": (lambda x, w: nl.tanh(nl.conv2d(x, w, stride=2, padding=1)), [(1, 2, 5, 5), (3, 2, 3, 3)]),
    "conv_groups_dilated": (lambda x, w: nl.tanh(nl.conv2d(x, w, padding="same", dilation=2, groups=2)),
                            [(1, 2, 5, 5), (2, 1, 2, 3)]),
    "conv_nhwc": (lambda x, w: nl.tanh(nl.conv2d(x, w, padding=1, layout="NHWC")), [(1, 5, 5, 2), (3, 3, 2, 2)]),
    "max_pool": (lambda x: nl.nn.max_pool2d(x * x, 3, 2, 1) ** 2, [(1, 2, 5, 5)]),
    "avg_pool": (lambda x: nl.nn.avg_pool2d(x * x, 3, 2, 1) ** 2, [(1, 2, 5, 5)]),
    "cross_entropy_mean": (lambda x: nl.nn.cross_entropy(x * x, np.array([0, 2, 1]), "mean"), [(3, 4)]),
    "cross_entropy_none_squared": (lambda x: nl.nn.cross_entropy(x * x, np.array([3, 2, 1]), "none") ** 2,
                                   [(3, 4)]),
}


@pytest.mark.parametrize("case,dtype", [(c, np.float64) for c in CUDA_CASES]
                         + [(c, np.float32) for c in ("conv_nchw", "max_pool", "avg_pool", "cross_entropy_mean")])
def test_second_derivatives_on_device_match_cpu(rng, case, dtype):
    f, shapes = CUDA_CASES[case]
    args = [rng.standard_normal(s) * 0.7 for s in shapes]
    y = f(*[nl.Tensor(np.asarray(a, dtype)) for a in args])
    u = rng.standard_normal(y.shape)
    vs = [rng.standard_normal(s) for s in shapes]
    g_cpu, h_cpu = _nl_hvp(f, args, u, vs, dtype=dtype)
    g_dev, h_dev = _nl_hvp(f, args, u, vs, device="cuda", dtype=dtype)
    for got, want in zip(g_dev + h_dev, g_cpu + h_cpu):
        assert got.dtype == want.dtype == dtype
        _close(got, want, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_max_pool_gather_on_device_matches_cpu(rng, dtype):
    from numba import cuda

    from numlin.kernels.cuda import pool as gpool

    x = rng.standard_normal((1, 2, 5, 5)).astype(dtype)
    h = rng.standard_normal(x.shape).astype(dtype)
    y, arg = cpool.max_pool2d(x, (3, 3), (2, 2), (1, 1))
    got = gpool.max_pool2d_gather(cuda.to_device(h), cuda.to_device(arg), y.shape).copy_to_host()
    np.testing.assert_array_equal(got, cpool.max_pool2d_gather(h, arg, y.shape))
    assert gpool.max_pool2d_gather(cuda.to_device(h[:0]), cuda.to_device(arg[:0]), (0, 2, 3, 3)).shape == (0, 2, 3, 3)
    with pytest.raises(ValueError, match="do not match"):  # h of another batch than the argmax
        gpool.max_pool2d_gather(cuda.to_device(h), cuda.to_device(arg[:0]), (0, 2, 3, 3))
    with pytest.raises(ValueError, match="do not match"):
        cpool.max_pool2d_gather(h, arg[:, :1], y.shape)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="needs a real CUDA GPU")
def test_second_derivatives_on_gpu_at_network_sizes(rng):
    x = rng.standard_normal((8, 16, 32, 32))
    w = rng.standard_normal((32, 16, 3, 3)) * 0.1

    def f(x, w):
        h = nl.nn.max_pool2d(nl.tanh(nl.conv2d(x, w, padding=1)), 2)
        return nl.nn.avg_pool2d(h, 2)

    y_shape = (8, 32, 8, 8)
    u, vs = rng.standard_normal(y_shape), [rng.standard_normal(x.shape), rng.standard_normal(w.shape)]
    g_cpu, h_cpu = _nl_hvp(f, [x, w], u, vs)
    g_dev, h_dev = _nl_hvp(f, [x, w], u, vs, device="cuda")
    for got, want in zip(g_dev + h_dev, g_cpu + h_cpu):
        _close(got, want)
