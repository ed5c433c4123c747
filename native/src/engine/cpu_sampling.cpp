// Token choice and log-probabilities on the CPU. Random draws come from SampleUniform (a hash of
// seed, draw counter and token id), so a seeded request draws the same tokens whatever batch it
// runs in, and after a preemption.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "common/parallel.h"
#include "engine/cpu_ops.h"
#include "engine/cpu_simd.h"

namespace marlin {
namespace ops {

static int32_t Argmax(const float* l, int64_t v) {
  int64_t best = 0;
  for (int64_t i = 1; i < v; i++)
    if (l[i] > l[best]) best = i;
  return static_cast<int32_t>(best);
}

static int32_t SampleRow(const float* l, int64_t vocab, float temperature, int32_t top_k, float top_p, uint64_t seed,
                         uint32_t counter, std::vector<int32_t>& idx, std::vector<double>& p) {
  if (!(temperature > 0.f)) return Argmax(l, vocab);
  const double inv_t = 1.0 / temperature;
  // Candidates in descending logit order (ties by id); only as many as the filters need sorted.
  idx.resize(static_cast<size_t>(vocab));
  std::iota(idx.begin(), idx.end(), 0);
  // NaN ranks below every number: std::sort needs a strict weak order, and NaN compares false with
  // everything (an inconsistent comparator lets the sort run past the array).
  auto key = [l](int32_t i) { return std::isnan(l[i]) ? -INFINITY : l[i]; };
  auto by_logit = [&key](int32_t a, int32_t b) { return key(a) > key(b) || (key(a) == key(b) && a < b); };
  int64_t keep = vocab;
  if (top_k > 0 && top_k < vocab) {
    keep = top_k;
    std::partial_sort(idx.begin(), idx.begin() + keep, idx.end(), by_logit);
  } else if (top_p < 1.f) {
    std::sort(idx.begin(), idx.end(), by_logit);
  }
  const bool sorted = keep < vocab || top_p < 1.f;
  const double mx = sorted ? l[idx[0]] * inv_t : l[Argmax(l, vocab)] * inv_t;
  p.resize(static_cast<size_t>(keep));
  double sum = 0;
  for (int64_t i = 0; i < keep; i++) sum += (p[i] = std::exp(l[idx[i]] * inv_t - mx));
  if (top_p < 1.f) {
    // The smallest prefix (by probability) whose mass reaches top_p; at least one token.
    double cum = 0;
    int64_t cut = keep;
    for (int64_t i = 0; i < keep; i++) {
      cum += p[i] / sum;
      if (cum >= top_p) {
        cut = i + 1;
        break;
      }
    }
    keep = cut;
  }
  // Exponential race: argmax p_i / E_i with E_i ~ Exp(1) draws a token with probability p_i / sum.
  double best = -1;
  int32_t choice = idx[0];
  for (int64_t i = 0; i < keep; i++) {
    const double e = -std::log(SampleUniform(seed, counter, static_cast<uint32_t>(idx[i])));
    const double score = p[i] / e;
    if (score > best) {
      best = score;
      choice = idx[i];
    }
  }
  return choice;
}

void SampleF32(const SampleArgs& a) {
  ParallelFor(static_cast<size_t>(a.rows), [&](size_t lo, size_t hi) {
    std::vector<int32_t> idx;
    std::vector<double> p;
    for (size_t r = lo; r < hi; r++) {
      const uint64_t seed = static_cast<uint64_t>(a.seeds[2 * r]) | static_cast<uint64_t>(a.seeds[2 * r + 1]) << 32;
      a.out[r] = SampleRow(a.logits + r * a.vocab, a.vocab, a.temperature[r], a.top_k[r], a.top_p[r], seed,
                           static_cast<uint32_t>(a.counters[r]), idx, p);
    }
  });
}

void LogprobsF32(const float* logits, int64_t rows, int64_t vocab, const int32_t* targets, double* out) {
  ParallelFor(static_cast<size_t>(rows), [&](size_t lo, size_t hi) {
    for (size_t r = lo; r < hi; r++) {
      const float* l = logits + r * vocab;
      float mx = l[0];
      for (int64_t i = 1; i < vocab; i++) mx = std::max(mx, l[i]);
      const double sum = ExpShiftSum(l, mx, nullptr, vocab);
      out[r] = static_cast<double>(l[targets[r]] - mx) - std::log(sum);
    }
  }, 8);
}

}  // namespace ops
}  // namespace marlin
