// The engine's CPU linear layer: out[m, n] = x[m, k] . W^T (+ bias), fp32, multi-threaded.
// W[n, k] is packed once at load into panels of 16 output columns, [ceil(n/16)][k][16], so a
// panel streams contiguously. Each output element is one fused multiply-add chain over k in
// order, started from zero: the same bits whether its row is computed alone or in a batch of any
// size, with AVX2 or with the scalar fallback (batch invariance of the CPU path).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/parallel.h"
#include "engine/cpu_ops.h"
#include "engine/cpu_simd.h"

namespace marlin {
namespace ops {

bool HasAvx2Fma() {
#ifdef MARLIN_OPS_X86
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
#else
  return false;
#endif
}

constexpr int64_t kPanel = 16;

int64_t PackedLinearSize(int64_t n, int64_t k) { return (n + kPanel - 1) / kPanel * kPanel * k; }

void PackLinearF32(const float* w, int64_t n, int64_t k, float* packed) {
  const int64_t panels = (n + kPanel - 1) / kPanel;
  ParallelFor(static_cast<size_t>(panels), [&](size_t lo, size_t hi) {
    for (size_t p = lo; p < hi; p++) {
      float* dst = packed + static_cast<int64_t>(p) * k * kPanel;
      for (int64_t i = 0; i < k; i++)
        for (int64_t c = 0; c < kPanel; c++) {
          const int64_t col = static_cast<int64_t>(p) * kPanel + c;
          dst[i * kPanel + c] = col < n ? w[col * k + i] : 0.f;
        }
    }
  });
}

#ifdef MARLIN_OPS_X86
// R rows x one 16-column panel. Accumulators are named variables (not an array) so that they stay
// in registers across the k loop.
#define MARLIN_ACC_STEP(r)                                            \
  if constexpr (R > r) {                                              \
    const __m256 xb = _mm256_broadcast_ss(x + r * ldx + i);           \
    a##r##0 = _mm256_fmadd_ps(xb, w0, a##r##0);                       \
    a##r##1 = _mm256_fmadd_ps(xb, w1, a##r##1);                       \
  }
#define MARLIN_ACC_OUT(r)                                             \
  if constexpr (R > r) {                                              \
    _mm256_store_ps(tmp, a##r##0);                                    \
    _mm256_store_ps(tmp + 8, a##r##1);                                \
    for (int64_t c = 0; c < cols; c++) out[r * ldo + c] = tmp[c] + (bias ? bias[c] : 0.f); \
  }
template <int R>
__attribute__((target("avx2,fma"))) static void PanelAvx2(const float* x, int64_t ldx, const float* panel, int64_t k,
                                                         float* out, int64_t ldo, int64_t cols, const float* bias) {
  __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00,
         a40 = a00, a41 = a00, a50 = a00, a51 = a00;
  for (int64_t i = 0; i < k; i++) {
    const __m256 w0 = _mm256_loadu_ps(panel + i * kPanel);
    const __m256 w1 = _mm256_loadu_ps(panel + i * kPanel + 8);
    MARLIN_ACC_STEP(0)
    MARLIN_ACC_STEP(1)
    MARLIN_ACC_STEP(2)
    MARLIN_ACC_STEP(3)
    MARLIN_ACC_STEP(4)
    MARLIN_ACC_STEP(5)
  }
  alignas(32) float tmp[16];
  MARLIN_ACC_OUT(0)
  MARLIN_ACC_OUT(1)
  MARLIN_ACC_OUT(2)
  MARLIN_ACC_OUT(3)
  MARLIN_ACC_OUT(4)
  MARLIN_ACC_OUT(5)
}
#undef MARLIN_ACC_STEP
#undef MARLIN_ACC_OUT
// One row against four consecutive full panels (64 columns): eight independent FMA chains, so a
// single row (decode) is not bound by FMA latency. Each element's chain is the same as above.
__attribute__((target("avx2,fma"))) static void Row4PanelsAvx2(const float* x, const float* panel, int64_t k, float* out,
                                                              const float* bias) {
  const int64_t ps = k * kPanel;
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  for (int64_t i = 0; i < k; i++) {
    const __m256 xb = _mm256_broadcast_ss(x + i);
    const float* w = panel + i * kPanel;
    a0 = _mm256_fmadd_ps(xb, _mm256_loadu_ps(w), a0);
    a1 = _mm256_fmadd_ps(xb, _mm256_loadu_ps(w + 8), a1);
    a2 = _mm256_fmadd_ps(xb, _mm256_loadu_ps(w + ps), a2);
    a3 = _mm256_fmadd_ps(xb, _mm256_loadu_ps(w + ps + 8), a3);
    a4 = _mm256_fmadd_ps(xb, _mm256_loadu_ps(w + 2 * ps), a4);
    a5 = _mm256_fmadd_ps(xb, _mm256_loadu_ps(w + 2 * ps + 8), a5);
    a6 = _mm256_fmadd_ps(xb, _mm256_loadu_ps(w + 3 * ps), a6);
    a7 = _mm256_fmadd_ps(xb, _mm256_loadu_ps(w + 3 * ps + 8), a7);
  }
  alignas(32) float tmp[64];
  _mm256_store_ps(tmp, a0);
  _mm256_store_ps(tmp + 8, a1);
  _mm256_store_ps(tmp + 16, a2);
  _mm256_store_ps(tmp + 24, a3);
  _mm256_store_ps(tmp + 32, a4);
  _mm256_store_ps(tmp + 40, a5);
  _mm256_store_ps(tmp + 48, a6);
  _mm256_store_ps(tmp + 56, a7);
  for (int c = 0; c < 64; c++) out[c] = tmp[c] + (bias ? bias[c] : 0.f);
}

using PanelFn = void (*)(const float*, int64_t, const float*, int64_t, float*, int64_t, int64_t, const float*);
static PanelFn PickPanel(int r) {
  static const PanelFn t[6] = {PanelAvx2<1>, PanelAvx2<2>, PanelAvx2<3>, PanelAvx2<4>, PanelAvx2<5>, PanelAvx2<6>};
  return t[r - 1];
}
#endif

static void PanelScalar(const float* x, int64_t ldx, int rows, const float* panel, int64_t k, float* out, int64_t ldo,
                        int64_t cols, const float* bias) {
  for (int r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) {
      float acc = 0.f;
      for (int64_t i = 0; i < k; i++) acc = std::fmaf(x[r * ldx + i], panel[i * kPanel + c], acc);
      out[r * ldo + c] = acc + (bias ? bias[c] : 0.f);
    }
}

void LinearF32(const float* x, const float* packed, const float* bias, float* out, int64_t m, int64_t n, int64_t k) {
  if (m == 0 || n == 0) return;
  const bool avx = HasAvx2Fma();
  constexpr int64_t kRowTile = 96;  // rows of x kept in L2 while panels stream past
  const int64_t panels = (n + kPanel - 1) / kPanel;
  const size_t work = static_cast<size_t>(m * k * kPanel) + 1;
  const size_t min_chunk = std::max<size_t>(1, (size_t{1} << 18) / work);
  ParallelFor(
      static_cast<size_t>(panels),
      [&](size_t p0, size_t p1) {
        for (int64_t r0 = 0; r0 < m; r0 += kRowTile) {
          int64_t r1 = std::min(m, r0 + kRowTile);
#ifdef MARLIN_OPS_X86
          // A last group of one or two rows (decode steps, remainders) runs row by row across
          // four panels at a time; the per-element arithmetic is unchanged.
          const int64_t small = (r1 - r0) % 6 <= 2 ? (r1 - r0) % 6 : 0;
          if (avx && small) {
            for (int64_t r = r1 - small; r < r1; r++) {
              size_t p = p0;
              for (; p + 4 <= p1 && static_cast<int64_t>(p + 4) * kPanel <= n; p += 4) {
                const int64_t c0 = static_cast<int64_t>(p) * kPanel;
                Row4PanelsAvx2(x + r * k, packed + static_cast<int64_t>(p) * k * kPanel, k, out + r * n + c0, bias ? bias + c0 : nullptr);
              }
              for (; p < p1; p++) {
                const int64_t c0 = static_cast<int64_t>(p) * kPanel;
                PanelAvx2<1>(x + r * k, k, packed + static_cast<int64_t>(p) * k * kPanel, k, out + r * n + c0, n,
                             std::min(kPanel, n - c0), bias ? bias + c0 : nullptr);
              }
            }
            r1 -= small;
          }
#endif
          for (size_t p = p0; p < p1; p++) {
            const int64_t c0 = static_cast<int64_t>(p) * kPanel;
            const int64_t cols = std::min(kPanel, n - c0);
            const float* panel = packed + static_cast<int64_t>(p) * k * kPanel;
            const float* b = bias ? bias + c0 : nullptr;
            for (int64_t r = r0; r < r1; r += 6) {
              const int rows = static_cast<int>(std::min<int64_t>(6, r1 - r));
#ifdef MARLIN_OPS_X86
              if (avx) {
                PickPanel(rows)(x + r * k, k, panel, k, out + r * n + c0, n, cols, b);
                continue;
              }
#endif
              (void)avx;
              PanelScalar(x + r * k, k, rows, panel, k, out + r * n + c0, n, cols, b);
            }
          }
        }
      },
      min_chunk);
}

}  // namespace ops
}  // namespace marlin
