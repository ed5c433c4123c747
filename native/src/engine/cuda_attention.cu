// Causal attention over the paged KV cache on the GPU, for prefill rows and decode rows alike: one
// block per (query row, head). Scores live in shared memory (one float per context position);
// warps take keys in turn with lanes across the head dimension, then threads take output
// dimensions and walk the values in order.
#include "common/pdl.cuh"
#include "engine/cuda_common.cuh"
#include "engine/cuda_ops.h"

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
// lanes take one key (16 bytes a lane) and several keys are loaded before any is reduced, so a
// block keeps many loads in flight instead of one dependent walk per key. Loop bounds are uniform
// across the block (the group shuffles need every lane of a warp).
constexpr int kVecThreads = 256;
constexpr int kVecUnroll = 4;


template <int L>
__global__ void __launch_bounds__(kVecThreads) PagedAttentionVecKernel(AttentionArgs a) {
  PdlTrigger();  // see common/pdl.cuh: launched with LaunchPdl
  PdlWait();
  constexpr int D = 8 * L;
  constexpr int G = kVecThreads / L;  // key groups per block
  extern __shared__ float smem[];     // [max_context] scores, [max_context] slots, [G][D] partial outputs
  float* scores = smem;
  int* slots = reinterpret_cast<int*>(scores + a.max_context);
  float* part = reinterpret_cast<float*>(slots + a.max_context);
  __shared__ float scratch[32];
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

  for (int base = 0; base < n; base += kVecUnroll * G) {
    int sl[kVecUnroll];
    uint4 kv[kVecUnroll];
#pragma unroll
    for (int u = 0; u < kVecUnroll; u++) {
      const int p = base + u * G + g;
      sl[u] = p < n ? table[p / a.block_size] * a.block_size + p % a.block_size : 0;
    }
#pragma unroll
    for (int u = 0; u < kVecUnroll; u++)
      if (base + u * G + g < n) kv[u] = *reinterpret_cast<const uint4*>(kbase + static_cast<size_t>(sl[u]) * kv_dim);
#pragma unroll
    for (int u = 0; u < kVecUnroll; u++) {
      const int p = base + u * G + g;
      float s = 0;
      if (p < n) {
        float kf[8];
        Unpack8(kv[u], kf);
#pragma unroll
        for (int j = 0; j < 8; j++) s += qv[j] * kf[j];
      }
#pragma unroll
      for (int o = L / 2; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
      if (l == 0 && p < n) {
        scores[p] = s * a.scale;
        slots[p] = sl[u];
      }
    }
  }
  const float sum = ExpScores(scores, n, scratch);

  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int base = 0; base < n; base += kVecUnroll * G) {
    uint4 vv[kVecUnroll];
    float w[kVecUnroll];
#pragma unroll
    for (int u = 0; u < kVecUnroll; u++) {
      const int p = base + u * G + g;
      w[u] = p < n ? scores[p] : 0.f;
      if (p < n) vv[u] = *reinterpret_cast<const uint4*>(vbase + static_cast<size_t>(slots[p]) * kv_dim);
    }
#pragma unroll
    for (int u = 0; u < kVecUnroll; u++) {
      if (base + u * G + g >= n) continue;
      float vf[8];
      Unpack8(vv[u], vf);
#pragma unroll
      for (int j = 0; j < 8; j++) acc[j] += w[u] * vf[j];
    }
  }
#pragma unroll
  for (int j = 0; j < 8; j++) part[g * D + l * 8 + j] = acc[j];
  __syncthreads();
  const float inv = 1.f / sum;
  half* out = a.out + static_cast<size_t>(t) * a.heads * D + h * D;
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float o = 0;
    for (int i = 0; i < G; i++) o += part[i * D + d];
    out[d] = __float2half(o * inv);
  }
}

size_t AttentionSmemBytes(int max_context) { return static_cast<size_t>(max_context) * (sizeof(float) + sizeof(int)); }

// Launches the vectorized kernel unless its shared memory exceeds what a block may have (then the
// general kernel, which needs less, runs instead: returns false).
template <int L>
static bool LaunchVec(const AttentionArgs& a, cudaStream_t s, cudaError_t* err) {
  const size_t smem = AttentionSmemBytes(a.max_context) + static_cast<size_t>(kVecThreads) * 8 * sizeof(float);
  if (smem > 48 * 1024) {
    int dev = 0, limit = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess ||
        smem > static_cast<size_t>(limit)) {
      cudaGetLastError();
      return false;
    }
    *err = cudaFuncSetAttribute(PagedAttentionVecKernel<L>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (*err != cudaSuccess) return true;
  }
  dim3 grid(a.rows, a.heads);
  *err = LaunchPdl(PagedAttentionVecKernel<L>, grid, dim3(kVecThreads), smem, s, a);
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
