// Causal attention over the paged KV cache on the GPU, for prefill rows and decode rows alike: one
// block per (query row, head). Scores live in shared memory (one float per context position);
// warps take keys in turn with lanes across the head dimension, then threads take output
// dimensions and walk the values in order.
#include "ops/cuda_common.cuh"
#include "ops/cuda_ops.h"

namespace marlin {
namespace ops {
namespace cuda {

constexpr int kAttnThreads = 128;
constexpr int kMaxDimPerLane = 8;  // head_dim <= 256

__global__ void __launch_bounds__(kAttnThreads) PagedAttentionKernel(AttentionArgs a) {
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
  __syncthreads();
  float mx = -FLT_MAX;
  for (int p = threadIdx.x; p < n; p += blockDim.x) mx = fmaxf(mx, scores[p]);
  mx = BlockMax(mx, scratch);
  float sum = 0;
  for (int p = threadIdx.x; p < n; p += blockDim.x) {
    const float e = __expf(scores[p] - mx);
    scores[p] = e;
    sum += e;
  }
  sum = BlockSum(sum, scratch);
  __syncthreads();
  const float inv = 1.f / sum;
  half* out = a.out + static_cast<size_t>(t) * a.heads * D + h * D;
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float acc = 0;
    const half* v = a.v_cache + kvh * D + d;
    for (int p = 0; p < n; p++) acc += scores[p] * __half2float(v[static_cast<size_t>(slots[p]) * kv_dim]);
    out[d] = __float2half(acc * inv);
  }
}

size_t AttentionSmemBytes(int max_context) { return static_cast<size_t>(max_context) * (sizeof(float) + sizeof(int)); }

cudaError_t PagedAttention(const AttentionArgs& a, cudaStream_t s) {
  if (a.rows == 0) return cudaSuccess;
  const size_t smem = AttentionSmemBytes(a.max_context);
  if (smem > 48 * 1024) {
    cudaError_t e = cudaFuncSetAttribute(PagedAttentionKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (e != cudaSuccess) return e;
  }
  dim3 grid(a.rows, a.heads);
  PagedAttentionKernel<<<grid, kAttnThreads, smem, s>>>(a);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace ops
}  // namespace marlin
