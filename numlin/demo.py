"""``python -m numlin demo``: the seed's story in one run.

1. The seed's ``GradientTape`` example (its gradient 5.5) and its Hessian by ``nl.hessian``.
2. A small CNN (conv-relu-pool, conv-relu-pool, linear) trained on scikit-learn's bundled digits
   (1,797 8x8 images, no download) with numlin's autodiff (convolutions, GEMM linear layer,
   GradientTape, Adam), printing loss, accuracy and time per epoch; then the trained linear
   layer compressed with ``nl.linalg.rsvd`` at several ranks (rank, parameters kept, accuracy).
3. A ResNet-8 (batch normalization, residual blocks written as a ``Module`` subclass, global
   average pooling) trained briefly on a synthetic 32x32 task, and its last convolution's
   filters (reshaped to a matrix) compressed with ``nl.linalg.rsvd``.

``--device cuda`` trains on the GPU; ``--plot PATH`` writes a PNG of the digits CNN's training
curves and the layer's singular values (needs matplotlib).
"""
from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ._config import config
from .nn.layers import Module

__all__ = ["build_model", "load_digits_split", "train", "compress_table", "main", "DemoResult", "BasicBlock",
           "build_resnet8", "synthetic_images", "seed_example"]


@dataclass
class DemoResult:
    epochs: list = field(default_factory=list)      # (epoch, loss, train acc, test acc, seconds)
    compression: list = field(default_factory=list)  # (rank, params kept, fraction, test acc)
    singular_values: np.ndarray | None = None
    train_seconds: float = 0.0
    test_accuracy: float = 0.0
    seed_gradient: float = float("nan")
    seed_hessian: np.ndarray | None = None
    resnet_epochs: list = field(default_factory=list)  # (epoch, loss, test acc, seconds)
    resnet_compression: list = field(default_factory=list)  # (rank, params kept, fraction, test acc)


def load_digits_split(dtype=np.float32, random_state: int = 0):
    """Digits as (N, 1, 8, 8) in [0, 1], stratified 75/25 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    X = (d.images / 16.0).astype(dtype)[:, None]
    return train_test_split(X, d.target.astype(np.int64), test_size=0.25, stratify=d.target,
                            random_state=random_state)


def build_model(dtype=np.float32, random_state: int = 0):
    """conv(1->32, 3x3, pad 1)-relu-maxpool(2), conv(32->64, 3x3, pad 1)-relu-maxpool(2), linear(256->10)."""
    import numlin as nl

    rng = np.random.default_rng(random_state)
    return nl.nn.Sequential(
        nl.nn.Conv2d(1, 32, 3, padding=1, dtype=dtype, random_state=rng), nl.nn.ReLU(), nl.nn.MaxPool2d(2),
        nl.nn.Conv2d(32, 64, 3, padding=1, dtype=dtype, random_state=rng), nl.nn.ReLU(), nl.nn.MaxPool2d(2),
        nl.nn.Flatten(), nl.nn.Linear(64 * 2 * 2, 10, dtype=dtype, random_state=rng),
    )


def _to(x, device):
    import numlin as nl

    return nl.Tensor(x, device=device) if device == "cuda" else nl.Tensor(x)


def accuracy(model, X: np.ndarray, y: np.ndarray, device: str = "cpu", batch: int = 512) -> float:
    """Fraction of ``X`` classified as ``y``."""
    hits = 0
    for i in range(0, len(X), batch):
        logits = model(_to(X[i:i + batch], device)).numpy()
        hits += int((logits.argmax(1) == y[i:i + batch]).sum())
    return hits / len(X)


def train_step(model, opt, xb, yb):
    """One step: forward, loss, tape gradient, Adam update. Returns the loss Tensor."""
    import numlin as nl

    params = model.parameters()
    with nl.GradientTape() as tape:
        loss = nl.nn.cross_entropy(model(xb), yb)
    grads = tape.gradient(loss, params)
    opt.apply_gradients(zip(grads, params))
    return loss


def train(model, data, *, epochs: int = 12, batch: int = 64, learning_rate: float = 3e-3, device: str = "cpu",
          random_state: int = 0, out: Callable = print, res: DemoResult | None = None) -> DemoResult:
    """Adam on shuffled mini-batches; prints one line per epoch."""
    import numlin as nl

    Xtr, Xte, ytr, yte = data
    opt = nl.optim.Adam(learning_rate)
    rng = np.random.default_rng(random_state)
    res = res or DemoResult()
    out(f"{'epoch':>5}  {'loss':>8}  {'train acc':>9}  {'test acc':>8}  {'time s':>7}")
    t_start = time.perf_counter()
    for ep in range(1, epochs + 1):
        t0 = time.perf_counter()
        order = rng.permutation(len(Xtr))
        total, seen = 0.0, 0
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            loss = train_step(model, opt, _to(Xtr[idx], device), ytr[idx])
            total += float(loss) * len(idx)
            seen += len(idx)
        dt = time.perf_counter() - t0
        tr_acc, te_acc = accuracy(model, Xtr, ytr, device), accuracy(model, Xte, yte, device)
        res.epochs.append((ep, total / seen, tr_acc, te_acc, dt))
        out(f"{ep:5d}  {total / seen:8.4f}  {tr_acc:9.4f}  {te_acc:8.4f}  {dt:7.2f}")
    res.train_seconds = time.perf_counter() - t_start
    res.test_accuracy = res.epochs[-1][3]
    return res


def compress_table(model, data, ranks=(1, 2, 3, 4, 5, 6, 7, 8, 9), device: str = "cpu", out: Callable = print,
                   res: DemoResult | None = None) -> DemoResult:
    """Replace the linear layer's weight by its rank-r rsvd approximation U_r S_r V_rᵀ (kept as the
    two factors: r (in + out) parameters) and measure test accuracy for each rank."""
    import numlin as nl

    res = res or DemoResult()
    _, Xte, _, yte = data
    layer = model[-1]
    W = layer.weight.numpy().copy()
    res.singular_values = np.linalg.svd(W.astype(np.float64), compute_uv=False)
    full = W.size
    out(f"\nlinear layer {W.shape[0]}x{W.shape[1]} compressed with nl.linalg.rsvd "
        f"(rank r keeps r x ({W.shape[0]} + {W.shape[1]}) weights)")
    out(f"{'rank':>4}  {'params':>6}  {'kept':>6}  {'test acc':>8}")
    for r in ranks:
        if r > min(W.shape) or r * (W.shape[0] + W.shape[1]) >= full:
            continue  # no saving left at this rank
        U, S, Vt = nl.linalg.rsvd(W, r, random_state=0)
        layer.weight.assign((U * S) @ Vt)
        acc = accuracy(model, Xte, yte, device)
        kept = r * (W.shape[0] + W.shape[1])
        res.compression.append((r, kept, kept / full, acc))
        out(f"{r:4d}  {kept:6d}  {kept / full:6.1%}  {acc:8.4f}")
    layer.weight.assign(W)
    out(f"full  {full:6d}  100.0%  {accuracy(model, Xte, yte, device):8.4f}")
    return res


def seed_example(out: Callable = print, res: DemoResult | None = None) -> DemoResult:
    """The seed's example, ``f(x, y) = log x + x y - sin y`` at (2, 5): the tape's gradient in x
    (5.5) and the 2x2 Hessian in (x, y) from ``nl.hessian`` (exact: [[-1/x², 1], [1, sin y]])."""
    import numlin as nl

    res = res or DemoResult()
    x = nl.constant(2.0)
    y = nl.constant(5.0)
    with nl.GradientTape() as g:
        g.watch(x)
        out_ = nl.log(x) + nl.subtract(nl.multiply(x, y), nl.sin(y))
    res.seed_gradient = float(g.gradient(out_, x))

    def f(x, y):
        return nl.log(x) + nl.subtract(nl.multiply(x, y), nl.sin(y))

    h = nl.hessian(f, argnums=(0, 1))(2.0, 5.0)
    res.seed_hessian = np.array([[float(np.asarray(h[i][j])) for j in range(2)] for i in range(2)])
    out("seed example: f(x, y) = log(x) + x*y - sin(y) at x = 2, y = 5")
    out(f"  GradientTape: df/dx = {res.seed_gradient:g}")
    out(f"  nl.hessian:   [[{res.seed_hessian[0, 0]: .4f}, {res.seed_hessian[0, 1]: .4f}], "
        f"[{res.seed_hessian[1, 0]: .4f}, {res.seed_hessian[1, 1]: .4f}]]  (exact [[-1/4, 1], [1, sin 5]])\n")
    return res


class BasicBlock(Module):
    """ResNet's basic block: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``; the shortcut
    is the identity, or a 1x1 convolution + batch norm where the stride or width changes."""

    def __init__(self, cin: int, cout: int, stride: int = 1, *, dtype: Any = np.float32, random_state: Any = None):
        import numlin as nl

        rng = np.random.default_rng(random_state)  # one stream for the three convolutions (a Generator passes through)
        self.conv1 = nl.nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False, dtype=dtype, random_state=rng)
        self.bn1 = nl.nn.BatchNorm2d(cout, dtype=dtype)
        self.conv2 = nl.nn.Conv2d(cout, cout, 3, padding=1, bias=False, dtype=dtype, random_state=rng)
        self.bn2 = nl.nn.BatchNorm2d(cout, dtype=dtype)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nl.nn.Sequential(
                nl.nn.Conv2d(cin, cout, 1, stride=stride, bias=False, dtype=dtype, random_state=rng),
                nl.nn.BatchNorm2d(cout, dtype=dtype))

    def forward(self, x: Any) -> Any:
        """The block's output (a Tensor)."""
        import numlin as nl

        h = nl.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return nl.relu(h + (x if self.shortcut is None else self.shortcut(x)))


def build_resnet8(num_classes: int = 10, dtype: Any = np.float32, random_state: int = 0) -> Any:
    """ResNet-8 for 32x32x3 inputs: 3x3 stem 3->16 + BN + ReLU; three stages of one basic block
    (16, 32, 64 channels; stride 2 and a 1x1 projection between stages); global average pooling;
    linear 64 -> ``num_classes``."""
    import numlin as nl

    rng = np.random.default_rng(random_state)
    return nl.nn.Sequential(
        nl.nn.Conv2d(3, 16, 3, padding=1, bias=False, dtype=dtype, random_state=rng), nl.nn.BatchNorm2d(16, dtype=dtype),
        nl.nn.ReLU(),
        BasicBlock(16, 16, 1, dtype=dtype, random_state=rng),
        BasicBlock(16, 32, 2, dtype=dtype, random_state=rng),
        BasicBlock(32, 64, 2, dtype=dtype, random_state=rng),
        nl.nn.GlobalAvgPool2d(), nl.nn.Linear(64, num_classes, dtype=dtype, random_state=rng))


def synthetic_images(n: int, num_classes: int = 10, size: int = 32, noise: float = 0.5, random_state: int = 0,
                     dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """A 32x32x3 classification task that needs no download: each class is a smooth random
    colour pattern; a sample is its class's pattern shifted by up to 4 pixels (circularly) plus
    Gaussian noise. Returns ``(X (n, 3, size, size), y (n,))``."""
    rng = np.random.default_rng(random_state)
    freq = np.fft.fftfreq(size)
    lowpass = (np.abs(freq)[:, None] < 0.12) & (np.abs(freq)[None, :] < 0.12)
    spec = rng.standard_normal((num_classes, 3, size, size)) * lowpass
    templates = np.real(np.fft.ifft2(spec))
    templates /= templates.std(axis=(1, 2, 3), keepdims=True)
    y = rng.integers(0, num_classes, n)
    shifts = rng.integers(-4, 5, (n, 2))
    X = np.stack([np.roll(templates[c], tuple(s), axis=(1, 2)) for c, s in zip(y, shifts)])
    X += noise * rng.standard_normal(X.shape)
    return X.astype(dtype), y.astype(np.int64)


def resnet_run(*, epochs: int = 2, n_train: int = 512, n_test: int = 256, batch: int = 64, device: str = "cpu",
               out: Callable = print, res: DemoResult | None = None) -> DemoResult:
    """Train :func:`build_resnet8` on :func:`synthetic_images` for a few epochs (Adam, train mode),
    evaluate in eval mode (running statistics), then compress the last convolution's filters
    (64 x 576 as a matrix) with ``nl.linalg.rsvd`` and evaluate again at each rank."""
    import numlin as nl

    res = res or DemoResult()
    X, y = synthetic_images(n_train + n_test)
    Xtr, ytr, Xte, yte = X[:n_train], y[:n_train], X[n_train:], y[n_train:]
    model = build_resnet8()
    if device == "cuda":
        model.to("cuda")
    opt = nl.optim.Adam(3e-3)
    rng = np.random.default_rng(1)
    out(f"ResNet-8 (BatchNorm2d, residual blocks, GlobalAvgPool2d) on a synthetic 32x32x3 task: "
        f"{n_train} train / {n_test} test, batch {batch}")
    out(f"{'epoch':>5}  {'loss':>8}  {'test acc':>8}  {'time s':>7}")
    for ep in range(1, epochs + 1):
        t0 = time.perf_counter()
        model.train()
        order = rng.permutation(n_train)
        total = 0.0
        for i in range(0, n_train, batch):
            idx = order[i:i + batch]
            total += float(train_step(model, opt, _to(Xtr[idx], device), ytr[idx])) * len(idx)
        dt = time.perf_counter() - t0
        model.eval()
        acc = accuracy(model, Xte, yte, device)
        res.resnet_epochs.append((ep, total / n_train, acc, dt))
        out(f"{ep:5d}  {total / n_train:8.4f}  {acc:8.4f}  {dt:7.2f}")
    conv = model[5].conv2  # the last 3x3 convolution: 64 filters of 64x3x3
    W = conv.weight.numpy().copy()
    M = W.reshape(W.shape[0], -1)
    full = M.size
    out(f"\nlast convolution's filters {W.shape} as a {M.shape[0]}x{M.shape[1]} matrix, compressed with nl.linalg.rsvd")
    out(f"{'rank':>4}  {'params':>6}  {'kept':>6}  {'test acc':>8}")
    for r in (4, 8, 16, 32):
        U, S, Vt = nl.linalg.rsvd(M, r, random_state=0)
        conv.weight.assign(((U * S) @ Vt).reshape(W.shape))
        acc = accuracy(model, Xte, yte, device)
        kept = r * sum(M.shape)
        res.resnet_compression.append((r, kept, kept / full, acc))
        out(f"{r:4d}  {kept:6d}  {kept / full:6.1%}  {acc:8.4f}")
    conv.weight.assign(W)
    out(f"full  {full:6d}  100.0%  {accuracy(model, Xte, yte, device):8.4f}")
    return res


def _warm_resnet() -> None:
    """One ResNet-8 training step, eval forward and filter compression at the demo's sizes: run in
    a background process by :func:`main`, so that the ResNet's kernels compile on the second
    core while the digits CNN trains (Numba compiles one function at a time per process)."""
    import numlin as nl

    X, y = synthetic_images(64)
    model = build_resnet8()
    train_step(model, nl.optim.Adam(1e-3), nl.Tensor(X), y)
    model.eval()
    model(nl.Tensor(X))
    nl.linalg.rsvd(model[5].conv2.weight.numpy().reshape(64, -1), 4, random_state=0)


def _start_warming(device: str):
    """The background process of :func:`_warm_resnet` (CPU only), or None. It writes to the same
    kernel cache; a cache the two processes race on can only miss, never serve a wrong kernel."""
    if device != "cpu" or not config.demo_prewarm:
        return None
    try:
        return subprocess.Popen([sys.executable, "-c", "from numlin.demo import _warm_resnet; _warm_resnet()"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return None


def _finish_warming(proc, timeout: float = 180.0) -> None:
    """Wait for the warming process (its kernels are then loaded from the cache, not compiled a
    second time here); stop it if it runs past ``timeout``."""
    if proc is None:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def plot(res: DemoResult, path: str) -> None:
    """Training curves and the linear layer's singular values, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [e[0] for e in res.epochs]
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.8))
    ax[0].plot(ep, [e[1] for e in res.epochs], "o-")
    ax[0].set(title="training loss", xlabel="epoch", ylabel="cross-entropy")
    ax[1].plot(ep, [e[2] for e in res.epochs], "o-", label="train")
    ax[1].plot(ep, [e[3] for e in res.epochs], "s-", label="test")
    ax[1].set(title="accuracy", xlabel="epoch")
    ax[1].legend()
    sv = res.singular_values
    ax[2].semilogy(np.arange(1, len(sv) + 1), sv, "o-")
    ax[2].set(title="linear layer singular values", xlabel="index")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(device: str = "cpu", epochs: int = 12, plot_path: str | None = None, out: Callable = print) -> DemoResult:
    """Run the demo; returns its figures."""
    if plot_path is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise SystemExit("numlin demo: --plot needs matplotlib (pip install matplotlib)") from None
    if device == "cuda":
        from numba import config as numba_config, cuda

        if not numba_config.ENABLE_CUDASIM and not cuda.is_available():
            raise SystemExit("numlin demo: --device cuda needs an NVIDIA GPU with a working driver "
                             "(numba.cuda.is_available() is False)")
    import numba

    warming = _start_warming(device)
    try:
        res = seed_example(out=out)
        data = load_digits_split()
        model = build_model()
        if device == "cuda":
            model.to("cuda")
        out(f"numlin demo: CNN on scikit-learn digits ({len(data[0])} train / {len(data[1])} test 8x8 images), "
            f"{device}, {numba.get_num_threads()} threads, batch 64, Adam")
        out(repr(model))
        res = train(model, data, epochs=epochs, device=device, out=out, res=res)
        out(f"trained in {res.train_seconds:.1f} s (first epoch includes loading the compiled kernels); "
            f"test accuracy {res.test_accuracy:.4f}")
        compress_table(model, data, device=device, out=out, res=res)
        out("")
        _finish_warming(warming)
    finally:
        if warming is not None and warming.poll() is None:  # an error above: do not leave it behind
            warming.kill()
            warming.wait()
    resnet_run(device=device, out=out, res=res)
    if plot_path is not None:
        plot(res, plot_path)
        out(f"wrote {plot_path}")
    return res
