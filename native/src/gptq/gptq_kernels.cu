// GPTQ's device kernels: Hessian preparation (permute, dead inputs, damping) in fp64 for
// cuSOLVER, the fp32 factor U, group params, and the per-block column loop. The lazy trailing
// update between blocks is a cuBLAS GEMM issued by binding.cpp.
#include <cuda_fp16.h>

#include "gptq/gptq_kernels.h"

namespace marlin {
namespace gptq {
namespace {

constexpr int kCols = 32;  // output columns per CTA of the column loop (one warp, one column each)

__global__ void PrepareKernel(const float* __restrict__ h, const int* __restrict__ perm, double* __restrict__ a, int k,
                              double damp) {
  const int64_t total = int64_t(k) * k;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int i = int(e / k), j = int(e % k);
    double v = h[int64_t(perm[i]) * k + perm[j]];
    if (i == j) {
      if (v == 0.0) v = 1.0;
      v += damp;
    }
    a[e] = v;
  }
}

__global__ void UpperKernel(const double* __restrict__ a, float* __restrict__ u, int k) {
  const int64_t total = int64_t(k) * k;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int r = int(e / k), c = int(e % k);
    u[e] = c >= r ? float(a[e]) : 0.f;
  }
}

// The fp16 value nearest to x, clamped to the positive fp16 range (scales must be usable).
__device__ __forceinline__ float F16Scale(float x) {
  float s = __half2float(__float2half_rn(x));
  if (!(s >= 5.9604645e-8f)) s = 5.9604645e-8f;  // 2^-24, also catches NaN
  if (s > 65504.f) s = 65504.f;
  return s;
}

// Same rules as quantizer.ts paramsFromRange: the range always includes 0.
__device__ __forceinline__ void ParamsFromRange(float lo, float hi, int bits, bool sym, float& s, float& z) {
  const float maxq = float((1 << bits) - 1);
  if (sym) {
    float a = fmaxf(-lo, hi);
    if (a == 0.f) a = 1.f;
    s = F16Scale(2.f * a / maxq);
    z = (maxq + 1.f) * 0.5f;
  } else {
    if (lo == 0.f && hi == 0.f) {
      lo = -1.f;
      hi = 1.f;
    }
    s = F16Scale((hi - lo) / maxq);
    z = fminf(maxq, fmaxf(0.f, rintf(-lo / s)));
  }
}

__global__ void GroupParamsKernel(const float* __restrict__ w, int n, int r0, int r1, int bits, bool sym,
                                  float* __restrict__ scales, float* __restrict__ zeros, int g) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= n) return;
  float lo = 0.f, hi = 0.f;
  for (int r = r0; r < r1; r++) {
    const float v = w[int64_t(r) * n + j];
    lo = fminf(lo, v);
    hi = fmaxf(hi, v);
  }
  float s, z;
  ParamsFromRange(lo, hi, bits, sym, s, z);
  scales[int64_t(g) * n + j] = s;
  zeros[int64_t(g) * n + j] = z;
}

// One thread per output column: the block's rows of that column live in shared memory, so the
// rank-1 update after each row is a private loop (U_i,r is the same for every thread: broadcast).
__global__ void BlockQuantKernel(const float* __restrict__ w, const float* __restrict__ u, int k, int n, int i1, int i2,
                                 int bits, bool sym, int gs, bool dynamic, const int* __restrict__ gperm,
                                 float* __restrict__ scales, float* __restrict__ zeros, uint8_t* __restrict__ q,
                                 float* __restrict__ err, double* __restrict__ loss) {
  __shared__ float tile[kMaxBlock * kCols];
  const int t = threadIdx.x;
  const int j = blockIdx.x * kCols + t;
  const bool active = j < n;
  const int rows = i2 - i1;
  for (int r = 0; r < rows; r++) tile[r * kCols + t] = active ? w[int64_t(i1 + r) * n + j] : 0.f;
  const float maxq = float((1 << bits) - 1);
  float s = 1.f, z = 0.f;
  int cur = -1;
  double l = 0.0;
  for (int i = i1; i < i2; i++) {
    const int r = i - i1;
    if (gs > 0 && dynamic) {
      if (i % gs == 0) {
        // Rows [i, i + gs) are in this block and have every earlier row's update.
        const int g = i / gs;
        const int end = min(rows, r + gs);
        float lo = 0.f, hi = 0.f;
        for (int rr = r; rr < end; rr++) {
          const float v = tile[rr * kCols + t];
          lo = fminf(lo, v);
          hi = fmaxf(hi, v);
        }
        ParamsFromRange(lo, hi, bits, sym, s, z);
        if (active) {
          scales[int64_t(g) * n + j] = s;
          zeros[int64_t(g) * n + j] = z;
        }
      }
    } else {
      const int g = gs > 0 ? gperm[i] : 0;
      if (g != cur) {
        cur = g;
        if (active) {
          s = scales[int64_t(g) * n + j];
          z = zeros[int64_t(g) * n + j];
        }
      }
    }
    const float x = tile[r * kCols + t];
    const float qv = fminf(maxq, fmaxf(0.f, rintf(x / s) + z));
    const float e = (x - s * (qv - z)) / u[int64_t(i) * k + i];
    if (active) {
      q[int64_t(i) * n + j] = uint8_t(qv);
      err[int64_t(r) * n + j] = e;
      l += double(e) * e;
    }
    const float* urow = u + int64_t(i) * k + i1;
    for (int rr = r + 1; rr < rows; rr++) tile[rr * kCols + t] -= e * urow[rr];
  }
  // Warp sum, then one atomic per CTA.
  for (int off = 16; off > 0; off >>= 1) l += __shfl_down_sync(0xffffffffu, l, off);
  if (t == 0) atomicAdd(loss, l);
}

int GridFor(int64_t total) {
  int64_t b = (total + 255) / 256;
  return int(b > 65535 * 8 ? 65535 * 8 : b);
}

}  // namespace

cudaError_t LaunchPrepare(const float* h, const int* perm, double* a, int k, double damp, cudaStream_t s) {
  PrepareKernel<<<GridFor(int64_t(k) * k), 256, 0, s>>>(h, perm, a, k, damp);
  return cudaGetLastError();
}

cudaError_t LaunchUpperToF32(const double* a, float* u, int k, cudaStream_t s) {
  UpperKernel<<<GridFor(int64_t(k) * k), 256, 0, s>>>(a, u, k);
  return cudaGetLastError();
}

cudaError_t LaunchGroupParams(const float* w, int n, int r0, int r1, int bits, bool sym, float* scales, float* zeros, int g,
                              cudaStream_t s) {
  GroupParamsKernel<<<(n + 127) / 128, 128, 0, s>>>(w, n, r0, r1, bits, sym, scales, zeros, g);
  return cudaGetLastError();
}

cudaError_t LaunchBlockQuant(const float* w, const float* u, int k, int n, int i1, int i2, int bits, bool sym, int gs,
                             bool dynamic, const int* gperm, float* scales, float* zeros, uint8_t* q, float* err,
                             double* loss, cudaStream_t s) {
  if (i2 - i1 > kMaxBlock || i2 <= i1) return cudaErrorInvalidValue;
  BlockQuantKernel<<<(n + kCols - 1) / kCols, kCols, 0, s>>>(w, u, k, n, i1, i2, bits, sym, gs, dynamic, gperm, scales, zeros,
                                                             q, err, loss);
  return cudaGetLastError();
}

}  // namespace gptq
}  // namespace marlin
