#pragma once
// The 2:4 sparse kernel. W is the sparse A operand of mma.sp (16 outputs x 32 inputs per tile) and
// the activations are B (32 inputs x 8 rows), so each warp computes C^T for 16 outputs x 8 * kHalves
// rows. A block is 4 warps across n (64 outputs) times kKWarps warps across k; blockIdx.z is the
// k slice of the block. Weights stream straight from global memory into registers, kDepth quads
// ahead of the MMAs (no shared-memory stage: at decode each weight is used once). Activations are
// read through L1 (every warp of a block reads the same rows).
// Reduction, in a fixed order: the kKWarps warp groups through shared memory, then the slices of a
// tile through the fp32 scratch in slice order, each waiting on the tile's lock; the last slice
// writes C, zeroes the scratch it read and sets the lock back to 0. Slices are the slowest grid dimension, so a slice only
// waits on blocks dispatched before it; m tiles are the fastest, so the blocks that read the same
// weights run together and share them through L2.
#include <cstdint>

#include "sparse/gemm.h"
#include "sparse/layout.h"
#include "sparse/mma_sp.cuh"

namespace marlin {
namespace sparse24 {

struct KernelArgs {
  int m, n, k;
  const void* a;
  const uint32_t* values;
  const uint32_t* meta;
  const void* scales;
  const void* bias;
  void* c;
  int* locks;
  float* red;
};

// Two activation values (one 32-bit B register) of row `row` at input `col`; zero past m.
template <typename T>
__device__ __forceinline__ uint32_t LoadPair(const T* a, int m, int k, int row, int col) {
  if (row >= m) return 0u;
  return __ldg(reinterpret_cast<const uint32_t*>(a + size_t(row) * k + col));
}

// kMetaRows: the other reading of the PTX metadata figure (lane 0 of a quad holding row g's 8
// chunks, lane 1 row g+8's) built from the stored words by one shuffle; only `harness probe`
// launches it, to confirm on the GPU which reading the hardware has (layout.h documents ours).
template <typename T, bool kPerChannel, int kDepth, int kKWarps, int kHalves, bool kMetaRows = false>
__global__ void __launch_bounds__(128 * kKWarps) Sparse24Kernel(KernelArgs p) {
  using D = Dtype<T>;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int nw = warp & 3, kw = warp >> 2;
  const int g = lane >> 2, t = lane & 3;
  const int n_tiles = p.n / kTileN;
  const int nt = blockIdx.y * 4 + nw;
  const int n0 = nt * kTileN, m0 = blockIdx.x * 8 * kHalves;
  const int quads = p.k / kQuadK, splits = gridDim.z, s = blockIdx.z;
  const int q_lo = int(int64_t(quads) * s / splits), q_hi = int(int64_t(quads) * (s + 1) / splits);
  const T* a = static_cast<const T*>(p.a);
  const T* scales = static_cast<const T*>(p.scales);

  // One quad's weights of this lane: codes, metadata (lanes t < 2), the two rows' scales.
  struct Quad {
    uint4 w, e;
    T s_lo, s_hi;
  };
  auto load = [&](int kq) {
    Quad q;
    q.w = __ldg(reinterpret_cast<const uint4*>(p.values + ValueWord(kq, nt, n_tiles, lane, 0)));
    q.e = t < 2 ? __ldg(reinterpret_cast<const uint4*>(p.meta + MetaWord(kq, nt, n_tiles, g, t, 0))) : make_uint4(0, 0, 0, 0);
    const size_t grp = kPerChannel ? 0 : size_t(kq);  // group 128 = one quad
    q.s_lo = scales[grp * p.n + n0 + g];
    q.s_hi = scales[grp * p.n + n0 + g + 8];
    return q;
  };
  // Halves of the m tile that hold rows (1 of 2 at m <= 8): the others are skipped.
  const int halves = min(kHalves, (p.m - m0 + 7) >> 3);

  float acc[kHalves][4] = {};
  auto compute = [&](const Quad& cur, int kq) {
    const typename D::T2 s_lo = D::Pair(cur.s_lo), s_hi = D::Pair(cur.s_hi);
    const uint32_t ws[4] = {cur.w.x, cur.w.y, cur.w.z, cur.w.w};
    uint32_t es[4] = {cur.e.x, cur.e.y, cur.e.z, cur.e.w};
    if (kMetaRows)
#pragma unroll
      for (int j = 0; j < 4; j++) {
        const uint32_t other = __shfl_xor_sync(0xffffffffu, es[j], 1);
        es[j] = t == 0 ? __byte_perm(es[j], other, 0x5410) : __byte_perm(other, es[j], 0x7632);
      }
#pragma unroll
    for (int j = 0; j < 4; j++) {
      uint32_t af[4];
      Dequant<T>(ws[j], s_lo, s_hi, af);
      const int k0 = kq * kQuadK + j * kTileK + 2 * t;
#pragma unroll
      for (int mi = 0; mi < kHalves; mi++) {
        if (mi >= halves) break;
        const int row = m0 + mi * 8 + g;
        uint32_t bf[4];
#pragma unroll
        for (int r = 0; r < 4; r++) bf[r] = LoadPair(a, p.m, p.k, row, k0 + 8 * r);
        MmaSp<T>(acc[mi], af, bf, es[j]);
      }
    }
  };

  // Warp group kw takes quads q_lo + kw, + kKWarps, ...; a ring of kDepth quads in registers (the
  // unrolled inner loop keeps every ring index static).
  constexpr int kStep = kDepth * kKWarps;
  Quad ring[kDepth];
#pragma unroll
  for (int d = 0; d < kDepth; d++) {
    const int kq = q_lo + kw + d * kKWarps;
    if (kq < q_hi) ring[d] = load(kq);
  }
  for (int kq0 = q_lo + kw; kq0 < q_hi; kq0 += kStep) {
#pragma unroll
    for (int d = 0; d < kDepth; d++) {
      const int kq = kq0 + d * kKWarps;
      if (kq >= q_hi) break;
      const Quad cur = ring[d];
      if (kq + kStep < q_hi) ring[d] = load(kq + kStep);
      compute(cur, kq);
    }
  }

  if constexpr (kKWarps > 1) {
    __shared__ float part[kKWarps - 1][4][kHalves * 4][32];
    if (kw > 0)
#pragma unroll
      for (int mi = 0; mi < kHalves; mi++)
#pragma unroll
        for (int i = 0; i < 4; i++) part[kw - 1][nw][mi * 4 + i][lane] = acc[mi][i];
    __syncthreads();
    if (kw == 0)
#pragma unroll
      for (int w = 0; w < kKWarps - 1; w++)
#pragma unroll
        for (int mi = 0; mi < kHalves; mi++)
#pragma unroll
          for (int i = 0; i < 4; i++) acc[mi][i] += part[w][nw][mi * 4 + i][lane];
  }

  // C^T fragment: acc[mi][i] is output n0 + g + 8 (i >> 1), row m0 + 8 mi + 2t + (i & 1).
  const int tile = blockIdx.y * gridDim.x + blockIdx.x;
  if (splits > 1 && s > 0) {
    if (threadIdx.x == 0)
      while (atomicAdd(&p.locks[tile], 0) != s) {
      }
    __syncthreads();
    __threadfence();
  }
  const bool last = s == splits - 1;
  if (kw == 0)
#pragma unroll
    for (int mi = 0; mi < kHalves; mi++) {
      if (mi >= halves) break;
#pragma unroll
      for (int i = 0; i < 4; i++) {
        const int col = n0 + g + 8 * (i >> 1), row = m0 + mi * 8 + 2 * t + (i & 1);
        float v = acc[mi][i];
        if (splits > 1) {
          float* r = p.red + size_t(row) * p.n + col;
          if (s > 0) v += __ldcg(r);
          if (!last) {
            __stcg(r, v);
            continue;
          }
          __stcg(r, 0.f);  // the workspace is shared with the dense kernels: leave it all-zero
        }
        if (row >= p.m) continue;
        if (p.bias) v += D::ToFloat(static_cast<const T*>(p.bias)[col]);
        static_cast<T*>(p.c)[size_t(row) * p.n + col] = D::FromFloat(v);
      }
    }
  if (splits > 1) {
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) atomicExch(&p.locks[tile], last ? 0 : s + 1);
  }
}

}  // namespace sparse24
}  // namespace marlin
