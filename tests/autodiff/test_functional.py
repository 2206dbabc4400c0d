"""The functional face beyond ``grad``: ``nl.jacobian``, ``nl.hessian``, ``nl.jvp``, ``nl.hvp``
(JAX's conventions) against analytical results, PyTorch's ``torch.autograd.functional`` in
float64, and central finite differences; argument handling, errors, the CUDA backend, and the
docstring examples."""
from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch

import numlin as nl
from numlin.autodiff import functional, tape

T = torch.float64


def _t(a):
    return torch.tensor(np.asarray(a), dtype=T)


def _tol(dtype):
    return dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)


def _close(got, want, dtype=np.float64):
    assert isinstance(got, nl.Tensor), type(got)
    want = want.numpy() if isinstance(want, torch.Tensor) else np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == dtype, (got.dtype, dtype)
    np.testing.assert_allclose(got.numpy(), want, **_tol(dtype))


@pytest.fixture
def W(rng):
    return rng.standard_normal((4, 3))


def _pair(W):
    """The same map written for numlin and for torch: R^3 -> R^4 (and a scalar objective)."""
    Wt = _t(W)
    return (lambda x: nl.tanh(nl.matmul(W, x)) * nl.sum(nl.sin(x)),
            lambda x: torch.tanh(Wt @ x) * torch.sin(x).sum())


# --------------------------------------------------------------------------- names
def test_top_level_names():
    for name in ("jacobian", "hessian", "jvp", "hvp"):
        assert getattr(nl, name) is getattr(functional, name)
        assert name in nl.__all__ and name in nl.autodiff.__all__


def test_docstring_examples_run():
    for mod in (functional, tape):
        res = doctest.testmod(mod, extraglobs={"nl": nl, "np": np}, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert res.attempted > 0 and res.failed == 0, (mod.__name__, res)


# --------------------------------------------------------------------------- jacobian
def test_jacobian_analytical(W):
    x = np.array([0.3, -1.0, 2.0])
    _close(nl.jacobian(lambda x: nl.matmul(W, x))(x), W)
    _close(nl.jacobian(lambda x: nl.sum(x ** 3))(x), 3 * x ** 2)
    _close(nl.jacobian(lambda x: x * x)(x), np.diag(2 * x))
    s = np.exp(x) / np.exp(x).sum()
    got = nl.jacobian(lambda x: nl.exp(nl.autodiff.log_softmax(x)))(x)
    np.testing.assert_allclose(got.numpy(), np.diag(s) - np.outer(s, s), rtol=1e-12, atol=1e-15)


def test_jacobian_against_torch(rng, W):
    nl_f, t_f = _pair(W)
    x = rng.standard_normal(3)
    _close(nl.jacobian(nl_f)(x), torch.autograd.functional.jacobian(t_f, _t(x)))


@pytest.mark.parametrize("xshape,oshape", [((), ()), ((3,), ()), ((), (2,)), ((2, 3), (4,)), ((3,), (2, 2)),
                                           ((2, 2), (1, 3))])
def test_jacobian_shapes(rng, xshape, oshape):
    n, m = int(np.prod(xshape)), int(np.prod(oshape))
    M = rng.standard_normal((m, n))

    def f(x):
        return nl.reshape(nl.sin(nl.matmul(M, nl.reshape(x, (n,)))), oshape)

    def tf(x):
        return torch.sin(_t(M) @ x.reshape(n)).reshape(oshape)

    x = rng.standard_normal(xshape)
    want = torch.autograd.functional.jacobian(tf, _t(x))
    _close(nl.jacobian(f)(x), want)
    assert want.shape == oshape + xshape


def test_jacobian_argnums_and_structured_outputs(rng):
    a, b = rng.standard_normal(2), rng.standard_normal(3)

    def f(a, b, scale=1.0):
        return nl.sum(a) * b * scale, nl.multiply(a, a)  # (a may be a plain array: argnums=-1)

    def tf(a, b):
        return a.sum() * b, a * a

    ja = nl.jacobian(f)(a, b)  # argnums=0: per output, one Jacobian
    assert isinstance(ja, tuple) and len(ja) == 2
    want = torch.autograd.functional.jacobian(tf, (_t(a), _t(b)))  # want[out][arg]
    _close(ja[0], want[0][0])
    _close(ja[1], want[1][0])
    jab = nl.jacobian(f, argnums=(0, 1))(a, b, scale=1.0)
    for o in range(2):
        assert isinstance(jab[o], tuple) and len(jab[o]) == 2
        for i in range(2):
            _close(jab[o][i], want[o][i])
    jb = nl.jacobian(f, argnums=-1)(a, b)
    _close(jb[1], np.zeros((2, 3)))  # a * a does not depend on b: zeros, not None
    jd = nl.jacobian(lambda x: {"sq": x * x, "id": [x]})(a)
    _close(jd["sq"], np.diag(2 * a))
    _close(jd["id"][0], np.eye(2))


def test_jacobian_args_are_distinct_and_callers_untouched():
    t = nl.Tensor(np.array([1.0, 2.0]))
    ja, jb = nl.jacobian(lambda x, y: x * y, (0, 1))(t, t)
    _close(ja, np.diag([1.0, 2.0]))
    _close(jb, np.diag([1.0, 2.0]))
    v = nl.Variable(np.array([1.0, 2.0]))
    _close(nl.jacobian(lambda x: x * 3.0)(v), 3 * np.eye(2))
    assert float(v.numpy()[0]) == 1.0


def test_jacobian_dtype_float32(rng, W):
    x = rng.standard_normal(3).astype(np.float32)
    W32 = W.astype(np.float32)
    _close(nl.jacobian(lambda x: nl.matmul(W32, x))(x), W32, np.float32)


def test_jacobian_composes_to_a_hessian(rng):
    x = rng.standard_normal(3)
    f = lambda x: nl.sum(nl.exp(x) * nl.sin(x))  # noqa: E731
    np.testing.assert_allclose(nl.jacobian(nl.jacobian(f))(x).numpy(), nl.hessian(f)(x).numpy(), rtol=1e-13)
    np.testing.assert_allclose(nl.jacobian(nl.grad(f))(x).numpy(), nl.hessian(f)(x).numpy(), rtol=1e-13)


# --------------------------------------------------------------------------- hessian
def test_hessian_analytical():
    x = np.array([0.5, -1.0, 2.0])
    _close(nl.hessian(lambda x: nl.sum(x ** 3))(x), np.diag(6 * x))
    A = np.array([[2.0, 1.0, 0.0], [1.0, 3.0, -1.0], [0.0, -1.0, 4.0]])
    _close(nl.hessian(lambda x: nl.sum(x * nl.matmul(A, x)) * 0.5)(x), A)
    _close(nl.hessian(lambda x: x * x * x)(np.array(2.0)), np.array(12.0))  # 0-d: shape ()


@pytest.mark.parametrize("shape", [(3,), (2, 2), ()])
def test_hessian_against_torch(rng, shape):
    n = int(np.prod(shape))
    M = rng.standard_normal((4, n))

    def f(x):
        h = nl.tanh(nl.matmul(M, nl.reshape(x, (n,))))
        return nl.sum(h * h) + nl.sum(nl.exp(x) * x)

    def tf(x):
        h = torch.tanh(_t(M) @ x.reshape(n))
        return (h * h).sum() + (torch.exp(x) * x).sum()

    x = rng.standard_normal(shape)
    want = torch.autograd.functional.hessian(tf, _t(x))
    assert tuple(want.shape) == shape + shape
    _close(nl.hessian(f)(x), want)


def test_hessian_tuple_argnums_nested_like_jax(rng):
    a, b = rng.standard_normal(2), rng.standard_normal(3)

    def f(a, b):
        return nl.sum(nl.sin(a)) * nl.sum(b * b) + nl.sum(a * a) * nl.sum(b)

    def tf(a, b):
        return torch.sin(a).sum() * (b * b).sum() + (a * a).sum() * b.sum()

    h = nl.hessian(f, argnums=(0, 1))(a, b)
    want = torch.autograd.functional.hessian(tf, (_t(a), _t(b)))
    for i in range(2):
        for j in range(2):
            _close(h[i][j], want[i][j])
    _close(nl.hessian(f, argnums=1)(a, b), want[1][1])


def test_hessian_of_non_scalar_f_stacks_per_output(rng):
    """Like JAX: an output of shape o gives o + s + s, each output element's Hessian."""
    x = rng.standard_normal(3)
    h = nl.hessian(lambda x: x ** 3)(x)
    want = np.zeros((3, 3, 3))
    for i in range(3):
        want[i, i, i] = 6 * x[i]
    _close(h, want)


def test_hessian_of_a_linear_function_is_zero(W):
    h = nl.hessian(lambda x: nl.sum(nl.matmul(W, x)))(np.ones(3))
    _close(h, np.zeros((3, 3)))


# --------------------------------------------------------------------------- jvp
def test_jvp_against_torch_and_analytical(rng, W):
    nl_f, t_f = _pair(W)
    x, v = rng.standard_normal(3), rng.standard_normal(3)
    out, tan = nl.jvp(nl_f, (x,), (v,))
    want_out, want_tan = torch.autograd.functional.jvp(t_f, _t(x), _t(v))
    _close(out, want_out)
    _close(tan, want_tan)
    _, tan = nl.jvp(lambda x: nl.matmul(W, x), [x], [v])  # lists accepted
    _close(tan, W @ v)


def test_jvp_several_primals_and_structured_output(rng):
    a, b = rng.standard_normal((2, 3)), rng.standard_normal(3)
    va, vb = rng.standard_normal((2, 3)), rng.standard_normal(3)

    def f(a, b):
        return nl.tanh(a @ b), {"s": nl.sum(a * a) * b}

    def tf(a, b):
        return torch.tanh(a @ b), (a * a).sum() * b

    out, tan = nl.jvp(f, (a, b), (va, vb))
    w_out, w_tan = torch.autograd.functional.jvp(tf, (_t(a), _t(b)), (_t(va), _t(vb)))
    assert isinstance(out, tuple) and isinstance(tan, tuple) and set(tan[1]) == {"s"}
    _close(out[0], w_out[0])
    _close(tan[0], w_tan[0])
    _close(tan[1]["s"], w_tan[1])


def test_jvp_against_finite_differences(rng):
    M = rng.standard_normal((3, 4))

    def f(x, y):
        return nl.log(1.0 + nl.exp(nl.matmul(M, x))) * nl.sum(y * y)

    x, y = rng.standard_normal(4), rng.standard_normal(2)
    vx, vy = rng.standard_normal(4), rng.standard_normal(2)
    _, tan = nl.jvp(f, (x, y), (vx, vy))
    eps = 1e-6
    fd = (f(nl.Tensor(x + eps * vx), nl.Tensor(y + eps * vy)).numpy()
          - f(nl.Tensor(x - eps * vx), nl.Tensor(y - eps * vy)).numpy()) / (2 * eps)
    np.testing.assert_allclose(tan.numpy(), fd, rtol=1e-6, atol=1e-8)


def test_jvp_is_jacobian_times_tangent(rng, W):
    nl_f, _ = _pair(W)
    x, v = rng.standard_normal(3), rng.standard_normal(3)
    J = nl.jacobian(nl_f)(x).numpy()
    np.testing.assert_allclose(nl.jvp(nl_f, (x,), (v,))[1].numpy(), J @ v, rtol=1e-12, atol=1e-14)


def test_jvp_scalars_identity_and_unconnected():
    out, tan = nl.jvp(lambda x: x * x, (3.0,), (1.0,))
    assert out.shape == () and float(out) == 9.0 and float(tan) == 6.0
    _, tan = nl.jvp(lambda x: x, (np.ones(2),), (np.array([2.0, 3.0]),))
    _close(tan, [2.0, 3.0])
    _, tan = nl.jvp(lambda x, y: y * 2.0, (np.ones(2), np.ones(3)), (np.ones(2), np.full(3, 0.5)))
    _close(tan, np.ones(3))
    c = nl.Tensor(np.ones(2))
    _, tan = nl.jvp(lambda x: c * 1.0, (np.ones(2),), (np.ones(2),))  # output independent of x
    _close(tan, np.zeros(2))


def test_jvp_float32(rng, W):
    W32 = W.astype(np.float32)
    x, v = rng.standard_normal(3).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    out, tan = nl.jvp(lambda x: nl.tanh(nl.matmul(W32, x)), (x,), (v,))
    y = np.tanh(W.astype(np.float64) @ x)
    _close(tan, ((1 - y * y) * (W @ v.astype(np.float64))).astype(np.float32), np.float32)
    _, tan = nl.jvp(lambda x: x * 2.0, (np.float32(1.0),), (1.0,))  # a Python scalar takes the primal's dtype
    assert tan.dtype == np.float32 and float(tan) == 2.0


def test_jvp_composes_with_an_outer_tape(rng):
    """jvp's result is recorded: its gradient with respect to a closed-over Variable is right."""
    w = nl.Variable(np.array([0.5, -0.3]))
    x, v = np.array([1.0, 2.0]), np.array([0.7, 0.1])
    with nl.GradientTape() as g:
        _, tan = nl.jvp(lambda x: nl.sin(w * x), (x,), (v,))  # tan = cos(w x) * w * v
        s = nl.sum(tan)
    gw = g.gradient(s, w).numpy()
    wn = w.numpy()
    want = (-np.sin(wn * x) * x * wn + np.cos(wn * x)) * v
    np.testing.assert_allclose(gw, want, rtol=1e-12)


# --------------------------------------------------------------------------- hvp
def test_hvp_against_torch_and_hessian(rng):
    M = rng.standard_normal((4, 3))

    def f(x):
        h = nl.tanh(nl.matmul(M, x))
        return nl.sum(h * h) + nl.sum(x ** 4)

    def tf(x):
        h = torch.tanh(_t(M) @ x)
        return (h * h).sum() + (x ** 4).sum()

    x, v = rng.standard_normal(3), rng.standard_normal(3)
    hv = nl.hvp(f, (x,), (v,))
    _close(hv, torch.autograd.functional.hvp(tf, _t(x), _t(v))[1])
    np.testing.assert_allclose(hv.numpy(), nl.hessian(f)(x).numpy() @ v, rtol=1e-12, atol=1e-13)
    _close(nl.hvp(lambda x: nl.sum(x ** 3), (x,), (v,)), 6 * x * v)


def test_hvp_several_primals(rng):
    a, b = rng.standard_normal((2, 2)), rng.standard_normal(2)
    va, vb = rng.standard_normal((2, 2)), rng.standard_normal(2)

    def f(a, b):
        return nl.sum(nl.exp(a @ b)) + nl.sum(a * a) * nl.sum(b)

    def tf(a, b):
        return torch.exp(a @ b).sum() + (a * a).sum() * b.sum()

    hv = nl.hvp(f, (a, b), (va, vb))
    want = torch.autograd.functional.hvp(tf, (_t(a), _t(b)), (_t(va), _t(vb)))[1]
    assert isinstance(hv, tuple) and len(hv) == 2
    _close(hv[0], want[0])
    _close(hv[1], want[1])


def test_hvp_of_linear_and_unconnected():
    _close(nl.hvp(lambda x: nl.sum(x * 2.0), (np.ones(3),), (np.ones(3),)), np.zeros(3))
    hv = nl.hvp(lambda x, y: nl.sum(x * x), (np.ones(2), np.ones(2)), (np.ones(2), np.ones(2)))
    _close(hv[0], 2 * np.ones(2))
    _close(hv[1], np.zeros(2))


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("op", ["jvp", "hvp"])
def test_vector_validation(op):
    fn = getattr(nl, op)
    f = lambda x: nl.sum(x * x)  # noqa: E731
    x = np.ones(3)
    with pytest.raises(ValueError, match=r"has shape \(2,\) but its primal has shape \(3,\)"):
        fn(f, (x,), (np.ones(2),))
    with pytest.raises(TypeError, match="dtype float32 but its primal has dtype float64"):
        fn(f, (x,), (np.ones(3, np.float32),))
    with pytest.raises(TypeError, match="must be tuples or lists"):
        fn(f, x, (x,))
    with pytest.raises(TypeError, match="must be tuples or lists"):
        fn(f, (x,), nl.Tensor(x))
    with pytest.raises(TypeError, match="same structure"):
        fn(f, (x,), (x, x))
    with pytest.raises(TypeError, match="integer dtype"):
        fn(f, (np.arange(3),), (np.ones(3),))
    with pytest.raises(TypeError, match="callable"):
        fn(None, (x,), (x,))
    with pytest.raises(TypeError, match="Tensor"):
        fn(lambda x: 3.0, (x,), (x,))


def test_hvp_refuses_a_vector_valued_function():
    with pytest.raises(ValueError, match=r"scalar.*shape \(3,\)"):
        nl.hvp(lambda x: x * x, (np.ones(3),), (np.ones(3),))


@pytest.mark.parametrize("op", ["jacobian", "hessian"])
def test_argnums_validation(op):
    fn = getattr(nl, op)
    f = lambda x, y: nl.sum(x * y)  # noqa: E731
    with pytest.raises(ValueError, match=f"{op}: argnums 2 out of range"):
        fn(f, 2)(np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match="out of range"):
        fn(f, (0, -3))(np.ones(2), np.ones(2))
    with pytest.raises(TypeError, match=f"{op}: argnums must be an int"):
        fn(f, True)
    with pytest.raises(TypeError, match="argnums must be an int"):
        fn(f, 1.0)
    with pytest.raises(ValueError, match="must not be empty"):
        fn(f, ())
    with pytest.raises(TypeError, match="callable"):
        fn(3)
    with pytest.raises(TypeError, match=f"{op}: argument 0 has integer dtype int64"):
        fn(f)(np.arange(2), np.ones(2))
    with pytest.raises(TypeError, match="output"):
        fn(lambda x: None)(np.ones(2))


def test_tangent_on_another_device():
    with pytest.raises(TypeError, match="is on cuda but its primal is on cpu"):
        nl.jvp(lambda x: x, (np.ones(2),), (nl.Tensor(np.ones(2), device="cuda"),))


# --------------------------------------------------------------------------- CUDA (simulator without a GPU)
def test_functional_on_cuda(rng):
    M = rng.standard_normal((2, 3))
    x0, v0 = rng.standard_normal(3), rng.standard_normal(3)

    def run(dev):
        Md = nl.Tensor(M, device=dev)
        x, v = nl.Tensor(x0, device=dev), nl.Tensor(v0, device=dev)
        f = lambda x: nl.tanh(nl.matmul(Md, x))  # noqa: E731
        s = lambda x: nl.sum(nl.exp(x) * x)  # noqa: E731
        return (nl.jacobian(f)(x), nl.jvp(f, (x,), (v,))[1], nl.hvp(s, (x,), (v0,)), nl.hessian(s)(x))

    cpu, gpu = run("cpu"), run("cuda")
    for got, want in zip(gpu, cpu):
        assert got.device == "cuda" and got.shape == want.shape
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------- through the heavy ops
def test_jvp_and_hvp_through_conv_pool_and_cross_entropy(rng):
    """The double-vjp jvp and the reverse-over-reverse hvp need conv2d's, the pools' and
    cross-entropy's backwards to be differentiable; against torch in float64."""
    x0 = rng.standard_normal((2, 1, 6, 6))
    w0 = rng.standard_normal((3, 1, 3, 3))
    v0 = rng.standard_normal(w0.shape)
    labels = np.array([1, 4])

    def f(w):
        h = nl.relu(nl.conv2d(x0, w, padding=1))
        h = nl.autodiff.max_pool2d(h, 2) + nl.autodiff.avg_pool2d(h, 2)
        return nl.autodiff.cross_entropy(nl.reshape(h, (2, 27)), labels)

    def tf(w):
        h = torch.relu(torch.nn.functional.conv2d(_t(x0), w, padding=1))
        h = torch.nn.functional.max_pool2d(h, 2) + torch.nn.functional.avg_pool2d(h, 2)
        return torch.nn.functional.cross_entropy(h.reshape(2, 27), torch.tensor(labels))

    out, tan = nl.jvp(f, (w0,), (v0,))
    hv = nl.hvp(f, (w0,), (v0,))
    w_out, w_tan = torch.autograd.functional.jvp(tf, _t(w0), _t(v0))
    _close(out, w_out)
    np.testing.assert_allclose(tan.numpy(), w_tan.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(hv.numpy(), torch.autograd.functional.hvp(tf, _t(w0), _t(v0))[1].numpy(),
                               rtol=1e-10, atol=1e-12)
