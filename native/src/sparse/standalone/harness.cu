// Standalone harness of the 2:4 kernel (no Node): random packed layers checked against the CPU path
// (cpu_gemm.cpp, itself checked against fp64 by the vitest suite), for the GPU machine and
// compute-sanitizer.
//   harness test [quick]   the matrix: fp16/bf16, group 128 / per-channel, small odd and real shapes,
//                          m in {1,2,7,16,17,33,64,128,255,1000}; poisoned outputs, repeats
//                          bit-identical, workspace all-zero after each call
//   harness sanitize       a few small cases (split-k and partial m tiles) for memcheck / racecheck
//   harness probe          which reading of the PTX metadata figure the hardware has: the layout's
//                          (layout.h) or the other (lane 0 = row g, lane 1 = row g+8; meta_rows.cu)
// Activations and scales are drawn exactly representable in both fp16 and bf16, so one fp16 CPU
// reference serves both dtypes.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/half.h"
#include "sparse/cpu_gemm.h"
#include "sparse/gemm.h"

using namespace marlin;

#define CK(x)                                                                                   \
  do {                                                                                          \
    cudaError_t e_ = (x);                                                                       \
    if (e_ != cudaSuccess) {                                                                    \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorName(e_));     \
      std::exit(2);                                                                             \
    }                                                                                           \
  } while (0)

namespace marlin {
cudaError_t Sparse24GemmMetaRows(const Sparse24GemmArgs& args, cudaStream_t stream);
}

namespace {

bool g_meta_rows = false;  // probe: launch the other metadata reading
std::mt19937_64 rng(12345);

// A value exact in fp16 and bf16: 8 significant bits, exponent in [lo, hi].
float Exact(int lo, int hi) {
  const int e = lo + int(rng() % uint64_t(hi - lo + 1));
  const int mant = 128 + int(rng() % 128);
  return std::ldexp(float(mant) / 128.f, e) * ((rng() & 1) ? -1.f : 1.f);
}
uint16_t Bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return uint16_t(u >> 16);  // exact by construction
}

struct Layer {
  int k, n, group;
  std::vector<uint32_t> values, meta;
  std::vector<uint16_t> scales16, scales_bf;
};

Layer RandomLayer(int k, int n, int group) {
  Layer l{k, n, group};
  l.values.resize(size_t(k) * n / 16);
  l.meta.resize(size_t(k) * n / 32);
  for (auto& w : l.values) w = uint32_t(rng());
  // Every metadata nibble two ascending indices: one of the 6 valid pairs.
  static const uint32_t kPairs[6] = {0x4, 0x8, 0xc, 0x9, 0xd, 0xe};
  for (auto& w : l.meta) {
    w = 0;
    for (int c = 0; c < 8; c++) w |= kPairs[rng() % 6] << (4 * c);
  }
  const size_t groups = group == -1 ? 1 : size_t(k / group);
  for (size_t i = 0; i < groups * n; i++) {
    const float s = std::fabs(Exact(-9, -6));
    l.scales16.push_back(FloatToHalf(s));
    l.scales_bf.push_back(Bf16(s));
  }
  return l;
}

struct Case {
  int m, n, k, group;
  bool bf16;
};

// Runs one case twice; returns false (and prints why) on any failure.
bool RunCase(const Layer& l, const Case& c, int sms, bool quiet) {
  const size_t mk = size_t(c.m) * c.k, mn = size_t(c.m) * c.n;
  std::vector<float> xf(mk);
  std::vector<uint16_t> x16(mk), xbf(mk);
  for (size_t i = 0; i < mk; i++) {
    xf[i] = Exact(-3, 1);
    x16[i] = FloatToHalf(xf[i]);
    xbf[i] = Bf16(xf[i]);
  }
  std::vector<uint16_t> ref(mn);
  Sparse24CpuArgs cpu{c.m, c.n, c.k, c.group, x16.data(), l.values.data(), l.meta.data(), l.scales16.data(), nullptr, ref.data()};
  CpuSparse24Gemm(cpu);

  const Sparse24Plan plan = PlanSparse24(c.m, c.n, c.k, sms);
  void *da, *dv, *dm, *ds, *dc, *dw;
  CK(cudaMalloc(&da, mk * 2));
  CK(cudaMalloc(&dv, l.values.size() * 4));
  CK(cudaMalloc(&dm, l.meta.size() * 4));
  CK(cudaMalloc(&ds, l.scales16.size() * 2));
  CK(cudaMalloc(&dc, mn * 2));
  CK(cudaMalloc(&dw, plan.total));
  CK(cudaMemcpy(da, c.bf16 ? xbf.data() : x16.data(), mk * 2, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dv, l.values.data(), l.values.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dm, l.meta.data(), l.meta.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(ds, c.bf16 ? l.scales_bf.data() : l.scales16.data(), l.scales16.size() * 2, cudaMemcpyHostToDevice));
  CK(cudaMemset(dw, 0, plan.total));
  Sparse24GemmArgs g{c.m, c.n, c.k, c.group, c.bf16, da, static_cast<uint32_t*>(dv), static_cast<uint32_t*>(dm), ds, nullptr, dc, dw, sms};
  std::vector<uint16_t> out[2];
  bool ok = true;
  for (int rep = 0; rep < 2; rep++) {
    CK(cudaMemset(dc, 0xff, mn * 2));  // NaN poison
    CK(g_meta_rows ? Sparse24GemmMetaRows(g, nullptr) : Sparse24Gemm(g, nullptr));
    CK(cudaDeviceSynchronize());
    out[rep].resize(mn);
    CK(cudaMemcpy(out[rep].data(), dc, mn * 2, cudaMemcpyDeviceToHost));
  }
  std::vector<uint8_t> ws(plan.total);
  CK(cudaMemcpy(ws.data(), dw, plan.total, cudaMemcpyDeviceToHost));
  double num = 0, den = 0;
  size_t bad = 0;
  for (size_t i = 0; i < mn; i++) {
    const float o = c.bf16 ? Bf16ToFloat(out[0][i]) : HalfToFloat(out[0][i]);
    const float r = HalfToFloat(ref[i]);
    if (!std::isfinite(o)) bad++;
    num += double(o - r) * (o - r);
    den += double(r) * r;
  }
  const double rel = std::sqrt(num / (den > 0 ? den : 1));
  const double tol = c.bf16 ? 1e-2 : 2e-3;
  size_t ws_dirty = 0;
  for (uint8_t b : ws) ws_dirty += b != 0;
  const bool same = out[0] == out[1];
  ok = bad == 0 && rel < tol && same && ws_dirty == 0;
  if (!ok || !quiet)
    std::printf("%s %s g%-4d k=%-6d n=%-6d m=%-5d splits=%-2d rel=%.2e nonfinite=%zu repeat=%s workspace=%s\n", ok ? "ok  " : "FAIL",
                c.bf16 ? "bf16" : "fp16", c.group, c.k, c.n, c.m, plan.splits, rel, bad, same ? "same" : "DIFF",
                ws_dirty ? "DIRTY" : "zero");
  for (void* p : {da, dv, dm, ds, dc, dw}) CK(cudaFree(p));
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "test";
  const bool quick = argc > 2 && std::string(argv[2]) == "quick";
  int dev = 0, sms = 0;
  CK(cudaGetDevice(&dev));
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  std::vector<Case> cases;
  if (mode == "probe") {
    // The same small cases under both readings: exactly one should pass.
    int pass[2] = {0, 0};
    for (int alt = 0; alt < 2; alt++) {
      g_meta_rows = alt == 1;
      for (int bf : {0, 1}) {
        Layer l = RandomLayer(256, 64, 128);
        for (int m : {1, 16, 33}) pass[alt] += RunCase(l, {m, 64, 256, 128, bf != 0}, sms, true) ? 1 : 0;
      }
    }
    std::printf("PROBE SUMMARY: layout.h reading %d/6 cases, other reading %d/6 -> %s\n", pass[0], pass[1],
                pass[0] == 6 && pass[1] < 6 ? "layout.h is right" : pass[1] == 6 ? "switch to the other reading (kMetaRows)" : "neither: check the A/B fragments");
    return pass[0] == 6 ? 0 : 1;
  }
  if (mode == "sanitize") {
    for (int bf : {0, 1})
      for (int g : {128, -1}) {
        cases.push_back({1, 64, 1024, g, bf != 0});    // many splits
        cases.push_back({17, 128, 512, g, bf != 0});   // partial m tile
        cases.push_back({33, 192, 256, g, bf != 0});
      }
  } else if (mode == "test") {
    std::vector<std::pair<int, int>> shapes = {{128, 64}, {384, 128}, {1024, 448}, {4096, 4096}, {11008, 4096}};
    if (!quick) {
      shapes.push_back({4096, 22016});
      shapes.push_back({8192, 57344});
      shapes.push_back({28672, 8192});
    }
    const int ms[] = {1, 2, 7, 16, 17, 33, 64, 128, 255, 1000};
    for (auto [k, n] : shapes)
      for (int bf : {0, 1})
        for (int g : {128, -1})
          for (int m : ms)
            if (!(quick && k * size_t(n) > 4096 * 4096 && m > 64)) cases.push_back({m, n, k, g, bf != 0});
  } else {
    std::fprintf(stderr, "usage: harness test [quick] | sanitize\n");
    return 2;
  }
  int fails = 0;
  Layer l{};
  for (const Case& c : cases) {
    if (l.k != c.k || l.n != c.n || l.group != c.group) l = RandomLayer(c.k, c.n, c.group);
    if (!RunCase(l, c, sms, mode == "test")) fails++;
  }
  std::printf("SUMMARY %s: %zu cases, %d failed\n", mode.c_str(), cases.size(), fails);
  return fails ? 1 : 0;
}
