#pragma once
// L2 prefetch hints issued from inside an engine kernel: the next linear layer's weights while a
// latency-bound op (decode attention) leaves DRAM idle, and a block's own KV rows before it waits
// for the previous kernel. Hints only: nothing is read into registers, so a prefetch of memory
// another kernel is still writing is harmless (L2 is the point of coherence).
#include <cstdint>

#include "engine/cuda_ops.h"  // L2Regions

namespace marlin {
namespace ops {
namespace cuda {

constexpr int64_t kL2Piece = 4096;  // bytes per bulk prefetch instruction

__device__ __forceinline__ void PrefetchL2Bulk(const void* p, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(p), "r"(bytes) : "memory");
#else
  (void)p;
  (void)bytes;
#endif
}

__device__ __forceinline__ void PrefetchL2Line(const void* p) { asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p)); }

// Spreads the regions over the threads of `blocks` blocks (block ids from 0), kL2Piece bytes an
// instruction.
__device__ __forceinline__ void PrefetchRegionsL2(const L2Regions& r, int64_t block, int64_t blocks) {
  const int64_t threads = blocks * blockDim.x, me = block * blockDim.x + threadIdx.x;
#pragma unroll
  for (int i = 0; i < 4; i++) {
    if (i >= r.count) break;
    const char* base = static_cast<const char*>(r.ptr[i]);
    for (int64_t off = me * kL2Piece; off < r.bytes[i]; off += threads * kL2Piece)
      PrefetchL2Bulk(base + off, static_cast<uint32_t>(r.bytes[i] - off < kL2Piece ? r.bytes[i] - off : kL2Piece));
  }
}

// Over every block of the grid.
__device__ __forceinline__ void PrefetchRegionsL2(const L2Regions& r) {
  const int64_t blocks = static_cast<int64_t>(gridDim.x) * gridDim.y * gridDim.z;
  PrefetchRegionsL2(r, (static_cast<int64_t>(blockIdx.z) * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x, blocks);
}

}  // namespace cuda
}  // namespace ops
}  // namespace marlin
