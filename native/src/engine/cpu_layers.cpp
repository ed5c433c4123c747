// Element-wise and per-row CPU ops of the engine: embedding, RMSNorm, RoPE, SiLU-and-multiply and
// the KV-cache store. Rows are independent; threads split rows.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/parallel.h"
#include "engine/cpu_ops.h"
#include "engine/cpu_simd.h"

namespace marlin {
namespace ops {

static size_t RowChunk(int64_t row_floats) { return std::max<size_t>(1, 16384 / static_cast<size_t>(row_floats + 1)); }

void EmbeddingF32(const int32_t* ids, int64_t t, const float* table, int64_t hidden, float* out) {
  ParallelFor(static_cast<size_t>(t), [&](size_t lo, size_t hi) {
    for (size_t r = lo; r < hi; r++) std::memcpy(out + r * hidden, table + static_cast<int64_t>(ids[r]) * hidden, hidden * 4);
  }, RowChunk(hidden));
}

static void NormRow(const float* x, const float* w, float eps, int64_t hidden, float* out) {
  float ss = Dot(x, x, hidden);
  float inv = 1.0f / std::sqrt(ss / static_cast<float>(hidden) + eps);
  for (int64_t i = 0; i < hidden; i++) out[i] = (x[i] * inv) * w[i];
}

void RmsNormF32(const float* x, const float* weight, float eps, int64_t rows, int64_t hidden, float* out) {
  ParallelFor(static_cast<size_t>(rows), [&](size_t lo, size_t hi) {
    for (size_t r = lo; r < hi; r++) NormRow(x + r * hidden, weight, eps, hidden, out + r * hidden);
  }, RowChunk(hidden));
}

void AddRmsNormF32(float* x, float* residual, const float* weight, float eps, int64_t rows, int64_t hidden) {
  ParallelFor(static_cast<size_t>(rows), [&](size_t lo, size_t hi) {
    for (size_t r = lo; r < hi; r++) {
      float* xr = x + r * hidden;
      float* rr = residual + r * hidden;
      for (int64_t i = 0; i < hidden; i++) rr[i] += xr[i];
      NormRow(rr, weight, eps, hidden, xr);
    }
  }, RowChunk(hidden));
}

void RopeF32(float* x, int64_t rows, int64_t stride, int64_t heads, int64_t head_dim, int64_t rot_dim,
             const int32_t* positions, const float* cos_table, const float* sin_table) {
  const int64_t half = rot_dim / 2;
  ParallelFor(static_cast<size_t>(rows), [&](size_t lo, size_t hi) {
    for (size_t r = lo; r < hi; r++) {
      const float* c = cos_table + static_cast<int64_t>(positions[r]) * half;
      const float* s = sin_table + static_cast<int64_t>(positions[r]) * half;
      for (int64_t h = 0; h < heads; h++) {
        float* v = x + r * stride + h * head_dim;
        for (int64_t i = 0; i < half; i++) {
          float a = v[i], b = v[i + half];
          v[i] = a * c[i] - b * s[i];
          v[i + half] = b * c[i] + a * s[i];
        }
      }
    }
  }, RowChunk(heads * head_dim));
}

#ifdef MARLIN_OPS_X86
__attribute__((target("avx2,fma"))) static void SiluMulRowAvx2(const float* g, const float* u, int64_t n, float* o) {
  int64_t i = 0;
  const __m256 one = _mm256_set1_ps(1.f);
  for (; i + 8 <= n; i += 8) {
    const __m256 gv = _mm256_loadu_ps(g + i);
    const __m256 e = Exp256(_mm256_sub_ps(_mm256_setzero_ps(), gv));
    _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_div_ps(gv, _mm256_add_ps(one, e)), _mm256_loadu_ps(u + i)));
  }
  for (; i < n; i++) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

__attribute__((target("avx2,fma"))) float ExpShiftSumAvx2(const float* x, float shift, float* out, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  const __m256 sh = _mm256_set1_ps(shift);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = Exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), sh));
    if (out) _mm256_storeu_ps(out + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  if (i < n) {
    alignas(32) float t[8];
    for (int l = 0; l < 8; l++) t[l] = i + l < n ? x[i + l] : -INFINITY;
    const __m256 e = Exp256(_mm256_sub_ps(_mm256_load_ps(t), sh));
    const __m256 mask = _mm256_castsi256_ps(TailMask(n - i));
    const __m256 em = _mm256_and_ps(e, mask);
    if (out) _mm256_maskstore_ps(out + i, TailMask(n - i), em);
    acc = _mm256_add_ps(acc, em);
  }
  return Hsum(acc);
}
#endif

float ExpShiftSum(const float* x, float shift, float* out, int64_t n) {
#ifdef MARLIN_OPS_X86
  if (HasAvx2Fma()) return ExpShiftSumAvx2(x, shift, out, n);
#endif
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t i = 0; i < n; i++) {
    const float e = std::exp(x[i] - shift);
    if (out) out[i] = e;
    acc[i % 8] += e;
  }
  return ReduceLanes(acc);
}

void SiluMulF32(const float* gu, int64_t rows, int64_t inter, float* out) {
  const bool avx = HasAvx2Fma();
  ParallelFor(static_cast<size_t>(rows), [&](size_t lo, size_t hi) {
    for (size_t r = lo; r < hi; r++) {
      const float* g = gu + r * 2 * inter;
      const float* u = g + inter;
      float* o = out + r * inter;
#ifdef MARLIN_OPS_X86
      if (avx) {
        SiluMulRowAvx2(g, u, inter, o);
        continue;
      }
#endif
      (void)avx;
      for (int64_t i = 0; i < inter; i++) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
    }
  }, RowChunk(inter));
}

void StoreKvF32(const float* qkv, int64_t rows, int64_t stride, int64_t k_offset, int64_t v_offset, int64_t kv_dim,
                const int32_t* slots, float* k_cache, float* v_cache) {
  for (int64_t r = 0; r < rows; r++) {
    if (slots[r] < 0) continue;
    const int64_t s = static_cast<int64_t>(slots[r]) * kv_dim;
    std::memcpy(k_cache + s, qkv + r * stride + k_offset, kv_dim * 4);
    std::memcpy(v_cache + s, qkv + r * stride + v_offset, kv_dim * 4);
  }
}

}  // namespace ops
}  // namespace marlin
