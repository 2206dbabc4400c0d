"""nl.optim.SGD / Adam against torch.optim fed the same gradients for several steps."""
from __future__ import annotations

import numpy as np
import pytest

import numlin as nl

torch = pytest.importorskip("torch")

SHAPES = [(3, 4), (5,), ()]
STEPS = 6


def _run_both(rng, make_nl, make_torch, dtype, shapes=SHAPES, skip=None):
    """Apply the same random gradients to numlin and torch parameters; ``skip`` (param index,
    step) pairs get a None gradient on both sides."""
    init = [rng.standard_normal(s) for s in shapes]
    vs = [nl.Variable(a.astype(dtype), name=f"p{i}") for i, a in enumerate(init)]
    ps = [torch.tensor(a.astype(dtype).astype(np.float64), requires_grad=True) for a in init]
    opt, topt = make_nl(), make_torch(ps)
    skip = skip or set()
    for step in range(STEPS):
        grads = [rng.standard_normal(s).astype(dtype) for s in shapes]
        nl_grads = [None if (i, step) in skip else nl.Tensor(g) for i, g in enumerate(grads)]
        opt.apply_gradients(zip(nl_grads, vs))
        for i, (p, g) in enumerate(zip(ps, grads)):
            p.grad = None if (i, step) in skip else torch.tensor(g.astype(np.float64))
        topt.step()
    return vs, ps, opt


def _assert_match(vs, ps, dtype):
    tol = 64 * STEPS * np.finfo(dtype).eps
    for v, p in zip(vs, ps):
        assert v.dtype == dtype
        np.testing.assert_allclose(v.numpy(), p.detach().numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_matches_torch(rng, momentum, dtype):
    vs, ps, _ = _run_both(rng, lambda: nl.optim.SGD(0.05, momentum=momentum),
                          lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=momentum), dtype)
    _assert_match(vs, ps, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kw", [dict(), dict(learning_rate=0.02, beta_1=0.8, beta_2=0.99, epsilon=1e-3)], ids=str)
def test_adam_matches_torch(rng, kw, dtype):
    lr = kw.get("learning_rate", 1e-3)
    betas = (kw.get("beta_1", 0.9), kw.get("beta_2", 0.999))
    eps = kw.get("epsilon", 1e-7)  # numlin's default is Keras's 1e-7, torch's is 1e-8
    vs, ps, opt = _run_both(rng, lambda: nl.optim.Adam(**kw),
                            lambda ps: torch.optim.Adam(ps, lr=lr, betas=betas, eps=eps), dtype)
    assert opt.iterations == STEPS
    _assert_match(vs, ps, dtype)


def test_adam_default_epsilon_is_keras():
    assert nl.optim.Adam().epsilon == 1e-7 and nl.optim.Adam().learning_rate == 1e-3


@pytest.mark.parametrize("make", [lambda: nl.optim.SGD(0.1, momentum=0.5), lambda: nl.optim.Adam(0.1)])
def test_none_gradients_are_skipped(make):
    a = nl.Variable(np.ones(3))
    b = nl.Variable(np.full(2, 2.0))
    opt = make()
    opt.apply_gradients([(None, a), (np.ones(2), b)])
    np.testing.assert_array_equal(a.numpy(), np.ones(3))
    assert not np.array_equal(b.numpy(), np.full(2, 2.0))
    opt.apply_gradients([(None, a), (None, b)])  # nothing to do: nothing changes
    before = b.numpy().copy()
    opt.apply_gradients([(None, b)])
    np.testing.assert_array_equal(b.numpy(), before)


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_none_gradient_steps_match_torch(rng, opt):
    """Skipping a parameter for a step matches torch: Adam counts steps per parameter."""
    skip = {(0, 1), (0, 2), (2, 0)}
    if opt == "sgd":
        make, make_t = lambda: nl.optim.SGD(0.05, momentum=0.9), lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9)
    else:
        make, make_t = lambda: nl.optim.Adam(0.05), lambda ps: torch.optim.Adam(ps, lr=0.05, eps=1e-7)
    vs, ps, _ = _run_both(rng, make, make_t, np.float64, skip=skip)
    _assert_match(vs, ps, np.float64)


def test_updates_are_in_place_and_from_the_tape(rng):
    w = nl.Variable(rng.standard_normal((3, 2)))
    buf = w.data
    opt = nl.optim.SGD(0.1)
    x = rng.standard_normal((4, 3))
    with nl.GradientTape() as tape:
        loss = nl.sum(nl.matmul(x, w))
    (g,) = tape.gradient(loss, [w])
    before = w.numpy().copy()
    opt.apply_gradients(zip([g], [w]))
    assert w.data is buf
    np.testing.assert_allclose(w.numpy(), before - 0.1 * x.sum(0)[:, None], rtol=1e-15)


def test_gradients_are_cast_to_the_variable_dtype():
    v = nl.Variable(np.ones(2, np.float32))
    nl.optim.SGD(0.5).apply_gradients([(np.array([1.0, 2.0]), v), ])
    assert v.dtype == np.float32
    np.testing.assert_array_equal(v.numpy(), [0.5, 0.0])


@pytest.mark.parametrize("call,exc,match", [
    (lambda: nl.optim.SGD(0.1).apply_gradients([(np.ones(3), nl.Variable(np.ones(2), name="w"))]), ValueError,
     r"\(3,\).*w.*\(2,\)"),
    (lambda: nl.optim.Adam().apply_gradients([(np.ones((2, 1)), nl.Variable(np.ones(2)))]), ValueError, r"\(2, 1\)"),
    (lambda: nl.optim.SGD(0.1).apply_gradients([(np.ones(2), nl.Tensor(np.ones(2)))]), TypeError, "not a Variable"),
    (lambda: nl.optim.SGD(0.0), ValueError, "learning_rate"),
    (lambda: nl.optim.SGD(-1.0), ValueError, "learning_rate"),
    (lambda: nl.optim.SGD(0.1, momentum=1.0), ValueError, "momentum"),
    (lambda: nl.optim.SGD("0.1"), TypeError, "learning_rate"),
    (lambda: nl.optim.Adam(beta_1=1.0), ValueError, "beta_1"),
    (lambda: nl.optim.Adam(beta_2=-0.1), ValueError, "beta_2"),
    (lambda: nl.optim.Adam(epsilon=0.0), ValueError, "epsilon"),
    (lambda: nl.optim.Adam(learning_rate=float("nan")), ValueError, "learning_rate"),
])
def test_bad_input_is_a_clear_error(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_gradient_on_another_device_is_an_error():
    """A GPU gradient (the CUDA simulator's without a GPU) for a host variable."""
    pytest.importorskip("numba.cuda")
    g = nl.Tensor(np.ones(2), device="cuda")
    v = nl.Variable(np.ones(2))
    with pytest.raises(TypeError, match="cuda.*cpu"):
        nl.optim.SGD(0.1).apply_gradients([(g, v)])
    np.testing.assert_array_equal(v.numpy(), np.ones(2))
