"""nl.conv2d / conv2d_backward / im2col / col2im on device arrays (simulator here, real sizes on a GPU)."""
from __future__ import annotations

import numpy as np
import pytest
from numba import cuda

import numlin as nl
from tests.conftest import HAS_GPU
from tests.reference import conv2d_ref

pytest.importorskip("torch")

# (N, C, H, W, K, R, S, stride, padding, dilation, groups); the simulator runs each GPU thread in Python
SMALL = [(2, 3, 5, 4, 4, 3, 3, 1, 1, 1, 1), (1, 4, 5, 6, 4, 3, 2, 2, (1, 2), (1, 2), 2),
         (1, 2, 3, 3, 2, 1, 1, 1, 0, 1, 1), (1, 2, 4, 5, 3, 2, 2, 1, "same", 1, 1)]
REAL = [(8, 64, 56, 56, 64, 3, 3, 1, 1, 1, 1), (4, 32, 30, 31, 48, 3, 3, 2, 1, 1, 2), (2, 32, 17, 17, 32, 5, 5, 1, 2, 1, 32),
        (4, 64, 14, 14, 128, 1, 1, 1, 0, 1, 1)]
CONFIGS = REAL if HAS_GPU else SMALL


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("cfg", CONFIGS)
def test_device_conv_forward_backward(rng, layout, cfg):
    N, C, H, W, K, R, S, stride, padding, dilation, groups = cfg
    xs = (N, C, H, W) if layout == "NCHW" else (N, H, W, C)
    ws = (K, C // groups, R, S) if layout == "NCHW" else (R, S, C // groups, K)
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(K)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, layout=layout)
    y = nl.conv2d(cuda.to_device(x), cuda.to_device(w), cuda.to_device(b), **kw)
    assert type(y).__module__.startswith("numba.cuda")
    dy = rng.standard_normal(tuple(y.shape))
    ref = conv2d_ref(x, w, b, dy=dy, **kw)
    np.testing.assert_allclose(y.copy_to_host(), ref["y"], rtol=1e-10, atol=1e-10)
    dx, dw, db = nl.conv2d_backward(cuda.to_device(dy), cuda.to_device(x), cuda.to_device(w), **kw)
    np.testing.assert_allclose(dx.copy_to_host(), ref["dx"], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dw.copy_to_host(), ref["dw"], rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(db.copy_to_host(), ref["db"], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_device_im2col_matches_host(rng, layout):
    shape = (2, 3, 5, 4) if layout == "NCHW" else (2, 5, 4, 3)
    x = rng.standard_normal(shape)
    host = nl.im2col(x, 3, padding=1, stride=(1, 2), layout=layout)
    dev = nl.im2col(cuda.to_device(x), 3, padding=1, stride=(1, 2), layout=layout)
    np.testing.assert_array_equal(dev.copy_to_host(), host)
    c = rng.standard_normal(host.shape)
    back = nl.col2im(cuda.to_device(np.ascontiguousarray(c)), shape, 3, padding=1, stride=(1, 2), layout=layout)
    np.testing.assert_allclose(back.copy_to_host(), nl.col2im(c, shape, 3, padding=1, stride=(1, 2), layout=layout),
                               rtol=1e-14, atol=1e-14)


def test_device_float32(rng):
    x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    y = nl.conv2d(cuda.to_device(x), cuda.to_device(w), padding=1)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.copy_to_host(), conv2d_ref(x, w, padding=1)["y"], rtol=1e-5, atol=1e-5)
