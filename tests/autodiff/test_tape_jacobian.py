"""``GradientTape.jacobian`` and ``GradientTape.batch_jacobian`` (TensorFlow's semantics): shapes
for 0-d to 3-d targets and sources, values against analytical Jacobians and PyTorch's
``torch.autograd.functional.jacobian`` (float64), structures of sources, unconnected sources,
persistence, nesting (Hessians), the number of reverse passes, errors, and the CUDA backend."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import numlin as nl
from numlin.autodiff.tape import GradientTape

DTYPES = [np.float64, np.float32]


def _tol(dtype):
    return dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)


def _close(got, want, dtype=np.float64):
    assert isinstance(got, nl.Tensor)
    got = got.numpy()
    want = np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == dtype, (got.dtype, dtype)
    np.testing.assert_allclose(got, want, **_tol(dtype))


def _mixing(rng, tshape, xshape, dtype):
    """``y = tanh(M @ x.ravel()).reshape(tshape)``: every target element depends on every source element."""
    m = int(np.prod(tshape, dtype=int))
    n = int(np.prod(xshape, dtype=int))
    M = rng.standard_normal((m, n)).astype(dtype)

    def nl_f(x):
        return nl.reshape(nl.tanh(nl.matmul(M, nl.reshape(x, (n,)))), tshape)

    def torch_f(x):
        return torch.tanh(torch.tensor(M, dtype=torch.float64) @ x.reshape(n)).reshape(tshape)

    return nl_f, torch_f


SHAPES = [((), ()), ((), (3,)), ((4,), ()), ((4,), (3,)), ((2, 3), (4,)), ((3,), (2, 2)), ((2, 2), (3, 2)),
          ((1,), (1,)), ((2, 1, 2), (1, 3))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tshape,xshape", SHAPES)
def test_jacobian_shapes_and_values_against_torch(rng, tshape, xshape, dtype):
    nl_f, torch_f = _mixing(rng, tshape, xshape, dtype)
    x0 = rng.standard_normal(xshape).astype(dtype)
    x = nl.Tensor(x0)
    with nl.GradientTape() as g:
        g.watch(x)
        y = nl_f(x)
    jac = g.jacobian(y, x)
    want = torch.autograd.functional.jacobian(torch_f, torch.tensor(x0, dtype=torch.float64)).numpy()
    assert want.shape == tshape + xshape
    _close(jac, want.astype(dtype), dtype)


def test_jacobian_analytical():
    x0 = np.array([0.5, -1.0, 2.0])
    x = nl.Tensor(x0)
    W = np.arange(12.0).reshape(4, 3) - 5
    with nl.GradientTape(persistent=True) as g:
        g.watch(x)
        cube = nl.sum(x ** 3)
        sq = x * x
        lin = nl.matmul(W, x)
        s = nl.exp(nl.autodiff.log_softmax(x))
    _close(g.jacobian(cube, x), 3 * x0 ** 2)
    _close(g.jacobian(sq, x), np.diag(2 * x0))
    _close(g.jacobian(lin, x), W)
    sm = np.exp(x0) / np.exp(x0).sum()
    np.testing.assert_allclose(g.jacobian(s, x).numpy(), np.diag(sm) - np.outer(sm, sm), rtol=1e-12, atol=1e-15)


def test_jacobian_of_matrix_product_is_a_kronecker_structure(rng):
    """y = X @ W with X (2, 3): d y[i, j] / d X[k, l] = delta_ik W[l, j]."""
    X = nl.Tensor(rng.standard_normal((2, 3)))
    W = rng.standard_normal((3, 4))
    with nl.GradientTape() as g:
        g.watch(X)
        y = X @ W
    want = np.einsum("ik,lj->ijkl", np.eye(2), W)
    _close(g.jacobian(y, X), want)


def test_jacobian_structures_of_sources():
    a = nl.Tensor(np.array([1.0, 2.0]))
    b = nl.Tensor(np.array(3.0))
    c = nl.Tensor(np.array([[1.0], [2.0]]))
    with nl.GradientTape(persistent=True) as g:
        g.watch([a, b, c])
        y = a * b + nl.reshape(c, (2,))
    jl = g.jacobian(y, [a, b])
    assert isinstance(jl, list) and len(jl) == 2
    _close(jl[0], np.diag([3.0, 3.0]))
    _close(jl[1], np.array([1.0, 2.0]))
    jt = g.jacobian(y, (a, {"c": c, "b": [b]}))
    assert isinstance(jt, tuple) and set(jt[1]) == {"c", "b"} and isinstance(jt[1]["b"], list)
    _close(jt[1]["c"], np.eye(2).reshape(2, 2, 1))
    _close(jt[1]["b"][0], np.array([1.0, 2.0]))
    jd = g.jacobian(y, {"a": a})
    _close(jd["a"], np.diag([3.0, 3.0]))
    _close(g.jacobian(y, a), np.diag([3.0, 3.0]))


def test_jacobian_unconnected_sources():
    x = nl.Tensor(np.array([1.0, 2.0]))
    u = nl.Tensor(np.ones((3, 2), np.float32))
    with nl.GradientTape(persistent=True) as g:
        g.watch([x, u])
        y = nl.sin(x)
    jx, ju = g.jacobian(y, [x, u])
    _close(jx, np.diag(np.cos([1.0, 2.0])))
    assert ju is None
    ju = g.jacobian(y, [x, u], unconnected_gradients="zero")[1]
    assert ju.shape == (2, 3, 2) and ju.dtype == np.float32 and not ju.numpy().any()
    other = nl.Tensor(np.ones(2))  # never watched
    assert g.jacobian(y, other) is None
    with pytest.raises(ValueError, match="unconnected_gradients"):
        g.jacobian(y, x, unconnected_gradients="zeros")


def test_jacobian_empty_target_and_source():
    x = nl.Tensor(np.ones(3))
    e = nl.Tensor(np.ones((2, 0)))
    with nl.GradientTape(persistent=True) as g:
        g.watch([x, e])
        y0 = nl.sum(e, axis=1)  # (2,), zeros: a target with elements, a source without
        empty = nl.reshape(e, (0, 2))
        z = empty * 2.0
    j = g.jacobian(y0, e)
    assert j.shape == (2, 2, 0)
    j = g.jacobian(z, [e, x])
    assert j[0].shape == (0, 2, 2, 0) and j[1] is None
    assert g.jacobian(z, x, unconnected_gradients="zero").shape == (0, 2, 3)


def test_jacobian_dtype_follows_the_source():
    x = nl.Tensor(np.array([1.0, 2.0], np.float32))
    with nl.GradientTape() as g:
        g.watch(x)
        y = nl.cast(x, np.float64) * 2.0
    j = g.jacobian(y, x)
    assert j.dtype == np.float32
    _close(j, 2 * np.eye(2, dtype=np.float32), np.float32)


def test_non_persistent_tape_answers_one_jacobian():
    """TensorFlow's default (pfor) path answers one jacobian on a non-persistent tape, then the
    tape is used up for gradient, jacobian and batch_jacobian alike."""
    x = nl.Tensor(np.array([1.0, 2.0]))
    with nl.GradientTape() as g:
        g.watch(x)
        y = x * x
    _close(g.jacobian(y, x), np.diag([2.0, 4.0]))
    for call in (lambda: g.jacobian(y, x), lambda: g.gradient(y, x)):
        with pytest.raises(RuntimeError, match="only be called once"):
            call()
    xb = nl.Tensor(np.ones((2, 2)))
    with nl.GradientTape() as g:
        g.watch(xb)
        yb = xb * 3.0
    _close(g.batch_jacobian(yb, xb), np.stack([3 * np.eye(2)] * 2))
    with pytest.raises(RuntimeError, match="GradientTape.batch_jacobian can only be called once"):
        g.batch_jacobian(yb, xb)
    with pytest.raises(RuntimeError, match="GradientTape.jacobian can only be called once"):
        g.jacobian(yb, xb)


def test_persistent_tape_answers_many_and_frees_nothing():
    x = nl.Tensor(np.array([1.0, 2.0]))
    with nl.GradientTape(persistent=True) as g:
        g.watch(x)
        y = x * x
    for _ in range(3):
        _close(g.jacobian(y, x), np.diag([2.0, 4.0]))
    _close(g.gradient(y, x), np.array([2.0, 4.0]))


def test_nested_jacobians_give_hessians():
    x0 = np.array([0.5, -1.0, 2.0])
    x = nl.Tensor(x0)
    with nl.GradientTape() as outer:
        outer.watch(x)
        with nl.GradientTape() as inner:
            inner.watch(x)
            y = nl.sum(x ** 3)
        j = inner.jacobian(y, x)  # recorded by the outer tape
    _close(j, 3 * x0 ** 2)
    _close(outer.jacobian(j, x), np.diag(6 * x0))


def test_persistent_jacobian_inside_its_block_is_recorded_on_itself():
    x0 = np.array([1.0, 2.0])
    x = nl.Tensor(x0)
    with nl.GradientTape(persistent=True) as g:
        g.watch(x)
        y = nl.sum(x ** 3)
        j = g.jacobian(y, x)
    _close(g.jacobian(j, x), np.diag(6 * x0))


def test_jacobian_of_variables_watched_automatically():
    v = nl.Variable(np.array([1.0, -2.0]))
    with nl.GradientTape() as g:
        y = nl.exp(v)
    _close(g.jacobian(y, v), np.diag(np.exp([1.0, -2.0])))


def test_jacobian_cost_is_one_reverse_pass_per_target_element(monkeypatch):
    calls = []
    orig = GradientTape._backward

    def counting(self, *a):
        calls.append(1)
        return orig(self, *a)

    monkeypatch.setattr(GradientTape, "_backward", counting)
    x = nl.Tensor(np.ones((3, 2)))
    with nl.GradientTape(persistent=True) as g:
        g.watch(x)
        y = nl.tanh(x @ np.ones((2, 5)))  # (3, 5)
    g.jacobian(y, x)
    assert len(calls) == 15
    calls.clear()
    g.batch_jacobian(y, x)
    assert len(calls) == 5  # one per element of a row, all 3 rows seeded together


def test_jacobian_bad_input():
    x = nl.Tensor(np.ones(2))
    with nl.GradientTape(persistent=True) as g:
        g.watch(x)
        y = x * 2.0
    with pytest.raises(TypeError, match="target must be a Tensor"):
        g.jacobian([y], x)
    with pytest.raises(TypeError, match="target must be a Tensor"):
        g.jacobian(np.ones(2), x)
    with pytest.raises(TypeError, match="jacobian: sources must be"):
        g.jacobian(y, np.ones(2))
    with pytest.raises(TypeError, match="integer"):
        g.jacobian(nl.Tensor(np.arange(2)), x)
    with pytest.raises(TypeError, match="integer"):
        g.jacobian(y, nl.Tensor(np.arange(2)))


# --------------------------------------------------------------------------- batch_jacobian
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("yshape,xshape", [((3,), (2,)), ((2, 3), (4,)), ((3,), (2, 2)), ((1,), (1,)),
                                           ((2, 2), (3, 1))])
def test_batch_jacobian_is_the_block_diagonal_of_jacobian(rng, yshape, xshape, dtype):
    B = 3
    n = int(np.prod(xshape))
    m = int(np.prod(yshape))
    M = rng.standard_normal((n, m)).astype(dtype)
    x = nl.Tensor(rng.standard_normal((B,) + xshape).astype(dtype))
    with nl.GradientTape(persistent=True) as g:
        g.watch(x)
        y = nl.reshape(nl.tanh(nl.reshape(x, (B, n)) @ M), (B,) + yshape)
    bj = g.batch_jacobian(y, x)
    assert bj.shape == (B,) + yshape + xshape and bj.dtype == dtype
    full = g.jacobian(y, x).numpy()  # (B, y..., B, x...)
    full = full.reshape(B, m, B, n)
    blocks = np.stack([full[b, :, b, :] for b in range(B)]).reshape((B,) + yshape + xshape)
    np.testing.assert_allclose(bj.numpy(), blocks, **_tol(dtype))
    # and the off-diagonal blocks are zero: the rows were independent
    off = full.copy()
    for b in range(B):
        off[b, :, b, :] = 0
    assert not off.any()


def test_batch_jacobian_against_torch_per_example(rng):
    W = rng.standard_normal((4, 3))
    x0 = rng.standard_normal((5, 4))
    x = nl.Tensor(x0)
    with nl.GradientTape() as g:
        g.watch(x)
        y = nl.exp(nl.autodiff.log_softmax(nl.tanh(x @ W), axis=-1))
    want = np.stack([torch.autograd.functional.jacobian(
        lambda r: torch.softmax(torch.tanh(r @ torch.tensor(W)), -1), torch.tensor(r)).numpy() for r in x0])
    _close(g.batch_jacobian(y, x), want)


def test_batch_jacobian_tf_example():
    x = nl.constant([[1.0, 2.0], [3.0, 4.0]])
    with nl.GradientTape() as g:
        g.watch(x)
        y = x * x
    _close(g.batch_jacobian(y, x), [[[2, 0], [0, 4]], [[6, 0], [0, 8]]])


def test_batch_jacobian_unconnected_and_empty():
    x = nl.Tensor(np.ones((2, 3)))
    u = nl.Tensor(np.ones((2, 4), np.float32))
    with nl.GradientTape(persistent=True) as g:
        g.watch([x, u])
        y = x * 2.0
        e = nl.sum(nl.reshape(u, (2, 4, 1)) * np.ones((1, 1, 0)), axis=1)  # (2, 0), from u
    assert g.batch_jacobian(y, u) is None
    z = g.batch_jacobian(y, u, unconnected_gradients="zero")
    assert z.shape == (2, 3, 4) and z.dtype == np.float32 and not z.numpy().any()
    assert g.batch_jacobian(e, u).shape == (2, 0, 4)
    assert g.batch_jacobian(e, x) is None
    assert g.batch_jacobian(e, x, unconnected_gradients="zero").shape == (2, 0, 3)
    with pytest.raises(ValueError, match="unconnected_gradients"):
        g.batch_jacobian(y, x, unconnected_gradients="nonsense")


def test_batch_jacobian_errors():
    x = nl.Tensor(np.ones((2, 3)))
    v = nl.Tensor(np.ones(2))
    with nl.GradientTape(persistent=True) as g:
        g.watch([x, v])
        y = x * 2.0
        y4 = nl.reshape(nl.autodiff.stack([y, y]), (4, 3))
        w = v * 2.0
    with pytest.raises(ValueError, match=r"Need first dimension of target shape \(4, 3\) and source shape \(2, 3\)"):
        g.batch_jacobian(y4, x)
    with pytest.raises(ValueError, match=r"Shape \(2,\) of the source must have rank at least 2"):
        g.batch_jacobian(y, v)
    with pytest.raises(ValueError, match=r"Shape \(2,\) of the target must have rank at least 2"):
        g.batch_jacobian(w, x)
    with pytest.raises(ValueError, match="rank at least 2"):
        g.batch_jacobian(nl.sum(y), x)
    with pytest.raises(TypeError, match="target must be a Tensor"):
        g.batch_jacobian([y], x)
    with pytest.raises(TypeError, match="source must be a Tensor"):
        g.batch_jacobian(y, [x])
    with pytest.raises(TypeError, match="integer"):
        g.batch_jacobian(y, nl.Tensor(np.ones((2, 3), np.int64)))


def test_batch_jacobian_sums_a_dependence_between_rows():
    """Documented: rows must be independent; a cross-row dependence is summed into the blocks."""
    x0 = np.array([[1.0], [2.0]])
    x = nl.Tensor(x0)
    with nl.GradientTape() as g:
        g.watch(x)
        y = x * nl.sum(x)  # y[b] = x[b] * (x[0] + x[1])
    bj = g.batch_jacobian(y, x).numpy()
    # seeding element 0 of both rows differentiates y[0] + y[1] = (x[0] + x[1]) ** 2: 2 (x[0] + x[1])
    # in each row, where the per-example Jacobians d y[b] / d x[b] are x[0] + x[1] + x[b]
    np.testing.assert_allclose(bj, np.full((2, 1, 1), 2 * x0.sum()))
    assert not np.allclose(bj[:, 0, 0], x0.sum() + x0[:, 0])


# --------------------------------------------------------------------------- CUDA (simulator without a GPU)
def test_jacobian_and_batch_jacobian_on_cuda(rng):
    W = rng.standard_normal((3, 2))
    x0 = rng.standard_normal((2, 3))
    res = {}
    for dev in ("cpu", "cuda"):
        x = nl.Tensor(x0, device=dev)
        Wd = nl.Tensor(W, device=dev)
        u = nl.Tensor(np.ones(2), device=dev)
        with nl.GradientTape(persistent=True) as g:
            g.watch([x, u])
            y = nl.tanh(x @ Wd)
        res[dev] = (g.jacobian(y, [x, u], unconnected_gradients="zero"), g.batch_jacobian(y, x))
    for got, want in zip(res["cuda"][0] + [res["cuda"][1]], res["cpu"][0] + [res["cpu"][1]]):
        assert got.device == "cuda" and got.shape == want.shape
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12, atol=1e-14)
    assert not res["cuda"][0][1].numpy().any()
