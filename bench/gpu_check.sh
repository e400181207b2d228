#!/usr/bin/env bash
# The device check of the CUDA backend (issue 13), in one go: build mtlx with MTLX_CUDA=ON, run
# tests/gpu (the device solves against the host's), run bench/bench_gpu.py, print a summary.
# Under 5 minutes on a data-center GPU. Needs nvcc, CuPy, and the build and test packages
# (scikit-build-core, pybind11, numpy, scipy, scikit-learn, tqdm, pytest) already installed: the
# device machine reaches no package index.
#
#   bash bench/gpu_check.sh            # results in bench/results/ (or $OUT when set)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
RESULTS=${OUT:-bench/results}
SITE=${MTLX_GPU_SITE:-/tmp/mtlx-gpu-site}
mkdir -p "$RESULTS"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

# This device's architecture only (a portable build compiles seven): the check, not a release.
start=$(date +%s)
MTLX_CUDA=ON CMAKE_ARGS="-DCMAKE_CUDA_ARCHITECTURES=native" \
  "$PY" -m pip install -q --no-build-isolation --no-deps --no-compile --target "$SITE" . 2>&1 | tail -20
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
echo "build: $(( $(date +%s) - start )) s"
"$PY" -c "import mtlx; assert mtlx.HAS_CUDA, 'not a CUDA build'; print('mtlx', mtlx.__version__, 'devices:', mtlx.gpu.device_count())"

status=0
"$PY" -m pytest -q -p no:cacheprovider tests/gpu 2>&1 | tee "$RESULTS/gpu_tests.log" || status=$?
"$PY" bench/bench_gpu.py --out "$RESULTS/bench_gpu.json" 2>&1 | tee "$RESULTS/bench_gpu.log" || status=$?

echo "== summary =="
grep -E "passed|failed|error" "$RESULTS/gpu_tests.log" | tail -1
grep -E "copy kernel|gradient|school|FISTA iterations|newsgroups" "$RESULTS/bench_gpu.log" || true
echo "total: $(( $(date +%s) - start )) s, status $status"
exit "$status"
