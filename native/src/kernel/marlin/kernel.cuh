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
//    workspace is zero again after every launch (CUDA-graph safe, no host synchronization). The
//    m <= 32 tiles store only the rows that exist and sum them with every thread of that block.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "common/smem_copy.cuh"

#include "common/pdl.cuh"
#include "kernel/hopper/wgmma_tok.cuh"

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
};

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

using smem::CpAsync16;
using smem::CpAsyncCommit;
using smem::CpAsyncWait;
using smem::LdMatrixX4;
using smem::SmemAddr;

// Weight loads may ask L2 to fetch 256-byte sectors (MARLIN_B_PREFETCH=1, measured on H100).
__device__ __forceinline__ void CpAsync16B(void* smem, const void* gmem) {
#if defined(MARLIN_B_PREFETCH) && MARLIN_B_PREFETCH
  asm volatile("cp.async.cg.shared.global.L2::256B [%0], [%1], 16;\n" ::"r"(SmemAddr(smem)), "l"(gmem));
#else
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(SmemAddr(smem)), "l"(gmem));
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

// f(i, j, q) for every element of a warp's accumulator fragments acc[MB][KJ][4], in one fixed order.
template <int MB, int KJ, typename F>
__device__ __forceinline__ void EachAcc(F&& f) {
#pragma unroll
  for (int i = 0; i < MB; i++)
#pragma unroll
    for (int j = 0; j < KJ; j++)
#pragma unroll
      for (int q = 0; q < 4; q++) f(i, j, q);
}

// Position of column c inside its 32-column block under the per-channel scale permutation.
__device__ __forceinline__ int PerChannelPos(int c) {
  const int ci = c & 31;
  return (c - ci) + 8 * ((ci & 7) >> 1) + 2 * (ci >> 3) + (ci & 1);
}

// WG (sm_90a, implies SWAP): the swapped tile on warpgroup MMAs, MB * 8 tokens (the wgmma N), 256
// columns (one warpgroup's four 64-column strips at the same k16 tile), two warpgroups along k.
template <int BITS, bool ZP, int MB, int TN, int TK, bool SWAP = false, bool WG = false>
struct Shape {
  static_assert(!SWAP || MB == 1 || WG, "the swapped mma.sync tile holds 8 rows");
  static_assert(!WG || (SWAP && TN == 16 && BITS == 4 && MB <= 8), "the wgmma tile: 256 columns, 4-bit, up to 64 tokens");
  static constexpr int kThreads = 256;
  static constexpr int NS = TN / 4;    // 64-column strips in a tile (warps along n)
  static constexpr int KG = 8 / NS;    // warps along k
  static constexpr int KPW = TK / KG;  // k16 tiles per warp per stage
  static_assert(NS >= 1 && NS <= 8 && 8 % NS == 0 && TK % KG == 0 && KPW >= 1, "bad tile");
  // k16 tiles of a warp that share one scale row (the smallest group is 32 rows).
  static constexpr int kKwPerGroup = KPW < 2 ? KPW : 2;
  static constexpr int kARows = SWAP ? MB * 8 : MB * 16;
  static constexpr int kARowChunks = TK * 2;  // 16-byte chunks per activation row per stage
  static_assert(kARowChunks >= 8, "the activation swizzle needs 8 chunks per row");
  static constexpr int kAChunks = kARows * kARowChunks;
  static constexpr int kBStripChunks = 8 * BITS;  // one 16x64 block: 512 B (4-bit) or 1 KiB (8-bit)
  static constexpr int kBRowChunks = NS * kBStripChunks;
  static constexpr int kBChunks = TK * kBRowChunks;
  static constexpr int kMaxGroups = TK * 16 / 32;  // scale rows a stage may span (group size 32)
  static_assert(kMaxGroups * TN * 2 <= 256, "one scale chunk per thread");
  static constexpr int kSRowChunks = TN * 2;       // TN*16 fp16 scales
  static constexpr int kSChunks = kMaxGroups * kSRowChunks;
  static constexpr int kZRowChunks = TN * BITS / 8;  // TN*16 zero points of BITS bits
  static constexpr int kZChunks = ZP ? kMaxGroups * kZRowChunks : 0;
  // wgmma reads the activations through 128-byte-swizzle descriptors: stages start 1024-byte aligned.
  static constexpr int kStageChunks = WG ? (kAChunks + kBChunks + kSChunks + kZChunks + 63) / 64 * 64 : kAChunks + kBChunks + kSChunks + kZChunks;
  // Accumulator quads (one MMA's C fragment) per lane and row block: 8 n8 tiles, or (swapped) 4 n16
  // tiles of C^T.
  static constexpr int kJ = SWAP ? 4 : 8;
  static constexpr int kAccFloats = MB * kJ * 4;  // per lane
  static constexpr int kTileFloats = NS * 32 * kAccFloats;  // one partial slot
  static constexpr int kRedFloats = (KG - 1) * NS * 32 * kAccFloats;
  static constexpr size_t SmemBytes(int stages) {
    return size_t(stages) * kStageChunks * 16 + size_t(kRedFloats) * 4 + 16 + (WG ? 1024 : 0);
  }
};

#ifndef MARLIN_MB2_MIN_BLOCKS
#define MARLIN_MB2_MIN_BLOCKS 1
#endif
#ifndef MARLIN_LATE_SCALE
#define MARLIN_LATE_SCALE 1  // the swapped tile scales run sums in fp32 (0: weights in 16 bits, as before)
#endif
#ifndef MARLIN_SWAP_MIN_BLOCKS
#define MARLIN_SWAP_MIN_BLOCKS 2  // three (80 registers, no spill) measured 0-3% slower than two
#endif
// m <= 16 tiles fit 128 registers: two blocks per SM keep more weight bytes in flight.
// SWAP (m <= 8): the dequantized weights are the MMA's A operand (the lane's Marlin fragment
// registers also form the A fragment of W^T for 16 columns x 16 k) and 8 activation rows the B
// operand: one MMA per 256 weights instead of two, half the accumulators, no padding rows.
template <typename T, int BITS, bool ZP, int MB, int TN, int TK, int STAGES, bool SWAP = false, bool WG = false>
__global__ void __launch_bounds__(256, SWAP ? (MB > 2 ? 1 : MARLIN_SWAP_MIN_BLOCKS) : MB == 1 ? 2 : MB == 2 ? MARLIN_MB2_MIN_BLOCKS : 1) MarlinKernel(const KernelArgs p) {
  using S = Shape<BITS, ZP, MB, TN, TK, SWAP, WG>;
  constexpr int kJ = S::kJ;
  using T2 = typename Vec2<T>::type;
  constexpr int ZERO = ZP ? 0 : (1 << (BITS - 1));
  using DQ = Dequant<T, BITS, ZERO>;
  using DQZ = Dequant<T, BITS, 0>;

  extern __shared__ int4 smem_raw[];
  // The wgmma tile's swizzle acts on address bits: its ring starts 1024-byte aligned.
  int4* const smem = WG ? smem_raw + ((1024 - (SmemAddr(smem_raw) & 1023)) & 1023) / 16 : smem_raw;
  int4* const ring = smem;
  float* const red = reinterpret_cast<float*>(smem + STAGES * S::kStageChunks);
  int* const flag = reinterpret_cast<int*>(red + S::kRedFloats);

  PdlTrigger();  // the next kernel may be scheduled now; it waits for this one before its reads
  const int tid = threadIdx.x;
  const int lane = tid & 31;
  const int warp = tid >> 5;
  const int strip = warp % S::NS;
  // The wgmma tile's warpgroup index through a shuffle: the compiler then knows it is warp-uniform
  // and keeps the MMA descriptors in uniform registers (otherwise 8 R2UR moves a k16 tile).
  const int kgrp = WG ? __shfl_sync(0xffffffffu, warp / S::NS, 0) : warp / S::NS;

  const int ntiles = p.n / (TN * 16);
  const int ktiles = p.k / (TK * 16);
  const int total = p.problems * ntiles * ktiles;
  const int u_begin = blockIdx.x * p.iters;
  const int u_end = min(u_begin + p.iters, total);
  if (u_begin >= u_end) return;

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
  constexpr int NA = (S::kAChunks + S::kThreads - 1) / S::kThreads;
  constexpr int NB = (S::kBChunks + S::kThreads - 1) / S::kThreads;
  int a_src[NA], a_dst[NA], a_row[NA];
#pragma unroll
  for (int it = 0; it < NA; it++) {
    const int i = tid + it * S::kThreads;
    const int r = i / S::kARowChunks, c = i % S::kARowChunks;
    a_row[it] = i < S::kAChunks ? r : 1 << 30;  // rows past the tile never load
    a_src[it] = r * p.lda + c * 8;
    // WG: per 64-k segment, rows of 128 B in 8-row atoms, 16-byte chunks XOR-ed with the row (the
    // wgmma 128-byte swizzle, K-major); otherwise rows of TK * 32 B with the same XOR.
    a_dst[it] = WG ? (c >> 3) * (S::kARows * 8) + r * 8 + ((c & 7) ^ (r & 7)) : r * S::kARowChunks + (c ^ (r & 7));
  }
  int b_src[NB], b_dst[NB];
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
  auto fetch = [&](int slot, int parts) {
    int4* st = ring + slot * S::kStageChunks;
    if (parts & kActs) {
#pragma unroll
      for (int it = 0; it < NA; it++)
        if (a_row[it] < f_rows) CpAsync16(st + a_dst[it], f_a + a_src[it], true);
    }
    if (!(parts & kWeights)) return;
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

  float acc[MB][kJ][4];
  auto zero_acc = [&]() { EachAcc<MB, kJ>([&](int i, int j, int q) { acc[i][j][q] = 0.f; }); };
  zero_acc();
  auto fence_acc = [&]() {
    if constexpr (WG) EachAcc<MB, kJ>([&](int i, int j, int q) { WgFenceReg(acc[i][j][q]); });
  };

  // Per-thread shared-memory read offsets (int4 units within a stage), fixed for the launch.
  // Scales and zero points are read once per kKwPerGroup k16 tiles of a warp (aligned runs of 32
  // rows lie in one group): grel[g] is that run's scale row within the stage.
  constexpr int kRuns = S::KPW / S::kKwPerGroup;
  int grel[kRuns];
#pragma unroll
  for (int g = 0; g < kRuns; g++) grel[g] = per_channel ? 0 : ((kgrp * S::KPW + g * S::kKwPerGroup) * 16) >> gshift;
  // Activation fragments: ldmatrix.x4 of 16 rows x one k16 tile; swapped, of 8 rows x two k16
  // tiles (the B fragments of both; with one k16 tile per warp the second pair repeats the first).
  constexpr bool kPairs = SWAP && S::KPW % 2 == 0;
  int a_rd[S::KPW];
#pragma unroll
  for (int kw = 0; kw < S::KPW; kw++) {
    if constexpr (SWAP) {
      const int kk = kgrp * S::KPW + (kPairs ? 2 * kw : kw);
      const int row = lane & 7, chunk = 2 * kk + (kPairs ? (lane >> 3) : ((lane >> 3) & 1));
      a_rd[kw] = row * S::kARowChunks + (chunk ^ row);
    } else {
      const int kk = kgrp * S::KPW + kw;  // rows i*16 + (lane & 15): the swizzle key is lane & 7
      a_rd[kw] = (lane & 15) * S::kARowChunks + ((kk * 2 + (lane >> 4)) ^ (lane & 7));
    }
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
    // A pair of dequantized values of n8 tile j: its zero point off, and its group's scale on when
    // `scaled` (per-channel scales, and late-scaled runs, are applied after the sums).
    auto zero_scale = [&](T2& b0, T2& b1, int j, bool scaled) {
      if constexpr (ZP) {
        const T2 zz = zero2[j >> 1];
        const T zj = (j & 1) ? zz.y : zz.x;
        const T2 z2 = {zj, zj};
        b0 = __hsub2(b0, z2);
        b1 = __hsub2(b1, z2);
      }
      if (scaled) {
        const T2 s2 = {scale[j], scale[j]};
        b0 = __hmul2(b0, s2);
        b1 = __hmul2(b1, s2);
      }
    };
    if constexpr (WG) {
      // Warpgroup MMAs: the four warps of a warpgroup hold the A fragments (dequantized weights of W^T)
      // of four 64-column strips at the same k16 tile; wgmma t multiplies feature tile t of every
      // strip (64 features) by the tile's MB * 8 tokens, read from the stage by descriptor. Two sets of
      // A registers and one commit group per k16 tile: the next tile dequantizes while the previous
      // tile's MMAs run. (One set and a group per feature tile at 64 tokens measured slower: 70B m = 64
      // 0.3238 against 0.3178 ms, kernel NOTES session 8.)
      const uint64_t desc0 = WgDescSw128(SmemAddr(st));
      uint32_t wa[2][4][4];
#pragma unroll
      for (int kw = 0; kw < S::KPW; kw++) {
        if (kw % S::kKwPerGroup == 0) read_group(grel[kw / S::kKwPerGroup]);
        const int4 w0 = st[b_rd + kw * S::kBRowChunks];
        const uint32_t words[4] = {static_cast<uint32_t>(w0.x), static_cast<uint32_t>(w0.y), static_cast<uint32_t>(w0.z), static_cast<uint32_t>(w0.w)};
        uint32_t(&a)[4][4] = wa[kw & 1];
        const int kk = kgrp * S::KPW + kw;  // k16 tile within the stage: 64-k segment kk / 4, 32 B a step
        const uint64_t desc = desc0 + (((kk >> 2) * (S::kARows * 128) + (kk & 3) * 32) >> 4);  // start address in 16 B
#pragma unroll
        for (int t = 0; t < 4; t++) {
          T2 v[4];
          DQ::Run(words[t], v);
          uint32_t wf[2][2];
#pragma unroll
          for (int h = 0; h < 2; h++) {
            const int j = 2 * t + h;
            T2 b0 = v[2 * h], b1 = v[2 * h + 1];
            zero_scale(b0, b1, j, !per_channel);
            wf[h][0] = AsU32(b0);
            wf[h][1] = AsU32(b1);
          }
          a[t][0] = wf[0][0];
          a[t][1] = wf[1][0];
          a[t][2] = wf[0][1];
          a[t][3] = wf[1][1];
        }
        fence_acc();
        WgFence();
#pragma unroll
        for (int t = 0; t < 4; t++) WgmmaTok<T, MB * 8>::Run(acc, t, a[t], desc);
        WgCommit();
        fence_acc();
        WgWait<1>();  // the tile before this one is done: its A registers may be written again
      }
      WgWait<0>();  // the ring slot is refilled after the next barrier
      fence_acc();
      return;
    }
    uint32_t xf[4];  // swapped: B fragments of up to two k16 tiles of the 8 activation rows
    // Swapped tile, grouped scales: the MMAs of one scale run (kKwPerGroup k16 tiles of one group)
    // take the unscaled weights (q - zero, exact in 16 bits) into run sums, and each run sum is
    // scaled once into the accumulators in fp32: 16 FFMA a run instead of 16 HMUL2 a k16 tile (at
    // m <= 8 the kernel is issue-bound: ncu, 16384 x 65536, 70% issue active, 53% DRAM). Harness
    // bench, H200, one call, ms per block at m = 1 (off -> on): 13B 0.0727 -> 0.0715, 70B 0.1497 ->
    // 0.1445, 16384 x 65536 0.1630 -> 0.1569. The products are exact and scaled in fp32, so the
    // result is closer to fp64 than with weights rounded to 16 bits after scaling.
    constexpr bool kLate = SWAP && !WG && MARLIN_LATE_SCALE && S::kKwPerGroup >= 2;  // runs of one tile would not pay
    float run[4][4];  // unused (and compiled out) without kLate
#pragma unroll
    for (int kw = 0; kw < S::KPW; kw++) {
      if (kw % S::kKwPerGroup == 0) {
        read_group(grel[kw / S::kKwPerGroup]);
        if constexpr (kLate)
#pragma unroll
          for (int t = 0; t < 4; t++)
#pragma unroll
            for (int q = 0; q < 4; q++) run[t][q] = 0.f;
      }
      uint32_t af[SWAP ? 1 : MB][4];
      if constexpr (SWAP) {
        if (!kPairs || kw % 2 == 0) LdMatrixX4(xf, st + a_rd[kPairs ? kw / 2 : kw]);
      } else {
#pragma unroll
        for (int i = 0; i < MB; i++) LdMatrixX4(af[i], st + a_rd[kw] + i * 16 * S::kARowChunks);
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
        uint32_t wf[2][2];  // swapped: [n8 tile h][k half], columns 16 t + 8 h + lane / 4
#pragma unroll
        for (int h = 0; h < 2; h++) {
          const int j = 2 * t + h;
          T2 b0 = v[2 * h], b1 = v[2 * h + 1];
          zero_scale(b0, b1, j, !per_channel && !kLate);
          if constexpr (SWAP) {
            wf[h][0] = AsU32(b0);
            wf[h][1] = AsU32(b1);
          } else {
#pragma unroll
            for (int i = 0; i < MB; i++) Mma<T>(acc[i][j], af[i], AsU32(b0), AsU32(b1));
          }
        }
        if constexpr (SWAP) {
          // The B fragments of the two n8 tiles are the A fragment of W^T (rows lane/4 and
          // lane/4 + 8, k halves as in B): C^T of the n16 tile t for the 8 rows.
          const uint32_t wa[4] = {wf[0][0], wf[1][0], wf[0][1], wf[1][1]};
          const int x = kPairs ? 2 * (kw % 2) : 0;
          if (!kLate || per_channel) Mma<T>(acc[0][t], wa, xf[x], xf[x + 1]);  // per-channel: scaled in the epilogue
          else Mma<T>(run[t], wa, xf[x], xf[x + 1]);
        }
      }
      if constexpr (kLate) {
        if (!per_channel && (kw % S::kKwPerGroup == S::kKwPerGroup - 1 || kw == S::KPW - 1)) {
#pragma unroll
          for (int t = 0; t < 4; t++)
#pragma unroll
            for (int q = 0; q < 4; q++)  // element q of quad t: column 16t + lane/4 + 8(q/2)
              acc[0][t][q] = fmaf(run[t][q], ToFloat<T>(scale[2 * t + (q >> 1)]), acc[0][t][q]);
        }
      }
    }
  };

  // Where accumulator element q of quad (i, j) of this lane sits: row within the problem's rows,
  // column within the tile. m16n8 C fragment of n8 tile j; swapped, C^T of n16 tile j.
  const int g8 = lane >> 2, t4 = lane & 3;
  auto acc_row = [&](int i, int q) { return SWAP ? i * 8 + 2 * t4 + (q & 1) : i * 16 + g8 + 8 * (q >> 1); };
  auto acc_col = [&](int j, int q) { return SWAP ? strip * 64 + 16 * j + g8 + 8 * (q >> 1) : strip * 64 + 8 * j + 2 * t4 + (q & 1); };

  // The tile's result (held by warps with kgrp == 0) goes to C: per-channel scales, bias, rounding.
  auto epilogue = [&](int cc, float (&v)[MB][kJ][4]) {
    const int prob = cc / ntiles;
    const int col = cc - prob * ntiles;
    const int g = lane >> 2, t = lane & 3;
    T* c = static_cast<T*>(p.c);
    const T* sc = static_cast<const T*>(p.scales);
    const T* bias = static_cast<const T*>(p.bias);
    if constexpr (SWAP) {  // one column, two rows per half quad
#pragma unroll
      for (int j = 0; j < kJ; j++)
#pragma unroll
        for (int hq = 0; hq < 2; hq++) {
          const int cn = col * TN * 16 + acc_col(j, 2 * hq);
          const float s0 = per_channel ? ToFloat<T>(sc[PerChannelPos(cn)]) : 1.f;
          const float b0 = bias ? ToFloat<T>(bias[cn]) : 0.f;
#pragma unroll
          for (int i = 0; i < MB; i++)
#pragma unroll
            for (int q = 2 * hq; q < 2 * hq + 2; q++) {
              const int r = prob * S::kARows + acc_row(i, q);
              if (r < p.m) c[static_cast<size_t>(r) * p.ldc + cn] = FromFloats<T>(v[i][j][q] * s0 + b0, 0.f).x;
            }
        }
    } else {
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
          const int r0 = prob * S::kARows + i * 16 + g;
          if (r0 < p.m)
            *reinterpret_cast<T2*>(c + static_cast<size_t>(r0) * p.ldc + cn) = FromFloats<T>(v[i][j][0] * s0 + b0, v[i][j][1] * s1 + b1);
          if (r0 + 8 < p.m)
            *reinterpret_cast<T2*>(c + static_cast<size_t>(r0 + 8) * p.ldc + cn) =
                FromFloats<T>(v[i][j][2] * s0 + b0, v[i][j][3] * s1 + b1);
        }
      }
    }
  };

  // Split columns of the m <= 32 tiles are summed by every thread of the last block (its registers
  // would spill the 64-row tile's): slices hold only the rows that exist, as [row][TN*16] fp32, and
  // each thread owns float4 items (row, 4 columns); when the items are few the slices are split
  // between P groups of threads too. Several slices' loads are in flight per thread (the serial sum
  // was one L2 round trip per slice: ~0.2 us each, most of a small layer's time). Each thread adds
  // its slices in k order and the groups are added in group order: the result does not depend on
  // which block arrives last.
  constexpr bool kParallelSum = S::kARows <= 32;
  constexpr int C4 = TN * 4;                                           // float4 per tile row
  constexpr int KI = (S::kARows * C4 + S::kThreads - 1) / S::kThreads;  // items per thread at most
  constexpr int KU = KI >= 8 ? 1 : 8 / KI;                             // slices per batch of loads
  static_assert(!kParallelSum || S::kRedFloats >= 4 * S::kThreads, "the group sums are staged in the k-reduction area");
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
    auto slice = [&](int s) {  // slice s's slot: as slot_of in finish_column
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
    if (P > 1) {  // E * P <= 256: the groups meet in shared memory, added in group order
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
        EachAcc<MB, kJ>([&](int i, int j, int q) { dst[((i * kJ + j) * 4 + q) * 32 + lane] = acc[i][j][q]; });
      }
      __syncthreads();
      if (kgrp == 0) {
        for (int kg = 1; kg < S::KG; kg++) {
          const float* src = red + ((kg - 1) * S::NS + strip) * 32 * S::kAccFloats;
          EachAcc<MB, kJ>([&](int i, int j, int q) { acc[i][j][q] += src[((i * kJ + j) * 4 + q) * 32 + lane]; });
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
    const int rows_here = min(p.m - (cc / ntiles) * S::kARows, S::kARows);
    if (kgrp == 0) {
      if constexpr (kParallelSum) {  // only rows that exist, as [row][TN*16] fp32
        float* dst = p.partial + static_cast<size_t>(slot_of(me)) * S::kTileFloats;
#pragma unroll
        for (int i = 0; i < MB; i++)
#pragma unroll
          for (int j = 0; j < kJ; j++)
#pragma unroll
            for (int q = 0; q < 4; q += SWAP ? 1 : 2) {  // classic: adjacent columns q, q + 1
              const int r = acc_row(i, q);
              if (r >= rows_here) continue;
              float* o = dst + r * (TN * 16) + acc_col(j, q);
              if constexpr (SWAP) *o = acc[i][j][q];
              else *reinterpret_cast<float2*>(o) = make_float2(acc[i][j][q], acc[i][j][q + 1]);
            }
      } else {
        float4* dst = reinterpret_cast<float4*>(p.partial + static_cast<size_t>(slot_of(me)) * S::kTileFloats) + strip * MB * kJ * 32;
#pragma unroll
        for (int i = 0; i < MB; i++)
#pragma unroll
          for (int j = 0; j < kJ; j++) dst[(i * kJ + j) * 32 + lane] = make_float4(acc[i][j][0], acc[i][j][1], acc[i][j][2], acc[i][j][3]);
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
    if constexpr (kParallelSum) {
      if (*flag) {
        __threadfence();
        reduce_parallel(cc, b0, b1, rows_here);
        __syncthreads();  // the group sums' staging area is the next column's k-reduction area
      }
      return;
    }
    if (*flag && kgrp == 0) {
      // Every slice, this block's own included, is summed from the workspace in k order, so the
      // result does not depend on which block arrived last.
      __threadfence();
      zero_acc();
#pragma unroll 1
      for (int b = b0; b <= b1; b++) {
        const float4* src = reinterpret_cast<const float4*>(p.partial + static_cast<size_t>(slot_of(b)) * S::kTileFloats) + strip * MB * kJ * 32;
#pragma unroll
        for (int i = 0; i < MB; i++)
#pragma unroll
          for (int j = 0; j < kJ; j++) {
            const float4 x = __ldcg(src + (i * kJ + j) * 32 + lane);
            acc[i][j][0] += x.x;
            acc[i][j][1] += x.y;
            acc[i][j][2] += x.z;
            acc[i][j][3] += x.w;
          }
      }
      epilogue(cc, acc);
    }
  };

  // Prologue: the first stages' weights stream in while an earlier kernel may still be running
  // (programmatic dependent launch); activations, the workspace and C wait for it to finish.
  {
    const int k0 = f_kidx, c0 = f_col, p0 = f_prob;
#pragma unroll 1
    for (int s = 0; s < STAGES - 1; s++)
      if (u_begin + s < u_end) {
        fetch(s, kWeights);
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
    if (u_begin + s < u_end) {
      fetch(s, kActs);
      advance();
    }
    CpAsyncCommit();
  }
  // The compute side's position: ring slots to read and write, k tile within the column, column.
  int rd = 0, wr = STAGES - 1;
  int c_kidx = u_begin % ktiles, cc = u_begin / ktiles;
#pragma unroll 1
  for (int u = u_begin; u < u_end; u++) {
    CpAsyncWait<STAGES - 2>();
    if constexpr (WG) WgProxyFence();  // the stage's activations are read by wgmma (async proxy)
    __syncthreads();
    if (u + STAGES - 1 < u_end) {
      fetch(wr, kWeights | kActs);
      advance();
    }
    CpAsyncCommit();
    compute(rd);
    if (++c_kidx == ktiles || u == u_end - 1) {
      finish_column(cc);
      zero_acc();
      c_kidx = 0;
      cc++;
    }
    rd = rd + 1 == STAGES ? 0 : rd + 1;
    wr = wr + 1 == STAGES ? 0 : wr + 1;
  }
  CpAsyncWait<0>();
}

}  // namespace gpu
}  // namespace marlin
