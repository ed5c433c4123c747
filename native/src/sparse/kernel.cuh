#pragma once
// The 2:4 sparse kernel. W is the sparse A operand of mma.sp (16 outputs x 32 inputs per tile) and
// the activations are B (32 inputs x 8 rows), so each warp computes C^T for 16 outputs x 16 rows.
// A block is 4 warps (64 outputs) x 16 rows over one k slice; blockIdx.z is the slice. Slices of a
// tile add up in slice order through the fp32 scratch, each waiting on the tile's lock; the last
// writes C and sets the lock back to 0. Slices are the slowest grid dimension, so a slice only
// waits on blocks dispatched before it.
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
template <typename T, bool kPerChannel, bool kMetaRows = false>
__global__ void __launch_bounds__(128) Sparse24Kernel(KernelArgs p) {
  using D = Dtype<T>;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;
  const int n_tiles = p.n / kTileN;
  const int nt = blockIdx.x * 4 + warp;
  const int n0 = nt * kTileN, m0 = blockIdx.y * kSparseBlockM;
  const int quads = p.k / kQuadK, splits = gridDim.z, s = blockIdx.z;
  const int q_lo = int(int64_t(quads) * s / splits), q_hi = int(int64_t(quads) * (s + 1) / splits);
  const T* a = static_cast<const T*>(p.a);
  const T* scales = static_cast<const T*>(p.scales);

  // One quad's weights of this lane: codes, metadata (lanes t < 2), the two rows' scales. The next
  // quad's are loaded before this one's MMAs, so their latency overlaps the math.
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
  // The second 8-row half of the m tile holds no row when m0 + 8 >= m (m <= 8 at decode): skip it.
  const int halves = m0 + 8 < p.m ? 2 : 1;

  float acc[2][4] = {};
  Quad cur = q_lo < q_hi ? load(q_lo) : Quad{};
  for (int kq = q_lo; kq < q_hi; kq++) {
    const Quad nxt = kq + 1 < q_hi ? load(kq + 1) : cur;
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
      for (int mi = 0; mi < 2; mi++) {
        if (mi >= halves) break;
        const int row = m0 + mi * 8 + g;
        uint32_t bf[4];
#pragma unroll
        for (int r = 0; r < 4; r++) bf[r] = LoadPair(a, p.m, p.k, row, k0 + 8 * r);
        MmaSp<T>(acc[mi], af, bf, es[j]);
      }
    }
    cur = nxt;
  }

  // C^T fragment: acc[mi][i] is output n0 + g + 8 (i >> 1), row m0 + 8 mi + 2t + (i & 1).
  const int tile = blockIdx.y * gridDim.x + blockIdx.x;
  if (splits > 1) {
    if (s > 0) {
      if (threadIdx.x == 0)
        while (atomicAdd(&p.locks[tile], 0) != s) {
        }
      __syncthreads();
      __threadfence();
    }
  }
  const bool last = s == splits - 1;
#pragma unroll
  for (int mi = 0; mi < 2; mi++)
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
      }
      if (row >= p.m) continue;
      if (p.bias) v += D::ToFloat(static_cast<const T*>(p.bias)[col]);
      static_cast<T*>(p.c)[size_t(row) * p.n + col] = D::FromFloat(v);
    }
  if (splits > 1) {
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) atomicExch(&p.locks[tile], last ? 0 : s + 1);
  }
}

}  // namespace sparse24
}  // namespace marlin
