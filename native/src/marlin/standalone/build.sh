#!/usr/bin/env bash
# Builds the standalone harness (kernel + harness, no Node) into $1 (default: ./harness).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
out=${1:-$here/harness}
arch=${MARLIN_CUDA_ARCHS:-90}
extra=${HARNESS_FLAGS:-}
objdir=$(mktemp -d)
files=("$src"/marlin/*.cu "$here/harness.cu")
for f in "${files[@]}"; do
  nvcc -std=c++17 -O3 -arch=sm_$arch --expt-relaxed-constexpr -lineinfo -DMARLIN_WITH_CUDA=1 $extra -I"$src" -c "$f" -o "$objdir/$(basename "$f").o" &
done
g++ -std=c++17 -O3 -DMARLIN_WITH_CUDA=1 -I"$src" -I/usr/local/cuda/include -c "$src/marlin/workspace.cpp" -o "$objdir/ws.o" &
g++ -std=c++17 -O3 -DMARLIN_WITH_CUDA=1 -I"$src" -I/usr/local/cuda/include -c "$src/blas/cublas_loader.cpp" -o "$objdir/cb.o" &
wait
nvcc -arch=sm_$arch -o "$out" "$objdir"/*.o -ldl -lpthread
rm -rf "$objdir"
