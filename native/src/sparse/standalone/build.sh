#!/usr/bin/env bash
# Builds the standalone 2:4 harness (kernel + CPU reference + harness, no Node) into $1
# (default ./harness). MARLIN_CUDA_ARCHS picks one architecture (default 90; 80 works too).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
out=${1:-$here/harness}
arch=${MARLIN_CUDA_ARCHS:-90}
flags="-std=c++17 -O3 --expt-relaxed-constexpr -lineinfo -DMARLIN_WITH_CUDA=1 -DSPARSE24_SWEEP -I$src ${HARNESS_FLAGS:-}"
nvcc $flags -arch=sm_$arch -o "$out" "$here/harness.cu" "$src/sparse/launch.cu" "$src/sparse/cpu_gemm.cpp" "$here/meta_rows.cu" -lpthread
