// MarlinGemm: act-order gather, row chunking and the typed launch, all queued on one stream.
#include <algorithm>

#include "kernel/marlin/gemm.h"

namespace marlin {
namespace gpu {

// out[r, i] = a[r, perm[i]]: activations in the packed (sorted by group) order of the rows of B.
__global__ void GatherColumns(const uint16_t* __restrict__ a, const int32_t* __restrict__ perm, uint16_t* __restrict__ out,
                              int rows, int k) {
  const size_t total = static_cast<size_t>(rows) * k;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < total; i += size_t(gridDim.x) * blockDim.x) {
    const size_t r = i / k;
    const int c = static_cast<int>(i - r * k);
    out[i] = a[r * k + perm[c]];
  }
}

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

}  // namespace gpu

cudaError_t MarlinGemm(const GemmArgs& g, cudaStream_t stream) {
  int dev = 0;
  cudaError_t err = cudaGetDevice(&dev);
  if (err != cudaSuccess) return err;
  const int sms = gpu::SmCount(dev);
  const WorkspaceLayout l = GemmWorkspaceLayout(g.m, g.n, g.k, sms, g.perm != nullptr);
  if (g.workspace_bytes < l.total) return cudaErrorInvalidValue;  // callers check first
  char* ws = static_cast<char*>(g.workspace);
  gpu::LaunchSpec s{};
  s.g = &g;
  s.partial = reinterpret_cast<float*>(ws + l.partial_offset);
  s.partial_floats = l.partial_bytes / sizeof(float);
  s.counters = reinterpret_cast<int*>(ws + l.counters_offset);
  s.sms = sms;
  s.device = dev;
  for (int row0 = 0; row0 < g.m; row0 += kMaxRowsPerLaunch) {
    const int rows = std::min(kMaxRowsPerLaunch, g.m - row0);
    s.a = g.a;
    s.row0 = row0;
    s.rows = rows;
    if (g.perm) {
      uint16_t* dst = reinterpret_cast<uint16_t*>(ws + l.gather_offset);
      const size_t total = static_cast<size_t>(rows) * g.k;
      const int blocks = static_cast<int>(std::min<size_t>((total + 255) / 256, 4096));
      gpu::GatherColumns<<<blocks, 256, 0, stream>>>(static_cast<const uint16_t*>(g.a) + static_cast<size_t>(row0) * g.k,
                                                     g.perm, dst, rows, g.k);
      if ((err = cudaGetLastError()) != cudaSuccess) return err;
      // The launch reads its rows from the start of the gathered copy.
      s.a = static_cast<const char*>(static_cast<const void*>(dst)) - static_cast<size_t>(row0) * g.k * 2;
    }
    switch (g.act) {
      case ActType::kF16:
        if (g.weight == WeightKind::kU4) err = gpu::LaunchTyped<__half, 4, false>(s, stream);
        else if (g.weight == WeightKind::kU4Zp) err = gpu::LaunchTyped<__half, 4, true>(s, stream);
        else err = gpu::LaunchTyped<__half, 8, false>(s, stream);
        break;
      case ActType::kBF16:
        if (g.weight == WeightKind::kU4) err = gpu::LaunchTyped<__nv_bfloat16, 4, false>(s, stream);
        else if (g.weight == WeightKind::kU4Zp) err = gpu::LaunchTyped<__nv_bfloat16, 4, true>(s, stream);
        else err = gpu::LaunchTyped<__nv_bfloat16, 8, false>(s, stream);
        break;
    }
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

}  // namespace marlin
