#pragma once
// The Hopper (sm_90a) mixed-input GEMM: C[m, n] = A[m, k] * dequant(W)[k, n] (+ bias), computed as
// C^T = W^T A^T so that the dequantized weights are wgmma's register operand and the activations its
// shared-memory operand. See shape.h for the tile and schedule.h for the work division.
//
//  - Producer warpgroup (one thread issues; the warpgroup gives its registers to the consumers): per k-stage, one tensor copy of the activation tile (128-byte
//    swizzle, rows past m zero-filled) and bulk copies of the tile's Marlin weight rows, scale rows
//    and zero-point rows, all completing on the stage's `full` barrier; it waits on the stage's
//    `empty` barrier before reusing it. The first stages' weights are requested before
//    griddepcontrol.wait, so they stream while the previous kernel finishes.
//  - Consumer warps (two warpgroups): per k16 step, each thread reads its tiles' words, decodes them
//    (with scale and zero point) straight into wgmma A fragments, and its warpgroup issues NJ
//    m64nBMk16 wgmmas on fp32 accumulators. A fragments are double-buffered: the decode of step s+1
//    overlaps the MMAs of step s (wgmma.wait_group 1 keeps one group in flight).
//  - Epilogue: whole tiles go out through a per-warp staging buffer in 16-byte stores (bias added in
//    fp32); split tiles store fp32 partials, and the last block of a tile sums them in k order.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "common/pdl.cuh"
#include "kernel/hopper/fragment_map.h"
#include "kernel/hopper/marlin_lane.cuh"
#include "kernel/hopper/ptx.cuh"
#include "kernel/hopper/schedule.h"
#include "kernel/hopper/shape.h"
#include "kernel/hopper/wgmma_rs.cuh"

namespace marlin {
namespace hopper {

struct Params {
  const uint8_t* b;       // Marlin-packed weights
  const uint8_t* scales;  // [groups, n] permuted, the activation dtype
  const uint8_t* zeros;   // [groups, n * bits / 32] packed, or null
  const void* bias;       // [n] or null
  void* c;                // [m, n]
  float* partial;         // 2 * grid partial tiles
  int* counters;          // one per stream-K tile, zero between launches
  int m, n, k;
  int group_shift;  // log2(group size) when grouped
  int per_channel;  // one scale row for all of k (applied in the decode, read once per tile)
  Schedule sched;
  long long watchdog;  // clocks a barrier wait may take before trapping (0: no limit)
};

template <typename T>
__device__ __forceinline__ float ToF32(T x);
template <>
__device__ __forceinline__ float ToF32<__half>(__half x) {
  return __half2float(x);
}
template <>
__device__ __forceinline__ float ToF32<__nv_bfloat16>(__nv_bfloat16 x) {
  return __bfloat162float(x);
}
template <typename T>
__device__ __forceinline__ T FromF32(float x);
template <>
__device__ __forceinline__ __half FromF32<__half>(float x) {
  return __float2half_rn(x);
}
template <>
__device__ __forceinline__ __nv_bfloat16 FromF32<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}
template <typename T2>
__device__ __forceinline__ T2 Broadcast(T2 v, int hi);
template <>
__device__ __forceinline__ __half2 Broadcast<__half2>(__half2 v, int hi) {
  return hi ? __high2half2(v) : __low2half2(v);
}
template <>
__device__ __forceinline__ __nv_bfloat162 Broadcast<__nv_bfloat162>(__nv_bfloat162 v, int hi) {
  return hi ? __high2bfloat162(v) : __low2bfloat162(v);
}

// The producer thread: every k-stage of every span of this block, in order.
template <int BITS, bool ZP, int BM, int NJ>
__device__ __forceinline__ void Produce(const CUtensorMap& amap, const Params& p, uint32_t sbase, uint32_t bars) {
  using S = Shape<BITS, ZP, BM, NJ>;
  constexpr int kStages = S::kStages;
  auto full = [&](int i) { return bars + 8 * i; };
  auto empty = [&](int i) { return bars + 8 * (kMaxStages + i); };
  const Schedule& sched = p.sched;
  const bool per_channel = p.per_channel != 0;
  const int gshift = p.group_shift;
  const int stage_rows = gshift == 5 ? 2 : 1;  // scale / zero rows of a 64-row stage (group 32: two)
  const int srows = per_channel ? 0 : stage_rows;
  const int zrows = ZP ? (per_channel ? 1 : stage_rows) : 0;
  PrefetchTensorMap(&amap);
  const uint32_t bytes = S::kABytes + S::kWBytes + srows * S::kSRowBytes + zrows * S::kZRowBytes;
  const size_t w_row = size_t(p.n) * 2 * BITS;  // bytes of one Marlin k16 row
  const size_t z_row = size_t(p.n) * BITS / 8;
  auto weights = [&](int slot, int tn, int kst) {
    const uint32_t st = sbase + slot * S::kStageBytes;
    const uint8_t* w = p.b + size_t(kst) * 4 * w_row + size_t(tn) * S::kWRowBytes;
#pragma unroll
    for (int r = 0; r < 4; r++) BulkCopy(st + S::kWOffset + r * S::kWRowBytes, w + r * w_row, S::kWRowBytes, full(slot));
    const int g0 = per_channel ? 0 : (kst * kStageK) >> gshift;
    for (int r = 0; r < srows; r++)
      BulkCopy(st + S::kSOffset + r * S::kSRowBytes, p.scales + (size_t(g0 + r) * p.n + size_t(tn) * S::kBN) * 2, S::kSRowBytes, full(slot));
    if constexpr (ZP) {
      for (int r = 0; r < zrows; r++)
        BulkCopy(st + S::kZOffset + r * S::kZRowBytes, p.zeros + size_t(g0 + r) * z_row + size_t(tn) * S::kZRowBytes, S::kZRowBytes,
                 full(slot));
    }
  };
  auto acts = [&](int slot, int tm, int kst) { TensorCopy2d(sbase + slot * S::kStageBytes, &amap, kst * kStageK, tm * BM, full(slot)); };

  SpanCursor cur;
  cur.Init(sched, blockIdx.x);
  Span sp;
  bool have = cur.Next(sched, sp);
  int kst = have ? sp.k0 : 0;
  auto advance = [&]() {
    if (++kst == sp.k1) {
      have = cur.Next(sched, sp);
      kst = have ? sp.k0 : 0;
    }
  };
  // The first stages: weights now, activations once the previous kernel is done.
  const SpanCursor cur0 = cur;
  const Span sp0 = sp;
  const int kst0 = kst;
  const bool have0 = have;
  int it = 0;
  for (; have && it < kStages; it++) {
    int tm, tn;
    TileCoords(sched, sp.tile, tm, tn);
    MbarArriveExpectTx(full(it), bytes);
    weights(it, tn, kst);
    advance();
  }
  const int prefetched = it;
  const SpanCursor cur1 = cur;
  const Span sp1 = sp;
  const int kst1 = kst;
  const bool have1 = have;
  PdlWait();
  cur = cur0;
  sp = sp0;
  kst = kst0;
  have = have0;
  for (int i = 0; i < prefetched; i++) {
    int tm, tn;
    TileCoords(sched, sp.tile, tm, tn);
    acts(i, tm, kst);
    advance();
  }
  cur = cur1;
  sp = sp1;
  kst = kst1;
  have = have1;
  // Steady state: a stage is refilled once all eight consumer warps released it.
  int slot = 0;
  uint32_t round = 1;
  for (; have; it++) {
    int tm, tn;
    TileCoords(sched, sp.tile, tm, tn);
    MbarWait(empty(slot), (round - 1) & 1, p.watchdog);
    MbarArriveExpectTx(full(slot), bytes);
    weights(slot, tn, kst);
    acts(slot, tm, kst);
    advance();
    if (++slot == kStages) {
      slot = 0;
      round++;
    }
  }
  // Stay until the consumers have released every stage: the watchdog then also covers their waits
  // (which have none of their own).
  for (int u = it > kStages ? it - kStages : 0; u < it; u++) MbarWait(empty(u % kStages), (u / kStages) & 1, p.watchdog);
}

// The consumer warps: decode, MMA, epilogue.
template <typename T, int BITS, bool ZP, int BM, int NJ>
__device__ __forceinline__ void Consume(const Params& p, uint8_t* smem, uint32_t sbase, uint32_t bars) {
  using S = Shape<BITS, ZP, BM, NJ>;
  using T2 = typename Pair<T>::type;
  using LT = LaneTile<T, BITS>;
  constexpr int kStages = S::kStages;
  constexpr int kW = LT::kWords;  // words per lane per 16 x 16 tile
  auto full = [&](int i) { return bars + 8 * i; };
  auto empty = [&](int i) { return bars + 8 * (kMaxStages + i); };
  int* const flag = reinterpret_cast<int*>(smem + S::kBarOffset + 16 * kMaxStages);
  const Schedule& sched = p.sched;
  const bool per_channel = p.per_channel != 0;
  const int gshift = p.group_shift;
  const int stage_rows = gshift == 5 ? 2 : 1;
  const int tid = threadIdx.x;
  const int warp = tid >> 5;
  const int lane = tid & 31;
  PdlWait();  // nothing below writes global memory before the previous kernel is done
  const int cw = warp;  // consumer warp 0..7
  const int g = lane >> 2;
  const int tile0 = WarpTile0<NJ>(cw);  // see fragment_map.h
  const int w_off = WeightByte<BITS, NJ>(cw, lane);
  const int s_off = ScaleByte<NJ>(cw, lane);
  const int z_off = ZeroByte<NJ>(cw, lane);
  int* const counters = p.counters;
  T* const c = static_cast<T*>(p.c);

  float acc[NJ][S::kAccPerJ];
  uint32_t afrag[2][NJ][4];
  auto fence_acc = [&]() {
#pragma unroll
    for (int j = 0; j < NJ; j++)
#pragma unroll
      for (int i = 0; i < S::kAccPerJ; i++) FenceReg(acc[j][i]);
  };

  SpanCursor cur;
  cur.Init(sched, blockIdx.x);
  Span sp;
  int slot = 0;
  uint32_t round = 0;
#pragma unroll 1
  while (cur.Next(sched, sp)) {
    int tm, tn;
    TileCoords(sched, sp.tile, tm, tn);
    const int f0 = tn * S::kBN + cw * S::kWarpFeatures;  // first feature of this warp
    T2 scale[NJ];  // (column g, column g + 8) of each tile
    typename LT::Zero zero[NJ][2];
#pragma unroll
    for (int j = 0; j < NJ; j++) {
      zero[j][0] = zero[j][1] = LT::Symmetric();
      if (per_channel) {
        const T* sc = reinterpret_cast<const T*>(p.scales);
        const int f = f0 + 16 * j + g;
        T2 v;
        v.x = sc[PerChannelScalePos(f)];
        v.y = sc[PerChannelScalePos(f + 8)];
        scale[j] = v;
      }
    }
    int scale_d = 0;
    int prev = -1;
#pragma unroll 1
    for (int kst = sp.k0; kst < sp.k1; kst++) {
      MbarWait(full(slot), round & 1, 0);  // no watchdog here: its trap path makes ptxas wait on the MMAs
      const uint8_t* st = smem + slot * S::kStageBytes;
      const uint32_t a_tile = sbase + slot * S::kStageBytes;
#pragma unroll
      for (int s = 0; s < 4; s++) {
        const int row = (s * 16) >> gshift;  // scale / zero row of this k16 step (gshift >= 5)
        if (s == 0 || (s == 2 && stage_rows == 2)) {
          if (!per_channel) {
            const uint32_t* sw = reinterpret_cast<const uint32_t*>(st + S::kSOffset + row * S::kSRowBytes + s_off);
#pragma unroll
            for (int j = 0; j < NJ; j++) scale[j] = FromBits<T2>(sw[j]);
          }
          if constexpr (ZP) {
            const uint32_t zw = *reinterpret_cast<const uint32_t*>(st + S::kZOffset + (per_channel ? 0 : row) * S::kZRowBytes + z_off);
#pragma unroll
            for (int j = 0; j < NJ; j++) LT::ZerosOf(zw, tile0 + j, zero[j][0], zero[j][1]);
          }
        }
        uint32_t words[NJ * kW];
        {
          const uint32_t* wp = reinterpret_cast<const uint32_t*>(st + S::kWOffset + s * S::kWRowBytes + w_off);
          if constexpr (NJ * kW == 1) {
            words[0] = wp[0];
          } else if constexpr (NJ * kW == 2) {
            const uint2 x = *reinterpret_cast<const uint2*>(wp);
            words[0] = x.x;
            words[1] = x.y;
          } else {
#pragma unroll
            for (int q = 0; q < NJ * kW / 4; q++) {
              const uint4 x = reinterpret_cast<const uint4*>(wp)[q];
              words[4 * q] = x.x;
              words[4 * q + 1] = x.y;
              words[4 * q + 2] = x.z;
              words[4 * q + 3] = x.w;
            }
          }
        }
        uint32_t(&a)[NJ][4] = afrag[s & 1];
#pragma unroll
        for (int j = 0; j < NJ; j++) {
          T2 v[4];
          LT::Run(words + j * kW, zero[j][0], zero[j][1], Broadcast(scale[j], 0), Broadcast(scale[j], 1), v);
          // wgmma A fragment: (row g, k 2t..), (row g+8, k 2t..), (row g, k 2t+8..), (row g+8, k 2t+8..)
          a[j][0] = Bits(v[0]);
          a[j][1] = Bits(v[2]);
          a[j][2] = Bits(v[1]);
          a[j][3] = Bits(v[3]);
        }
        const uint64_t desc = DescSw128(a_tile + s * 32);
        fence_acc();
        WgmmaFence();  // everything the MMAs read is defined before this point
#pragma unroll
        for (int j = 0; j < NJ; j++) WgmmaRs<T, BM>::Run(acc[j], a[j], desc, scale_d);
        WgmmaCommit();
        fence_acc();
        scale_d = 1;
        WgmmaWait<1>();
        if (s == 0) {  // the previous stage's last MMAs are done: hand it back (no branch on lane)
          __syncwarp();
          MbarArriveIf(empty(prev < 0 ? 0 : prev), prev >= 0 && lane == 0);
          prev = -1;
        }
      }
      prev = slot;
      if (++slot == kStages) {
        slot = 0;
        round++;
      }
    }
    WgmmaWait<0>();
    fence_acc();
    __syncwarp();
    MbarArriveIf(empty(prev), lane == 0);

    // ---- epilogue: 16 features x kEpiTokens tokens at a time through this warp's staging buffer
    T* const buf = reinterpret_cast<T*>(smem + S::kEpiOffset + cw * S::kEpiWarpBytes);
    const T* const bias = static_cast<const T*>(p.bias);
    auto bias_of = [&](int j, int h) { return bias ? ToF32<T>(bias[f0 + 16 * j + g + 8 * h]) : 0.f; };
    // Accumulators i .. i + 3 of a row block (one n8 column: tokens 2t, 2t+1 of features g, g + 8),
    // i counted inside the token chunk, into the buffer.
    auto put = [&](int i, float v0, float v1, float v2, float v3, float b0, float b1) {
      buf[AccToken(i, lane) * S::kEpiStride + AccFeature(0, i, lane)] = FromF32<T>(v0 + b0);
      buf[AccToken(i + 1, lane) * S::kEpiStride + AccFeature(0, i + 1, lane)] = FromF32<T>(v1 + b0);
      buf[AccToken(i + 2, lane) * S::kEpiStride + AccFeature(0, i + 2, lane)] = FromF32<T>(v2 + b1);
      buf[AccToken(i + 3, lane) * S::kEpiStride + AccFeature(0, i + 3, lane)] = FromF32<T>(v3 + b1);
    };
    // The buffer to C in 16-byte stores (rows past m are dropped).
    auto flush = [&](int j, int tc) {
      __syncwarp();
#pragma unroll
      for (int q = lane; q < S::kEpiTokens * 2; q += 32) {
        const int tok = q >> 1, half = q & 1;
        const int r = tm * BM + tc * S::kEpiTokens + tok;
        if (r < p.m)
          *reinterpret_cast<int4*>(c + size_t(r) * p.n + f0 + 16 * j + 8 * half) = *reinterpret_cast<const int4*>(buf + tok * S::kEpiStride + 8 * half);
      }
      __syncwarp();
    };
    constexpr int kChunks = BM / S::kEpiTokens, kCols = S::kEpiTokens / 8;
    // One pass over the accumulators (a second pass would keep them all live twice over): a whole
    // tile goes to C; a split tile's slice goes to this block's partial slot, where thread tid's
    // float4 number q (q = j * kAccPerJ / 4 + n8 column) sits at [q][tid].
    const bool whole = IsWhole(sched, sp);
    const int sk = sp.tile - sched.dp_tiles;
    float4* const slice = whole ? nullptr : reinterpret_cast<float4*>(p.partial + size_t(PartialSlot(sched, blockIdx.x, sk)) * S::kPartialFloats) + tid;
#pragma unroll
    for (int j = 0; j < NJ; j++) {
      const float bj0 = whole ? bias_of(j, 0) : 0.f, bj1 = whole ? bias_of(j, 1) : 0.f;
#pragma unroll
      for (int tc = 0; tc < kChunks; tc++) {
#pragma unroll
        for (int c8 = 0; c8 < kCols; c8++) {
          const int i = (tc * kCols + c8) * 4;
          if (whole)
            put(c8 * 4, acc[j][i], acc[j][i + 1], acc[j][i + 2], acc[j][i + 3], bj0, bj1);
          else
            __stcg(slice + (j * (S::kAccPerJ / 4) + i / 4) * kConsumerThreads, make_float4(acc[j][i], acc[j][i + 1], acc[j][i + 2], acc[j][i + 3]));
        }
        if (whole) flush(j, tc);
      }
    }
    if (whole) continue;
    // ---- split tile: the block that stores the last slice sums them all, in k order.
    int b0, b1;
    SliceBlocks(sched, sk, b0, b1);
    __threadfence();
    NamedBarrier(1, kConsumerThreads);
    if (tid == 0) {
      const int old = atomicAdd(counters + sk, 1);
      const int last = old == b1 - b0;
      if (last) atomicExch(counters + sk, 0);  // zero again for the next launch
      *flag = last;
    }
    NamedBarrier(1, kConsumerThreads);
    if (*flag) {
      __threadfence();
      // Summed straight from the workspace, one n8 column at a time (few registers live).
#pragma unroll 1
      for (int j = 0; j < NJ; j++) {
        const float bj0 = bias_of(j, 0), bj1 = bias_of(j, 1);
#pragma unroll 1
        for (int tc = 0; tc < kChunks; tc++) {
#pragma unroll 1
          for (int c8 = 0; c8 < kCols; c8++) {
            const size_t q = size_t(j * (S::kAccPerJ / 4) + tc * kCols + c8) * kConsumerThreads + tid;
            float4 sum = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll 1
            for (int b = b0; b <= b1; b++) {
              const float4 x = __ldcg(reinterpret_cast<const float4*>(p.partial + size_t(PartialSlot(sched, b, sk)) * S::kPartialFloats) + q);
              sum.x += x.x;
              sum.y += x.y;
              sum.z += x.z;
              sum.w += x.w;
            }
            put(c8 * 4, sum.x, sum.y, sum.z, sum.w, bj0, bj1);
          }
          flush(j, tc);
        }
      }
    }
  }
}

template <typename T, int BITS, bool ZP, int BM, int NJ>
__global__ void __launch_bounds__(kThreads, 1) HopperKernel(const __grid_constant__ CUtensorMap amap, const Params p) {
  using S = Shape<BITS, ZP, BM, NJ>;
  constexpr int kStages = S::kStages;

  extern __shared__ uint8_t smem_raw[];
  // 1024-byte alignment of the shared-memory address itself (the swizzle is on address bits).
  uint8_t* const smem = smem_raw + ((1024 - (SmemAddr(smem_raw) & 1023)) & 1023);
  const uint32_t sbase = SmemAddr(smem);
  const uint32_t bars = sbase + S::kBarOffset;
  auto full = [&](int i) { return bars + 8 * i; };
  auto empty = [&](int i) { return bars + 8 * (kMaxStages + i); };

  const int tid = threadIdx.x;
  const int warp = tid >> 5;
  const int lane = tid & 31;
  if (tid == 0) {
    for (int i = 0; i < kStages; i++) {
      MbarInit(full(i), 1);
      MbarInit(empty(i), kConsumerThreads / 32);
    }
    FenceBarrierInit();
  }
  __syncthreads();
  PdlTrigger();

  if (warp >= kConsumerThreads / 32) {
    // ---------------------------------------------------------------- producer
    RegDealloc<kProducerRegs>();
    if (warp == kConsumerThreads / 32 && lane == 0) Produce<BITS, ZP, BM, NJ>(amap, p, sbase, bars);
  } else {
    // ---------------------------------------------------------------- consumers
    RegAlloc<kConsumerRegs>();
    Consume<T, BITS, ZP, BM, NJ>(p, smem, sbase, bars);
  }
}


}  // namespace hopper
}  // namespace marlin
