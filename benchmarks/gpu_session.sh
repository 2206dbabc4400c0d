#!/usr/bin/env bash
# One prepared call for a lent GPU machine (see benchmarks/README.md, "Next GPU session"): the
# real-size CUDA tests of convolution, GEMM, randomized SVD and autodiff (batch norm, second
# derivatives, Jacobians included), then the conv and rsvd
# benchmark sections against cuDNN and torch.svd_lowrank. Output and JSON land in $OUT.
#
# From the repository root, through the device tool with carry [".whl"] (numpy 2.4 wheel):
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl \
#     && export PYTHONPATH=/tmp/site:$PWD || exit; bash benchmarks/gpu_session.sh
set -u
OUT="${OUT:-$PWD/gpu_out}"
mkdir -p "$OUT"
export NUMLIN_TEST_GPU=1
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu --format=csv | tee "$OUT/nvidia_smi.txt"
timeout "${TEST_S:-200}" python3 -m pytest -q -x -p no:cacheprovider \
  tests/nn/test_conv_cuda.py tests/linalg/test_gemm_cuda.py tests/linalg/test_rsvd.py tests/autodiff/test_autodiff_cuda.py \
  tests/nn/test_batchnorm.py tests/nn/test_modules.py tests/autodiff/test_higher_order.py \
  tests/autodiff/test_functional.py tests/autodiff/test_tape_jacobian.py \
  -k "device or gpu or cuda" 2>&1 | tail -25 | tee "$OUT/tests.txt"
timeout "${BENCH_S:-300}" python3 benchmarks/gpu_bench.py --only conv rsvd --out "$OUT" 2>&1 | tee "$OUT/bench.txt"
