#pragma once
// The 2:4 sparse kernel. W is the sparse A operand of mma.sp (16 outputs x 32 inputs per tile) and
// the activations are B (32 inputs x 8 rows), so each warp computes C^T for 16 * kTiles outputs x
// 8 * kHalves rows (its kTiles output tiles share every B fragment it reads). A block is 4 warps
// across n (64 * kTiles outputs) times kKWarps warps across k; blockIdx.z is the k slice of the
// block. Weights stream straight from global memory into registers, kDepth quads ahead of the MMAs (no shared-memory stage: at decode each weight is used once). Activations go
// through shared memory, chunk by chunk (4 quads per warp group, double-buffered by cp.async), and
// reach the MMAs by ldmatrix: one instruction per 8 rows x 32 inputs, shared by the block's warps.
// Reduction, in a fixed order: the kKWarps warp groups through shared memory, then the slices of a
// tile through the fp32 scratch. Parallel form (gemm.h's SPARSE24_PARALLEL_SPLITK): every slice stores its sums (rows
// below m) in its own slot and counts itself in on the tile's counter; the block that arrives last
// adds the slots in slice order, writes C, zeroes the slots and sets the counter back to 0, so no
// slice waits on another (the serial chain cost the 7B layers, with 9 slices, most of their
// tail, by the counts of session 10). Serial form (the default until measured): slices add into one slot in slice order, each waiting on the tile's lock;
// the last slice writes C. Both add in slice order: the same bits. Slices are the slowest grid
// dimension, so a serial slice only waits on blocks dispatched before it; m tiles are the fastest,
// so the blocks that read the same weights run together and share them through L2.
#include <cstdint>

#include "common/smem_copy.cuh"
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
  int parallel;      // split-k form: 1 parallel (a slot per slice, summed by the last to arrive), 0 serial chain
  size_t red_slice;  // floats of one slice's slot (parallel): rows of the m tiles x n
};

// Activation chunk of a block in shared memory: 8 * halves rows of 4 * kwarps quads, each row
// padded by 16 bytes so that ldmatrix's 8 row addresses fall in different banks.
template <int kKWarps>
constexpr int ChunkQuads() { return 4 * kKWarps; }
template <int kKWarps>
constexpr int ChunkStride() { return ChunkQuads<kKWarps>() * kQuadK + 8; }  // elements
template <int kKWarps, int kHalves>
constexpr size_t SmemBytes() { return size_t(2) * 8 * kHalves * ChunkStride<kKWarps>() * 2; }
// Static shared memory of the in-block k reduction (kernel's `part`): launch.cu adds it to the
// dynamic bytes when deciding whether the launch needs the > 48 KB opt-in.
template <int kKWarps, int kHalves, int kTiles>
constexpr size_t PartBytes() { return kKWarps > 1 ? size_t(kKWarps - 1) * 4 * kTiles * kHalves * 4 * 32 * 4 : 0; }
// Shared memory of the whole-slice form: a zero vector, then min(m, rows of the tile) rows of the
// longest slice.
inline size_t WholeBytes(int m, int halves, int quads, int splits) {
  const int rows = m < 8 * halves ? m : 8 * halves;
  return 16 + size_t(rows) * ((quads + splits - 1) / splits * kQuadK + 8) * 2;
}

// kMetaRows: the other reading of the PTX metadata figure (lane 0 of a quad holding row g's 8
// chunks, lane 1 row g+8's) built from the stored words by one shuffle; only `harness probe`
// launches it, to confirm on the GPU which reading the hardware has (layout.h documents ours).
// kWhole: the block's whole k slice of activation rows (only the rows below m) is copied once, and
// the main loop runs without barriers; ldmatrix addresses of the rows past m point at a zero
// vector. Chosen by the host (launch.cu) when those rows fit, WholeBytes <= kSparseWholeBytes, so
// at decode (m of 1 to a few rows).
// kTiles: output tiles (16 rows of W) per warp. Each B fragment (ldmatrix from shared memory) feeds
// kTiles MMAs, so shared-memory traffic per weight byte drops by kTiles: at m = 16 with one tile,
// the ldmatrix reads and chunk copies were ~6 bytes of shared memory per weight byte.
template <typename T, bool kPerChannel, int kDepth, int kKWarps, int kHalves, bool kWhole, bool kMetaRows = false, int kTiles = 1>
__global__ void __launch_bounds__(128 * kKWarps) Sparse24Kernel(KernelArgs p) {
  using D = Dtype<T>;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int nw = warp & 3, kw = warp >> 2;
  const int g = lane >> 2, t = lane & 3;
  const int n_tiles = p.n / kTileN;
  const int nt0 = (blockIdx.y * 4 + nw) * kTiles;  // the warp's first output tile
  const int n0 = nt0 * kTileN, m0 = blockIdx.x * 8 * kHalves;
  const int quads = p.k / kQuadK, splits = gridDim.z, s = blockIdx.z;
  const int q_lo = int(int64_t(quads) * s / splits), q_hi = int(int64_t(quads) * (s + 1) / splits);
  const T* a = static_cast<const T*>(p.a);
  const uint16_t* scales = static_cast<const uint16_t*>(p.scales);

  // Halves of the m tile that hold rows (1 of 2 at m <= 8): the others are skipped.
  const int halves = min(kHalves, (p.m - m0 + 7) >> 3);

  // One quad of this lane: weight codes, metadata (lanes t < 2), the two rows' scales (bits).
  struct Quad {
    uint4 w, e;
    uint16_t s_lo, s_hi;
  };
  struct Quads {
    Quad q[kTiles];
  };
  auto load = [&](int kq) {
    Quads qs;
#pragma unroll
    for (int ti = 0; ti < kTiles; ti++) {
      Quad& q = qs.q[ti];
      const int nt = nt0 + ti, c0 = n0 + ti * kTileN;
      q.w = __ldg(reinterpret_cast<const uint4*>(p.values + ValueWord(kq, nt, n_tiles, lane, 0)));
      q.e = t < 2 ? __ldg(reinterpret_cast<const uint4*>(p.meta + MetaWord(kq, nt, n_tiles, g, t, 0))) : make_uint4(0, 0, 0, 0);
      if constexpr (!kPerChannel) {  // group 128 = one quad; per-channel scales are applied at the end
        q.s_lo = __ldg(scales + size_t(kq) * p.n + c0 + g);
        q.s_hi = __ldg(scales + size_t(kq) * p.n + c0 + g + 8);
      }
    }
    return qs;
  };

  // Activation chunks: rows m0.. of quads [qs, qs + kChunk), rows past m zero-filled.
  constexpr int kChunk = ChunkQuads<kKWarps>(), kStride = ChunkStride<kKWarps>(), kRows = 8 * kHalves;
  constexpr int kVecs = kChunk * kQuadK / 8;  // 16-byte vectors per row
  extern __shared__ __align__(16) uint8_t smem_raw[];
  T* const chunk_s = reinterpret_cast<T*>(smem_raw);
  auto load_chunk = [&](int c) {
    const int qs = q_lo + c * kChunk;
    const int vecs = min(kChunk, q_hi - qs) * (kQuadK / 8);
    T* dst = chunk_s + (c & 1) * kRows * kStride;
    for (int i = threadIdx.x; i < kRows * kVecs; i += 128 * kKWarps) {
      const int r = i / kVecs, v = i % kVecs;
      const bool ok = m0 + r < p.m && v < vecs;
      const T* src = ok ? a + size_t(m0 + r) * p.k + size_t(qs) * kQuadK + v * 8 : a;
      smem::CpAsync16(dst + r * kStride + v * 8, src, ok);
    }
    smem::CpAsyncCommit();
  };

  float acc[kTiles][kHalves][4] = {};
  // One quad: B fragments from the rows at lane_row[mi] (this lane's ldmatrix row address of
  // half mi at the quad's first input; a zero vector stays put).
  auto compute = [&](const Quads& cur, const T* const (&lane_row)[kHalves], const int (&step)[kHalves]) {
    uint32_t es[kTiles][4];
#pragma unroll
    for (int ti = 0; ti < kTiles; ti++) {
      const uint4 e = cur.q[ti].e;
      es[ti][0] = e.x, es[ti][1] = e.y, es[ti][2] = e.z, es[ti][3] = e.w;
      if (kMetaRows)
#pragma unroll
        for (int j = 0; j < 4; j++) {
          const uint32_t other = __shfl_xor_sync(0xffffffffu, es[ti][j], 1);
          es[ti][j] = t == 0 ? __byte_perm(es[ti][j], other, 0x5410) : __byte_perm(other, es[ti][j], 0x7632);
        }
    }
    // codes x activations of the quad's 4 k tiles into d (unscaled)
    auto mma_quad = [&](float (&d)[kTiles][kHalves][4]) {
#pragma unroll
      for (int j = 0; j < 4; j++) {
        uint32_t af[kTiles][4];
#pragma unroll
        for (int ti = 0; ti < kTiles; ti++) {
          const uint4 w = cur.q[ti].w;
          DequantCodes<T>(j == 0 ? w.x : j == 1 ? w.y : j == 2 ? w.z : w.w, af[ti]);
        }
#pragma unroll
        for (int mi = 0; mi < kHalves; mi++) {
          if (mi >= halves) break;
          uint32_t bf[4];
          smem::LdMatrixX4(bf, lane_row[mi] + j * step[mi]);
#pragma unroll
          for (int ti = 0; ti < kTiles; ti++) MmaSp<T>(d[ti][mi], af[ti], bf, es[ti][j]);
        }
      }
    };
    if constexpr (kPerChannel) {
      mma_quad(acc);
    } else {
      // A quad is one g128 group: its fp32 sums take the scale of their output row (g for
      // registers 0, 1 of the C^T fragment, g + 8 for 2, 3).
      float q[kTiles][kHalves][4] = {};
      mma_quad(q);
#pragma unroll
      for (int ti = 0; ti < kTiles; ti++) {
        const float s_lo = D::BitsToFloat(cur.q[ti].s_lo), s_hi = D::BitsToFloat(cur.q[ti].s_hi);
#pragma unroll
        for (int mi = 0; mi < kHalves; mi++) {
          if (mi >= halves) break;
#pragma unroll
          for (int i = 0; i < 4; i++) acc[ti][mi][i] = fmaf(i < 2 ? s_lo : s_hi, q[ti][mi][i], acc[ti][mi][i]);
        }
      }
    }
  };

  // Warp group kw takes quads q_lo + kw, + kKWarps, ... (4 per chunk); a ring of kDepth quads in
  // registers, kDepth dividing 4 so that the unrolled chunk loop keeps every ring index static.
  // A slot is consumed, then reloaded in place: copying it out first (cur = ring[d]) made the
  // compiler move the in-flight load's registers back at the loop edge, waiting for the load and
  // undoing the prefetch (harness bench on the H200: time independent of the depth).
  static_assert(4 % kDepth == 0, "ring depth must divide 4");
  constexpr int kStep = kDepth * kKWarps;
  Quads ring[kDepth];
#pragma unroll
  for (int d = 0; d < kDepth; d++) {
    const int kq = q_lo + kw + d * kKWarps;
    if (kq < q_hi) ring[d] = load(kq);
  }
  // ldmatrix.x4: lanes 8r..8r+7 address rows 0..7 of matrix r (inputs +8r), so register r of
  // lane (g, t) is the pair (row g, inputs 2t + 8r): the B fragment of mma.sp m16n8k32.
  const int lrow = lane & 7, lcol = 8 * (lane >> 3);
  if constexpr (kWhole) {
    // [16-byte zero vector][rows below m, each slice_q * 128 + 8 elements]
    const int rows = min(p.m - m0, kRows);
    const int stride = (quads + splits - 1) / splits * kQuadK + 8;
    const int vecs = (q_hi - q_lo) * (kQuadK / 8);
    T* const rows_s = chunk_s + 8;
    if (threadIdx.x == 0) *reinterpret_cast<uint4*>(chunk_s) = make_uint4(0, 0, 0, 0);
    for (int i = threadIdx.x; i < rows * vecs; i += 128 * kKWarps) {
      const int r = i / vecs, v = i - r * vecs;
      smem::CpAsync16(rows_s + r * stride + v * 8, a + size_t(m0 + r) * p.k + size_t(q_lo) * kQuadK + v * 8, true);
    }
    smem::CpAsyncCommit();
    smem::CpAsyncWait<0>();
    __syncthreads();
    const T* base[kHalves];
    int step[kHalves];
#pragma unroll
    for (int mi = 0; mi < kHalves; mi++) {
      const bool live = mi * 8 + lrow < rows;
      base[mi] = live ? rows_s + (mi * 8 + lrow) * stride + lcol : chunk_s;
      step[mi] = live ? kTileK : 0;
    }
    for (int kq0 = q_lo + kw; kq0 < q_hi; kq0 += kStep) {
#pragma unroll
      for (int d = 0; d < kDepth; d++) {
        const int kq = kq0 + d * kKWarps;
        if (kq >= q_hi) break;
        const T* at[kHalves];
#pragma unroll
        for (int mi = 0; mi < kHalves; mi++) at[mi] = base[mi] + (step[mi] ? (kq - q_lo) * kQuadK : 0);
        compute(ring[d], at, step);
        if (kq + kStep < q_hi) ring[d] = load(kq + kStep);
      }
    }
  } else {
    const int chunks = (q_hi - q_lo + kChunk - 1) / kChunk;
    if (chunks > 0) load_chunk(0);
    int step[kHalves];
#pragma unroll
    for (int mi = 0; mi < kHalves; mi++) step[mi] = kTileK;
    for (int c = 0; c < chunks; c++) {
      if (c + 1 < chunks) {
        load_chunk(c + 1);
        smem::CpAsyncWait<1>();
      } else {
        smem::CpAsyncWait<0>();
      }
      __syncthreads();
      const T* buf = chunk_s + (c & 1) * kRows * kStride;
      const int qs = q_lo + c * kChunk;
#pragma unroll
      for (int u = 0; u < 4; u++) {
        const int kq = qs + kw + u * kKWarps;
        if (kq >= q_hi) break;
        const int d = u % kDepth;
        const T* at[kHalves];
#pragma unroll
        for (int mi = 0; mi < kHalves; mi++) at[mi] = buf + (mi * 8 + lrow) * kStride + lcol + (kq - qs) * kQuadK;
        compute(ring[d], at, step);
        if (kq + kStep < q_hi) ring[d] = load(kq + kStep);
      }
      __syncthreads();  // the next chunk's copy reuses this buffer
    }
  }

  if constexpr (kPerChannel) {
#pragma unroll
    for (int ti = 0; ti < kTiles; ti++) {
      const int c0 = n0 + ti * kTileN;
      const float s_lo = D::BitsToFloat(__ldg(scales + c0 + g)), s_hi = D::BitsToFloat(__ldg(scales + c0 + g + 8));
#pragma unroll
      for (int mi = 0; mi < kHalves; mi++)
#pragma unroll
        for (int i = 0; i < 4; i++) acc[ti][mi][i] *= i < 2 ? s_lo : s_hi;
    }
  }

  if constexpr (kKWarps > 1) {
    __shared__ float part[kKWarps - 1][4][kTiles * kHalves * 4][32];
    if (kw > 0)
#pragma unroll
      for (int ti = 0; ti < kTiles; ti++)
#pragma unroll
        for (int mi = 0; mi < kHalves; mi++)
#pragma unroll
          for (int i = 0; i < 4; i++) part[kw - 1][nw][(ti * kHalves + mi) * 4 + i][lane] = acc[ti][mi][i];
    __syncthreads();
    if (kw == 0)
#pragma unroll
      for (int w = 0; w < kKWarps - 1; w++)
#pragma unroll
        for (int ti = 0; ti < kTiles; ti++)
#pragma unroll
          for (int mi = 0; mi < kHalves; mi++)
#pragma unroll
            for (int i = 0; i < 4; i++) acc[ti][mi][i] += part[w][nw][(ti * kHalves + mi) * 4 + i][lane];
  }

  // C^T fragment: acc[ti][mi][i] is output n0 + 16 ti + g + 8 (i >> 1), row m0 + 8 mi + 2t + (i & 1).
  const int tile = blockIdx.y * gridDim.x + blockIdx.x;
  if (splits > 1 && p.parallel) {
    if (kw == 0)
#pragma unroll
      for (int ti = 0; ti < kTiles; ti++)
#pragma unroll
        for (int mi = 0; mi < kHalves; mi++) {
          if (mi >= halves) break;
#pragma unroll
          for (int i = 0; i < 4; i++) {
            const int col = n0 + ti * kTileN + g + 8 * (i >> 1), row = m0 + mi * 8 + 2 * t + (i & 1);
            if (row < p.m) __stcg(p.red + s * p.red_slice + size_t(row) * p.n + col, acc[ti][mi][i]);
          }
        }
    __threadfence();
    __syncthreads();
    __shared__ int last_in;
    if (threadIdx.x == 0) {
      last_in = atomicAdd(&p.locks[tile], 1) == splits - 1;
      if (last_in) atomicExch(&p.locks[tile], 0);  // every slice has counted: back to 0 for the next call
    }
    __syncthreads();
    if (!last_in) return;
    __threadfence();
    if (kw == 0)
#pragma unroll
      for (int ti = 0; ti < kTiles; ti++)
#pragma unroll
        for (int mi = 0; mi < kHalves; mi++) {
          if (mi >= halves) break;
#pragma unroll
          for (int i = 0; i < 4; i++) {
            const int col = n0 + ti * kTileN + g + 8 * (i >> 1), row = m0 + mi * 8 + 2 * t + (i & 1);
            if (row >= p.m) continue;
            float* r = p.red + size_t(row) * p.n + col;
            float v = __ldcg(r);
            __stcg(r, 0.f);  // the workspace is shared with the dense kernels: leave it all-zero
            for (int z = 1; z < splits; z++) {
              v += __ldcg(r + z * p.red_slice);
              __stcg(r + z * p.red_slice, 0.f);
            }
            if (p.bias) v += D::ToFloat(static_cast<const T*>(p.bias)[col]);
            static_cast<T*>(p.c)[size_t(row) * p.n + col] = D::FromFloat(v);
          }
        }
    return;
  }
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
    for (int ti = 0; ti < kTiles; ti++)
#pragma unroll
    for (int mi = 0; mi < kHalves; mi++) {
      if (mi >= halves) break;
#pragma unroll
      for (int i = 0; i < 4; i++) {
        const int col = n0 + ti * kTileN + g + 8 * (i >> 1), row = m0 + mi * 8 + 2 * t + (i & 1);
        float v = acc[ti][mi][i];
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
