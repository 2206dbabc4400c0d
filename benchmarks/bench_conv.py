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
