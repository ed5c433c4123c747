// Causal attention over the paged KV cache on the GPU, for prefill rows and decode rows alike: one
// block per (query row, head). Head dims of 8 L lanes take the one-pass vectorized kernel; the
// general kernel keeps scores in shared memory (one float per context position), warps take keys
// in turn with lanes across the head dimension, then threads take output dimensions.
#include "common/pdl.cuh"
#include "engine/cuda_common.cuh"
#include "engine/cuda_ops.h"
#include "engine/online_softmax.cuh"

namespace marlin {
namespace ops {
namespace cuda {

constexpr int kAttnThreads = 128;
constexpr int kMaxDimPerLane = 8;  // head_dim <= 256

__global__ void __launch_bounds__(kAttnThreads) PagedAttentionKernel(AttentionArgs a) {
  PdlTrigger();  // see common/pdl.cuh: launched with LaunchPdl
  PdlWait();
  extern __shared__ float scores[];  // [max_context] scores, then [max_context] cache slots
  int* slots = reinterpret_cast<int*>(scores + a.max_context);
  __shared__ float scratch[32];
  const int t = blockIdx.x, h = blockIdx.y;
  const int D = a.head_dim;
  const int kvh = h / (a.heads / a.kv_heads);
  const int kv_dim = a.kv_heads * D;
  const int n = a.pos_of_row[t] + 1;
  const int32_t* table = a.block_tables + static_cast<size_t>(a.seq_of_row[t]) * a.max_blocks;
  const half* q = a.q + static_cast<size_t>(t) * a.q_stride + h * D;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;

  float qv[kMaxDimPerLane];
#pragma unroll
  for (int j = 0; j < kMaxDimPerLane; j++) qv[j] = (lane + 32 * j < D) ? __half2float(q[lane + 32 * j]) : 0.f;

  for (int p = warp; p < n; p += warps) {
    const int slot = table[p / a.block_size] * a.block_size + p % a.block_size;
    const half* k = a.k_cache + static_cast<size_t>(slot) * kv_dim + kvh * D;
    float s = 0;
#pragma unroll
    for (int j = 0; j < kMaxDimPerLane; j++)
      if (lane + 32 * j < D) s += qv[j] * __half2float(k[lane + 32 * j]);
    s = WarpSum(s);
    if (lane == 0) {
      scores[p] = s * a.scale;
      slots[p] = slot;
    }
  }
  const float sum = ExpScores(scores, n, scratch);
  const float inv = 1.f / sum;
  half* out = a.out + static_cast<size_t>(t) * a.heads * D + h * D;
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float acc = 0;
    const half* v = a.v_cache + kvh * D + d;
    for (int p = 0; p < n; p++) acc += scores[p] * __half2float(v[static_cast<size_t>(slots[p]) * kv_dim]);
    out[d] = __float2half(acc * inv);
  }
}

// The vectorized variant for head_dim = 8 * L (L a power of two, head_dim <= 256): groups of L
// lanes take one key (16 bytes a lane), each group walks its keys once with an online softmax
// (engine/online_softmax.cuh, the decode attention's arithmetic), k and v rows of kVecUnroll keys
// in flight. Loop bounds are uniform across the block (the group shuffles need every lane of a warp).
constexpr int kVecThreads = 256;
constexpr int kVecUnroll = 2;  // as the decode attention's keys in flight: the same rescaling points

template <int L>
__global__ void __launch_bounds__(kVecThreads) PagedAttentionVecKernel(AttentionArgs a) {
  PdlTrigger();  // see common/pdl.cuh: launched with LaunchPdl
  PdlWait();
  constexpr int D = 8 * L;
  constexpr int G = kVecThreads / L;  // key groups per block
  __shared__ float part[G * D], gmax[G], gsum[G];
  const int t = blockIdx.x, h = blockIdx.y;
  const int kvh = h / (a.heads / a.kv_heads);
  const int kv_dim = a.kv_heads * D;
  const int n = a.pos_of_row[t] + 1;
  const int32_t* table = a.block_tables + static_cast<size_t>(a.seq_of_row[t]) * a.max_blocks;
  const int g = threadIdx.x / L, l = threadIdx.x % L;
  float qv[8];
  Unpack8(*reinterpret_cast<const uint4*>(a.q + static_cast<size_t>(t) * a.q_stride + h * D + l * 8), qv);
  const half* kbase = a.k_cache + kvh * D + l * 8;
  const half* vbase = a.v_cache + kvh * D + l * 8;

  GroupSoftmax<kVecUnroll> gs;
  for (int base = 0; base < n; base += kVecUnroll * G) {
    uint4 kv[kVecUnroll], vv[kVecUnroll];
#pragma unroll
    for (int u = 0; u < kVecUnroll; u++) {
      const int p = base + u * G + g;
      if (p < n) {
        const size_t off = static_cast<size_t>(table[p / a.block_size] * a.block_size + p % a.block_size) * kv_dim;
        kv[u] = *reinterpret_cast<const uint4*>(kbase + off);
        vv[u] = *reinterpret_cast<const uint4*>(vbase + off);
      }
    }
    float sc[kVecUnroll];
    bool ok[kVecUnroll];
#pragma unroll
    for (int u = 0; u < kVecUnroll; u++) {
      const int p = base + u * G + g;
      ok[u] = p < n;
      float s = 0;
      if (ok[u]) {
        float kf[8];
        Unpack8(kv[u], kf);
        s = Dot8(qv, kf);
      }
#pragma unroll
      for (int o = L / 2; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
      sc[u] = __fmul_rn(s, a.scale);
    }
    gs.Pass(sc, ok, vv, ok, nullptr);  // every key's v is in the cache here
  }
  gs.Store(part, gmax, gsum, g, l, D);
  __syncthreads();
  float cmax, den;
  CombineGroups(G, gmax, gsum, &cmax, &den);
  half* out = a.out + static_cast<size_t>(t) * a.heads * D + h * D;
  for (int d = threadIdx.x; d < D; d += blockDim.x) out[d] = __float2half(__fdiv_rn(GroupValue(G, D, part, gmax, cmax, d), den));
}

size_t AttentionSmemBytes(int max_context) { return static_cast<size_t>(max_context) * (sizeof(float) + sizeof(int)); }

// The vectorized kernel (static shared memory only: any context length).
template <int L>
static bool LaunchVec(const AttentionArgs& a, cudaStream_t s, cudaError_t* err) {
  dim3 grid(a.rows, a.heads);
  *err = LaunchPdl(PagedAttentionVecKernel<L>, grid, dim3(kVecThreads), 0, s, a);
  return true;
}

cudaError_t PagedAttention(const AttentionArgs& a, cudaStream_t s) {
  if (a.rows == 0) return cudaSuccess;
  // 16-byte loads need 16-byte aligned bases and a q row stride of whole 8-half vectors.
  const bool aligned = (reinterpret_cast<uintptr_t>(a.q) | reinterpret_cast<uintptr_t>(a.k_cache) | reinterpret_cast<uintptr_t>(a.v_cache)) % 16 == 0;
  if (aligned && a.q_stride % 8 == 0) {
    cudaError_t err = cudaSuccess;
    bool done = false;
    switch (a.head_dim) {
      case 16: done = LaunchVec<2>(a, s, &err); break;
      case 32: done = LaunchVec<4>(a, s, &err); break;
      case 64: done = LaunchVec<8>(a, s, &err); break;
      case 128: done = LaunchVec<16>(a, s, &err); break;
      case 256: done = LaunchVec<32>(a, s, &err); break;
      default: break;
    }
    if (done) return err;
  }
  const size_t smem = AttentionSmemBytes(a.max_context);
  if (smem > 48 * 1024) {
    cudaError_t e = cudaFuncSetAttribute(PagedAttentionKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (e != cudaSuccess) return e;
  }
  dim3 grid(a.rows, a.heads);
  return LaunchPdl(PagedAttentionKernel, grid, dim3(kAttnThreads), smem, s, a);
}

}  // namespace cuda
}  // namespace ops
}  // namespace marlin
