#pragma once
// Batch-invariant fp32 dot products for the engine's CPU ops. Every dot product is computed as
// eight lane-wise fused multiply-add chains over k (lane l takes elements l, l+8, ...; a k tail is
// zero-padded) followed by one fixed reduction tree. Whether a row is computed alone or next to
// others, with AVX2 or with the scalar fallback, its result is the same bits: that is what makes
// "a batch of 64 == each prompt alone" hold exactly on the CPU path.
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define MARLIN_OPS_X86 1
#endif

namespace marlin {
namespace ops {

// The fixed reduction tree over the eight lanes.
inline float ReduceLanes(const float* a) { return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])); }

// Scalar reference of the lane scheme: bit-identical to the AVX2 path (fmaf is exact FMA).
inline float DotScalar(const float* x, const float* w, int64_t k) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= k; i += 8)
    for (int l = 0; l < 8; l++) acc[l] = std::fmaf(x[i + l], w[i + l], acc[l]);
  if (i < k)  // zero-padded tail, as the masked AVX2 load does
    for (int l = 0; l < 8; l++) acc[l] = i + l < k ? std::fmaf(x[i + l], w[i + l], acc[l]) : std::fmaf(0.f, 0.f, acc[l]);
  return ReduceLanes(acc);
}

bool HasAvx2Fma();

#ifdef MARLIN_OPS_X86
__attribute__((target("avx2,fma"))) inline __m256i TailMask(int64_t rem) {
  alignas(32) int32_t m[8];
  for (int l = 0; l < 8; l++) m[l] = l < rem ? -1 : 0;
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(m));
}

__attribute__((target("avx2,fma"))) inline float Hsum(__m256 v) {
  alignas(32) float a[8];
  _mm256_store_ps(a, v);
  return ReduceLanes(a);
}

__attribute__((target("avx2,fma"))) inline float DotAvx2(const float* x, const float* w, int64_t k) {
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(w + i), acc);
  if (i < k) {
    __m256i m = TailMask(k - i);
    acc = _mm256_fmadd_ps(_mm256_maskload_ps(x + i, m), _mm256_maskload_ps(w + i, m), acc);
  }
  return Hsum(acc);
}

// exp(x) for 8 lanes (Cephes-style range reduction + degree-6 polynomial, ~2 ulp); inputs are
// clamped to the finite range. Used by the softmax-like loops; the same lanes give the same bits.
__attribute__((target("avx2,fma"))) inline __m256 Exp256(__m256 x) {
  x = _mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f));
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.3365447504f));
  __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
  x = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  x = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), x);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.f)));
  __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}
#endif

// out[i] = exp(x[i] - shift), returns the sum (eight lane sums, then the fixed tree). n-element
// loops with a zero-padded tail, so a given n always gives the same bits.
float ExpShiftSum(const float* x, float shift, float* out, int64_t n);

inline float Dot(const float* x, const float* w, int64_t k) {
#ifdef MARLIN_OPS_X86
  if (HasAvx2Fma()) return DotAvx2(x, w, k);
#endif
  return DotScalar(x, w, k);
}

}  // namespace ops
}  // namespace marlin
