"""nl.nn layers against torch.nn with copied weights: forward values and parameter gradients."""
from __future__ import annotations

import numpy as np
import pytest

import numlin as nl

torch = pytest.importorskip("torch")


def _tol(dtype, reduction: int) -> float:
    return 32 * np.finfo(dtype).eps * max(reduction, 1)


def _check(got, want, dtype, reduction, scale=1.0, what=""):
    got = np.asarray(got.numpy() if isinstance(got, nl.Tensor) else got, np.float64)
    want = np.asarray(want.detach().numpy() if isinstance(want, torch.Tensor) else want, np.float64)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    bound = _tol(dtype, reduction) * max(scale, np.max(np.abs(want)), 1.0)
    err = np.max(np.abs(got - want))
    assert err <= bound, f"{what}: max error {err:.3g} over {bound:.3g}"


def _t(v):
    return torch.tensor(np.asarray(v.numpy(), np.float64))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("x_shape", [(5, 7), (2, 3, 7), (7,)], ids=str)
def test_linear_matches_torch(rng, x_shape, bias, dtype):
    layer = nl.nn.Linear(7, 4, bias=bias, dtype=dtype, random_state=rng)
    assert layer.weight.shape == (7, 4) and layer.weight.dtype == dtype
    assert layer.parameters() == ([layer.weight, layer.bias] if bias else [layer.weight])
    ref = torch.nn.Linear(7, 4, bias=bias, dtype=torch.float64)
    with torch.no_grad():
        ref.weight.copy_(_t(layer.weight).T)  # torch stores (out, in)
        if bias:
            ref.bias.copy_(_t(layer.bias))
    x = rng.standard_normal(x_shape).astype(dtype)
    with nl.GradientTape() as tape:
        y = layer(x)
        loss = nl.sum(y * y)
    ty = ref(torch.tensor(x.astype(np.float64)))
    (ty * ty).sum().backward()
    _check(y, ty, dtype, 7, what="y")
    grads = tape.gradient(loss, layer.parameters())
    n = int(np.prod(x_shape[:-1]))
    _check(grads[0], ref.weight.grad.T, dtype, 7 * n, what="dW")
    if bias:
        _check(grads[1], ref.bias.grad, dtype, 7 * n, what="db")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kernel_size,stride,padding", [(3, 1, 0), (3, 2, 1), ((2, 3), (1, 2), (1, 0))], ids=str)
def test_conv2d_layer_matches_torch(rng, kernel_size, stride, padding, dtype):
    layer = nl.nn.Conv2d(3, 5, kernel_size, stride, padding, dtype=dtype, random_state=rng)
    ks = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    assert layer.weight.shape == (5, 3, *ks) and layer.bias.shape == (5,)
    ref = torch.nn.Conv2d(3, 5, kernel_size, stride, padding, dtype=torch.float64)
    with torch.no_grad():
        ref.weight.copy_(_t(layer.weight))
        ref.bias.copy_(_t(layer.bias))
    x = rng.standard_normal((2, 3, 8, 7)).astype(dtype)
    with nl.GradientTape() as tape:
        y = layer(nl.Tensor(x))
        loss = nl.sum(y * y)
    ty = ref(torch.tensor(x.astype(np.float64)))
    (ty * ty).sum().backward()
    red = 3 * ks[0] * ks[1]
    _check(y, ty, dtype, red, what="y")
    gw, gb = tape.gradient(loss, layer.parameters())
    npix = y.size // 5
    _check(gw, ref.weight.grad, dtype, red * npix, what="dW")
    _check(gb, ref.bias.grad, dtype, red * npix, what="db")


def test_pool_relu_flatten_layers_match_torch(rng):
    x = rng.standard_normal((2, 3, 6, 7))
    tx = torch.tensor(x)
    pairs = [
        (nl.nn.MaxPool2d(2), torch.nn.MaxPool2d(2)),
        (nl.nn.MaxPool2d(3, 2, 1), torch.nn.MaxPool2d(3, 2, 1)),
        (nl.nn.AvgPool2d(2), torch.nn.AvgPool2d(2)),
        (nl.nn.AvgPool2d(3, 1, 1), torch.nn.AvgPool2d(3, 1, 1)),
        (nl.nn.ReLU(), torch.nn.ReLU()),
        (nl.nn.Flatten(), torch.nn.Flatten()),
    ]
    for layer, ref in pairs:
        np.testing.assert_allclose(layer(x).numpy(), ref(tx).numpy(), rtol=1e-14, atol=1e-15, err_msg=repr(layer))
        assert layer.parameters() == []


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sequential_cnn_matches_torch(rng, dtype):
    model = nl.nn.Sequential(
        nl.nn.Conv2d(2, 4, 3, padding=1, dtype=dtype, random_state=1), nl.nn.ReLU(), nl.nn.MaxPool2d(2),
        nl.nn.Conv2d(4, 6, 3, dtype=dtype, random_state=2), nl.nn.ReLU(), nl.nn.AvgPool2d(2),
        nl.nn.Flatten(), nl.nn.Linear(6, 5, dtype=dtype, random_state=3),
    )
    ref = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 6, 3), torch.nn.ReLU(), torch.nn.AvgPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(6, 5),
    ).double()
    params = model.parameters()
    assert len(params) == 6 and len(model) == 8 and isinstance(model[0], nl.nn.Conv2d)
    with torch.no_grad():
        for p, tp in zip(params, ref.parameters()):
            tp.copy_(_t(p).T if p.ndim == 2 else _t(p))
    x = rng.standard_normal((3, 2, 8, 8)).astype(dtype)
    labels = np.array([0, 4, 2])
    with nl.GradientTape() as tape:
        logits = model(x)
        loss = nl.nn.cross_entropy(logits, labels)
    tlogits = ref(torch.tensor(x.astype(np.float64)))
    tloss = torch.nn.functional.cross_entropy(tlogits, torch.tensor(labels))
    tloss.backward()
    _check(logits, tlogits, dtype, 40, what="logits")
    _check(loss, tloss, dtype, 40, what="loss")
    for i, (g, tp) in enumerate(zip(tape.gradient(loss, params), ref.parameters())):
        assert g.dtype == dtype and g.shape == params[i].shape
        _check(g, tp.grad.T if g.ndim == 2 else tp.grad, dtype, 200, what=f"gradient of parameter {i}")


def test_parameters_are_unique_and_in_definition_order():
    shared = nl.nn.Linear(3, 3, random_state=0)
    model = nl.nn.Sequential(shared, nl.nn.ReLU(), shared, nl.nn.Linear(3, 2, bias=False, random_state=1))
    params = model.parameters()
    assert [p.shape for p in params] == [(3, 3), (3,), (3, 2)]
    assert params[0] is shared.weight and params[1] is shared.bias
    assert all(isinstance(p, nl.Variable) and p.trainable for p in params)
    inner = nl.nn.Sequential(nl.nn.Sequential(nl.nn.Linear(2, 2, random_state=0)), nl.nn.Flatten())
    assert len(inner.parameters()) == 2


def test_initialisation_is_seeded_and_bounded():
    a = nl.nn.Linear(16, 8, random_state=7)
    b = nl.nn.Linear(16, 8, random_state=np.random.default_rng(7))
    np.testing.assert_array_equal(a.weight.numpy(), b.weight.numpy())
    assert a.weight.dtype == np.float32
    assert np.abs(a.weight.numpy()).max() <= 1 / 4 and np.abs(a.bias.numpy()).max() <= 1 / 4
    c = nl.nn.Conv2d(2, 3, 3, random_state=0)
    assert np.abs(c.weight.numpy()).max() <= 1 / np.sqrt(18)


def test_training_a_linear_model_reduces_the_loss(rng):
    X = rng.standard_normal((64, 3))
    y = X @ np.array([[1.0], [-2.0], [0.5]]) + 0.3
    model = nl.nn.Linear(3, 1, dtype=np.float64, random_state=0)
    opt = nl.optim.SGD(0.1)
    losses = []
    for _ in range(50):
        with nl.GradientTape() as tape:
            loss = nl.mean((model(X) - y) ** 2.0)
        opt.apply_gradients(zip(tape.gradient(loss, model.parameters()), model.parameters()))
        losses.append(float(loss))
    assert losses[-1] < 1e-3 * losses[0]
    np.testing.assert_allclose(model.weight.numpy().ravel(), [1.0, -2.0, 0.5], atol=1e-2)


@pytest.mark.parametrize("call,exc,match", [
    (lambda: nl.nn.Linear(0, 3), ValueError, "in_features"),
    (lambda: nl.nn.Linear(3, 2.5), TypeError, "out_features"),
    (lambda: nl.nn.Linear(3, True), TypeError, "out_features"),
    (lambda: nl.nn.Linear(3, 2, dtype=np.int32), TypeError, "int32"),
    (lambda: nl.nn.Linear(3, 2)(np.ones((4, 5))), ValueError, r"\(4, 5\).*in_features=3"),
    (lambda: nl.nn.Linear(3, 2)(np.float32(1.0)), ValueError, "in_features=3"),
    (lambda: nl.nn.Conv2d(0, 2, 3), ValueError, "in_channels"),
    (lambda: nl.nn.Conv2d(2, 2, 0), ValueError, "kernel_size"),
    (lambda: nl.nn.Conv2d(2, 3, 3)(np.ones((1, 4, 5, 5), np.float32)), ValueError, "channels"),
    (lambda: nl.nn.MaxPool2d(2)(np.ones((4, 4))), ValueError, "4-D"),
    (lambda: nl.nn.Sequential(nl.nn.ReLU(), 3), TypeError, "layer 1"),
])
def test_bad_input_is_a_clear_error(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# --------------------------------------------------------------------------- issue 16: validated at construction
@pytest.mark.parametrize("make,exc,match", [
    (lambda: nl.nn.Conv2d(3, 4, 3, padding="foo"), ValueError, "Conv2d: padding must be an int, a pair, 'valid' or 'same'"),
    (lambda: nl.nn.Conv2d(3, 4, 3, padding="same", stride=2), ValueError, "Conv2d: padding='same' needs stride 1"),
    (lambda: nl.nn.Conv2d(3, 4, 3, stride=0), ValueError, "Conv2d: stride must be >= 1"),
    (lambda: nl.nn.Conv2d(3, 4, 3, stride=(1, -1)), ValueError, "Conv2d: stride"),
    (lambda: nl.nn.Conv2d(3, 4, 3, stride=1.5), TypeError, "Conv2d: stride"),
    (lambda: nl.nn.Conv2d(3, 4, 3, stride=2**63), ValueError, "Conv2d: stride must be at most"),
    (lambda: nl.nn.Conv2d(3, 4, 3, padding=-1), ValueError, "Conv2d: padding"),
    (lambda: nl.nn.Conv2d(3, 4, 3, padding=True), TypeError, "Conv2d: padding"),
    (lambda: nl.nn.Conv2d(3, 4, 0), ValueError, "Conv2d: kernel_size"),
    (lambda: nl.nn.Conv2d(3, 4, (3, 3, 3)), TypeError, "Conv2d: kernel_size"),
    (lambda: nl.nn.Conv2d(3, 4, None), TypeError, "Conv2d: kernel_size"),
    (lambda: nl.nn.Conv2d(0, 4, 3), ValueError, "Conv2d: in_channels"),
    (lambda: nl.nn.Conv2d(3, 4.0, 3), TypeError, "Conv2d: out_channels"),
    (lambda: nl.nn.MaxPool2d(2, stride=0), ValueError, "MaxPool2d: stride must be >= 1"),
    (lambda: nl.nn.MaxPool2d(0), ValueError, "MaxPool2d: kernel_size"),
    (lambda: nl.nn.MaxPool2d(2**64 - 1), ValueError, "MaxPool2d: kernel_size must be at most"),
    (lambda: nl.nn.MaxPool2d(2, padding=2), ValueError, "MaxPool2d: padding .* at most half"),
    (lambda: nl.nn.MaxPool2d("2"), TypeError, "MaxPool2d: kernel_size"),
    (lambda: nl.nn.AvgPool2d(2, stride=True), TypeError, "AvgPool2d: stride"),
    (lambda: nl.nn.AvgPool2d(3, stride=(1, 0)), ValueError, "AvgPool2d: stride"),
    (lambda: nl.nn.AvgPool2d(3, padding=-1), ValueError, "AvgPool2d: padding"),
])
def test_layer_arguments_are_checked_at_construction(make, exc, match):
    """Bad stride/padding/kernel_size used to pass until the first forward; the messages are
    numlin.conv2d's (one validation function, _geometry.conv_args / pool_args)."""
    with pytest.raises(exc, match=match):
        make()


def test_layer_and_functional_messages_agree():
    x, w = np.ones((1, 3, 5, 5)), np.ones((4, 3, 3, 3))
    for kw in ({"padding": "foo"}, {"padding": "same", "stride": 2}, {"stride": 0}):
        with pytest.raises(ValueError) as functional:
            nl.conv2d(x, w, **kw)
        with pytest.raises(ValueError) as layer:
            nl.nn.Conv2d(3, 4, 3, **kw)
        assert str(functional.value).replace("conv2d:", "") == str(layer.value).replace("Conv2d:", "")
