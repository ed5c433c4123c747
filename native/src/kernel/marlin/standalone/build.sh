#!/usr/bin/env bash
# Builds the standalone harness (kernel + harness, no Node) into $1 (default: ./harness).
# Objects are cached per flag set under $OBJ_ROOT (default /tmp/marlin-harness-obj) and rebuilt
# when a source or header is newer.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../../.." && pwd)
out=${1:-$here/harness}
arch=${MARLIN_CUDA_ARCHS:-90}
extra=${HARNESS_FLAGS:-}
objdir=${OBJ_ROOT:-/tmp/marlin-harness-obj}/$(echo "$arch $extra" | md5sum | cut -c1-8)
mkdir -p "$objdir"
export TMPDIR=$(mktemp -d /tmp/marlin-nvcc-XXXXXX)  # private: a shared /tmp may be cleaned under us
trap 'rm -rf "$TMPDIR"' EXIT
newest_header=$(ls -t "$src"/kernel/marlin/*.h "$src"/kernel/marlin/*.cuh "$src"/common/*.h "$src"/kernel/blas/*.h "$src"/kernel/runtime/hold.h | head -1)
pids=()
for f in "$src"/kernel/marlin/*.cu "$src/kernel/runtime/hold.cu" "$here/harness.cu"; do
  o="$objdir/$(basename "$f").o"
  if [ ! -f "$o" ] || [ "$f" -nt "$o" ] || [ "$newest_header" -nt "$o" ]; then
    nvcc -std=c++17 -O3 -arch=sm_$arch --expt-relaxed-constexpr -lineinfo -DMARLIN_WITH_CUDA=1 $extra -I"$src" -c "$f" -o "$o" &
    pids+=($!)
  fi
done
g++ -std=c++17 -O3 -DMARLIN_WITH_CUDA=1 -I"$src" -I/usr/local/cuda/include -c "$src/kernel/marlin/workspace.cpp" -o "$objdir/ws.o" &
pids+=($!)
g++ -std=c++17 -O3 -DMARLIN_WITH_CUDA=1 -I"$src" -I/usr/local/cuda/include -c "$src/kernel/blas/cublas_loader.cpp" -o "$objdir/cb.o" &
pids+=($!)
for p in "${pids[@]}"; do wait "$p"; done
nvcc -arch=sm_$arch -o "$out" "$objdir"/*.o -ldl -lpthread
