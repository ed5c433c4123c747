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

// The params of one column's group: rows' values value(r) and error weights weight(r), r < rows,
// whose range is [lo, hi]. Without a search the plain range; with one, the best shrunk range
// (first minimum wins, as in quantizer.ts).
template <class Value, class Weight>
__device__ __forceinline__ void SearchParams(float lo, float hi, int rows, Value value, Weight weight, int bits, bool sym,
                                             ClipSearch clip, float& s, float& z) {
  ParamsFromRange(lo, hi, bits, sym, s, z);
  if (clip.steps <= 0) return;
  const float maxq = float((1 << bits) - 1);
  float best = INFINITY;
  for (int t = 0; t < clip.steps; t++) {
    const float p = 1.f - float(t) / clip.grid;
    float cs, cz;
    ParamsFromRange(p * lo, p * hi, bits, sym, cs, cz);
    float score = 0.f;
    for (int r = 0; r < rows; r++) {
      const float x = value(r);
      const float qv = fminf(maxq, fmaxf(0.f, rintf(x / cs) + cz));
      const float e = x - cs * (qv - cz);
      score += weight(r) * e * e;
    }
    if (score < best) {
      best = score;
      s = cs;
      z = cz;
    }
  }
}

__global__ void GroupParamsKernel(const float* __restrict__ w, int n, int r0, int r1, int bits, bool sym,
                                  float* __restrict__ scales, float* __restrict__ zeros, int g, ClipSearch clip,
                                  const float* __restrict__ rw, int64_t rw_stride, bool rw_inv_sq) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= n) return;
  float lo = 0.f, hi = 0.f;
  for (int r = r0; r < r1; r++) {
    const float v = w[int64_t(r) * n + j];
    lo = fminf(lo, v);
    hi = fmaxf(hi, v);
  }
  float s, z;
  if (rw == nullptr) clip.steps = 0;
  SearchParams(
      lo, hi, r1 - r0, [&](int r) { return w[int64_t(r0 + r) * n + j]; },
      [&](int r) {
        const float d = rw[int64_t(r0 + r) * rw_stride];
        return rw_inv_sq ? 1.f / (d * d) : d;
      },
      bits, sym, clip, s, z);
  scales[int64_t(g) * n + j] = s;
  zeros[int64_t(g) * n + j] = z;
}

// One thread per output column: the block's rows of that column live in shared memory, so the
// rank-1 update after each row is a private loop (U_i,r is the same for every thread: broadcast).
__global__ void BlockQuantKernel(const float* __restrict__ w, const float* __restrict__ u, int k, int n, int i1, int i2,
                                 int bits, bool sym, int gs, bool dynamic, const int* __restrict__ gperm,
                                 float* __restrict__ scales, float* __restrict__ zeros, uint8_t* __restrict__ q,
                                 float* __restrict__ err, double* __restrict__ loss, ClipSearch clip, int sparse,
                                 uint8_t* __restrict__ mask) {
  __shared__ float tile[kMaxBlock * kCols];
  __shared__ float inv_d2[kMaxBlock];  // 1 / U_rr^2 of the block's rows: clip weights and SparseGPT scores
  const int t = threadIdx.x;
  const int j = blockIdx.x * kCols + t;
  const bool active = j < n;
  const int rows = i2 - i1;
  for (int r = 0; r < rows; r++) tile[r * kCols + t] = active ? w[int64_t(i1 + r) * n + j] : 0.f;
  for (int r = t; r < rows; r += kCols) {
    const float d = u[int64_t(i1 + r) * k + i1 + r];
    inv_d2[r] = 1.f / (d * d);
  }
  __syncthreads();
  const float maxq = float((1 << bits) - 1);
  float s = 1.f, z = 0.f;
  int cur = -1;
  double l = 0.0;
  unsigned pruned = 0;  // bit a: row (quad start + a) of this column is pruned
  // A fixed mask's entry of block row rr (0 for inactive columns).
  auto fixed_pruned = [&](int rr) { return sparse == kSparseFixed && active && mask[int64_t(i1 + rr) * n + j] != 0; };
  for (int i = i1; i < i2; i++) {
    const int r = i - i1;
    if (gs > 0 && dynamic) {
      if (i % gs == 0) {
        // Rows [i, i + gs) are in this block and have every earlier row's update. A fixed mask's
        // pruned entries count as the 0 they become.
        const int g = i / gs;
        const int end = min(rows, r + gs);
        float lo = 0.f, hi = 0.f;
        for (int rr = r; rr < end; rr++) {
          const float v = fixed_pruned(rr) ? 0.f : tile[rr * kCols + t];
          lo = fminf(lo, v);
          hi = fmaxf(hi, v);
        }
        SearchParams(
            lo, hi, end - r, [&](int a) { return fixed_pruned(r + a) ? 0.f : tile[(r + a) * kCols + t]; },
            [&](int a) { return inv_d2[r + a]; }, bits, sym, clip, s, z);
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
    if (sparse != kSparseNone && (i & 3) == 0) {
      if (sparse == kSparseSelect) {
        // SparseGPT: prune the 2 smallest w^2 / U_rr^2 of rows i..i+3 (ties: lower row first, as
        // sparsity.ts pruneTwoOfFour), from the weights updated by every earlier row.
        float sc[4];
        for (int a = 0; a < 4; a++) {
          const float v = tile[(r + a) * kCols + t];
          sc[a] = v * v * inv_d2[r + a];
        }
        pruned = 0;
        for (int a = 0; a < 4; a++) {
          int rank = 0;
          for (int b = 0; b < 4; b++) rank += (sc[b] < sc[a] || (sc[b] == sc[a] && b < a)) ? 1 : 0;
          if (rank < 2) pruned |= 1u << a;
        }
        if (active)
          for (int a = 0; a < 4; a++) mask[int64_t(i + a) * n + j] = uint8_t((pruned >> a) & 1u);
      } else {
        pruned = 0;
        for (int a = 0; a < 4; a++)
          if (fixed_pruned(r + a)) pruned |= 1u << a;
      }
    }
    const float x = tile[r * kCols + t];
    const bool drop = (pruned >> (i & 3)) & 1u;
    const float qv = drop ? z : fminf(maxq, fmaxf(0.f, rintf(x / s) + z));
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
                              ClipSearch clip, const float* rw, int64_t rw_stride, bool rw_inv_sq, cudaStream_t s) {
  GroupParamsKernel<<<(n + 127) / 128, 128, 0, s>>>(w, n, r0, r1, bits, sym, scales, zeros, g, clip, rw, rw_stride, rw_inv_sq);
  return cudaGetLastError();
}

cudaError_t LaunchBlockQuant(const float* w, const float* u, int k, int n, int i1, int i2, int bits, bool sym, int gs,
                             bool dynamic, const int* gperm, float* scales, float* zeros, uint8_t* q, float* err,
                             double* loss, ClipSearch clip, SparseMode sparse, uint8_t* mask, cudaStream_t s) {
  if (i2 - i1 > kMaxBlock || i2 <= i1) return cudaErrorInvalidValue;
  if (sparse != kSparseNone && (mask == nullptr || i1 % 4 != 0 || (i2 - i1) % 4 != 0)) return cudaErrorInvalidValue;
  BlockQuantKernel<<<(n + kCols - 1) / kCols, kCols, 0, s>>>(w, u, k, n, i1, i2, bits, sym, gs, dynamic, gperm, scales, zeros,
                                                             q, err, loss, clip, int(sparse), mask);
  return cudaGetLastError();
}

}  // namespace gptq
}  // namespace marlin
