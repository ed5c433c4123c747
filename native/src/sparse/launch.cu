// Sparse24Gemm: plans the grid (gemm.h), carves the workspace, launches the kernel for the
// activation dtype, group kind and configuration. The addon instantiates the default
// configurations only; the standalone harness (SPARSE24_SWEEP) adds the ones `harness bench` times.
#include <type_traits>

#include "sparse/configs.h"
#include "sparse/gemm.h"
#include "sparse/kernel.cuh"

namespace marlin {

using namespace sparse24;

namespace {
template <typename T, bool kPerChannel, int kDepth, int kKWarps, int kHalves, int kTiles>
cudaError_t Launch(const KernelArgs& p, const Sparse24Plan& plan, cudaStream_t stream) {
  const dim3 grid(plan.m_blocks, plan.n_blocks, plan.splits);
  const size_t whole = WholeBytes(p.m, kHalves, p.k / kQuadK, plan.splits);
  const bool use_whole = plan.cfg.whole && whole <= kSparseWholeBytes;
  const size_t smem = use_whole ? whole : SmemBytes<kKWarps, kHalves>();
  auto* kernel = use_whole ? Sparse24Kernel<T, kPerChannel, kDepth, kKWarps, kHalves, true, false, kTiles>
                           : Sparse24Kernel<T, kPerChannel, kDepth, kKWarps, kHalves, false, false, kTiles>;
  if (smem + PartBytes<kKWarps, kHalves, kTiles>() > 48 * 1024) {  // static + dynamic past 48 KB needs the opt-in
    const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
    if (e != cudaSuccess) return e;
  }
  kernel<<<grid, 128 * kKWarps, smem, stream>>>(p);
  return cudaGetLastError();
}

template <typename T, bool kPerChannel>
cudaError_t Dispatch(const KernelArgs& p, const Sparse24Plan& plan, cudaStream_t stream) {
  const Sparse24Config& c = plan.cfg;
#define SPARSE24_TRY(D, K, H, N)                                               \
  if (c.depth == D && c.kwarps == K && c.halves == H && c.tiles == N) \
    return Launch<T, kPerChannel, D, K, H, N>(p, plan, stream);
  SPARSE24_DEFAULTS(SPARSE24_TRY)
#ifdef SPARSE24_SWEEP
  if constexpr (std::is_same_v<T, __half> && !kPerChannel) {
    SPARSE24_SWEEP_LIST(SPARSE24_TRY)
  }
#endif
#undef SPARSE24_TRY
  return cudaErrorNotSupported;
}
}  // namespace

cudaError_t Sparse24GemmWith(const Sparse24GemmArgs& g, const Sparse24Config& cfg, cudaStream_t stream) {
  if (!Sparse24ConfigFits(cfg, g.n)) return cudaErrorInvalidValue;
  const Sparse24Plan plan = PlanSparse24(g.m, g.n, g.k, g.sms, cfg);
  if (plan.n_blocks > 65535) return cudaErrorInvalidConfiguration;
  KernelArgs p{g.m, g.n, g.k, g.a, g.values, g.meta, g.scales, g.bias, g.c,
               static_cast<int*>(g.workspace),
               plan.splits > 1 ? reinterpret_cast<float*>(static_cast<char*>(g.workspace) + plan.lock_bytes) : nullptr,
               plan.parallel ? 1 : 0, plan.red_slice};
  const bool pc = g.group_size == -1 || g.group_size >= g.k;
  if (g.bf16) return pc ? Dispatch<__nv_bfloat16, true>(p, plan, stream) : Dispatch<__nv_bfloat16, false>(p, plan, stream);
  return pc ? Dispatch<__half, true>(p, plan, stream) : Dispatch<__half, false>(p, plan, stream);
}

cudaError_t Sparse24Gemm(const Sparse24GemmArgs& g, cudaStream_t stream) {
  return Sparse24GemmWith(g, Sparse24DefaultConfig(g.m, g.n, g.k), stream);
}

}  // namespace marlin
