// HopperGemm: checks, act-order gather, row chunks and the typed launch, all queued on one stream.
#include <algorithm>
#include <cstdlib>
#include <string>

#include "kernel/hopper/launch.h"

namespace marlin {
namespace hopper {

EncodeTiledFn EncodeTiled() {
  static const EncodeTiledFn fn = [] {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess) {
      cudaGetLastError();
      return static_cast<EncodeTiledFn>(nullptr);
    }
    return reinterpret_cast<EncodeTiledFn>(p);
  }();
  return fn;
}

bool Built() { return true; }

std::string DeviceRefusal(int dev) {
  int major = 0, minor = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess) {
    cudaGetLastError();
    return "device " + std::to_string(dev) + " is not available";
  }
  // sm_90a code runs on compute capability 9.0 only (arch-specific features are not forward compatible).
  if (major != 9 || minor != 0)
    return "the wgmma kernel is built for sm_90a; device " + std::to_string(dev) + " is compute capability " + std::to_string(major) + "." +
           std::to_string(minor);
  if (!EncodeTiled()) return "the driver has no cuTensorMapEncodeTiled";
  return "";
}

}  // namespace hopper

namespace gpu {
// The mma.sync kernel's act-order gather (kernel/marlin/dispatch.cu, built for every architecture):
// out[r, i] = a[r, perm[i]], the activations in the packed (sorted by group) row order of W.
__global__ void GatherColumns(const uint16_t* __restrict__ a, const int32_t* __restrict__ perm, uint16_t* __restrict__ out, int rows, int k);
}  // namespace gpu

namespace hopper {

static int SmCount(int dev) {
  static int cache[64] = {0};
  int& c = cache[dev & 63];
  if (c == 0) {
    int v = 0;
    if (cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) return 1;
    c = std::max(v, 1);
  }
  return c;
}

struct Env {
  long long watchdog;
  bool debug;
};
static const Env& ReadEnv() {
  static const Env e = [] {
    Env v{};
    // Seconds a barrier wait may take before the kernel traps (0: never); clocks assume ~2 GHz.
    const char* w = std::getenv("MARLIN_HOPPER_WATCHDOG");
    const double s = w && *w ? std::atof(w) : 20.0;
    v.watchdog = static_cast<long long>(s * 2e9);
    const char* d = std::getenv("MARLIN_DEBUG");
    v.debug = d && *d && *d != '0';
    return v;
  }();
  return e;
}

cudaError_t HopperGemm(const GemmArgs& g, const Tuning& t, cudaStream_t stream) {
  if (!ShapeRefusal(g.n, g.k, g.group_size, g.weight).empty() || g.m < 1) return cudaErrorInvalidValue;
  int dev = 0;
  cudaError_t err = cudaGetDevice(&dev);
  if (err != cudaSuccess) return err;
  const int sms = SmCount(dev);
  const WorkspaceLayout l = HopperWorkspaceLayout(g.m, g.k, sms, g.perm != nullptr);
  if (g.workspace_bytes < l.total) return cudaErrorInvalidValue;
  char* ws = static_cast<char*>(g.workspace);
  LaunchArgs la{};
  la.g = &g;
  la.partial = reinterpret_cast<float*>(ws + l.partial_offset);
  la.partial_floats = l.partial_bytes / sizeof(float);
  la.counters = reinterpret_cast<int*>(ws + l.counters_offset);
  la.counter_capacity = static_cast<int>(l.counters_bytes / sizeof(int));
  la.sms = std::min(sms, kMaxGrid);
  la.device = dev;
  la.tuning = t;
  la.watchdog = ReadEnv().watchdog;
  la.debug = ReadEnv().debug;
  // Without act-order one launch takes any m (token tiles are part of the schedule); with it, rows go
  // in chunks whose gathered copy fits the workspace.
  const int chunk = g.perm ? kMaxGatherRows : g.m;
  for (int row0 = 0; row0 < g.m; row0 += chunk) {
    const int rows = std::min(chunk, g.m - row0);
    la.rows = rows;
    la.a = static_cast<const char*>(g.a) + size_t(row0) * g.k * 2;
    la.c = static_cast<char*>(g.c) + size_t(row0) * g.n * 2;
    if (g.perm) {
      uint16_t* dst = reinterpret_cast<uint16_t*>(ws + l.gather_offset);
      const size_t total = size_t(rows) * g.k;
      const int blocks = static_cast<int>(std::min<size_t>((total + 255) / 256, 4096));
      gpu::GatherColumns<<<blocks, 256, 0, stream>>>(static_cast<const uint16_t*>(la.a), g.perm, dst, rows, g.k);
      if ((err = cudaGetLastError()) != cudaSuccess) return err;
      la.a = dst;
    }
    switch (g.act) {
      case ActType::kF16:
        if (g.weight == WeightKind::kU4) err = LaunchVariant<__half, 4, false>(la, stream);
        else if (g.weight == WeightKind::kU4Zp) err = LaunchVariant<__half, 4, true>(la, stream);
        else err = LaunchVariant<__half, 8, false>(la, stream);
        break;
      case ActType::kBF16:
        if (g.weight == WeightKind::kU4) err = LaunchVariant<__nv_bfloat16, 4, false>(la, stream);
        else if (g.weight == WeightKind::kU4Zp) err = LaunchVariant<__nv_bfloat16, 4, true>(la, stream);
        else err = LaunchVariant<__nv_bfloat16, 8, false>(la, stream);
        break;
    }
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

}  // namespace hopper
}  // namespace marlin
