"""asv benchmarks for 2-D convolution: numlin vs PyTorch CPU (oneDNN) on ResNet/DeepBench-style
layers; time, paired ratio and peak memory of the forward pass."""
import numpy as np

import numlin as nl
from numlin._bench import paired

LAYERS = {"56x56 64->64": (56, 64, 64), "28x28 128->128": (28, 128, 128), "14x14 256->256": (14, 256, 256),
          "7x7 512->512": (7, 512, 512)}


class Conv3x3:
    params = (list(LAYERS), ["NCHW", "NHWC"])
    param_names = ["layer", "layout"]
    timeout = 300

    def setup(self, layer, layout):
        import numba

        hw, c, k = LAYERS[layer]
        rng = np.random.default_rng(0)
        self.layout = layout
        if layout == "NCHW":
            self.x = rng.standard_normal((8, c, hw, hw)).astype(np.float32)
            self.w = (rng.standard_normal((k, c, 3, 3)) * 0.05).astype(np.float32)
        else:
            self.x = rng.standard_normal((8, hw, hw, c)).astype(np.float32)
            self.w = (rng.standard_normal((3, 3, c, k)) * 0.05).astype(np.float32)
        self.b = rng.standard_normal(k).astype(np.float32)
        self.dy = nl.conv2d(self.x, self.w, self.b, padding=1, layout=layout)  # warm up, right shape
        nl.conv2d_backward(self.dy, self.x, self.w, padding=1, layout=layout)
        try:
            import torch

            torch.set_num_threads(numba.get_num_threads())
            self.torch = torch
        except ImportError:
            self.torch = None

    def time_forward(self, layer, layout):
        nl.conv2d(self.x, self.w, self.b, padding=1, layout=self.layout)

    def time_forward_backward(self, layer, layout):
        nl.conv2d(self.x, self.w, self.b, padding=1, layout=self.layout)
        nl.conv2d_backward(self.dy, self.x, self.w, padding=1, layout=self.layout)

    def peakmem_forward(self, layer, layout):
        nl.conv2d(self.x, self.w, self.b, padding=1, layout=self.layout)

    def track_ratio_forward(self, layer, layout):
        if self.torch is None or layout != "NCHW":
            return float("nan")
        import torch.nn.functional as F

        tx, tw, tb = (self.torch.from_numpy(a) for a in (self.x, self.w, self.b))
        return paired(lambda: nl.conv2d(self.x, self.w, self.b, padding=1),
                      lambda: F.conv2d(tx, tw, tb, padding=1), rounds=5, reps=3, pause=0.05)[2]

    track_ratio_forward.unit = "torch time / numlin time"


# MobileNet-style depthwise layers (groups == C), N = 8, 3x3, padding 1: (H = W, C, stride)
DEPTHWISE = {"112x112 32": (112, 32, 1), "56x56 128 s2": (56, 128, 2), "28x28 256": (28, 256, 1),
             "14x14 512": (14, 512, 1), "7x7 1024": (7, 1024, 1)}


class Depthwise3x3:
    params = [list(DEPTHWISE)]
    param_names = ["layer"]
    timeout = 300

    def setup(self, layer):
        import numba

        hw, c, stride = DEPTHWISE[layer]
        rng = np.random.default_rng(0)
        self.kw = dict(padding=1, stride=stride, groups=c)
        self.x = rng.standard_normal((8, c, hw, hw)).astype(np.float32)
        self.w = (rng.standard_normal((c, 1, 3, 3)) * 0.05).astype(np.float32)
        self.b = rng.standard_normal(c).astype(np.float32)
        self.dy = nl.conv2d(self.x, self.w, self.b, **self.kw)  # warm up, right shape
        nl.conv2d_backward(self.dy, self.x, self.w, **self.kw)
        try:
            import torch

            torch.set_num_threads(numba.get_num_threads())
            self.torch = torch
        except ImportError:
            self.torch = None

    def time_forward(self, layer):
        nl.conv2d(self.x, self.w, self.b, **self.kw)

    def time_forward_backward(self, layer):
        nl.conv2d(self.x, self.w, self.b, **self.kw)
        nl.conv2d_backward(self.dy, self.x, self.w, **self.kw)

    def track_ratio_forward(self, layer):
        if self.torch is None:
            return float("nan")
        import torch.nn.functional as F

        tx, tw, tb = (self.torch.from_numpy(a) for a in (self.x, self.w, self.b))
        return paired(lambda: nl.conv2d(self.x, self.w, self.b, **self.kw),
                      lambda: F.conv2d(tx, tw, tb, **self.kw), rounds=5, reps=3, pause=0.05)[2]

    track_ratio_forward.unit = "torch time / numlin time"
