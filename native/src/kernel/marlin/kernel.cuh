#pragma once
// Our Marlin-style mixed-precision GEMM: C[m, n] = A[m, k] * dequant(B)[k, n] (+ bias).
//
// Design (see packages/kernel/README.md, "Kernel design"):
//  - A block owns a k x n tile of TK*16 x TN*16 weights per pipeline stage; the work of a launch is
//    the list of (problem, column, k-tile) units, cut into equal consecutive ranges ("stripes"), one
//    per block, walking down k inside a column first. Weights, activations, scales and zero points
//    of a stage arrive with cp.async through a STAGES-deep shared-memory ring.
//  - 8 warps: NS = TN/4 warps along n (one 64-column strip each), KG = 8/NS along k. Each warp
//    dequantizes its 16x64 sub-tiles with bit tricks straight into mma.sync B fragments (the Marlin
//    layout gives every lane its fragments in one 16-byte word) and feeds m16n8k16 MMAs.
//  - At the end of a column the KG warps of a strip reduce through shared memory in fixed order.
//    A column split between blocks is reduced without waiting: each slice stores its fp32 partial in
//    a per-block slot, bumps the column's counter, and the block that arrives last sums every slice
//    in k order (deterministic), writes the output and resets the counter to zero, so the
//    workspace is zero again after every launch (CUDA-graph safe, no host synchronization).
//    The parallel variant (KernelArgs::reduce) stores only the rows that exist and sums the slices
//    with all 256 threads, many slices' loads in flight at once, still in a fixed order.
//  - m <= 16 experiments (FLAGS): kSwapAB puts the weights in the MMA's A operand (16 columns x
//    16 k) and at most 8 activation rows in B, so one MMA covers 256 weights instead of 128;
//    kBulkCopy moves each stage as a few cp.async.bulk row copies issued by warp 0 that complete
//    on one mbarrier per stage, instead of 16-byte cp.async by every thread.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "common/pdl.cuh"

namespace marlin {
namespace gpu {

struct KernelArgs {
  const void* a;          // [m, lda] activations (fp16 / bf16)
  const int4* b;          // Marlin-packed weights
  const void* scales;     // [groups, n] permuted
  const uint32_t* zeros;  // [groups, n*bits/32] permuted + interleaved, or null
  const void* bias;       // [n] or null
  void* c;                // [m, ldc]
  float* partial;         // fp32 partial tiles: 2 slots per block
  int* counters;          // one per (problem, column); all zero between launches
  int m, n, k, lda, ldc;
  int group_size;   // rows per group (k for per-channel)
  int group_shift;  // log2(group_size) when grouped (32, 64, 128)
  int per_channel;  // scales use the 32-column permutation and apply to the output
  int problems;     // row blocks of MB*16 in this launch
  int iters;        // units per block
  int reduce;       // split columns: 0 the last block sums slice by slice, 1 all threads, rows < m only
  int l2_prefetch;  // > 0: also ask L2 for the weights this many units ahead (sm_90 bulk prefetch)
};

// Kernel variant flags (template parameter FLAGS).
constexpr int kSwapAB = 1;    // m <= 8: weights as the MMA's A operand, activations as B
constexpr int kBulkCopy = 2;  // stages arrive by cp.async.bulk row copies completing on an mbarrier

template <typename T>
struct Vec2;
template <>
struct Vec2<__half> {
  using type = __half2;
};
template <>
struct Vec2<__nv_bfloat16> {
  using type = __nv_bfloat162;
};

__device__ __forceinline__ uint32_t SmemAddr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Weight loads may ask L2 to fetch 256-byte sectors (MARLIN_B_PREFETCH=1, measured on H100).
__device__ __forceinline__ void CpAsync16B(void* smem, const void* gmem) {
#if defined(MARLIN_B_PREFETCH) && MARLIN_B_PREFETCH
  asm volatile("cp.async.cg.shared.global.L2::256B [%0], [%1], 16;\n" ::"r"(SmemAddr(smem)), "l"(gmem));
#else
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(SmemAddr(smem)), "l"(gmem));
#endif
}
__device__ __forceinline__ void CpAsync16(void* smem, const void* gmem, bool valid) {
  const int n = valid ? 16 : 0;  // 0: zero-fill the destination
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(SmemAddr(smem)), "l"(gmem), "r"(n));
}
__device__ __forceinline__ void CpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void LdMatrixX4(uint32_t (&r)[4], const void* smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(SmemAddr(smem)));
}
__device__ __forceinline__ void LdMatrixX2(uint32_t (&r)[2], const void* smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(SmemAddr(smem)));
}

// Hopper bulk copies and transaction-counting mbarriers (kBulkCopy; L2 prefetch). Compiled for
// sm_90+ only: the launcher never picks these variants on older GPUs.
__device__ __forceinline__ void MbarInit(uint64_t* bar, int count) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(SmemAddr(bar)), "r"(count) : "memory");
#endif
}
__device__ __forceinline__ void MbarInitFence() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
}
// Adds bytes the current phase must receive, without arriving.
__device__ __forceinline__ void MbarExpectTx(uint64_t* bar, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;\n" ::"r"(SmemAddr(bar)), "r"(bytes) : "memory");
#endif
}
// Arrives (the one arrival a phase waits for) and adds bytes the phase must receive.
__device__ __forceinline__ void MbarArriveExpectTx(uint64_t* bar, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(SmemAddr(bar)), "r"(bytes) : "memory");
#endif
}
__device__ __forceinline__ void MbarWait(uint64_t* bar, uint32_t parity) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  uint32_t done = 0;
  while (!done)
    asm volatile(
        "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(SmemAddr(bar)), "r"(parity)
        : "memory");
#endif
}
// Orders this thread's earlier generic-proxy shared-memory accesses (made visible to it by a
// barrier) before its later async-proxy writes: a ring slot that warps read is refilled by bulk copies.
__device__ __forceinline__ void FenceProxyAsync() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void BulkCopy(void* smem, const void* gmem, uint32_t bytes, uint64_t* bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(SmemAddr(smem)), "l"(gmem),
               "r"(bytes), "r"(SmemAddr(bar))
               : "memory");
#endif
}
__device__ __forceinline__ void PrefetchL2(const void* gmem, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(gmem), "r"(bytes) : "memory");
#endif
}

template <typename T>
__device__ __forceinline__ void Mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void Mma<__half>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void Mma<__nv_bfloat16>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <typename V>
__device__ __forceinline__ uint32_t AsU32(V v) {
  return *reinterpret_cast<uint32_t*>(&v);
}
template <typename V>
__device__ __forceinline__ V FromU32(uint32_t u) {
  return *reinterpret_cast<V*>(&u);
}

// (a & b) | c in one LOP3: written as C, ptxas splits it in two when b and c are both immediates.
template <uint32_t B, uint32_t C>
__device__ __forceinline__ uint32_t AndOr(uint32_t a) {
  uint32_t r;
  asm("lop3.b32 %0, %1, %2, %3, 0xea;\n" : "=r"(r) : "r"(a), "n"(B), "n"(C));
  return r;
}

// Dequantization of one packed 32-bit word into pairs of values (q - ZERO), exact in 16 bits.
// 4-bit words hold 8 values interleaved [0,2,4,6,1,3,5,7]: masks pick pairs (0,1), (2,3), ... .
// 8-bit words hold 4 values interleaved [0,2,1,3]: byte permutes pick pairs (0,1), (2,3).
template <typename T, int BITS, int ZERO>
struct Dequant;

template <int ZERO>
struct Dequant<__half, 4, ZERO> {
  static constexpr int kPairs = 4;
  __device__ __forceinline__ static void Run(uint32_t q, __half2 (&v)[4]) {
    // 0x6400 is 1024.0: OR-ing a nibble into the low mantissa bits gives 1024 + q (or 1024 + 16q).
    const uint32_t lo0 = AndOr<0x000f000fu, 0x64006400u>(q);
    const uint32_t hi0 = AndOr<0x00f000f0u, 0x64006400u>(q);
    q >>= 8;
    const uint32_t lo1 = AndOr<0x000f000fu, 0x64006400u>(q);
    const uint32_t hi1 = AndOr<0x00f000f0u, 0x64006400u>(q);
    const __half2 sub = __half2half2(__ushort_as_half(static_cast<unsigned short>(0x6400 + ZERO)));  // 1024 + ZERO
    const __half2 mul = __half2half2(__float2half(1.0f / 16.0f));
    const __half2 add = __half2half2(__float2half(-64.0f - ZERO));
    v[0] = __hsub2(FromU32<__half2>(lo0), sub);
    v[1] = __hfma2(FromU32<__half2>(hi0), mul, add);
    v[2] = __hsub2(FromU32<__half2>(lo1), sub);
    v[3] = __hfma2(FromU32<__half2>(hi1), mul, add);
  }
};

template <int ZERO>
struct Dequant<__nv_bfloat16, 4, ZERO> {
  static constexpr int kPairs = 4;
  __device__ __forceinline__ static void Run(uint32_t q, __nv_bfloat162 (&v)[4]) {
    // 0x4300 is 128.0 in bf16 (7 mantissa bits): 128 + q for each nibble shifted to the bottom.
    const __nv_bfloat162 sub = __bfloat162bfloat162(__float2bfloat16(128.0f + ZERO));
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const uint32_t x = AndOr<0x000f000fu, 0x43004300u>(q >> (4 * i));
      v[i] = __hsub2(FromU32<__nv_bfloat162>(x), sub);
    }
  }
};

template <int ZERO>
struct Dequant<__half, 8, ZERO> {
  static constexpr int kPairs = 2;
  __device__ __forceinline__ static void Run(uint32_t q, __half2 (&v)[2]) {
    const __half2 sub = __half2half2(__float2half(1024.0f + ZERO));
    v[0] = __hsub2(FromU32<__half2>(__byte_perm(q, 0x64646464u, 0x4240)), sub);
    v[1] = __hsub2(FromU32<__half2>(__byte_perm(q, 0x64646464u, 0x4341)), sub);
  }
};

template <int ZERO>
struct Dequant<__nv_bfloat16, 8, ZERO> {
  static constexpr int kPairs = 2;
  __device__ __forceinline__ static void Run(uint32_t q, __nv_bfloat162 (&v)[2]) {
    // 0x4B000000 is 2^23 in fp32: a byte in the low mantissa bits gives 2^23 + q exactly.
    const float sub = 8388608.0f + ZERO;
    const float f0 = __uint_as_float(__byte_perm(q, 0x4B000000u, 0x7540)) - sub;
    const float f1 = __uint_as_float(__byte_perm(q, 0x4B000000u, 0x7542)) - sub;
    const float f2 = __uint_as_float(__byte_perm(q, 0x4B000000u, 0x7541)) - sub;
    const float f3 = __uint_as_float(__byte_perm(q, 0x4B000000u, 0x7543)) - sub;
    v[0] = __floats2bfloat162_rn(f0, f1);
    v[1] = __floats2bfloat162_rn(f2, f3);
  }
};

template <typename T>
__device__ __forceinline__ float ToFloat(T x);
template <>
__device__ __forceinline__ float ToFloat<__half>(__half x) {
  return __half2float(x);
}
template <>
__device__ __forceinline__ float ToFloat<__nv_bfloat16>(__nv_bfloat16 x) {
  return __bfloat162float(x);
}
template <typename T>
__device__ __forceinline__ typename Vec2<T>::type FromFloats(float a, float b);
template <>
__device__ __forceinline__ __half2 FromFloats<__half>(float a, float b) {
  return __floats2half2_rn(a, b);
}
template <>
__device__ __forceinline__ __nv_bfloat162 FromFloats<__nv_bfloat16>(float a, float b) {
  return __floats2bfloat162_rn(a, b);
}

// Position of column c inside its 32-column block under the per-channel scale permutation.
__device__ __forceinline__ int PerChannelPos(int c) {
  const int ci = c & 31;
  return (c - ci) + 8 * ((ci & 7) >> 1) + 2 * (ci >> 3) + (ci & 1);
}

template <int BITS, bool ZP, int MB, int TN, int TK, int FLAGS = 0>
struct Shape {
  static constexpr bool kSwap = (FLAGS & kSwapAB) != 0;
  static constexpr bool kBulk = (FLAGS & kBulkCopy) != 0;
  static_assert(!kSwap || MB == 1, "the swapped tile holds 8 rows");
  static_assert(!kBulk || (MB == 1 && BITS == 4), "bulk copies: one lane per activation row, 4-bit strips copied as stored");
  static constexpr int kThreads = 256;
  static constexpr int NS = TN / 4;    // 64-column strips in a tile (warps along n)
  static constexpr int KG = 8 / NS;    // warps along k
  static constexpr int KPW = TK / KG;  // k16 tiles per warp per stage
  static_assert(NS >= 1 && NS <= 8 && 8 % NS == 0 && TK % KG == 0 && KPW >= 1, "bad tile");
  // k16 tiles of a warp that share one scale row (the smallest group is 32 rows).
  static constexpr int kKwPerGroup = KPW < 2 ? KPW : 2;
  static constexpr int kARows = kSwap ? 8 : MB * 16;
  static constexpr int kARowChunks = TK * 2;  // 16-byte chunks per activation row per stage
  static_assert(kARowChunks >= 8, "the activation swizzle needs 8 chunks per row");
  // Bulk copies cannot swizzle: rows are padded by one chunk instead (conflict-free ldmatrix).
  static constexpr int kAStride = kARowChunks + (kBulk ? 1 : 0);
  static constexpr int kAChunks = kARows * kAStride;
  static constexpr int kBStripChunks = 8 * BITS;  // one 16x64 block: 512 B (4-bit) or 1 KiB (8-bit)
  static constexpr int kBRowChunks = NS * kBStripChunks;
  static constexpr int kBChunks = TK * kBRowChunks;
  static constexpr int kMaxGroups = TK * 16 / 32;  // scale rows a stage may span (group size 32)
  static_assert(kMaxGroups * TN * 2 <= 256, "one scale chunk per thread");
  static_assert(!kBulk || TK + 2 * kMaxGroups <= 16, "bulk weight copies: one lane of warp 0 each, lanes 0..15");
  static constexpr int kSRowChunks = TN * 2;       // TN*16 fp16 scales
  static constexpr int kSChunks = kMaxGroups * kSRowChunks;
  static constexpr int kZRowChunks = TN * BITS / 8;  // TN*16 zero points of BITS bits
  static constexpr int kZChunks = ZP ? kMaxGroups * kZRowChunks : 0;
  static constexpr int kStageChunks = kAChunks + kBChunks + kSChunks + kZChunks;
  // Accumulators per lane, in quads (one MMA's C fragment): classic MB x 8 n8 tiles; swapped
  // 4 n16 tiles of 8 rows.
  static constexpr int kAccQuads = kSwap ? 4 : MB * 8;
  static constexpr int kAccFloats = kAccQuads * 4;
  static constexpr int kTileFloats = NS * 32 * kAccFloats;  // one partial slot
  static constexpr int kRedFloats = (KG - 1) * NS * 32 * kAccFloats;
  static_assert(kRedFloats >= 4 * kThreads, "the parallel reduction stages one float4 per thread in the k-reduction area");
  static constexpr size_t SmemBytes(int stages) {
    return size_t(stages) * kStageChunks * 16 + size_t(kRedFloats) * 4 + 16 + (kBulk ? size_t(stages) * 8 : 0);
  }
};

#ifndef MARLIN_MB2_MIN_BLOCKS
#define MARLIN_MB2_MIN_BLOCKS 1
#endif
// m <= 16 tiles fit 128 registers: two blocks per SM keep more weight bytes in flight.
template <typename T, int BITS, bool ZP, int MB, int TN, int TK, int STAGES, int FLAGS = 0>
__global__ void __launch_bounds__(256, MB == 1 ? 2 : MB == 2 ? MARLIN_MB2_MIN_BLOCKS : 1) MarlinKernel(const KernelArgs p) {
  using S = Shape<BITS, ZP, MB, TN, TK, FLAGS>;
  using T2 = typename Vec2<T>::type;
  constexpr int ZERO = ZP ? 0 : (1 << (BITS - 1));
  using DQ = Dequant<T, BITS, ZERO>;
  using DQZ = Dequant<T, BITS, 0>;
  constexpr bool kSwap = S::kSwap;
  constexpr bool kBulk = S::kBulk;

  extern __shared__ int4 smem[];
  int4* const ring = smem;
  float* const red = reinterpret_cast<float*>(smem + STAGES * S::kStageChunks);
  int* const flag = reinterpret_cast<int*>(red + S::kRedFloats);
  uint64_t* const bars = reinterpret_cast<uint64_t*>(flag + 4);  // kBulk: one per ring slot

  PdlTrigger();  // the next kernel may be scheduled now; it waits for this one before its reads
  const int tid = threadIdx.x;
  const int lane = tid & 31;
  const int warp = tid >> 5;
  const int strip = warp % S::NS;
  const int kgrp = warp / S::NS;

  const int ntiles = p.n / (TN * 16);
  const int ktiles = p.k / (TK * 16);
  const int total = p.problems * ntiles * ktiles;
  const int u_begin = blockIdx.x * p.iters;
  const int u_end = min(u_begin + p.iters, total);
  if (u_begin >= u_end) return;

  if constexpr (kBulk) {
    if (tid == 0) {
      for (int s = 0; s < STAGES; s++) MbarInit(bars + s, 1);
      MbarInitFence();
    }
    __syncthreads();
  }

  const int b_row_stride = p.n * BITS / 8;  // int4 per k16 row of B
  const int s_row_stride = p.n / 8;         // int4 per scale row
  const int z_row_stride = p.n * BITS / 128;
  const bool per_channel = p.per_channel != 0;
  const int gshift = p.group_shift;
  // Scale rows a stage spans (group sizes are powers of two, 32..128; per-channel: one).
  const int stage_groups = per_channel ? 1 : ((TK * 16) >> gshift) > 0 ? ((TK * 16) >> gshift) : 1;

  // Per-thread copy plan, fixed for the launch: which 16-byte chunks of a stage this thread moves
  // (source offset within the tile, destination within the stage). The main loop then only adds
  // these to the running tile pointers, so a fetch costs a few instructions per chunk.
  constexpr int NA = kBulk ? 1 : (S::kAChunks + S::kThreads - 1) / S::kThreads;
  constexpr int NB = kBulk ? 1 : (S::kBChunks + S::kThreads - 1) / S::kThreads;
  int a_src[NA], a_dst[NA], a_row[NA];
  int b_src[NB], b_dst[NB];
  if constexpr (!kBulk) {
#pragma unroll
    for (int it = 0; it < NA; it++) {
      const int i = tid + it * S::kThreads;
      const int r = i / S::kARowChunks, c = i % S::kARowChunks;
      a_row[it] = i < S::kARows * S::kARowChunks ? r : 1 << 30;  // rows past the tile never load
      a_src[it] = r * p.lda + c * 8;
      a_dst[it] = r * S::kAStride + (c ^ (r & 7));
    }
#pragma unroll
    for (int it = 0; it < NB; it++) {
      const int i = tid + it * S::kThreads;
      const int r = i / S::kBRowChunks, c = i % S::kBRowChunks;
      int dst = c;
      if constexpr (BITS == 8) {  // lane L's two chunks 2L, 2L+1 go to L and 32+L: conflict-free reads
        const int s = c / S::kBStripChunks, w = c % S::kBStripChunks;
        dst = s * S::kBStripChunks + (w & 1) * 32 + (w >> 1);
      }
      b_src[it] = r * b_row_stride + c;
      b_dst[it] = S::kAChunks + r * S::kBRowChunks + dst;
    }
  }
  // One scale chunk (and one zero-point chunk) per thread at most: kMaxGroups * TN*2 <= 256.
  const bool s_on = !per_channel && tid < stage_groups * S::kSRowChunks;
  const int s_src = (tid / S::kSRowChunks) * s_row_stride + tid % S::kSRowChunks;
  const int s_dst = S::kAChunks + S::kBChunks + tid;
  const bool z_on = ZP && tid < stage_groups * S::kZRowChunks;
  const int z_src = (tid / S::kZRowChunks) * z_row_stride + tid % S::kZRowChunks;
  const int z_dst = S::kAChunks + S::kBChunks + S::kSChunks + tid;

  // The unit the next fetch loads, kept incrementally (no divisions in the loop): its position,
  // and pointers to its activation and weight tiles.
  int f_kidx, f_col, f_prob;
  {
    const int cc = u_begin / ktiles;
    f_kidx = u_begin - cc * ktiles;
    f_prob = cc / ntiles;
    f_col = cc - f_prob * ntiles;
  }
  const __half* f_a;
  const int4* f_b;
  int f_rows;  // rows of the problem that exist; the others are never loaded (nor stored)
  auto seek = [&]() {
    f_a = static_cast<const __half*>(p.a) + static_cast<size_t>(f_prob * S::kARows) * p.lda + f_kidx * TK * 16;
    f_b = p.b + static_cast<size_t>(f_kidx * TK) * b_row_stride + f_col * S::kBRowChunks;
    f_rows = p.m - f_prob * S::kARows;
  };
  seek();
  auto advance = [&]() {
    if (++f_kidx == ktiles) {
      f_kidx = 0;
      if (++f_col == ntiles) {
        f_col = 0;
        f_prob++;
      }
      seek();
    } else {
      f_a += TK * 16;
      f_b += TK * b_row_stride;
    }
  };
  // parts: kWeights (B, scales, zero points: constant, may load before PdlWait), kActs (A), or both.
  constexpr int kWeights = 1, kActs = 2;
  // Optional L2 prefetch of the weights l2_prefetch units ahead in the same column (no shared
  // memory: more bytes in flight than the ring holds). One row copy per thread of the first TK.
  auto prefetch_ahead = [&]() {
    const int d = p.l2_prefetch;
    if (d > 0 && tid < TK && f_kidx + d < ktiles)
      PrefetchL2(f_b + static_cast<size_t>(d * TK + tid) * b_row_stride, S::kBRowChunks * 16);
  };
  // Classic fetch: every thread moves its planned 16-byte chunks with cp.async.
  auto fetch = [&](int slot, int parts) {
    int4* st = ring + slot * S::kStageChunks;
    if (parts & kActs) {
#pragma unroll
      for (int it = 0; it < NA; it++)
        if (a_row[it] < f_rows) CpAsync16(st + a_dst[it], f_a + a_src[it], true);
    }
    if (!(parts & kWeights)) return;
    prefetch_ahead();
#pragma unroll
    for (int it = 0; it < NB; it++)
      if (S::kBChunks % S::kThreads == 0 || tid + it * S::kThreads < S::kBChunks) CpAsync16B(st + b_dst[it], f_b + b_src[it]);
    const int g0 = per_channel ? 0 : (f_kidx * TK * 16) >> gshift;
    if (s_on) {
      const int4* gsc = static_cast<const int4*>(p.scales) + static_cast<size_t>(g0) * s_row_stride + f_col * S::kSRowChunks;
      CpAsync16(st + s_dst, gsc + s_src, true);
    }
    if constexpr (ZP) {
      if (z_on) {
        const int4* gz = reinterpret_cast<const int4*>(p.zeros) + static_cast<size_t>(g0) * z_row_stride + f_col * S::kZRowChunks;
        CpAsync16(st + z_dst, gz + z_src, true);
      }
    }
  };
  // Bulk fetch (warp 0 only): lane 0 announces the bytes, then lane l < TK copies B row l, the
  // next lanes the scale and zero-point rows, lanes 16.. the activation rows that exist.
  auto fetch_bulk = [&](int slot, int parts) {
    int4* st = ring + slot * S::kStageChunks;
    uint64_t* bar = bars + slot;
    const int nsg = per_channel ? 0 : stage_groups;  // scale rows (per-channel scales apply at the end)
    const int nzg = ZP ? stage_groups : 0;           // zero-point rows (one when per-channel)
    const int ra = min(f_rows, S::kARows);
    uint32_t bytes = 0;
    if (parts & kWeights) bytes += (TK * S::kBRowChunks + nsg * S::kSRowChunks + nzg * S::kZRowChunks) * 16;
    if (parts & kActs) bytes += ra * S::kARowChunks * 16;
    FenceProxyAsync();  // the slot's earlier reads (ordered by the barrier) before the copies' writes
    if (lane == 0) {
      if (parts & kActs) MbarArriveExpectTx(bar, bytes);
      else MbarExpectTx(bar, bytes);
    }
    __syncwarp();
    if (parts & kWeights) {
      prefetch_ahead();
      const int g0 = per_channel ? 0 : (f_kidx * TK * 16) >> gshift;
      if (lane < TK) {
        BulkCopy(st + S::kAChunks + lane * S::kBRowChunks, f_b + static_cast<size_t>(lane) * b_row_stride, S::kBRowChunks * 16, bar);
      } else if (lane < TK + nsg) {
        const int g = lane - TK;
        BulkCopy(st + S::kAChunks + S::kBChunks + g * S::kSRowChunks,
                 static_cast<const int4*>(p.scales) + static_cast<size_t>(g0 + g) * s_row_stride + f_col * S::kSRowChunks, S::kSRowChunks * 16,
                 bar);
      } else if (lane < TK + nsg + nzg) {
        const int g = lane - TK - nsg;
        BulkCopy(st + S::kAChunks + S::kBChunks + S::kSChunks + g * S::kZRowChunks,
                 reinterpret_cast<const int4*>(p.zeros) + static_cast<size_t>(g0 + g) * z_row_stride + f_col * S::kZRowChunks,
                 S::kZRowChunks * 16, bar);
      }
    }
    if ((parts & kActs) && lane >= 16 && lane - 16 < ra)
      BulkCopy(st + (lane - 16) * S::kAStride, f_a + static_cast<size_t>(lane - 16) * p.lda, S::kARowChunks * 16, bar);
  };

  float acc[S::kAccQuads][4];
#pragma unroll
  for (int i = 0; i < S::kAccQuads; i++)
#pragma unroll
    for (int q = 0; q < 4; q++) acc[i][q] = 0.f;

  // Per-thread shared-memory read offsets (int4 units within a stage), fixed for the launch.
  // Scales and zero points are read once per kKwPerGroup k16 tiles of a warp (aligned runs of 32
  // rows lie in one group): grel[g] is that run's scale row within the stage.
  constexpr int kRuns = S::KPW / S::kKwPerGroup;
  int grel[kRuns];
#pragma unroll
  for (int g = 0; g < kRuns; g++) grel[g] = per_channel ? 0 : ((kgrp * S::KPW + g * S::kKwPerGroup) * 16) >> gshift;
  // Activation fragments: classic, ldmatrix.x4 of 16 rows x one k16 tile; swapped, x4 of 8 rows x
  // two k16 tiles (x2 of one when a warp has a single k16 tile).
  constexpr bool kPairs = kSwap && S::KPW % 2 == 0;
  int a_rd[S::KPW];
#pragma unroll
  for (int kw = 0; kw < S::KPW; kw++) {
    int row, chunk;
    if constexpr (kSwap) {
      const int kk = kgrp * S::KPW + (kPairs ? 2 * kw : kw);
      row = lane & 7;
      chunk = 2 * kk + (kPairs ? (lane >> 3) : ((lane >> 3) & 1));
    } else {
      const int kk = kgrp * S::KPW + kw;  // rows i*16 + (lane & 15): the swizzle key is lane & 7
      row = lane & 15;
      chunk = kk * 2 + (lane >> 4);
    }
    a_rd[kw] = row * S::kAStride + (kBulk ? chunk : chunk ^ (row & 7));
  }
  const int b_rd = S::kAChunks + kgrp * S::KPW * S::kBRowChunks + strip * S::kBStripChunks + lane;
  const int s_rd = S::kAChunks + S::kBChunks + strip * 8 + (lane >> 2);
  const int z_rd = (S::kAChunks + S::kBChunks + S::kSChunks) * 4 +
                   (BITS == 4 ? strip * 8 + (lane >> 2) : strip * 16 + 2 * (lane >> 2));  // in 32-bit words

  auto compute = [&](int slot) {
    const int4* st = ring + slot * S::kStageChunks;
    T scale[8];
    T2 zero2[4];
    auto read_group = [&](int gr) {
      if (!per_channel) {
        const int4 sv = st[s_rd + gr * S::kSRowChunks];
        const T* sp = reinterpret_cast<const T*>(&sv);
#pragma unroll
        for (int j = 0; j < 8; j++) scale[j] = sp[j];
      }
      if constexpr (ZP) {
        const uint32_t* zp = reinterpret_cast<const uint32_t*>(st) + z_rd + gr * S::kZRowChunks * 4;
        if constexpr (BITS == 4) {
          DQZ::Run(zp[0], zero2);
        } else {
          T2 z0[2], z1[2];
          DQZ::Run(zp[0], z0);
          DQZ::Run(zp[1], z1);
          zero2[0] = z0[0];
          zero2[1] = z0[1];
          zero2[2] = z1[0];
          zero2[3] = z1[1];
        }
      }
    };
    uint32_t xf[4];  // swapped: activation fragments (B operand) of up to two k16 tiles
#pragma unroll
    for (int kw = 0; kw < S::KPW; kw++) {
      if (kw % S::kKwPerGroup == 0) read_group(grel[kw / S::kKwPerGroup]);
      uint32_t af[kSwap ? 1 : MB][4];
      if constexpr (kSwap) {
        if constexpr (kPairs) {
          if (kw % 2 == 0) LdMatrixX4(xf, st + a_rd[kw / 2]);
        } else {
          uint32_t x2[2];
          LdMatrixX2(x2, st + a_rd[kw]);
          xf[0] = x2[0];
          xf[1] = x2[1];
        }
      } else {
#pragma unroll
        for (int i = 0; i < MB; i++) LdMatrixX4(af[i], st + a_rd[kw] + i * 16 * S::kAStride);
      }
      uint32_t words[BITS];  // 4 words (4-bit) or 8 words (8-bit) for the lane's 4 n16 tiles
      {
        const int4* bp = st + b_rd + kw * S::kBRowChunks;
        const int4 w0 = bp[0];
        words[0] = w0.x;
        words[1] = w0.y;
        words[2] = w0.z;
        words[3] = w0.w;
        if constexpr (BITS == 8) {
          const int4 w1 = bp[32];
          words[4] = w1.x;
          words[5] = w1.y;
          words[6] = w1.z;
          words[7] = w1.w;
        }
      }
#pragma unroll
      for (int t = 0; t < 4; t++) {
        T2 v[4];
        if constexpr (BITS == 4) {
          DQ::Run(words[t], v);
        } else {
          T2 v0[2], v1[2];
          DQ::Run(words[2 * t], v0);
          DQ::Run(words[2 * t + 1], v1);
          v[0] = v0[0];
          v[1] = v0[1];
          v[2] = v1[0];
          v[3] = v1[1];
        }
        uint32_t wf[2][2];  // [n8 tile h][k half]: the B fragments of columns 16t + 8h + lane/4
#pragma unroll
        for (int h = 0; h < 2; h++) {
          const int j = 2 * t + h;
          T2 b0 = v[2 * h], b1 = v[2 * h + 1];
          if constexpr (ZP) {
            const T2 zz = zero2[j >> 1];
            const T zj = (j & 1) ? zz.y : zz.x;
            const T2 z2 = {zj, zj};
            b0 = __hsub2(b0, z2);
            b1 = __hsub2(b1, z2);
          }
          if (!per_channel) {
            const T2 s2 = {scale[j], scale[j]};
            b0 = __hmul2(b0, s2);
            b1 = __hmul2(b1, s2);
          }
          if constexpr (kSwap) {
            wf[h][0] = AsU32(b0);
            wf[h][1] = AsU32(b1);
          } else {
#pragma unroll
            for (int i = 0; i < MB; i++) Mma<T>(acc[i * 8 + j], af[i], AsU32(b0), AsU32(b1));
          }
        }
        if constexpr (kSwap) {
          // The same registers form the A fragment of W^T (16 columns x 16 k): rows lane/4 and
          // lane/4 + 8 are the two n8 tiles, k halves as in B. One MMA for 16 x 16 weights.
          const uint32_t wa[4] = {wf[0][0], wf[1][0], wf[0][1], wf[1][1]};
          const int x = kPairs ? 2 * (kw % 2) : 0;
          Mma<T>(acc[t], wa, xf[x], xf[x + 1]);
        }
      }
    }
  };

  // Where accumulator element (quad, q) of this lane sits in the tile: row, and column within the
  // tile. Classic: C of m16n8 tile (i, j); swapped: C^T of n16 tile t, rows 2(lane%4) + q%2.
  const int g8 = lane >> 2, t4 = lane & 3;
  auto acc_row = [&](int quad, int q) {
    if constexpr (kSwap) return 2 * t4 + (q & 1);
    else return (quad >> 3) * 16 + g8 + 8 * (q >> 1);
  };
  auto acc_col = [&](int quad, int q) {
    if constexpr (kSwap) return strip * 64 + 16 * quad + g8 + 8 * (q >> 1);
    else return strip * 64 + 8 * (quad & 7) + 2 * t4 + (q & 1);
  };

  // The tile's result (held by warps with kgrp == 0) goes to C: per-channel scales, bias, rounding.
  auto epilogue = [&](int cc, float (&v)[S::kAccQuads][4]) {
    const int prob = cc / ntiles;
    const int col = cc - prob * ntiles;
    T* c = static_cast<T*>(p.c);
    const T* sc = static_cast<const T*>(p.scales);
    const T* bias = static_cast<const T*>(p.bias);
    if constexpr (kSwap) {
#pragma unroll
      for (int quad = 0; quad < S::kAccQuads; quad++)
#pragma unroll
        for (int hq = 0; hq < 2; hq++) {  // column lane/4 + 8*hq of the n16 tile, two rows each
          const int cn = col * TN * 16 + acc_col(quad, 2 * hq);
          const float s0 = per_channel ? ToFloat<T>(sc[PerChannelPos(cn)]) : 1.f;
          const float b0 = bias ? ToFloat<T>(bias[cn]) : 0.f;
#pragma unroll
          for (int q = 2 * hq; q < 2 * hq + 2; q++) {
            const int r = prob * S::kARows + acc_row(quad, q);
            if (r < p.m) c[static_cast<size_t>(r) * p.ldc + cn] = FromFloats<T>(v[quad][q] * s0 + b0, 0.f).x;  // .x: the low half
          }
        }
    } else {
      const int g = lane >> 2, t = lane & 3;
#pragma unroll
      for (int j = 0; j < 8; j++) {
        const int cn = col * TN * 16 + strip * 64 + 8 * j + 2 * t;
        float s0 = 1.f, s1 = 1.f, b0 = 0.f, b1 = 0.f;
        if (per_channel) {
          s0 = ToFloat<T>(sc[PerChannelPos(cn)]);
          s1 = ToFloat<T>(sc[PerChannelPos(cn + 1)]);
        }
        if (bias) {
          b0 = ToFloat<T>(bias[cn]);
          b1 = ToFloat<T>(bias[cn + 1]);
        }
#pragma unroll
        for (int i = 0; i < MB; i++) {
          const float* x = v[i * 8 + j];
          const int r0 = prob * S::kARows + i * 16 + g;
          if (r0 < p.m) *reinterpret_cast<T2*>(c + static_cast<size_t>(r0) * p.ldc + cn) = FromFloats<T>(x[0] * s0 + b0, x[1] * s1 + b1);
          if (r0 + 8 < p.m)
            *reinterpret_cast<T2*>(c + static_cast<size_t>(r0 + 8) * p.ldc + cn) = FromFloats<T>(x[2] * s0 + b0, x[3] * s1 + b1);
        }
      }
    }
  };

  // Parallel reduction of a split column (reduce == 1): slices hold only the rows that exist, as
  // [row][TN*16] fp32. The last block's threads each own float4 items (row, 4 columns); when the
  // items are few, slices are split between P thread groups too. Loads of several slices are in
  // flight at once; each thread adds its slices in k order and the groups are added in order, so
  // the result does not depend on timing.
  constexpr int C4 = TN * 4;                                           // float4 per tile row
  constexpr int KI = (S::kARows * C4 + S::kThreads - 1) / S::kThreads;  // items per thread at most
  constexpr int KU = KI >= 8 ? 1 : 8 / KI;                             // slices per batch of loads
  auto reduce_parallel = [&](int cc, int b0, int b1, int rows_here) {
    const int E = rows_here * C4;
    const int ns = b1 - b0 + 1;
    int P = 1;
    while (P < 16 && P < ns && 2 * P * E <= S::kThreads) P *= 2;
    const int part = P > 1 ? tid / E : 0;
    const int base = P > 1 ? tid - part * E : tid;
    float4 sum[KI];
#pragma unroll
    for (int k = 0; k < KI; k++) sum[k] = make_float4(0.f, 0.f, 0.f, 0.f);
    // Slice b's slot: 2b, or 2b + 1 when block b started inside an earlier column (slot_of below).
    auto slice = [&](int s) {
      const int b = b0 + s;
      const int slot = 2 * b + ((b * p.iters) / ktiles == cc ? 0 : 1);
      return reinterpret_cast<const float4*>(p.partial + static_cast<size_t>(slot) * S::kTileFloats);
    };
    if (part < P) {
#pragma unroll 1
      for (int s0 = part; s0 < ns; s0 += P * KU) {
        float4 x[KU][KI];
#pragma unroll
        for (int u = 0; u < KU; u++) {
          const int s = s0 + u * P;
          const float4* src = s < ns ? slice(s) : nullptr;
#pragma unroll
          for (int k = 0; k < KI; k++) {
            const int e = base + k * S::kThreads;
            x[u][k] = (s < ns && e < E) ? __ldcg(src + e) : make_float4(0.f, 0.f, 0.f, 0.f);
          }
        }
#pragma unroll
        for (int u = 0; u < KU; u++)
#pragma unroll
          for (int k = 0; k < KI; k++) {
            sum[k].x += x[u][k].x;
            sum[k].y += x[u][k].y;
            sum[k].z += x[u][k].z;
            sum[k].w += x[u][k].w;
          }
      }
    }
    if (P > 1) {  // E * P <= 256: groups meet in shared memory, added in group order
      float4* stage = reinterpret_cast<float4*>(red);
      if (part < P) stage[part * E + base] = sum[0];
      __syncthreads();
      if (tid < E) {
        float4 t = stage[tid];
        for (int q = 1; q < P; q++) {
          const float4 y = stage[q * E + tid];
          t.x += y.x;
          t.y += y.y;
          t.z += y.z;
          t.w += y.w;
        }
        sum[0] = t;
      }
    }
    // Out: per-channel scales, bias, rounding; 4 columns per store.
    const int prob = cc / ntiles;
    const int col = cc - prob * ntiles;
    T* c = static_cast<T*>(p.c);
    const T* sc = static_cast<const T*>(p.scales);
    const T* bias = static_cast<const T*>(p.bias);
#pragma unroll
    for (int k = 0; k < KI; k++) {
      const int e = P > 1 ? tid : base + k * S::kThreads;
      if ((P > 1 && k > 0) || e >= E) continue;
      const int r = e / C4, c4 = e - r * C4;
      const int cn = col * TN * 16 + c4 * 4;
      float o[4] = {sum[k].x, sum[k].y, sum[k].z, sum[k].w};
#pragma unroll
      for (int x = 0; x < 4; x++) {
        if (per_channel) o[x] *= ToFloat<T>(sc[PerChannelPos(cn + x)]);
        if (bias) o[x] += ToFloat<T>(bias[cn + x]);
      }
      const T2 lo = FromFloats<T>(o[0], o[1]), hi = FromFloats<T>(o[2], o[3]);
      *reinterpret_cast<uint2*>(c + static_cast<size_t>(prob * S::kARows + r) * p.ldc + cn) = make_uint2(AsU32(lo), AsU32(hi));
    }
  };

  auto finish_column = [&](int cc) {
    // 1. Warps along k reduce into the kgrp == 0 warps, in fixed order.
    if (S::KG > 1) {
      if (kgrp > 0) {
        float* dst = red + ((kgrp - 1) * S::NS + strip) * 32 * S::kAccFloats;
#pragma unroll
        for (int i = 0; i < S::kAccQuads; i++)
#pragma unroll
          for (int q = 0; q < 4; q++) dst[(i * 4 + q) * 32 + lane] = acc[i][q];
      }
      __syncthreads();
      if (kgrp == 0) {
        for (int kg = 1; kg < S::KG; kg++) {
          const float* src = red + ((kg - 1) * S::NS + strip) * 32 * S::kAccFloats;
#pragma unroll
          for (int i = 0; i < S::kAccQuads; i++)
#pragma unroll
            for (int q = 0; q < 4; q++) acc[i][q] += src[(i * 4 + q) * 32 + lane];
        }
      }
      __syncthreads();
    }
    // 2. Between blocks.
    const int first = cc * ktiles, last = first + ktiles - 1;
    if (first >= u_begin && last < u_end) {
      if (kgrp == 0) epilogue(cc, acc);
      return;
    }
    const int b0 = first / p.iters, b1 = last / p.iters;
    auto slot_of = [&](int b) { return 2 * b + ((b * p.iters) / ktiles == cc ? 0 : 1); };
    const int me = blockIdx.x;
    // The parallel sum serves the m <= 32 tiles (its registers spill the 64-row tile's).
    const bool par = MB <= 2 && p.reduce != 0;
    const int rows_here = min(p.m - (cc / ntiles) * S::kARows, S::kARows);
    if (kgrp == 0) {
      if (par) {  // only rows that exist, as [row][TN*16] fp32
        float* dst = p.partial + static_cast<size_t>(slot_of(me)) * S::kTileFloats;
#pragma unroll
        for (int i = 0; i < S::kAccQuads; i++)
#pragma unroll
          for (int q = 0; q < 4; q += kSwap ? 1 : 2) {
            const int r = acc_row(i, q);
            if (r >= rows_here) continue;
            float* o = dst + r * (TN * 16) + acc_col(i, q);
            if constexpr (kSwap) *o = acc[i][q];
            else *reinterpret_cast<float2*>(o) = make_float2(acc[i][q], acc[i][q + 1]);
          }
      } else {
        float4* dst = reinterpret_cast<float4*>(p.partial + static_cast<size_t>(slot_of(me)) * S::kTileFloats) + strip * S::kAccQuads * 32;
#pragma unroll
        for (int i = 0; i < S::kAccQuads; i++) dst[i * 32 + lane] = make_float4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]);
      }
      __threadfence();
    }
    __syncthreads();
    if (tid == 0) {
      const int old = atomicAdd(p.counters + cc, 1);
      const int is_last = old == b1 - b0;
      if (is_last) atomicExch(p.counters + cc, 0);  // back to zero for the next launch
      *flag = is_last;
    }
    __syncthreads();
    if (!*flag) return;
    __threadfence();
    if constexpr (MB <= 2) {
      if (par) {
        reduce_parallel(cc, b0, b1, rows_here);
        __syncthreads();  // the staging area is the k-reduction area of the next column
        return;
      }
    }
    if (kgrp == 0) {
      // Every slice, this block's own included, is summed from the workspace in k order, so the
      // result does not depend on which block arrived last.
#pragma unroll
      for (int i = 0; i < S::kAccQuads; i++)
#pragma unroll
        for (int q = 0; q < 4; q++) acc[i][q] = 0.f;
#pragma unroll 1
      for (int b = b0; b <= b1; b++) {
        const float4* src = reinterpret_cast<const float4*>(p.partial + static_cast<size_t>(slot_of(b)) * S::kTileFloats) + strip * S::kAccQuads * 32;
#pragma unroll
        for (int i = 0; i < S::kAccQuads; i++) {
          const float4 x = __ldcg(src + i * 32 + lane);
          acc[i][0] += x.x;
          acc[i][1] += x.y;
          acc[i][2] += x.z;
          acc[i][3] += x.w;
        }
      }
      epilogue(cc, acc);
    }
  };

  // Prologue: the first stages' weights stream in while an earlier kernel may still be running
  // (programmatic dependent launch); activations, the workspace and C wait for it to finish.
  // Bulk copies are issued by warp 0 alone (the fetch position lives there).
  const bool fetcher = !kBulk || warp == 0;
  if (fetcher) {
    const int k0 = f_kidx, c0 = f_col, p0 = f_prob;
#pragma unroll 1
    for (int s = 0; s < STAGES - 1; s++)
      if (u_begin + s < u_end) {
        if constexpr (kBulk) fetch_bulk(s, kWeights);
        else fetch(s, kWeights);
        advance();
      }
    f_kidx = k0;
    f_col = c0;
    f_prob = p0;
    seek();
  }
  PdlWait();
#pragma unroll 1
  for (int s = 0; s < STAGES - 1; s++) {
    if (fetcher && u_begin + s < u_end) {
      if constexpr (kBulk) fetch_bulk(s, kActs);
      else fetch(s, kActs);
      advance();
    }
    if constexpr (!kBulk) CpAsyncCommit();
  }
  // The compute side's position: ring slots to read and write, k tile within the column, column.
  int rd = 0, wr = STAGES - 1;
  uint32_t phase = 0;  // kBulk: parity of the ring's current lap
  int c_kidx = u_begin % ktiles, cc = u_begin / ktiles;
#pragma unroll 1
  for (int u = u_begin; u < u_end; u++) {
    if constexpr (kBulk) {
      MbarWait(bars + rd, phase);
    } else {
      CpAsyncWait<STAGES - 2>();
    }
    __syncthreads();
    if (fetcher && u + STAGES - 1 < u_end) {
      if constexpr (kBulk) fetch_bulk(wr, kWeights | kActs);
      else fetch(wr, kWeights | kActs);
      advance();
    }
    if constexpr (!kBulk) CpAsyncCommit();
    compute(rd);
    if (++c_kidx == ktiles || u == u_end - 1) {
      finish_column(cc);
#pragma unroll
      for (int i = 0; i < S::kAccQuads; i++)
#pragma unroll
        for (int q = 0; q < 4; q++) acc[i][q] = 0.f;
      c_kidx = 0;
      cc++;
    }
    if (++rd == STAGES) {
      rd = 0;
      phase ^= 1;
    }
    wr = wr + 1 == STAGES ? 0 : wr + 1;
  }
  if constexpr (!kBulk) CpAsyncWait<0>();
}

}  // namespace gpu
}  // namespace marlin
