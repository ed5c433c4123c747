// Causal attention over the paged KV cache on the CPU. One (row, head) pair is one work item; its
// arithmetic depends only on the query, its position and the cache contents, so prefill, chunked
// prefill and decode of the same token give the same bits.
#include <algorithm>
#include <cmath>
#include <vector>

#include "common/parallel.h"
#include "ops/cpu_ops.h"
#include "ops/cpu_simd.h"

namespace marlin {
namespace ops {

void PagedAttentionF32(const PagedAttentionArgs& a) {
  const int64_t group = a.heads / a.kv_heads;
  const int64_t kv_dim = a.kv_heads * a.head_dim;
  const size_t items = static_cast<size_t>(a.rows * a.heads);
  ParallelFor(items, [&](size_t lo, size_t hi) {
    std::vector<float> scores;
    std::vector<double> acc(static_cast<size_t>(a.head_dim));
    for (size_t it = lo; it < hi; it++) {
      const int64_t t = static_cast<int64_t>(it) / a.heads, h = static_cast<int64_t>(it) % a.heads;
      const int64_t kvh = h / group;
      const float* q = a.q + t * a.q_stride + h * a.head_dim;
      const int32_t* table = a.block_tables + static_cast<int64_t>(a.seq_of_row[t]) * a.max_blocks;
      const int64_t n = static_cast<int64_t>(a.pos_of_row[t]) + 1;
      scores.resize(static_cast<size_t>(n));
      float mx = -INFINITY;
      for (int64_t p = 0; p < n; p++) {
        const int64_t slot = static_cast<int64_t>(table[p / a.block_size]) * a.block_size + p % a.block_size;
        float s = Dot(q, a.k_cache + slot * kv_dim + kvh * a.head_dim, a.head_dim) * a.scale;
        scores[p] = s;
        mx = std::max(mx, s);
      }
      std::fill(acc.begin(), acc.end(), 0.0);
      double sum = 0;
      for (int64_t p = 0; p < n; p++) {
        const int64_t slot = static_cast<int64_t>(table[p / a.block_size]) * a.block_size + p % a.block_size;
        const double w = std::exp(static_cast<double>(scores[p] - mx));
        sum += w;
        const float* v = a.v_cache + slot * kv_dim + kvh * a.head_dim;
        for (int64_t d = 0; d < a.head_dim; d++) acc[d] += w * v[d];
      }
      float* o = a.out + t * a.heads * a.head_dim + h * a.head_dim;
      const double inv = 1.0 / sum;
      for (int64_t d = 0; d < a.head_dim; d++) o[d] = static_cast<float>(acc[d] * inv);
    }
  }, std::max<size_t>(1, 64 / static_cast<size_t>(a.heads)));
}

}  // namespace ops
}  // namespace marlin
