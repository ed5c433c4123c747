#pragma once
// The dequantize-then-cuBLAS path for large m: a Marlin-layout layer is decoded to fp16/bf16 W[k, n]
// (rows back in their original order under act-order, so A needs no gather) into a scratch buffer
// that one device reuses for every layer, then multiplied by cuBLAS GemmEx. A scratch smaller than
// the layer (k * n * 2 bytes) is used a column slice at a time.
#include <cstddef>

#include "kernel/marlin/gemm.h"

namespace marlin {
namespace blas {

// Bytes of scratch the whole layer takes at once.
inline size_t DequantScratchBytes(int n, int k) { return size_t(n) * k * 2; }
// Columns decoded per pass with `scratch_bytes` of scratch (a multiple of 64; 0: too small).
inline int DequantSliceColumns(int n, int k, size_t scratch_bytes) {
  const size_t cols = scratch_bytes / (size_t(k) * 2) / 64 * 64;
  return static_cast<int>(cols < size_t(n) ? cols : size_t(n));
}

#ifdef MARLIN_WITH_CUDA
// W[:, n0 : n0 + cols] of the layer in `g` (weights, scales, zeros, perm; g.act the dtype) into
// `w` as a row-major [k, cols] matrix. cols and n0 are multiples of 64.
cudaError_t LaunchDequant(const GemmArgs& g, int n0, int cols, void* w, cudaStream_t stream);
// C = A * W (+ bias) for the layer in `g`, through `scratch`. Returns a CUDA error, or sets
// *blas_status to a non-zero cuBLAS status.
cudaError_t DequantGemm(const GemmArgs& g, void* scratch, size_t scratch_bytes, void* handle, cudaStream_t stream, int* blas_status);
#endif

}  // namespace blas
}  // namespace marlin
