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
newest_header=$(ls -t "$src"/kernel/marlin/*.h "$src"/kernel/marlin/*.cuh "$src"/common/*.h "$src"/kernel/blas/*.h "$src"/kernel/runtime/hold.h \
  "$src"/kernel/hopper/*.h "$src"/kernel/hopper/*.cuh "$here"/*.inc | head -1)
# The Hopper wgmma kernel (kernel/hopper/*.cu) is sm_90a code: built, and the harness's hopper-* modes
# with it, when the architecture is 90. The dequantize path (kernel/blas/dequant.cu) builds for any.
hopper=()
hopper_def=""
if [ "$arch" = 90 ]; then
  hopper=("$src"/kernel/hopper/*.cu)
  hopper_def="-DMARLIN_WITH_HOPPER=1"
fi
pids=()
compile() {  # source, object, arch flags
  if [ ! -f "$2" ] || [ "$1" -nt "$2" ] || [ "$newest_header" -nt "$2" ]; then
    nvcc -std=c++17 -O3 $3 --expt-relaxed-constexpr -lineinfo -DMARLIN_WITH_CUDA=1 $hopper_def $extra -I"$src" -c "$1" -o "$2" &
    pids+=($!)
  fi
}
for f in "$src"/kernel/marlin/*.cu "$src/kernel/runtime/hold.cu" "$src/kernel/blas/dequant.cu" "$src/kernel/blas/bias.cu" "$here/harness.cu"; do
  compile "$f" "$objdir/$(basename "$f").o" "-arch=sm_$arch"
done
for f in "${hopper[@]}"; do
  compile "$f" "$objdir/hopper_$(basename "$f").o" "-gencode=arch=compute_90a,code=sm_90a"
done
if [ "$arch" = 90 ]; then
  g++ -std=c++17 -O3 -DMARLIN_WITH_CUDA=1 -I"$src" -I/usr/local/cuda/include -c "$src/kernel/hopper/workspace.cpp" -o "$objdir/hws.o" &
  pids+=($!)
fi
g++ -std=c++17 -O3 -DMARLIN_WITH_CUDA=1 -I"$src" -I/usr/local/cuda/include -c "$src/kernel/marlin/workspace.cpp" -o "$objdir/ws.o" &
pids+=($!)
g++ -std=c++17 -O3 -DMARLIN_WITH_CUDA=1 -I"$src" -I/usr/local/cuda/include -c "$src/kernel/blas/cublas_loader.cpp" -o "$objdir/cb.o" &
pids+=($!)
for p in "${pids[@]}"; do wait "$p"; done
nvcc -arch=sm_$arch -o "$out" "$objdir"/*.o -ldl -lpthread
