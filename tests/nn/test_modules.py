"""Module machinery and the parameter-free layers: Dropout, GlobalAvgPool2d, train()/eval(),
parameters() of user subclasses (a residual block against PyTorch), state_dict()/load_state_dict()."""
from __future__ import annotations

import numpy as np
import pytest

import numlin as nl
from numlin._dispatch import is_device_array

torch = pytest.importorskip("torch")


# --------------------------------------------------------------------------- Dropout
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_statistics_and_gradient(p, dtype):
    n = 200_000
    layer = nl.nn.Dropout(p, random_state=0)
    x = nl.Tensor(np.ones((n // 100, 100), dtype))
    with nl.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = nl.sum(y * y)
    yv = y.numpy()
    assert y.dtype == dtype and y.shape == x.shape
    scale = dtype(1.0 / (1.0 - p))
    kept = yv != 0
    assert set(np.unique(yv)) <= {0.0, scale}
    # the number kept is Binomial(n, 1 - p): within 5 standard deviations
    sd = np.sqrt(n * p * (1 - p))
    assert abs(kept.sum() - n * (1 - p)) < 5 * sd
    assert abs(yv.mean() - 1.0) < 5 * sd * scale / n  # the mean is preserved
    # the gradient of sum(y²) is 2 y * mask * scale: the mask reused by the backward
    gx = tape.gradient(loss, x).numpy()
    np.testing.assert_array_equal(gx, 2 * yv * np.where(kept, scale, 0))


def test_dropout_draws_fresh_masks_reproducibly():
    x = np.ones((50, 40))
    a, b = nl.nn.Dropout(0.5, random_state=3), nl.nn.Dropout(0.5, random_state=3)
    m1, m2 = a(x).numpy(), a(x).numpy()
    assert not np.array_equal(m1, m2)  # a new mask each call
    np.testing.assert_array_equal(b(x).numpy(), m1)  # same seed, same masks
    np.testing.assert_array_equal(b(x).numpy(), m2)


def test_dropout_eval_p0_p1():
    rng = np.random.default_rng(0)
    x = nl.Tensor(rng.standard_normal((4, 5)))
    d = nl.nn.Dropout(0.3, random_state=1)
    assert d.eval() is d and d.training is False
    assert d(x) is x  # eval: the input itself
    assert nl.nn.Dropout(0.0)(x) is x
    d1 = nl.nn.Dropout(1.0)
    with nl.GradientTape() as tape:
        tape.watch(x)
        y = d1(x)
        loss = nl.sum(y * 3.0)
    np.testing.assert_array_equal(y.numpy(), 0)
    np.testing.assert_array_equal(tape.gradient(loss, x).numpy(), 0)
    assert not np.any(np.isnan(y.numpy()))


@pytest.mark.parametrize("p,exc", [(-0.1, ValueError), (1.01, ValueError), (float("nan"), ValueError),
                                   ("0.5", TypeError), (True, TypeError), (None, TypeError)])
def test_dropout_rejects_bad_p(p, exc):
    with pytest.raises(exc, match="Dropout: p must"):
        nl.nn.Dropout(p)


def test_dropout_on_cuda_matches_cpu_mask():
    x = np.arange(24.0).reshape(4, 6) + 1
    cpu = nl.nn.Dropout(0.4, random_state=7)(x)
    xt = nl.Tensor(x, device="cuda")
    with nl.GradientTape() as tape:
        tape.watch(xt)
        gpu = nl.nn.Dropout(0.4, random_state=7)(xt)
        loss = nl.sum(gpu)
    assert gpu.device == "cuda"
    np.testing.assert_array_equal(gpu.numpy(), cpu.numpy())
    np.testing.assert_array_equal(tape.gradient(loss, xt).numpy(), cpu.numpy() / x)


# --------------------------------------------------------------------------- GlobalAvgPool2d
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_global_avg_pool_matches_torch(rng, device):
    x = rng.standard_normal((3, 4, 5, 6))
    r = rng.standard_normal((3, 4))
    xt = nl.Tensor(x, device=device if device == "cuda" else None)
    with nl.GradientTape() as tape:
        tape.watch(xt)
        y = nl.nn.GlobalAvgPool2d()(xt)
        loss = nl.sum(y * nl.Tensor(r, device=xt.device if device == "cuda" else None))
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.AdaptiveAvgPool2d(1)(tx).flatten(1)
    (ty * torch.tensor(r)).sum().backward()
    assert y.shape == (3, 4)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(tape.gradient(loss, xt).numpy(), tx.grad.numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match=r"expected 4-D input.*\(3, 4\)"):
        nl.nn.GlobalAvgPool2d()(np.ones((3, 4)))


# --------------------------------------------------------------------------- train / eval
class _NoSuper(nl.nn.Module):
    """A user module whose __init__ never calls super().__init__(); sub-modules in a list, a
    tuple and a dict."""

    def __init__(self):
        self.seq = nl.nn.Sequential(nl.nn.Linear(3, 3, random_state=0), nl.nn.Dropout(0.5))
        self.blocks = [nl.nn.BatchNorm2d(2), (nl.nn.Dropout(0.1),)]
        self.heads = {"a": nl.nn.Dropout(0.2), "b": nl.nn.Linear(3, 1, random_state=1)}
        self.scale = nl.Variable(np.ones(1, np.float32))

    def forward(self, x):
        return self.seq(x) * self.scale


def test_train_eval_propagate_to_every_submodule():
    m = _NoSuper()
    mods = m.modules()
    assert len(mods) == 8 and mods[0] is m
    assert all(s.training is True for s in mods)  # the class default
    assert m.eval() is m
    assert all(s.training is False for s in mods)
    assert m.train() is m
    assert all(s.training is True for s in mods)
    assert m.train(False) is m and not m.blocks[1][0].training and not m.heads["a"].training
    with pytest.raises(TypeError, match="mode must be True or False"):
        m.train("no")
    # parameters are found through every container, each once
    params = m.parameters()
    assert len(params) == 2 + 2 + 2 + 1 and len({id(p) for p in params}) == 7
    assert any(p is m.scale for p in params)


# --------------------------------------------------------------------------- a residual block vs PyTorch
class _Block(nl.nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), shortcut a 1x1 conv + bn."""

    def __init__(self, cin, cout, stride, dtype, rng):
        self.conv1 = nl.nn.Conv2d(cin, cout, 3, stride, 1, bias=False, dtype=dtype, random_state=rng)
        self.bn1 = nl.nn.BatchNorm2d(cout, dtype=dtype)
        self.conv2 = nl.nn.Conv2d(cout, cout, 3, 1, 1, bias=False, dtype=dtype, random_state=rng)
        self.bn2 = nl.nn.BatchNorm2d(cout, dtype=dtype)
        self.shortcut = nl.nn.Sequential(nl.nn.Conv2d(cin, cout, 1, stride, bias=False, dtype=dtype, random_state=rng),
                                         nl.nn.BatchNorm2d(cout, dtype=dtype))

    def forward(self, x):
        h = nl.relu(self.bn1(self.conv1(x)))
        return nl.relu(self.bn2(self.conv2(h)) + self.shortcut(x))


class _TorchBlock(torch.nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(cout)
        self.conv2 = torch.nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(cout)
        self.shortcut = torch.nn.Sequential(torch.nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            torch.nn.BatchNorm2d(cout))

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(h)) + self.shortcut(x))


def test_residual_block_parameters_state_and_gradients_match_torch(rng):
    block = _Block(3, 4, 2, np.float64, rng)
    tblock = _TorchBlock(3, 4, 2).double()
    names = [n for n, _ in block.named_parameters()]
    assert names == ["conv1.weight", "bn1.weight", "bn1.bias", "conv2.weight", "bn2.weight", "bn2.bias",
                     "shortcut.0.weight", "shortcut.1.weight", "shortcut.1.bias"]
    assert block.parameters() == [p for _, p in block.named_parameters()]
    # the same keys as PyTorch's state dict (buffers included), so torch's weights load directly
    tsd = {k: v.numpy() for k, v in tblock.state_dict().items()}
    assert set(block.state_dict()) == set(tsd)
    block.load_state_dict(tsd)
    x = rng.standard_normal((4, 3, 6, 6))
    for mode in (True, True, False):
        block.train(mode)
        tblock.train(mode)
        with nl.GradientTape() as tape:
            y = block(x)
            loss = nl.sum(y * y)
        grads = dict(zip(names, tape.gradient(loss, block.parameters())))
        ty = tblock(torch.tensor(x))
        (ty * ty).sum().backward()
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-9, atol=1e-9)
        for name, p in tblock.named_parameters():
            np.testing.assert_allclose(grads[name].numpy(), p.grad.numpy(), rtol=1e-8, atol=1e-8, err_msg=name)
            p.grad = None
        sd = block.state_dict()
        for k, v in tblock.state_dict().items():
            np.testing.assert_allclose(sd[k], v.numpy(), rtol=1e-10, atol=1e-12, err_msg=k)


# --------------------------------------------------------------------------- state dicts
def _net(rng=0):
    return nl.nn.Sequential(nl.nn.Conv2d(1, 2, 3, random_state=rng), nl.nn.BatchNorm2d(2), nl.nn.ReLU(),
                            nl.nn.GlobalAvgPool2d(), nl.nn.Linear(2, 3, random_state=rng))


def test_state_dict_keys_like_torch_and_savez_round_trip(tmp_path):
    net = _net()
    sd = net.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                        "1.num_batches_tracked", "4.weight", "4.bias"]
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    assert sd["1.num_batches_tracked"].dtype == np.int64 and sd["1.num_batches_tracked"].shape == ()
    tnet = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Linear(2, 3))
    assert list(sd) == list(tnet.state_dict())
    # state_dict values are copies
    sd["0.weight"][...] = 0
    assert np.any(net[0].weight.numpy() != 0)
    # train a step so the running statistics move, save, then change everything and load back
    x = np.random.default_rng(1).standard_normal((4, 1, 5, 5)).astype(np.float32)
    net(x)
    saved = net.state_dict()
    np.savez(tmp_path / "m.npz", **saved)
    params = net.parameters()
    opt = nl.optim.SGD(0.1)
    with nl.GradientTape() as tape:
        loss = nl.sum(net(x))
    opt.apply_gradients(zip(tape.gradient(loss, params), params))
    assert not np.array_equal(net[0].weight.numpy(), saved["0.weight"])
    assert net[1].num_batches_tracked == 2
    rm = net[1].running_mean
    result = net.load_state_dict(dict(np.load(tmp_path / "m.npz")))
    assert result.missing_keys == [] and result.unexpected_keys == []
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, saved[k], err_msg=k)
    assert net.parameters() == params and all(a is b for a, b in zip(net.parameters(), params))  # in place
    assert net[1].running_mean is rm and net[1].num_batches_tracked == 1
    # the optimizer still drives the same Variables
    with nl.GradientTape() as tape:
        loss = nl.sum(net(x))
    opt.apply_gradients(zip(tape.gradient(loss, params), params))
    assert not np.array_equal(net[0].weight.numpy(), saved["0.weight"])


def test_state_dict_names_nested_user_modules_lists_and_dicts():
    m = _NoSuper()
    keys = list(m.state_dict())
    assert keys == ["seq.0.weight", "seq.0.bias", "blocks.0.weight", "blocks.0.bias", "blocks.0.running_mean",
                    "blocks.0.running_var", "blocks.0.num_batches_tracked", "heads.b.weight", "heads.b.bias", "scale"]

    class Outer(nl.nn.Module):
        def __init__(self):
            self.layer1 = _Block(2, 2, 1, np.float32, np.random.default_rng(0))

    assert "layer1.conv1.weight" in Outer().state_dict() and "layer1.shortcut.1.running_var" in Outer().state_dict()


def test_load_state_dict_errors_name_keys_and_shapes_and_copy_nothing():
    net = _net()
    before = net.state_dict()
    sd = net.state_dict()
    sd = {k: v + 1 if v.dtype.kind == "f" else v for k, v in sd.items()}
    bad = dict(sd)
    del bad["1.running_var"]
    bad["extra.weight"] = np.zeros(2)
    with pytest.raises(KeyError, match=r"missing key\(s\) \['1.running_var'\].*unexpected key\(s\) \['extra.weight'\]"):
        net.load_state_dict(bad)
    wrong = dict(sd, **{"4.weight": np.zeros((2, 3))})  # Linear(2, 3): PyTorch's layout (3, 2) expected
    with pytest.raises(ValueError, match=r"'4.weight' has shape \(2, 3\) in the state dict but \(3, 2\) in the module"):
        net.load_state_dict(wrong)
    for k, v in net.state_dict().items():  # nothing was copied by the failed loads
        np.testing.assert_array_equal(v, before[k], err_msg=k)
    with pytest.raises(TypeError, match="dict of arrays"):
        net.load_state_dict([("0.weight", 1)])
    with pytest.raises(TypeError, match="'0.bias' has dtype"):
        net.load_state_dict(dict(sd, **{"0.bias": np.array(["a", "b"])}))
    # strict=False: loads what matches and reports the rest
    result = net.load_state_dict(bad, strict=False)
    assert result.missing_keys == ["1.running_var"] and result.unexpected_keys == ["extra.weight"]
    np.testing.assert_array_equal(net[1].running_mean, sd["1.running_mean"])
    np.testing.assert_array_equal(net[1].running_var, before["1.running_var"])
    # values are cast to each parameter's dtype
    net.load_state_dict({k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in sd.items()})
    assert net[0].weight.dtype == np.float32 and net[1].running_mean.dtype == np.float32


def test_state_dict_of_cuda_module():
    net = _net()
    x = np.random.default_rng(2).standard_normal((3, 1, 5, 5)).astype(np.float32)
    want = net(x).numpy()
    sd = net.state_dict()
    net2 = _net(rng=5).to("cuda")
    assert is_device_array(net2[1].running_mean) and net2[0].weight.device == "cuda"
    rm = net2[1].running_mean
    net2.load_state_dict(sd)
    assert net2[1].running_mean is rm and is_device_array(rm)  # copied into the device arrays
    assert all(isinstance(v, np.ndarray) for v in net2.state_dict().values())
    for k, v in net2.state_dict().items():
        np.testing.assert_array_equal(v, sd[k], err_msg=k)
    net.eval()
    net2.eval()
    np.testing.assert_allclose(net2(nl.Tensor(x, device="cuda")).numpy(), net(x).numpy(), rtol=1e-5, atol=1e-6)
    net.train()
    net2.train()
    np.testing.assert_allclose(net2(nl.Tensor(x, device="cuda")).numpy(), want, rtol=1e-5, atol=1e-6)
    net2.to("cpu")
    assert isinstance(net2[1].running_mean, np.ndarray)


@pytest.mark.parametrize("shape", [(4, 4), (5, 3)])
def test_linear_state_dict_is_in_pytorchs_layout(shape):
    """Linear.weight is (in, out) in numlin and (out, in) in PyTorch; the state dict uses
    PyTorch's layout, so a square PyTorch layer loads the right way round (a transposed load would
    pass the shape check silently)."""
    torch = pytest.importorskip("torch")
    fin, fout = shape
    t = torch.nn.Linear(fin, fout).double()
    m = nl.nn.Linear(fin, fout, dtype=np.float64, random_state=0)
    m.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((6, fin))
    np.testing.assert_allclose(m(x).numpy(), t(torch.tensor(x)).detach().numpy(), rtol=1e-13, atol=1e-13)
    sd = m.state_dict()
    assert sd["weight"].shape == (fout, fin)
    m2 = nl.nn.Linear(fin, fout, dtype=np.float64, random_state=1)
    m2.load_state_dict(sd)
    np.testing.assert_array_equal(m2.weight.numpy(), m.weight.numpy())
    with pytest.raises(ValueError, match="weight"):
        if fin != fout:
            m2.load_state_dict({"weight": sd["weight"].T, "bias": sd["bias"]})
        else:
            m2.load_state_dict({"weight": np.ones((fin + 1, fout)), "bias": sd["bias"]})


def test_load_state_dict_refuses_a_fractional_or_negative_count():
    bn = nl.nn.BatchNorm2d(2)
    sd = bn.state_dict()
    with pytest.raises(TypeError, match="num_batches_tracked"):
        bn.load_state_dict({**sd, "num_batches_tracked": np.array(2.9)})
    with pytest.raises(ValueError, match="num_batches_tracked"):
        bn.load_state_dict({**sd, "num_batches_tracked": np.array(-1)})
    bn.load_state_dict({**sd, "num_batches_tracked": np.array(7)})
    assert bn.num_batches_tracked == 7


def test_basic_block_convolutions_get_distinct_weights_from_an_int_seed():
    from numlin.demo import BasicBlock

    b = BasicBlock(8, 8, random_state=0)
    assert not np.array_equal(b.conv1.weight.numpy(), b.conv2.weight.numpy())
    b2 = BasicBlock(8, 8, random_state=0)
    np.testing.assert_array_equal(b.conv2.weight.numpy(), b2.conv2.weight.numpy())  # still reproducible
