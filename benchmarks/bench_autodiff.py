"""asv benchmarks for autodiff: one training step of the demo's CNN (batch 64, float32) in numlin
and in PyTorch CPU, their paired ratio, and numlin's Python overhead per op."""
import numpy as np

import numlin as nl
from numlin._bench import op_overhead_us, paired
from numlin.demo import build_model, train_step


class TrainStep:
    params = ([1, 2],)
    param_names = ["threads"]
    timeout = 300

    def setup(self, threads):
        import numba
        import torch

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        torch.set_num_threads(threads)
        rng = np.random.default_rng(0)
        xn = rng.random((64, 1, 8, 8), dtype=np.float32)
        self.x = nl.Tensor(xn)
        self.y = rng.integers(0, 10, 64)
        self.model = build_model()
        self.opt = nl.optim.Adam(1e-3)
        self.tm = torch.nn.Sequential(
            torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(), torch.nn.Linear(256, 10))
        self.topt = torch.optim.Adam(self.tm.parameters(), 1e-3)
        self.tx, self.ty = torch.from_numpy(xn), torch.from_numpy(self.y)
        self.time_numlin(threads)  # compile / load kernels outside the timings
        self.time_torch(threads)

    def time_numlin(self, threads):
        train_step(self.model, self.opt, self.x, self.y)

    def time_torch(self, threads):
        import torch

        self.topt.zero_grad()
        torch.nn.functional.cross_entropy(self.tm(self.tx), self.ty).backward()
        self.topt.step()

    def track_ratio_torch_over_numlin(self, threads):
        return paired(lambda: self.time_numlin(threads), lambda: self.time_torch(threads), rounds=5, reps=10,
                      pause=0.05)[2]

    track_ratio_torch_over_numlin.unit = "ratio"


class OpOverhead:
    timeout = 120

    def track_overhead_us(self):
        return op_overhead_us()[0]

    track_overhead_us.unit = "us"

    def track_overhead_taped_us(self):
        return op_overhead_us()[1]

    track_overhead_taped_us.unit = "us"


class ResNet8Step(TrainStep):
    """One training step of ResNet-8 (BatchNorm, residual blocks; batch 64 of 32x32x3, float32),
    numlin and PyTorch CPU, and their paired ratio (issue 19: must reach 0.8)."""
    timeout = 600

    def setup(self, threads):
        import numba
        import torch

        from numlin._bench import torch_resnet8
        from numlin.demo import build_resnet8

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        torch.set_num_threads(threads)
        rng = np.random.default_rng(0)
        xn = rng.standard_normal((64, 3, 32, 32)).astype(np.float32)
        self.x, self.y = nl.Tensor(xn), rng.integers(0, 10, 64)
        self.model, self.opt = build_resnet8(), nl.optim.Adam(1e-3)
        self.tm = torch_resnet8()
        self.topt = torch.optim.Adam(self.tm.parameters(), 1e-3)
        self.tx, self.ty = torch.from_numpy(xn), torch.from_numpy(self.y)
        self.time_numlin(threads)
        self.time_torch(threads)
