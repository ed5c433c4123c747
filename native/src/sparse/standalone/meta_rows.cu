// The kernel with the other reading of the metadata layout (kernel.cuh, kMetaRows), for
// `harness probe` only: not part of the addon (standalone/ is excluded from its sources).
#include "sparse/gemm.h"
#include "sparse/kernel.cuh"

namespace marlin {

using namespace sparse24;

cudaError_t Sparse24GemmMetaRows(const Sparse24GemmArgs& g, cudaStream_t stream) {
  const Sparse24Plan plan = PlanSparse24(g.m, g.n, g.k, g.sms, Sparse24Config{1, 1, 2, 2, 0});
  KernelArgs p{g.m, g.n, g.k, g.a, g.values, g.meta, g.scales, g.bias, g.c, static_cast<int*>(g.workspace),
               plan.splits > 1 ? reinterpret_cast<float*>(static_cast<char*>(g.workspace) + plan.lock_bytes) : nullptr,
               plan.parallel ? 1 : 0, plan.red_slice};
  const dim3 grid(plan.m_blocks, plan.n_blocks, plan.splits);
  const bool pc = g.group_size == -1 || g.group_size >= g.k;
  if (g.bf16)
    pc ? Sparse24Kernel<__nv_bfloat16, true, 1, 1, 2, false, true, 1><<<grid, 128, SmemBytes<1, 2>(), stream>>>(p)
       : Sparse24Kernel<__nv_bfloat16, false, 1, 1, 2, false, true, 1><<<grid, 128, SmemBytes<1, 2>(), stream>>>(p);
  else
    pc ? Sparse24Kernel<__half, true, 1, 1, 2, false, true, 1><<<grid, 128, SmemBytes<1, 2>(), stream>>>(p)
       : Sparse24Kernel<__half, false, 1, 1, 2, false, true, 1><<<grid, 128, SmemBytes<1, 2>(), stream>>>(p);
  return cudaGetLastError();
}

}  // namespace marlin
