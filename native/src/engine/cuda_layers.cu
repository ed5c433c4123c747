// Per-row CUDA ops of the engine: embedding, RMSNorm (plain and fused with the residual add),
// RoPE, the KV-cache store, SiLU-and-multiply and row gathering. fp16 storage, fp32 math.
#include "common/pdl.cuh"
#include "engine/cuda_common.cuh"
#include "engine/cuda_ops.h"

namespace marlin {
namespace ops {
namespace cuda {

static int Threads(int work) {
  int t = 32;
  while (t < work && t < 1024) t <<= 1;
  return t;
}

// Element-wise row ops spread each row over several blocks (grid.y = row), so a decode step of
// one row fills more than one SM and keeps more loads in flight than one block walking the row.
constexpr int kRowThreads = 256;
static dim3 RowGrid(int rows, int work) {
  int chunks = (work + kRowThreads - 1) / kRowThreads;
  if (chunks > 64) chunks = 64;
  if (chunks < 1) chunks = 1;
  return dim3(static_cast<unsigned>(chunks), static_cast<unsigned>(rows < 65535 ? rows : 65535));
}

// Rows of the table for ids in [start, start + vocab); other ids get a row of zeros. start > 0 is a
// tensor-parallel rank's slice of the vocabulary (the ranks' rows are then summed), and the bound
// also keeps an id the host did not check from reading past the table.
__global__ void EmbeddingKernel(const int32_t* ids, const half* table, int hidden, int vocab, int start, half* out) {
  PdlTrigger();  // see common/pdl.cuh: launched with LaunchPdl
  PdlWait();
  const int r = blockIdx.x;
  const int id = ids[r] - start;
  half* dst = out + static_cast<size_t>(r) * hidden;
  if (id < 0 || id >= vocab) {
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) dst[i] = __float2half(0.f);
    return;
  }
  const half* src = table + static_cast<size_t>(id) * hidden;
  for (int i = threadIdx.x; i < hidden; i += blockDim.x) dst[i] = src[i];
}

cudaError_t Embedding(const int32_t* ids, int rows, const half* table, int hidden, int vocab, int start, half* out, cudaStream_t s) {
  if (rows == 0) return cudaSuccess;
  return LaunchPdl(EmbeddingKernel, dim3(rows), dim3(Threads(hidden)), 0, s, ids, table, hidden, vocab, start, out);
}

// RMSNorm rows (one block per row), plain or fused with the residual add. Each thread keeps its V
// elements of the row in registers between the sum of squares and the scaling (one read of the
// row, not two), and reads its norm weights before PdlWait (they are constant). Rows longer than
// V x threads finish in a loop that reads the rest again.
template <int V, bool ADD>
__global__ void NormKernel(const half* in, half* x, half* residual, const float* w, float eps, int hidden) {
  PdlTrigger();  // see common/pdl.cuh: launched with LaunchPdl
  __shared__ float scratch[32];
  const size_t base = static_cast<size_t>(blockIdx.x) * hidden;
  const int stride = blockDim.x;
  float wv[V], r[V];
#pragma unroll
  for (int v = 0; v < V; v++) {
    const int i = threadIdx.x + v * stride;
    wv[v] = i < hidden ? w[i] : 0.f;
  }
  PdlWait();
  // ADD: residual += x, and the normed sum goes to x; else in is normed into x.
  auto value = [&](int i) {
    if constexpr (ADD) {
      const half s = __float2half(__half2float(residual[base + i]) + __half2float(x[base + i]));
      residual[base + i] = s;
      return __half2float(s);
    } else {
      return __half2float(in[base + i]);
    }
  };
  float ss = 0;
#pragma unroll
  for (int v = 0; v < V; v++) {
    const int i = threadIdx.x + v * stride;
    r[v] = i < hidden ? value(i) : 0.f;
    ss += r[v] * r[v];
  }
  for (int i = threadIdx.x + V * stride; i < hidden; i += stride) {
    const float t = value(i);
    ss += t * t;
  }
  ss = BlockSum(ss, scratch);
  const float inv = rsqrtf(ss / hidden + eps);
#pragma unroll
  for (int v = 0; v < V; v++) {
    const int i = threadIdx.x + v * stride;
    if (i < hidden) x[base + i] = __float2half(r[v] * inv * wv[v]);
  }
  for (int i = threadIdx.x + V * stride; i < hidden; i += stride)
    x[base + i] = __float2half(__half2float(ADD ? residual[base + i] : in[base + i]) * inv * w[i]);
}

template <bool ADD>
static cudaError_t LaunchNorm(const half* in, half* x, half* residual, const float* w, float eps, int rows, int hidden, cudaStream_t s) {
  if (rows == 0) return cudaSuccess;
  const int t = Threads(hidden);
  const int per = (hidden + t - 1) / t;
  const dim3 grid(rows), block(t);
  if (per <= 1) return LaunchPdl(NormKernel<1, ADD>, grid, block, 0, s, in, x, residual, w, eps, hidden);
  if (per <= 2) return LaunchPdl(NormKernel<2, ADD>, grid, block, 0, s, in, x, residual, w, eps, hidden);
  if (per <= 4) return LaunchPdl(NormKernel<4, ADD>, grid, block, 0, s, in, x, residual, w, eps, hidden);
  return LaunchPdl(NormKernel<8, ADD>, grid, block, 0, s, in, x, residual, w, eps, hidden);
}

cudaError_t RmsNorm(const half* x, const float* w, float eps, int rows, int hidden, half* out, cudaStream_t s) {
  return LaunchNorm<false>(x, out, nullptr, w, eps, rows, hidden, s);
}

cudaError_t AddRmsNorm(half* x, half* residual, const float* w, float eps, int rows, int hidden, cudaStream_t s) {
  return LaunchNorm<true>(nullptr, x, residual, w, eps, rows, hidden, s);
}

__global__ void RopeKernel(int rows, half* x, int stride, int heads, int head_dim, const int32_t* positions, const float* cos_t,
                           const float* sin_t) {
  PdlTrigger();  // see common/pdl.cuh: launched with LaunchPdl
  PdlWait();
  const int half_dim = head_dim / 2;
  for (int r = blockIdx.y; r < rows; r += gridDim.y) {
    const float* c = cos_t + static_cast<size_t>(positions[r]) * half_dim;
    const float* sn = sin_t + static_cast<size_t>(positions[r]) * half_dim;
    half* row = x + static_cast<size_t>(r) * stride;
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < heads * half_dim; j += gridDim.x * blockDim.x) {
      const int h = j / half_dim, i = j % half_dim;
      half* v = row + h * head_dim;
      const float a = __half2float(v[i]), b = __half2float(v[i + half_dim]);
      RopePair(a, b, c[i], sn[i], &v[i], &v[i + half_dim]);
    }
  }
}

cudaError_t Rope(half* x, int rows, int stride, int heads, int head_dim, const int32_t* positions, const float* cos_t,
                 const float* sin_t, cudaStream_t s) {
  if (rows == 0) return cudaSuccess;
  return LaunchPdl(RopeKernel, dim3(RowGrid(rows, heads * head_dim / 2)), dim3(kRowThreads), 0, s, rows, x, stride, heads, head_dim, positions, cos_t, sin_t);
}

__global__ void StoreKvKernel(int rows, const half* qkv, int stride, int k_off, int v_off, int kv_dim, const int32_t* slots,
                              half* k_cache, half* v_cache) {
  PdlTrigger();  // see common/pdl.cuh: launched with LaunchPdl
  PdlWait();
  for (int r = blockIdx.y; r < rows; r += gridDim.y) {
    const int slot = slots[r];
    if (slot < 0) continue;
    const half* row = qkv + static_cast<size_t>(r) * stride;
    const size_t dst = static_cast<size_t>(slot) * kv_dim;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < kv_dim; i += gridDim.x * blockDim.x) {
      k_cache[dst + i] = row[k_off + i];
      v_cache[dst + i] = row[v_off + i];
    }
  }
}

cudaError_t StoreKv(const half* qkv, int rows, int stride, int k_off, int v_off, int kv_dim, const int32_t* slots,
                    half* k_cache, half* v_cache, cudaStream_t s) {
  if (rows == 0) return cudaSuccess;
  return LaunchPdl(StoreKvKernel, dim3(RowGrid(rows, kv_dim)), dim3(kRowThreads), 0, s, rows, qkv, stride, k_off, v_off, kv_dim, slots, k_cache, v_cache);
}

// RoPE of the q and k heads fused with the store of k (rotated) and v into the paged cache: one
// launch instead of two per layer. Row layout [q heads | k heads | v heads]; slot < 0 skips the store.
__global__ void RopeStoreKvKernel(int rows, half* qkv, int stride, int heads, int kv_heads, int head_dim,
                                  const int32_t* positions, const float* cos_t, const float* sin_t, const int32_t* slots,
                                  half* k_cache, half* v_cache) {
  PdlTrigger();  // see common/pdl.cuh: launched with LaunchPdl
  PdlWait();
  const int half_dim = head_dim / 2;
  const int kv_dim = kv_heads * head_dim;
  const int rot = (heads + kv_heads) * half_dim;
  for (int r = blockIdx.y; r < rows; r += gridDim.y) {
    const int slot = slots[r];
    const float* c = cos_t + static_cast<size_t>(positions[r]) * half_dim;
    const float* sn = sin_t + static_cast<size_t>(positions[r]) * half_dim;
    half* row = qkv + static_cast<size_t>(r) * stride;
    const size_t dst = static_cast<size_t>(slot) * kv_dim;
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < rot + kv_dim; j += gridDim.x * blockDim.x) {
      if (j < rot) {
        const int h = j / half_dim, i = j % half_dim;
        half* v = row + h * head_dim;
        const float a = __half2float(v[i]), b = __half2float(v[i + half_dim]);
        half ra, rb;
        RopePair(a, b, c[i], sn[i], &ra, &rb);
        v[i] = ra;
        v[i + half_dim] = rb;
        if (h >= heads && slot >= 0) {
          half* k = k_cache + dst + (h - heads) * head_dim;
          k[i] = ra;
          k[i + half_dim] = rb;
        }
      } else if (slot >= 0) {
        const int i = j - rot;
        v_cache[dst + i] = row[(heads + kv_heads) * head_dim + i];
      }
    }
  }
}

cudaError_t RopeStoreKv(half* qkv, int rows, int stride, int heads, int kv_heads, int head_dim, const int32_t* positions,
                        const float* cos_t, const float* sin_t, const int32_t* slots, half* k_cache, half* v_cache,
                        cudaStream_t s) {
  if (rows == 0) return cudaSuccess;
  const int work = (heads + kv_heads) * (head_dim / 2) + kv_heads * head_dim;
  return LaunchPdl(RopeStoreKvKernel, dim3(RowGrid(rows, work)), dim3(kRowThreads), 0, s, rows, qkv, stride, heads, kv_heads, head_dim, positions, cos_t,
                                                                sin_t, slots, k_cache, v_cache);
}

__global__ void SiluMulKernel(int rows, const half* gu, int inter, half* out) {
  PdlTrigger();  // see common/pdl.cuh: launched with LaunchPdl
  PdlWait();
  for (size_t r = blockIdx.y; r < static_cast<size_t>(rows); r += gridDim.y) {
    const half* g = gu + r * 2 * inter;
    const half* u = g + inter;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < inter; i += gridDim.x * blockDim.x) {
      const float a = __half2float(g[i]);
      out[r * inter + i] = __float2half(a / (1.f + __expf(-a)) * __half2float(u[i]));
    }
  }
}

cudaError_t SiluMul(const half* gu, int rows, int inter, half* out, cudaStream_t s) {
  if (rows == 0) return cudaSuccess;
  return LaunchPdl(SiluMulKernel, dim3(RowGrid(rows, inter)), dim3(kRowThreads), 0, s, rows, gu, inter, out);
}

__global__ void GatherKernel(const half* x, const int32_t* idx, int hidden, half* out) {
  PdlTrigger();  // see common/pdl.cuh: launched with LaunchPdl
  PdlWait();
  const size_t r = blockIdx.x;
  const half* src = x + static_cast<size_t>(idx[r]) * hidden;
  for (int i = threadIdx.x; i < hidden; i += blockDim.x) out[r * hidden + i] = src[i];
}

cudaError_t GatherRows(const half* x, const int32_t* rows_idx, int rows, int hidden, half* out, cudaStream_t s) {
  if (rows == 0) return cudaSuccess;
  return LaunchPdl(GatherKernel, dim3(rows), dim3(Threads(hidden)), 0, s, x, rows_idx, hidden, out);
}

__global__ void AddBiasKernel(half* x, const float* bias, int n) {
  PdlTrigger();  // see common/pdl.cuh: launched with LaunchPdl
  PdlWait();
  const size_t r = blockIdx.x;
  for (int i = threadIdx.x; i < n; i += blockDim.x) x[r * n + i] = __float2half(__half2float(x[r * n + i]) + bias[i]);
}

cudaError_t AddBias(half* x, const float* bias, int rows, int n, cudaStream_t s) {
  if (rows == 0) return cudaSuccess;
  return LaunchPdl(AddBiasKernel, dim3(rows), dim3(Threads(n)), 0, s, x, bias, n);
}

// Uniform values in [lo, hi) from a counter hash (benchmark weights made on the device).
__global__ void FillUniformKernel(half* out, size_t count, uint64_t seed, float lo, float hi) {
  PdlTrigger();  // see common/pdl.cuh: launched with LaunchPdl
  PdlWait();
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < count; i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * (i + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const float u = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
    out[i] = __float2half(lo + (hi - lo) * u);
  }
}

cudaError_t FillUniformHalf(half* out, size_t count, uint64_t seed, float lo, float hi, cudaStream_t s) {
  if (count == 0) return cudaSuccess;
  size_t blocks = (count + 255) / 256;
  if (blocks > 65535) blocks = 65535;
  return LaunchPdl(FillUniformKernel, dim3(static_cast<unsigned>(blocks)), dim3(256), 0, s, out, count, seed, lo, hi);
}

}  // namespace cuda
}  // namespace ops
}  // namespace marlin
