// Causal attention over the paged KV cache on the CPU. A work item is one query row and one KV
// head with the query heads that share it (GQA), so each key and value is read once per group.
// Per query head the arithmetic depends only on the query, its position and the cache contents:
// prefill, chunked prefill and decode of the same token give the same bits.
#include <algorithm>
#include <cmath>
#include <vector>

#include "common/parallel.h"
#include "engine/cpu_ops.h"
#include "engine/cpu_simd.h"

namespace marlin {
namespace ops {

// One work item: query row t, KV head kvh, its `group` query heads. Written once as a macro-free
// template over the two primitive kernels so the AVX2 instance inlines them.
struct ScalarKernels {
  static float Dot(const float* x, const float* y, int64_t n) { return DotScalar(x, y, n); }
  static void Axpy(float w, const float* v, float* acc, int64_t n) {
    for (int64_t d = 0; d < n; d++) acc[d] = std::fmaf(w, v[d], acc[d]);
  }
};

template <typename K>
static inline __attribute__((always_inline)) void AttendItem(const PagedAttentionArgs& a, int64_t t, int64_t kvh,
                                                              std::vector<float>& scores, std::vector<float>& acc) {
  const int64_t group = a.heads / a.kv_heads;
  const int64_t kv_dim = a.kv_heads * a.head_dim;
  const int64_t D = a.head_dim;
  const int32_t* table = a.block_tables + static_cast<int64_t>(a.seq_of_row[t]) * a.max_blocks;
  const int64_t n = static_cast<int64_t>(a.pos_of_row[t]) + 1;
  scores.resize(static_cast<size_t>(n * group));
  acc.assign(static_cast<size_t>(group * D), 0.f);
  const float* q0 = a.q + t * a.q_stride + kvh * group * D;
  // Walk the block table block by block (no division per key).
  const int64_t bs = a.block_size;
  for (int64_t p0 = 0, j = 0; p0 < n; p0 += bs, j++) {
    const float* kb = a.k_cache + static_cast<int64_t>(table[j]) * bs * kv_dim + kvh * D;
    const int64_t cnt = n - p0 < bs ? n - p0 : bs;
    for (int64_t o = 0; o < cnt; o++)
      for (int64_t g = 0; g < group; g++) scores[g * n + p0 + o] = K::Dot(q0 + g * D, kb + o * kv_dim, D) * a.scale;
  }
  float inv[64];
  for (int64_t g = 0; g < group; g++) {
    float* s = scores.data() + g * n;
    float mx = -INFINITY;
    for (int64_t p = 0; p < n; p++) mx = std::max(mx, s[p]);
    inv[g] = 1.0f / ExpShiftSum(s, mx, s, n);
  }
  for (int64_t p0 = 0, j = 0; p0 < n; p0 += bs, j++) {
    const float* vb = a.v_cache + static_cast<int64_t>(table[j]) * bs * kv_dim + kvh * D;
    const int64_t cnt = n - p0 < bs ? n - p0 : bs;
    for (int64_t o = 0; o < cnt; o++)
      for (int64_t g = 0; g < group; g++) K::Axpy(scores[g * n + p0 + o], vb + o * kv_dim, acc.data() + g * D, D);
  }
  for (int64_t g = 0; g < group; g++) {
    float* o = a.out + t * a.heads * D + (kvh * group + g) * D;
    for (int64_t d = 0; d < D; d++) o[d] = acc[g * D + d] * inv[g];
  }
}

static void RangeScalar(const PagedAttentionArgs& a, size_t lo, size_t hi) {
  std::vector<float> scores, acc;
  for (size_t it = lo; it < hi; it++)
    AttendItem<ScalarKernels>(a, static_cast<int64_t>(it) / a.kv_heads, static_cast<int64_t>(it) % a.kv_heads, scores, acc);
}

#ifdef MARLIN_OPS_X86
struct Avx2Kernels {
  __attribute__((target("avx2,fma"))) static inline float Dot(const float* x, const float* y, int64_t n) { return DotAvx2(x, y, n); }
  __attribute__((target("avx2,fma"))) static inline void Axpy(float w, const float* v, float* acc, int64_t n) {
    const __m256 wv = _mm256_set1_ps(w);
    int64_t d = 0;
    for (; d + 8 <= n; d += 8) _mm256_storeu_ps(acc + d, _mm256_fmadd_ps(wv, _mm256_loadu_ps(v + d), _mm256_loadu_ps(acc + d)));
    for (; d < n; d++) acc[d] = std::fmaf(w, v[d], acc[d]);
  }
};
__attribute__((target("avx2,fma"))) static void RangeAvx2(const PagedAttentionArgs& a, size_t lo, size_t hi) {
  std::vector<float> scores, acc;
  for (size_t it = lo; it < hi; it++)
    AttendItem<Avx2Kernels>(a, static_cast<int64_t>(it) / a.kv_heads, static_cast<int64_t>(it) % a.kv_heads, scores, acc);
}
#endif

void PagedAttentionF32(const PagedAttentionArgs& a) {
  const bool avx = HasAvx2Fma();
  const size_t items = static_cast<size_t>(a.rows * a.kv_heads);
  ParallelFor(items, [&](size_t lo, size_t hi) {
#ifdef MARLIN_OPS_X86
    if (avx) return RangeAvx2(a, lo, hi);
#endif
    (void)avx;
    RangeScalar(a, lo, hi);
  }, std::max<size_t>(1, 32 / static_cast<size_t>(a.kv_heads)));
}

}  // namespace ops
}  // namespace marlin
