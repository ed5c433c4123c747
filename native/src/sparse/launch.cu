// Sparse24Gemm: plans the grid (gemm.h), carves the workspace, launches the kernel for the
// activation dtype and group kind.
#include "sparse/gemm.h"
#include "sparse/kernel.cuh"

namespace marlin {

using namespace sparse24;

namespace {
template <typename T>
cudaError_t Launch(const Sparse24GemmArgs& g, const Sparse24Plan& plan, cudaStream_t stream) {
  KernelArgs p{g.m, g.n, g.k, g.a, g.values, g.meta, g.scales, g.bias, g.c,
               static_cast<int*>(g.workspace),
               plan.splits > 1 ? reinterpret_cast<float*>(static_cast<char*>(g.workspace) + plan.lock_bytes) : nullptr};
  const dim3 grid(plan.n_blocks, plan.m_blocks, plan.splits);
  if (g.group_size == -1 || g.group_size >= g.k)
    Sparse24Kernel<T, true><<<grid, 128, 0, stream>>>(p);
  else
    Sparse24Kernel<T, false><<<grid, 128, 0, stream>>>(p);
  return cudaGetLastError();
}
}  // namespace

cudaError_t Sparse24Gemm(const Sparse24GemmArgs& g, cudaStream_t stream) {
  const Sparse24Plan plan = PlanSparse24(g.m, g.n, g.k, g.sms);
  if (plan.m_blocks > 65535) return cudaErrorInvalidConfiguration;
  return g.bf16 ? Launch<__nv_bfloat16>(g, plan, stream) : Launch<__half>(g, plan, stream);
}

}  // namespace marlin
