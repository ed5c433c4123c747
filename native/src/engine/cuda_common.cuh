#pragma once
// Small device helpers of the engine's CUDA ops.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cfloat>

namespace marlin {
namespace ops {
namespace cuda {

// Eight fp16 values (one 16-byte load) as floats.
__device__ __forceinline__ void Unpack8(const uint4& u, float* f) {
  const half2* h = reinterpret_cast<const half2*>(&u);
#pragma unroll
  for (int j = 0; j < 4; j++) {
    const float2 v = __half22float2(h[j]);
    f[2 * j] = v.x;
    f[2 * j + 1] = v.y;
  }
}

// Rotate-half RoPE of the pair (a, b) = (x[i], x[i + D/2]) by (cos, sin), rounded to fp16. The
// multiply-adds are spelled out: left to the compiler, `a * c - b * s` contracted differently in
// the RoPE op and in the fused decode attention, so their rows differed in the last bit.
__device__ __forceinline__ void RopePair(float a, float b, float c, float s, half* ra, half* rb) {
  *ra = __float2half(__fmaf_rn(a, c, -__fmul_rn(b, s)));
  *rb = __float2half(__fmaf_rn(b, c, __fmul_rn(a, s)));
}

__device__ __forceinline__ float WarpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float WarpMax(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Block-wide reductions (blockDim.x a multiple of 32, at most 1024). `scratch` holds 32 floats.
__device__ __forceinline__ float BlockSum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  v = WarpSum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : 0.f;
  return WarpSum(v);
}
__device__ __forceinline__ float BlockMax(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  v = WarpMax(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : -FLT_MAX;
  return WarpMax(v);
}

// Softmax numerators in place: scores[p] = exp(scores[p] - max) over p < n; returns their sum. The
// general paged attention kernel calls it after writing its scores and reads the results after it
// (it syncs).
__device__ __forceinline__ float ExpScores(float* scores, int n, float* scratch) {
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
  return sum;
}

}  // namespace cuda
}  // namespace ops
}  // namespace marlin
