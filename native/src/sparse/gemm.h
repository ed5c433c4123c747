#pragma once
// The 2:4 sparse GPU GEMM (kernel.cu): C[m, n] = A[m, k] * W^T, W in the layout of layout.h, fp16 or
// bf16 activations, fp32 accumulation. Split-k slices reduce in order through an fp32 scratch in
// the workspace, guarded by per-tile locks that the last slice resets to zero, so the workspace is
// all-zero locks again after every call (reusable, CUDA-graph safe).
#include <cstddef>
#include <cstdint>

#ifdef MARLIN_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace marlin {

constexpr int kSparseBlockN = 64;   // 4 warps x 16 outputs
constexpr int kSparseBlockM = 16;   // 2 mma.sp of n8 per warp
constexpr int64_t kSparseMaxN = int64_t{1} << 20;

struct Sparse24Plan {
  int n_blocks, m_blocks, splits;
  size_t lock_bytes, red_bytes, total;  // workspace: locks, then the fp32 reduction scratch
};

// The grid and workspace of a call: split k (in 128-input quads) until the grid fills ~2 waves.
inline Sparse24Plan PlanSparse24(int64_t m, int64_t n, int64_t k, int sms) {
  Sparse24Plan p{};
  p.n_blocks = int(n / kSparseBlockN);
  p.m_blocks = int((m + kSparseBlockM - 1) / kSparseBlockM);
  const int64_t tiles = int64_t(p.n_blocks) * p.m_blocks;
  const int64_t quads = k / 128;
  int64_t s = (2 * int64_t(sms) + tiles - 1) / tiles;
  if (s > quads) s = quads;
  if (s > 16) s = 16;
  if (s < 1) s = 1;
  p.splits = int(s);
  p.lock_bytes = (size_t(tiles) * 4 + 255) / 256 * 256;
  p.red_bytes = p.splits > 1 ? size_t(p.m_blocks) * kSparseBlockM * size_t(n) * 4 : 0;
  p.total = p.lock_bytes + p.red_bytes;
  return p;
}

// Workspace bytes enough for every m' <= m (smaller m can split k and so need the fp32 scratch
// where m itself does not): sized once for the largest call, no call grows it (graph capture).
inline size_t Sparse24WorkspaceBound(int64_t m, int64_t n, int64_t k, int sms) {
  size_t most = PlanSparse24(m, n, k, sms).total;
  const int64_t blocks = (m + kSparseBlockM - 1) / kSparseBlockM;
  // Splits exceed 1 only while the tiles stay under 2 waves, so m_blocks <= 2 * sms is enough to scan.
  for (int64_t mb = 1; mb <= blocks && mb <= 2 * int64_t(sms); mb++) {
    const size_t t = PlanSparse24(mb * kSparseBlockM, n, k, sms).total;
    if (t > most) most = t;
  }
  return most;
}

#ifdef MARLIN_WITH_CUDA
struct Sparse24GemmArgs {
  int m, n, k, group_size;  // group_size -1 or 128
  bool bf16;
  const void* a;            // [m, k] fp16/bf16
  const uint32_t* values;
  const uint32_t* meta;
  const void* scales;       // [groups, n] in the activation dtype
  const void* bias;         // [n] or null
  void* c;                  // [m, n]
  void* workspace;          // PlanSparse24().total bytes, all-zero locks on entry
  int sms;
};

cudaError_t Sparse24Gemm(const Sparse24GemmArgs& args, cudaStream_t stream);
#endif

}  // namespace marlin
