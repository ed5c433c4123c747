#pragma once
// Thin wrappers over the Hopper PTX the wgmma kernel uses (sm_90a): mbarriers, bulk and tensor
// copies into shared memory, warpgroup MMA fences and named barriers. Each is one instruction; the
// comments say what the kernel relies on.
#include <cuda.h>  // CUtensorMap (the type only; the driver is reached through the runtime)
#include <cuda_runtime.h>

#include <cstdint>

namespace marlin {
namespace hopper {

__device__ __forceinline__ uint32_t SmemAddr(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

// ---- mbarriers (64-bit, in shared memory) ----

__device__ __forceinline__ void MbarInit(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
// Makes the initialized barriers visible to the async proxy (the copy engine completes on them).
__device__ __forceinline__ void FenceBarrierInit() { asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }

// One arrival that also announces `bytes` of copies that will complete on this phase.
__device__ __forceinline__ void MbarArriveExpectTx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void MbarArrive(uint32_t bar) { asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory"); }
// An arrival by the threads where `pred` holds, without a branch: divergent control flow between a
// wgmma and its wait makes ptxas serialize the wgmma pipeline.
__device__ __forceinline__ void MbarArriveIf(uint32_t bar, bool pred) {
  asm volatile("{\n.reg .pred q;\nsetp.ne.b32 q, %1, 0;\n@q mbarrier.arrive.shared::cta.b64 _, [%0];\n}\n" ::"r"(bar), "r"(int(pred)) : "memory");
}

// True once the phase with the given parity has completed (acquire: the phase's writes are visible).
__device__ __forceinline__ bool MbarTryWait(uint32_t bar, uint32_t parity) {
  uint32_t done;
  asm volatile(
      "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
      : "=r"(done)
      : "r"(bar), "r"(parity)
      : "memory");
  return done != 0;
}

// A wait that gives up after `limit` SM clocks (0: never): a barrier that never completes is a bug
// (a byte count that does not match the copies, a lost arrival), and a trap reports it as a CUDA
// error (cudaErrorLaunchFailure) instead of a hung process. No printf here: any function call in
// the kernel makes ptxas serialize the wgmma pipeline.
__device__ __forceinline__ void MbarWait(uint32_t bar, uint32_t parity, long long limit) {
  if (MbarTryWait(bar, parity)) return;
  const long long t0 = clock64();
  while (!MbarTryWait(bar, parity))
    if (limit > 0 && clock64() - t0 > limit) asm volatile("trap;\n");
}

// Register budgets per warpgroup (the block starts with 65536 / 384 = 168 each): the producer gives
// registers back, the consumers take them.
template <int N>
__device__ __forceinline__ void RegAlloc() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
}
template <int N>
__device__ __forceinline__ void RegDealloc() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
}

// ---- copies into shared memory that complete on an mbarrier ----

// `bytes` (a multiple of 16) from global `src` (16-byte aligned) to shared `dst`.
__device__ __forceinline__ void BulkCopy(uint32_t dst, const void* src, uint32_t bytes, uint32_t bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(dst), "l"(src),
               "r"(bytes), "r"(bar)
               : "memory");
}

// One box of a 2-D tensor map at element coordinates (x = inner, y = outer); rows past the tensor's
// end arrive as zeros and still count toward the transaction bytes.
__device__ __forceinline__ void TensorCopy2d(uint32_t dst, const CUtensorMap* map, int x, int y, uint32_t bar) {
  asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(dst),
               "l"(reinterpret_cast<uint64_t>(map)), "r"(x), "r"(y), "r"(bar)
               : "memory");
}
__device__ __forceinline__ void PrefetchTensorMap(const CUtensorMap* map) {
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
}

// ---- warpgroup MMA ordering ----

// Before the first wgmma that reads registers written by ordinary instructions.
__device__ __forceinline__ void WgmmaFence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void WgmmaCommit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
// Returns when at most N committed groups are still running.
template <int N>
__device__ __forceinline__ void WgmmaWait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Keeps the compiler from moving reads or writes of `r` across this point (the MMA units write the
// accumulators behind its back between a commit and the matching wait).
__device__ __forceinline__ void FenceReg(float& r) { asm volatile("" : "+f"(r)::"memory"); }
__device__ __forceinline__ void FenceReg(uint32_t& r) { asm volatile("" : "+r"(r)::"memory"); }

// ---- named barriers (id 0 is __syncthreads) ----
__device__ __forceinline__ void NamedBarrier(int id, int threads) { asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory"); }

// Shared-memory matrix descriptor of a K-major operand in the 128-byte swizzle: rows of 64 16-bit
// values (128 B), 8-row atoms 1024 B apart (the stride), atom base 1024-byte aligned. The leading
// offset is unused in this mode (K of one wgmma, 32 B, stays inside the 128-byte row).
__device__ __forceinline__ uint64_t DescSw128(uint32_t smem_addr) {
  return static_cast<uint64_t>((smem_addr & 0x3FFFF) >> 4) | (uint64_t{1} << 16) | (uint64_t{1024 >> 4} << 32) | (uint64_t{1} << 62);
}

}  // namespace hopper
}  // namespace marlin
