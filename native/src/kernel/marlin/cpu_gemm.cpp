#include "kernel/marlin/cpu_gemm.h"

#include <algorithm>
#include <vector>

#include "common/half.h"
#include "common/parallel.h"
#include "kernel/marlin/layout.h"

namespace marlin {

namespace {

inline float Load(ActType t, uint16_t x) { return t == ActType::kF16 ? HalfToFloat(x) : Bf16ToFloat(x); }
inline uint16_t Store(ActType t, float x) { return t == ActType::kF16 ? FloatToHalf(x) : FloatToBf16(x); }

// c[r, :] = a32[r, :] * w32 (+ bias): rows and 256-column blocks in parallel; each output sums
// i = 0 .. k-1 in order, so a row's result is the same for any m.
void Product(ActType act, int m, int n, int k, const float* a32, const float* w32, const uint16_t* bias, uint16_t* c) {
  constexpr int kCols = 256;
  const int cblocks = (n + kCols - 1) / kCols;
  ParallelFor(static_cast<size_t>(m) * cblocks, [&](size_t lo, size_t hi) {
    float acc[kCols];
    for (size_t item = lo; item < hi; item++) {
      const int r = static_cast<int>(item / cblocks);
      const int c0 = static_cast<int>(item % cblocks) * kCols;
      const int w = std::min(kCols, n - c0);
      std::fill(acc, acc + w, 0.f);
      const float* ar = a32 + static_cast<size_t>(r) * k;
      for (int i = 0; i < k; i++) {
        const float av = ar[i];
        const float* wr = w32 + static_cast<size_t>(i) * n + c0;
        for (int j = 0; j < w; j++) acc[j] += av * wr[j];
      }
      uint16_t* cr = c + static_cast<size_t>(r) * n + c0;
      for (int j = 0; j < w; j++) cr[j] = Store(act, acc[j] + (bias ? Load(act, bias[c0 + j]) : 0.f));
    }
  });
}

}  // namespace

void CpuMarlinGemm(const CpuGemmArgs& g) {
  const int bits = g.weight == WeightKind::kU8 ? 8 : 4;
  const bool per_channel = g.group_size == -1 || g.group_size >= g.k;
  const int groups = per_channel ? 1 : g.k / g.group_size;
  const int n = g.n, k = g.k;
  // Plain scales and zero points per group.
  std::vector<float> scales(static_cast<size_t>(groups) * n);
  std::vector<float> zeros(static_cast<size_t>(groups) * n, static_cast<float>(1 << (bits - 1)));
  {
    std::vector<uint16_t> row(n);
    std::vector<uint8_t> zrow(n);
    for (int gi = 0; gi < groups; gi++) {
      layout::UnpermuteRow(g.scales + static_cast<size_t>(gi) * n, row.data(), n, per_channel);
      for (int j = 0; j < n; j++) scales[static_cast<size_t>(gi) * n + j] = Load(g.act, row[j]);
      if (g.zeros) {
        layout::UnpackZeroRow(g.zeros + static_cast<size_t>(gi) * n * bits / 32, n, bits, zrow.data());
        for (int j = 0; j < n; j++) zeros[static_cast<size_t>(gi) * n + j] = zrow[j];
      }
    }
  }
  // Dequantized weights in packed row order, fp32 [k, n].
  std::vector<float> w32(static_cast<size_t>(k) * n);
  const auto off = layout::BlockOffsets(bits, n);
  ParallelFor(static_cast<size_t>(k / 16), [&](size_t lo, size_t hi) {
    std::vector<uint8_t> q(static_cast<size_t>(16) * n);
    for (size_t kt = lo; kt < hi; kt++) {
      const size_t words_per_kt = static_cast<size_t>(n) * 16 * bits / 32;
      layout::UnpackRows(g.b + kt * words_per_kt, n, bits, 0, 1, q.data(), off);
      for (int r = 0; r < 16; r++) {
        const int i = static_cast<int>(kt) * 16 + r;
        const int gi = per_channel ? 0 : i / g.group_size;
        const float* s = scales.data() + static_cast<size_t>(gi) * n;
        const float* z = zeros.data() + static_cast<size_t>(gi) * n;
        float* dst = w32.data() + static_cast<size_t>(i) * n;
        const uint8_t* qr = q.data() + static_cast<size_t>(r) * n;
        for (int j = 0; j < n; j++) dst[j] = (static_cast<float>(qr[j]) - z[j]) * s[j];
      }
    }
  });
  // Activations in fp32, gathered into packed order for act-order.
  std::vector<float> a32(static_cast<size_t>(g.m) * k);
  ParallelFor(static_cast<size_t>(g.m), [&](size_t lo, size_t hi) {
    for (size_t r = lo; r < hi; r++)
      for (int i = 0; i < k; i++) a32[r * k + i] = Load(g.act, g.a[r * k + (g.perm ? g.perm[i] : i)]);
  });
  Product(g.act, g.m, n, k, a32.data(), w32.data(), g.bias, g.c);
}

void CpuDenseGemm(ActType act, int m, int n, int k, const uint16_t* a, const uint16_t* w, const uint16_t* bias, uint16_t* c) {
  std::vector<float> w32(static_cast<size_t>(k) * n), a32(static_cast<size_t>(m) * k);
  ParallelFor(static_cast<size_t>(k), [&](size_t lo, size_t hi) {
    for (size_t i = lo * n; i < hi * n; i++) w32[i] = Load(act, w[i]);
  });
  for (size_t i = 0; i < a32.size(); i++) a32[i] = Load(act, a[i]);
  Product(act, m, n, k, a32.data(), w32.data(), bias, c);
}

}  // namespace marlin
