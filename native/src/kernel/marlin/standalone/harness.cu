// Standalone GPU harness for the Marlin kernel (not part of the addon: the addon globs
// src/*/*.cu only). `harness test` runs the correctness matrix against an fp64 reference;
// `harness bench` times the transformer-block shapes against cuBLAS FP16. Build: see build.sh.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kernel/blas/cublas_loader.h"
#include "common/half.h"
#include "kernel/marlin/gemm.h"
#include "kernel/marlin/layout.h"
#include "kernel/runtime/hold.h"

using namespace marlin;

#define CK(x)                                                                                  \
  do {                                                                                         \
    cudaError_t e_ = (x);                                                                      \
    if (e_ != cudaSuccess) {                                                                   \
      std::fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorName(e_), __FILE__, __LINE__, #x); \
      std::exit(2);                                                                            \
    }                                                                                          \
  } while (0)

template <typename F>
static void Par(size_t n, F f) {
  unsigned t = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> th;
  size_t chunk = (n + t - 1) / t;
  for (unsigned i = 0; i < t; i++) {
    size_t lo = i * chunk, hi = std::min(n, lo + chunk);
    if (lo >= hi) break;
    th.emplace_back([=] { f(lo, hi); });
  }
  for (auto& x : th) x.join();
}

struct Variant {
  const char* name;
  ActType act;
  int bits;
  bool zp;
  int group;  // -1 per-channel
  bool act_order;
  bool bias;
};

struct Layer {  // host side, plain + packed
  int k, n, bits, group;
  bool zp, act_order;
  std::vector<uint8_t> q;      // [k, n] original row order
  std::vector<float> s;        // [groups, n] (values rounded to the act type)
  std::vector<uint8_t> z;      // [groups, n]
  std::vector<int> gidx;       // [k]
  std::vector<uint32_t> packed;
  std::vector<uint16_t> scales_p;
  std::vector<uint32_t> zeros_p;
  std::vector<int32_t> perm;
};

static uint16_t ToAct(ActType t, float x) { return t == ActType::kF16 ? FloatToHalf(x) : FloatToBf16(x); }
static float FromAct(ActType t, uint16_t x) { return t == ActType::kF16 ? HalfToFloat(x) : Bf16ToFloat(x); }

static Layer MakeLayer(int k, int n, const Variant& v, uint64_t seed) {
  Layer L;
  L.k = k;
  L.n = n;
  L.bits = v.bits;
  L.group = v.group;
  L.zp = v.zp;
  L.act_order = v.act_order;
  const bool pc = v.group == -1 || v.group >= k;
  const int gs = pc ? k : v.group;
  const int groups = pc ? 1 : k / gs;
  L.q.resize(size_t(k) * n);
  const int maxq = (1 << v.bits) - 1;
  Par(k, [&](size_t lo, size_t hi) {
    std::mt19937_64 r(seed * 1000003 + lo);
    for (size_t i = lo * n; i < hi * n; i++) L.q[i] = static_cast<uint8_t>(r() % (maxq + 1));
  });
  std::mt19937_64 r(seed);
  std::uniform_real_distribution<float> ud(0.5f, 1.5f);
  L.s.resize(size_t(groups) * n);
  std::vector<uint16_t> sraw(L.s.size());
  const float base = v.bits == 4 ? 0.02f : 0.002f;
  for (size_t i = 0; i < L.s.size(); i++) {
    sraw[i] = ToAct(v.act, base * ud(r));
    L.s[i] = FromAct(v.act, sraw[i]);
  }
  if (v.zp) {
    L.z.resize(size_t(groups) * n);
    for (auto& x : L.z) x = static_cast<uint8_t>(r() % (maxq + 1));
  }
  L.gidx.resize(k);
  for (int i = 0; i < k; i++) L.gidx[i] = i / gs;
  if (v.act_order) std::shuffle(L.gidx.begin(), L.gidx.end(), r);
  // Packing: rows sorted by group (stable), as @marlin/format does.
  std::vector<uint8_t> qs;
  const std::vector<uint8_t>* src = &L.q;
  if (v.act_order) {
    L.perm.resize(k);
    std::iota(L.perm.begin(), L.perm.end(), 0);
    std::stable_sort(L.perm.begin(), L.perm.end(), [&](int a, int b) { return L.gidx[a] < L.gidx[b]; });
    qs.resize(L.q.size());
    for (int i = 0; i < k; i++) std::memcpy(&qs[size_t(i) * n], &L.q[size_t(L.perm[i]) * n], n);
    src = &qs;
  }
  {  // pack in parallel over k16 rows (same result as layout::Pack)
    L.packed.resize(size_t(k) * n * v.bits / 32);
    const size_t per_kt = size_t(n) * 16 * v.bits / 32;
    Par(k / 16, [&](size_t lo, size_t hi) {
      for (size_t kt = lo; kt < hi; kt++) {
        std::vector<uint32_t> part = layout::Pack(src->data() + kt * 16 * n, 16, n, v.bits);
        std::memcpy(&L.packed[kt * per_kt], part.data(), per_kt * 4);
      }
    });
  }
  L.scales_p.resize(sraw.size());
  for (int gi = 0; gi < groups; gi++) layout::PermuteRow(&sraw[size_t(gi) * n], &L.scales_p[size_t(gi) * n], n, pc);
  if (v.zp) {
    L.zeros_p.resize(size_t(groups) * n * v.bits / 32);
    for (int gi = 0; gi < groups; gi++) layout::PackZeroRow(&L.z[size_t(gi) * n], n, v.bits, &L.zeros_p[size_t(gi) * n * v.bits / 32]);
  }
  return L;
}

// fp64 reference for the listed rows: sum_i a[r,i] * (q[i,c] - z) * s[g(i), c] + bias[c].
static std::vector<double> Reference(const Layer& L, ActType act, const std::vector<uint16_t>& a, const std::vector<int>& rows,
                                     const std::vector<uint16_t>& bias) {
  const int k = L.k, n = L.n, R = int(rows.size());
  std::vector<double> out(size_t(R) * n, 0.0);
  std::vector<double> af(size_t(R) * k);
  for (int r = 0; r < R; r++)
    for (int i = 0; i < k; i++) af[size_t(r) * k + i] = FromAct(act, a[size_t(rows[r]) * k + i]);
  const int zsym = 1 << (L.bits - 1);
  Par(n / 64, [&](size_t lo, size_t hi) {
    std::vector<double> acc(size_t(R) * 64);
    for (size_t cb = lo; cb < hi; cb++) {
      std::fill(acc.begin(), acc.end(), 0.0);
      const int c0 = int(cb) * 64;
      for (int i = 0; i < k; i++) {
        const int g = L.gidx[i];
        double w[64];
        for (int j = 0; j < 64; j++) {
          const int c = c0 + j;
          const int z = L.zp ? L.z[size_t(g) * n + c] : zsym;
          w[j] = (double(L.q[size_t(i) * n + c]) - z) * L.s[size_t(g) * n + c];
        }
        for (int r = 0; r < R; r++) {
          const double av = af[size_t(r) * k + i];
          double* o = &acc[size_t(r) * 64];
          for (int j = 0; j < 64; j++) o[j] += av * w[j];
        }
      }
      for (int r = 0; r < R; r++)
        for (int j = 0; j < 64; j++)
          out[size_t(r) * n + c0 + j] = acc[size_t(r) * 64 + j] + (bias.empty() ? 0.0 : FromAct(act, bias[c0 + j]));
    }
  });
  return out;
}

struct DevLayer {
  void *b = nullptr, *s = nullptr, *z = nullptr, *perm = nullptr;
  void Upload(const Layer& L) {
    CK(cudaMalloc(&b, L.packed.size() * 4));
    CK(cudaMemcpy(b, L.packed.data(), L.packed.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMalloc(&s, L.scales_p.size() * 2));
    CK(cudaMemcpy(s, L.scales_p.data(), L.scales_p.size() * 2, cudaMemcpyHostToDevice));
    if (!L.zeros_p.empty()) {
      CK(cudaMalloc(&z, L.zeros_p.size() * 4));
      CK(cudaMemcpy(z, L.zeros_p.data(), L.zeros_p.size() * 4, cudaMemcpyHostToDevice));
    }
    if (!L.perm.empty()) {
      CK(cudaMalloc(&perm, L.perm.size() * 4));
      CK(cudaMemcpy(perm, L.perm.data(), L.perm.size() * 4, cudaMemcpyHostToDevice));
    }
  }
  void Free() {
    cudaFree(b);
    cudaFree(s);
    if (z) cudaFree(z);
    if (perm) cudaFree(perm);
  }
};

static void* g_ws = nullptr;
static size_t g_ws_bytes = 0;
static int g_sms = 0;

static void* Workspace(int m, int n, int k, bool ao) {
  const WorkspaceLayout l = GemmWorkspaceLayout(m, n, k, g_sms, ao);
  if (l.total > g_ws_bytes) {
    if (g_ws) CK(cudaFree(g_ws));
    g_ws_bytes = l.total * 2;
    CK(cudaMalloc(&g_ws, g_ws_bytes));
    CK(cudaMemset(g_ws, 0, g_ws_bytes));
  }
  return g_ws;
}

static GemmTuning g_tuning;  // forced tiles (sanitize mode reaches every tile with small shapes)

static GemmArgs Args(const Layer& L, const DevLayer& d, ActType act, int m, const void* a, const void* bias, void* c) {
  GemmArgs g{};
  g.tuning = g_tuning;
  g.act = act;
  g.weight = L.bits == 8 ? WeightKind::kU8 : (L.zp ? WeightKind::kU4Zp : WeightKind::kU4);
  g.m = m;
  g.n = L.n;
  g.k = L.k;
  g.group_size = L.group;
  g.a = a;
  g.b = d.b;
  g.scales = d.s;
  g.zeros = d.z;
  g.perm = static_cast<const int32_t*>(d.perm);
  g.bias = bias;
  g.c = c;
  g.workspace = Workspace(m, L.n, L.k, d.perm != nullptr);
  g.workspace_bytes = g_ws_bytes;
  return g;
}

static int g_fail = 0, g_cases = 0;
static bool g_final = false;

static void RunCase(const Layer& L, const DevLayer& d, const Variant& v, int m, uint64_t seed, bool invariant_check) {
  const int k = L.k, n = L.n;
  std::mt19937_64 r(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<uint16_t> a(size_t(m) * k), bias;
  for (auto& x : a) x = ToAct(v.act, nd(r));
  if (v.bias) {
    bias.resize(n);
    for (auto& x : bias) x = ToAct(v.act, nd(r));
  }
  void *da, *dc, *db = nullptr;
  CK(cudaMalloc(&da, a.size() * 2));
  CK(cudaMalloc(&dc, size_t(m) * n * 2));
  CK(cudaMemcpy(da, a.data(), a.size() * 2, cudaMemcpyHostToDevice));
  if (v.bias) {
    CK(cudaMalloc(&db, n * 2));
    CK(cudaMemcpy(db, bias.data(), n * 2, cudaMemcpyHostToDevice));
  }
  GemmArgs g = Args(L, d, v.act, m, da, db, dc);
  std::vector<uint16_t> c1(size_t(m) * n), c2(c1.size());
  for (int rep = 0; rep < 2; rep++) {
    CK(cudaMemset(dc, 0xff, c1.size() * 2));  // NaN poison
    CK(MarlinGemm(g, 0));
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(rep ? c2.data() : c1.data(), dc, c1.size() * 2, cudaMemcpyDeviceToHost));
  }
  // Poison check: every output written (finite).
  size_t unwritten = 0;
  for (size_t i = 0; i < c1.size(); i++)
    if (!std::isfinite(FromAct(v.act, c1[i]))) unwritten++;
  const bool identical = std::memcmp(c1.data(), c2.data(), c1.size() * 2) == 0;
  // Reference rows: all when small, else a sample including the first and last.
  std::vector<int> rows;
  const double cost = double(m) * k * n;
  if (cost <= 4e9) {
    for (int i = 0; i < m; i++) rows.push_back(i);
  } else {
    const int want = std::max(1, int(4e9 / (double(k) * n)));
    for (int i = 0; i < std::min(m, want); i++) rows.push_back(int((int64_t(i) * (m - 1)) / std::max(1, std::min(m, want) - 1)));
    rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  }
  const std::vector<double> ref = Reference(L, v.act, a, rows, bias);
  double num = 0, den = 0;
  for (size_t ri = 0; ri < rows.size(); ri++)
    for (int c = 0; c < n; c++) {
      const double o = FromAct(v.act, c1[size_t(rows[ri]) * n + c]);
      const double e = ref[ri * n + c];
      num += (o - e) * (o - e);
      den += e * e;
    }
  const double rel = std::sqrt(num / den);
  const double tol = v.act == ActType::kF16 ? 2e-3 : 1e-2;
  bool ok = unwritten == 0 && identical && rel <= tol && std::isfinite(rel);
  // Batch invariance mode: row 0 alone must equal row 0 of the batch, bit for bit.
  std::string inv;
  if (invariant_check && m > 1) {
    GemmArgs gi = g;
    gi.tuning.batch_invariant = true;
    std::vector<uint16_t> cb(size_t(m) * n), c1r(n);
    CK(MarlinGemm(gi, 0));
    CK(cudaMemcpy(cb.data(), dc, cb.size() * 2, cudaMemcpyDeviceToHost));
    gi.m = 1;
    CK(MarlinGemm(gi, 0));
    CK(cudaMemcpy(c1r.data(), dc, n * 2, cudaMemcpyDeviceToHost));
    const bool same = std::memcmp(cb.data(), c1r.data(), n * 2) == 0;
    inv = same ? " batch-invariant:yes" : " batch-invariant:NO";
    ok = ok && same;
  }
  // The kernel must leave its counters at zero.
  {
    const WorkspaceLayout wl = GemmWorkspaceLayout(m, n, k, g_sms, d.perm != nullptr);
    std::vector<int> cnt(wl.counters_bytes / 4);
    CK(cudaMemcpy(cnt.data(), g_ws, wl.counters_bytes, cudaMemcpyDeviceToHost));
    int nz = 0;
    for (int x : cnt) nz += x != 0;
    if (nz) {
      std::printf("  counters left non-zero: %d\n", nz);
      ok = false;
      CK(cudaMemset(g_ws, 0, wl.counters_bytes));
    }
  }
  if (!ok && unwritten) {  // where the NaNs are: (row block of 16, column block of 64) of the first few
    int shown = 0;
    std::printf("  nan at (row,col):");
    for (size_t i = 0; i < c1.size() && shown < 12; i++)
      if (!std::isfinite(FromAct(v.act, c1[i]))) {
        if (shown == 0 || (i % n) % 64 == 0) {
          std::printf(" (%zu,%zu)", i / n, i % n);
          shown++;
        }
      }
    std::printf("\n");
  }
  g_cases++;
  if (!ok) g_fail++;
  std::printf("%-4s %-22s k=%-5d n=%-5d m=%-4d rel=%.2e rows=%zu unwritten=%zu repeat-identical=%s%s\n", ok ? "ok" : "FAIL", v.name, k, n, m,
              rel, rows.size(), unwritten, identical ? "yes" : "NO", inv.c_str());
  std::fflush(stdout);
  cudaFree(da);
  cudaFree(dc);
  if (db) cudaFree(db);
}

static int Test(bool quick) {
  const Variant variants[] = {
      {"f16.u4.g128", ActType::kF16, 4, false, 128, false, false},
      {"f16.u4.gch", ActType::kF16, 4, false, -1, false, false},
      {"f16.u4.g32", ActType::kF16, 4, false, 32, false, false},
      {"f16.u4.g64", ActType::kF16, 4, false, 64, false, false},
      {"f16.u4zp.g128", ActType::kF16, 4, true, 128, false, false},
      {"f16.u4zp.gch", ActType::kF16, 4, true, -1, false, false},
      {"f16.u8.g128", ActType::kF16, 8, false, 128, false, false},
      {"f16.u8.gch", ActType::kF16, 8, false, -1, false, false},
      {"f16.u4.g128.actorder", ActType::kF16, 4, false, 128, true, false},
      {"f16.u4.g128.bias", ActType::kF16, 4, false, 128, false, true},
      {"bf16.u4.g128", ActType::kBF16, 4, false, 128, false, false},
      {"bf16.u4.gch", ActType::kBF16, 4, false, -1, false, false},
      {"bf16.u4zp.g64", ActType::kBF16, 4, true, 64, false, false},
      {"bf16.u8.g32", ActType::kBF16, 8, false, 32, false, false},
      {"bf16.u4.g128.actorder.bias", ActType::kBF16, 4, false, 128, true, true},
  };
  const int ms_all[] = {1, 2, 3, 7, 9, 16, 17, 33, 64, 65, 128, 255, 1000};
  struct Sh {
    int k, n;
  };
  const Sh small[] = {{128, 64}, {256, 192}, {384, 320}, {1024, 448}, {640, 512}};  // 640 x 512: the wgmma tile (n % 256)
  const Sh large[] = {{4096, 12288}, {11008, 4096}, {8192, 57344}, {28672, 8192}};
  uint64_t seed = 12345;
  // Small odd shapes: every variant, every m.
  for (const Sh& s : small)
    for (const Variant& v : variants) {
      Layer L = MakeLayer(s.k, s.n, v, seed++);
      DevLayer d;
      d.Upload(L);
      for (int m : ms_all) RunCase(L, d, v, m, seed++, m == 33 || m == 1000);
      d.Free();
    }
  // Real layer shapes: the main variants at every m; the others at a few m.
  for (const Sh& s : large) {
    for (const Variant& v : variants) {
      const bool main = (std::strcmp(v.name, "f16.u4.g128") == 0 || std::strcmp(v.name, "f16.u4.gch") == 0);
      // quick: the other variants on 4096 x 12288 only; final (quick == false with g_final): also 11008 x 4096.
      if (quick && !main && s.k != 4096) continue;
      if (!quick && g_final && !main && s.k != 4096 && s.k != 11008) continue;
      Layer L = MakeLayer(s.k, s.n, v, seed++);
      DevLayer d;
      d.Upload(L);
      if (main) {
        for (int m : ms_all) RunCase(L, d, v, m, seed++, false);
      } else {
        for (int m : {1, 17, 65}) {
          if (quick && m == 17) continue;
          RunCase(L, d, v, m, seed++, false);
        }
      }
      d.Free();
    }
  }
  std::printf("SUMMARY: %d cases, %d failed\n", g_cases, g_fail);
  return g_fail ? 1 : 0;
}

// A tiny case for compute-sanitizer.
static int Sanitize() {
  const Variant vs[] = {{"f16.u4.g128", ActType::kF16, 4, false, 128, false, false},
                        {"bf16.u4zp.gch.actorder", ActType::kBF16, 4, true, -1, true, true},
                        {"f16.u8.g32", ActType::kF16, 8, false, 32, false, true}};
  for (int tn : {0, 16}) {  // automatic tiles, then the 64 x 256 family forced
    g_tuning.tn = tn;
    for (const Variant& v : vs) {
      Layer L = MakeLayer(512, 256, v, 7);
      DevLayer d;
      d.Upload(L);
      for (int m : {1, 12, 20, 40, 70}) RunCase(L, d, v, m, 9, false);
      d.Free();
    }
  }
  g_tuning = GemmTuning{};
  std::printf("SUMMARY: %d cases, %d failed\n", g_cases, g_fail);
  return g_fail ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// Benchmark

static float MedianMs(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <typename F>
static float TimeIt(F&& f, int copies, cudaStream_t st) {
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  for (int w = 0; w < 3 * copies; w++) f(w % copies);  // warm-up
  CK(cudaStreamSynchronize(st));
  std::vector<float> t;
  int it = 0;
  for (int rep = 0; rep < 15; rep++) {
    const int per = std::max(copies, 8);
    CK(LaunchHold(2000, st));  // the batch queues behind it: launch latency is not timed
    CK(cudaEventRecord(e0, st));
    for (int i = 0; i < per; i++) f(it++ % copies);
    CK(cudaEventRecord(e1, st));
    CK(cudaEventSynchronize(e1));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    t.push_back(ms / per);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return MedianMs(t);
}

// Uniform fp16 values in [-amp, amp] on the device (benchmarks time real-looking data).
static void FillRandomHalves(void* dst, size_t n, float amp, uint64_t seed) {
  std::vector<uint16_t> h(n);
  Par(n, [&](size_t lo, size_t hi) {
    std::mt19937_64 r(seed * 1000003 + lo);
    std::uniform_real_distribution<float> u(-amp, amp);
    for (size_t i = lo; i < hi; i++) h[i] = ToAct(ActType::kF16, u(r));
  });
  CK(cudaMemcpy(dst, h.data(), n * 2, cudaMemcpyHostToDevice));
}

static double CopyBandwidth() {
  const size_t bytes = size_t(1) << 30;
  void *a, *b;
  CK(cudaMalloc(&a, bytes));
  CK(cudaMalloc(&b, bytes));
  CK(cudaMemset(a, 1, bytes));
  float ms = TimeIt([&](int) { CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, 0)); }, 1, 0);
  cudaFree(a);
  cudaFree(b);
  return 2.0 * bytes / (ms * 1e-3);
}

static int Bench(const char* json_path, const char* filter) {
  std::string why;
  blas::Handle h = blas::HandleFor(0, &why);
  if (!h) std::printf("cuBLAS unavailable: %s\n", why.c_str());
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  const double bw = CopyBandwidth();
  std::printf("device: %s, %d SMs, L2 %.0f MiB, copy bandwidth %.2f TB/s\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize / 1048576.0,
              bw / 1e12);
  struct Model {
    const char* name;
    std::vector<std::pair<int, int>> layers;  // (k, n)
  };
  const Model models[] = {
      {"llama2-7b", {{4096, 12288}, {4096, 4096}, {4096, 22016}, {11008, 4096}}},
      {"llama2-13b", {{5120, 15360}, {5120, 5120}, {5120, 27648}, {13824, 5120}}},
      {"llama3-70b", {{8192, 10240}, {8192, 8192}, {8192, 57344}, {28672, 8192}}},
      {"16384x65536", {{16384, 65536}}},
  };
  std::vector<int> ms = {1, 2, 4, 8, 16, 32, 64, 128};
  if (const char* e = std::getenv("BENCH_MS")) {  // e.g. BENCH_MS=1,16,64
    ms.clear();
    for (const char* p = e; *p;) {
      ms.push_back(std::atoi(p));
      while (*p && *p != ',') p++;
      if (*p) p++;
    }
  }
  const Variant v = {"f16.u4.g128", ActType::kF16, 4, false, 128, false, false};
  FILE* js = json_path ? std::fopen(json_path, "w") : nullptr;
  if (js) std::fprintf(js, "{\"device\":\"%s\",\"sms\":%d,\"copyBandwidth\":%.4e,\"results\":[\n", prop.name, prop.multiProcessorCount, bw);
  bool first_row = true;
  std::printf("%-12s %5s %10s %10s %8s %8s %8s\n", "shapes", "m", "cublas_ms", "marlin_ms", "speedup", "floor_x", "%floor");
  for (const Model& M : models) {
    if (filter && !std::strstr(M.name, filter)) continue;
    // Per layer: several weight copies so that the rotation exceeds 3x L2.
    struct LD {
      int k, n, copies, dcopies;
      std::vector<DevLayer> d;
      std::vector<void*> dense;
    };
    std::vector<LD> lds;
    size_t qbytes = 0, dbytes = 0;
    for (auto [k, n] : M.layers) {
      qbytes += size_t(k) * n / 2;
      dbytes += size_t(k) * n * 2;
    }
    const size_t l2x3 = size_t(3) * prop.l2CacheSize;
    const int copies = int(std::min<size_t>(16, l2x3 / qbytes + 1));
    const int dcopies = int(std::min<size_t>(16, l2x3 / dbytes + 1));
    for (auto [k, n] : M.layers) {
      LD ld{k, n, copies, dcopies, {}, {}};
      Layer L = MakeLayer(k, n, v, 99);
      for (int c = 0; c < copies; c++) {
        DevLayer d;
        d.Upload(L);
        ld.d.push_back(d);
      }
      if (h)
        for (int c = 0; c < dcopies; c++) {
          void* w;
          CK(cudaMalloc(&w, size_t(k) * n * 2));
          FillRandomHalves(w, size_t(k) * n, 0.05f, 31 + c);  // random data: tensor-core power depends on it
          ld.dense.push_back(w);
        }
      lds.push_back(std::move(ld));
    }
    for (int m : ms) {
      double t_marlin = 0, t_blas = 0, floor_s = 0, dense_floor = 0;
      for (LD& ld : lds) {
        void *a, *c;
        CK(cudaMalloc(&a, size_t(m) * ld.k * 2));
        CK(cudaMalloc(&c, size_t(m) * ld.n * 2));
        FillRandomHalves(a, size_t(m) * ld.k, 1.0f, 7 + m);
        Layer dummy;
        dummy.k = ld.k;
        dummy.n = ld.n;
        dummy.bits = 4;
        dummy.group = 128;
        dummy.zp = false;
        std::vector<GemmArgs> args;
        for (int ci = 0; ci < ld.copies; ci++) args.push_back(Args(dummy, ld.d[ci], v.act, m, a, nullptr, c));
        t_marlin += TimeIt([&](int i) { CK(MarlinGemm(args[i], 0)); }, ld.copies, 0);
        if (h)
          t_blas += TimeIt([&](int i) { blas::Gemm(h, 0, false, m, ld.n, ld.k, a, ld.dense[i], true, c); }, ld.dcopies, 0);
        const double bytes = double(ld.k) * ld.n / 2 + double(ld.k / 128) * ld.n * 2 + double(m) * (ld.k + ld.n) * 2;
        floor_s += bytes / bw;
        dense_floor += (double(ld.k) * ld.n * 2 + double(m) * (ld.k + ld.n) * 2) / bw;
        cudaFree(a);
        cudaFree(c);
      }
      const double speed = h ? t_blas / t_marlin : 0;
      const double pct = floor_s * 1e3 / t_marlin * 100;
      std::printf("%-12s %5d %10.4f %10.4f %8.2f %8.2f %7.1f%%\n", M.name, m, t_blas, t_marlin, speed, h ? t_blas / (floor_s * 1e3) : 0, pct);
      std::fflush(stdout);
      if (js) {
        std::fprintf(js, "%s{\"shapes\":\"%s\",\"m\":%d,\"cublasMs\":%.5f,\"marlinMs\":%.5f,\"speedup\":%.4f,\"floorMs\":%.5f,\"pctFloor\":%.2f}",
                     first_row ? "" : ",\n", M.name, m, t_blas, t_marlin, speed, floor_s * 1e3, pct);
        first_row = false;
      }
    }
    for (LD& ld : lds) {
      for (auto& d : ld.d) d.Free();
      for (void* w : ld.dense) cudaFree(w);
    }
  }
  if (js) {
    std::fprintf(js, "\n]}\n");
    std::fclose(js);
  }
  return 0;
}

// Time vs size at fixed m (`harness sweep [m]`): the intercept of time over bytes is the fixed
// per-kernel cost, the slope the streaming bandwidth. Layers rotate past 3x L2, as in bench.
static int Sweep(int m) {
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  const Variant v = {"f16.u4.g128", ActType::kF16, 4, false, 128, false, false};
  const std::pair<int, int> shapes[] = {{4096, 1024}, {4096, 2048}, {4096, 4096}, {4096, 8192}, {4096, 12288}, {4096, 22016},
                                        {11008, 4096}, {8192, 8192}, {8192, 28672}, {8192, 57344}, {16384, 65536}};
  std::printf("sweep m=%d: %8s %8s %10s %10s %8s\n", m, "k", "n", "MB", "ms", "TB/s");
  for (auto [k, n] : shapes) {
    Layer L = MakeLayer(k, n, v, 11);
    const size_t qb = size_t(k) * n / 2;
    const int copies = int(std::min<size_t>(16, size_t(3) * prop.l2CacheSize / qb + 1));
    std::vector<DevLayer> d(copies);
    for (auto& x : d) x.Upload(L);
    void *a, *c;
    CK(cudaMalloc(&a, size_t(m) * k * 2));
    CK(cudaMalloc(&c, size_t(m) * n * 2));
    FillRandomHalves(a, size_t(m) * k, 1.0f, 3);
    std::vector<GemmArgs> args;
    for (int i = 0; i < copies; i++) args.push_back(Args(L, d[i], v.act, m, a, nullptr, c));
    const float ms = TimeIt([&](int i) { CK(MarlinGemm(args[i], 0)); }, copies, 0);
    const double bytes = double(qb) + double(k / 128) * n * 2 + double(m) * (k + n) * 2;
    std::printf("sweep m=%d: %8d %8d %10.2f %10.4f %8.2f\n", m, k, n, bytes / 1e6, ms, bytes / (ms * 1e-3) / 1e12);
    std::fflush(stdout);
    for (auto& x : d) x.Free();
    cudaFree(a);
    cudaFree(c);
  }
  return 0;
}

#ifdef MARLIN_WITH_HOPPER
#include "hopper_modes.inc"  // the wgmma kernel and the dequantize path: modes hopper-*
#endif

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "test";
  CK(cudaDeviceGetAttribute(&g_sms, cudaDevAttrMultiProcessorCount, 0));
#ifdef MARLIN_WITH_HOPPER
  if (mode.rfind("hopper", 0) == 0) return hopper_modes::Main(mode, argc, argv);
#endif
  if (mode == "test") return Test(false);
  if (mode == "quick") return Test(true);
  if (mode == "final") {
    g_final = true;
    return Test(false);
  }
  if (mode == "sanitize") return Sanitize();
  if (mode == "one") {  // harness one k n m reps: time one problem (for ncu)
    const int k = std::atoi(argv[2]), n = std::atoi(argv[3]), m = std::atoi(argv[4]), reps = argc > 5 ? std::atoi(argv[5]) : 20;
    const Variant v = {"f16.u4.g128", ActType::kF16, 4, false, 128, false, false};
    Layer L = MakeLayer(k, n, v, 5);
    DevLayer d;
    d.Upload(L);
    void *a, *c;
    CK(cudaMalloc(&a, size_t(m) * k * 2));
    CK(cudaMalloc(&c, size_t(m) * n * 2));
    CK(cudaMemset(a, 0x3c, size_t(m) * k * 2));
    GemmArgs g = Args(L, d, v.act, m, a, nullptr, c);
    const float ms = TimeIt([&](int) { CK(MarlinGemm(g, 0)); }, 1, 0);
    const double bytes = double(k) * n / 2 + double(k / 128) * n * 2;
    std::printf("one k=%d n=%d m=%d: %.4f ms, %.2f TB/s of weights\n", k, n, m, ms, bytes / (ms * 1e-3) / 1e12);
    (void)reps;
    return 0;
  }
  if (mode == "debug") {
    const Variant v = {"f16.u4.g128", ActType::kF16, 4, false, 128, false, false};
    struct C { int k, n, m; } cs[] = {{384, 320, 1000}, {4096, 12288, 1}, {4096, 12288, 33}, {4096, 12288, 65}, {1024, 1024, 1}, {2048, 512, 1}};
    for (auto c : cs) {
      if (g_ws) CK(cudaFree(g_ws));  // a fresh, zeroed workspace for each case
      g_ws = nullptr;
      g_ws_bytes = 0;
      Layer L = MakeLayer(c.k, c.n, v, 5);
      DevLayer d;
      d.Upload(L);
      RunCase(L, d, v, c.m, 6, false);
      d.Free();
    }
    return 0;
  }
  if (mode == "sweep") return Sweep(argc > 2 ? std::atoi(argv[2]) : 1);
  if (mode == "bench") return Bench(argc > 2 ? argv[2] : nullptr, argc > 3 ? argv[3] : nullptr);
  std::fprintf(stderr, "usage: harness test|quick|sanitize|bench [json] [filter]\n");
  return 2;
}
