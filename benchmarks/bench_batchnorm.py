"""asv benchmarks for batch normalisation: ``BatchNorm2d`` forward + backward in training mode
(gradients of x, weight and bias for a given output gradient) in numlin and in PyTorch CPU, and
their paired ratio (> 1: numlin faster), float32, at 1 and 2 threads.

Run by hand: ``python benchmarks/bench_batchnorm.py`` prints the ratio per shape and thread count.
"""
try:  # PyTorch before numlin, as numlin._bench.preload_anchors says: imported after numlin, its
    import torch  # noqa: F401  2-thread step here took 32 ms instead of 1.5
except ImportError:  # pragma: no cover
    pass

import numpy as np  # noqa: E402

import numlin as nl  # noqa: E402
from numlin._bench import paired  # noqa: E402


class BatchNormTrain:
    params = ([(64, 64, 16, 16), (32, 128, 8, 8), (8, 64, 56, 56)], [1, 2])
    param_names = ["shape", "threads"]
    timeout = 300

    def setup(self, shape, threads):
        import numba
        import torch

        rng = np.random.default_rng(0)
        x = rng.standard_normal(shape, dtype=np.float32) * 2 + 0.5
        g = rng.standard_normal(shape, dtype=np.float32)
        C = shape[1]
        torch.set_num_threads(threads)
        self.tbn = torch.nn.BatchNorm2d(C)
        self.tx = torch.from_numpy(x).requires_grad_(True)
        self.tg = torch.from_numpy(g)
        self.time_torch(shape, threads)
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        self.bn = nl.nn.BatchNorm2d(C)
        self.x, self.g = nl.Tensor(x), nl.Tensor(g)
        self.srcs = [self.x, self.bn.weight, self.bn.bias]
        self.time_numlin(shape, threads)  # compile / load kernels outside the timings

    def time_numlin(self, shape, threads):
        with nl.GradientTape() as tape:
            tape.watch(self.x)
            y = self.bn(self.x)
        tape.gradient(y, self.srcs, output_gradients=self.g)

    def time_torch(self, shape, threads):
        self.tx.grad = None
        self.tbn.weight.grad = self.tbn.bias.grad = None
        self.tbn(self.tx).backward(self.tg)

    def track_ratio_torch_over_numlin(self, shape, threads):
        return paired(lambda: self.time_numlin(shape, threads), lambda: self.time_torch(shape, threads), rounds=21,
                      reps=10, pause=0.02)[2]

    track_ratio_torch_over_numlin.unit = "ratio"


if __name__ == "__main__":
    b = BatchNormTrain()
    for shape in BatchNormTrain.params[0]:
        for threads in BatchNormTrain.params[1]:
            b.setup(shape, threads)
            tn, tt, r = paired(lambda: b.time_numlin(shape, threads), lambda: b.time_torch(shape, threads),
                               rounds=21, reps=10, pause=0.02)
            print(f"{str(shape):>18} threads {threads}: numlin {tn * 1e3:7.3f} ms  torch {tt * 1e3:7.3f} ms  "
                  f"ratio torch/numlin {r:5.2f}")
