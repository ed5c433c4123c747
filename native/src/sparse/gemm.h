#pragma once
// The 2:4 sparse GPU GEMM (kernel.cuh): C[m, n] = A[m, k] * W^T, W in the layout of layout.h, fp16
// or bf16 activations, fp32 accumulation. Split-k slices reduce in slice order through an fp32
// scratch in the workspace, counted on per-tile counters; the block that sums resets the counter and
// zeroes the scratch it read, so the workspace (shared with the dense kernels) is all-zero again
// after every call (reusable, CUDA-graph safe).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#ifdef MARLIN_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace marlin {

constexpr int kSparseBlockN = 64;   // 4 warps x 16 outputs (x the configuration's tiles)
constexpr int64_t kSparseMaxN = int64_t{1} << 20;

// One kernel configuration. depth: quads (128 inputs) each warp has in flight ahead of its MMAs;
// kwarps: warp groups of a block splitting its k slice (summed through shared memory, in order);
// halves: 8-row halves of the m tile (block rows = 8 * halves); waves: the grid's target in blocks
// per SM, reached by splitting k across blocks; whole: copy the block's whole k slice of
// activation rows to shared memory once when it fits in kSparseWholeBytes (else chunk by chunk);
// tiles: 16-output tiles per warp, sharing its activation fragments (n a multiple of 64 * tiles).
struct Sparse24Config {
  int depth, kwarps, halves, waves, whole;
  int tiles = 1;
};
constexpr size_t kSparseWholeBytes = 64 * 1024;

// Whether a configuration can run a layer of n outputs (its blocks cover 64 * tiles of them).
inline bool Sparse24ConfigFits(const Sparse24Config& c, int64_t n) { return c.tiles >= 1 && n % (int64_t{kSparseBlockN} * c.tiles) == 0; }

// The configuration a call of m rows runs (launch.cu instantiates exactly these). Chosen by
// `harness bench` (packages/sparse/bench/NOTES.md): m <= 8 on the H200; m = 9..32 on the H100, where
// two tiles per warp won on the 70B and 16384 x 65536 blocks (every layer n, k >= 8192) and lost on
// the Llama-2-7B block (k = 4096 or n = 4096: too few tiles, so many k slices), which instead takes
// 8-row m tiles at m <= 16 and 2 blocks per SM at m <= 32.
inline Sparse24Config Sparse24DefaultConfig(int64_t m, int64_t n, int64_t k) {
  if (m <= 8) return {4, 2, 1, 2, 1};
  const Sparse24Config wide = m <= 16 ? Sparse24Config{2, 2, 2, 2, 1, 2} : Sparse24Config{2, 1, 2, 2, 0, 2};
  if (m <= 32 && n >= 8192 && k >= 8192 && Sparse24ConfigFits(wide, n)) return wide;
  if (m <= 16) return {4, 1, 1, 2, 0};
  if (m <= 32) return {2, 2, 2, 2, 1};
  return {2, 1, 4, 4, 0};
}

// Split-k form (kernel.cuh): parallel = a scratch slot per slice, summed by the last block to
// arrive; serial = the chain. SPARSE24_PARALLEL_SPLITK picks the built-in default (0: the serial
// chain, the measured one); MARLIN_SPARSE24_SPLITK=parallel|serial overrides it at run time so both
// forms can be timed in one process. Read once: the workspace bound depends on it.
#ifndef SPARSE24_PARALLEL_SPLITK
#define SPARSE24_PARALLEL_SPLITK 0
#endif
inline bool Sparse24ParallelSplitK() {
  static const bool parallel = [] {
    const char* v = std::getenv("MARLIN_SPARSE24_SPLITK");
    if (v && std::strcmp(v, "parallel") == 0) return true;
    if (v && std::strcmp(v, "serial") == 0) return false;
    if (v && *v) std::fprintf(stderr, "MARLIN_SPARSE24_SPLITK=%s: not parallel or serial, ignored\n", v);
    return SPARSE24_PARALLEL_SPLITK != 0;
  }();
  return parallel;
}

struct Sparse24Plan {
  Sparse24Config cfg;
  int block_m, n_blocks, m_blocks, splits;
  bool parallel;                        // split-k form, when splits > 1
  size_t red_slice;                     // floats of one slice's scratch slot (rows of the m tiles x n)
  size_t lock_bytes, red_bytes, total;  // workspace: locks, then the fp32 reduction scratch
};

// The grid and workspace of a call: split k (in quads) until the grid reaches cfg.waves blocks per SM.
inline Sparse24Plan PlanSparse24(int64_t m, int64_t n, int64_t k, int sms, const Sparse24Config& cfg) {
  Sparse24Plan p{};
  p.cfg = cfg;
  p.block_m = 8 * cfg.halves;
  p.n_blocks = int(n / (kSparseBlockN * cfg.tiles));
  p.m_blocks = int((m + p.block_m - 1) / p.block_m);
  const int64_t tiles = int64_t(p.n_blocks) * p.m_blocks;
  const int64_t quads = k / 128;
  int64_t s = (int64_t(cfg.waves) * sms + tiles - 1) / tiles;
  if (s > quads / cfg.kwarps) s = quads / cfg.kwarps;
  if (s > 16) s = 16;
  if (s < 1) s = 1;
  p.splits = int(s);
  p.lock_bytes = (size_t(tiles) * 4 + 255) / 256 * 256;
  p.parallel = Sparse24ParallelSplitK();
  p.red_slice = size_t(p.m_blocks) * p.block_m * size_t(n);
  p.red_bytes = p.splits > 1 ? (p.parallel ? size_t(p.splits) : 1) * p.red_slice * 4 : 0;
  p.total = p.lock_bytes + p.red_bytes;
  return p;
}
inline Sparse24Plan PlanSparse24(int64_t m, int64_t n, int64_t k, int sms) {
  return PlanSparse24(m, n, k, sms, Sparse24DefaultConfig(m, n, k));
}

// Workspace bytes enough for every m' <= m (smaller m can split k and so need the fp32 scratch
// where m itself does not): sized once for the largest call, no call grows it (graph capture).
inline size_t Sparse24WorkspaceBound(int64_t m, int64_t n, int64_t k, int sms) {
  size_t most = PlanSparse24(m, n, k, sms).total;
  // Splits exceed 1 only while the tiles stay under 16 blocks per SM, so rows up to 16 * sms
  // blocks of the largest tile (64 rows) are enough to scan; the plan changes only at tile edges.
  const int64_t last = m < 16 * int64_t(sms) * 64 ? m : 16 * int64_t(sms) * 64;
  for (int64_t r = 1; r <= last; r++) {
    const Sparse24Plan p = PlanSparse24(r, n, k, sms);
    if (p.total > most) most = p.total;
    if (r % p.block_m != 0) r = (r / p.block_m + 1) * p.block_m - 1;  // next tile edge
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
// The same with a given configuration (the harness's sweep; the addon has the defaults only).
cudaError_t Sparse24GemmWith(const Sparse24GemmArgs& args, const Sparse24Config& cfg, cudaStream_t stream);
#endif

}  // namespace marlin
