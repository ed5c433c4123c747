#pragma once
// Chooses a tile configuration for one launch and starts the matching kernel instantiation.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "kernel/marlin/gemm.h"
#include "kernel/marlin/kernel.cuh"

namespace marlin {
namespace gpu {

#ifndef MARLIN_STAGES
#define MARLIN_STAGES 4
#endif
constexpr int kStages = MARLIN_STAGES;
#ifndef MARLIN_MB4_TK
#define MARLIN_MB4_TK 8
#endif

#ifndef MARLIN_EXPERIMENTS
#define MARLIN_EXPERIMENTS 0  // 1: also compile the m <= 16 variants that are not the default (harness)
#endif
constexpr bool kExperiments = MARLIN_EXPERIMENTS != 0;

// Built-in defaults of the m <= 16 experiments (GemmTuning: -1 off, > 0 on or the value). Which
// win is measured by tools/gpu/kernel-small.sh; bench/NOTES.md has the numbers.
constexpr int kDefaultReduce = -1;      // serial sum of split columns by the last block
constexpr int kDefaultSwap = -1;        // classic 16-row tile at m <= 8
constexpr int kDefaultBulk = -1;        // cp.async by every thread
constexpr int kDefaultStagesSmall = 4;  // ring depth of the m <= 16 tiles
constexpr int kDefaultL2Prefetch = -1;
constexpr int kDefaultMaxSlices = -1;

inline int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

// Tuning overrides from the environment, read once per process (benchmarks and experiments).
// MARLIN_SMEM_LIMIT caps the shared memory a block may use (tests the choices of smaller GPUs).
struct EnvTuning {
  int bps, tk, tn, mb64, debug, smem_limit;
  int reduce, swap, bulk, stages, l2_prefetch, max_slices;
};
inline const EnvTuning& Env() {
  static const EnvTuning e{EnvInt("MARLIN_BPS", 0),    EnvInt("MARLIN_TK", 0),     EnvInt("MARLIN_TN", 0),
                           EnvInt("MARLIN_MB64", 0),   EnvInt("MARLIN_DEBUG", 0),  EnvInt("MARLIN_SMEM_LIMIT", 0),
                           EnvInt("MARLIN_REDUCE", 0), EnvInt("MARLIN_SWAP", 0),   EnvInt("MARLIN_BULK", 0),
                           EnvInt("MARLIN_STAGES_SMALL", 0), EnvInt("MARLIN_L2PF", 0), EnvInt("MARLIN_SLICES", 0)};
  return e;
}
// A knob's value: the call's tuning, else the environment, else the built-in default.
inline int Knob(int tuning, int env, int fallback) { return tuning != 0 ? tuning : env != 0 ? env : fallback; }

// Shared memory one block may opt in to on this device (227 KiB on sm_90, 163 on sm_80, 99 on
// sm_86 / sm_89), cached per device.
inline int SmemOptin(int dev) {
  static int cache[64] = {0};
  int& v = cache[dev & 63];
  if (v == 0) {
    int x = 0;
    if (cudaDeviceGetAttribute(&x, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess || x <= 0) x = 48 * 1024;
    if (Env().smem_limit > 0) x = std::min(x, Env().smem_limit);
    v = x;
  }
  return v;
}

template <int BITS, bool ZP, int MB, int TN, int TK, int STAGES = kStages, int FLAGS = 0>
bool Fits(int dev) {
  return Shape<BITS, ZP, MB, TN, TK, FLAGS>::SmemBytes(STAGES) <= static_cast<size_t>(SmemOptin(dev));
}

template <typename T, int BITS, bool ZP, int MB, int TN, int TK, int STAGES = kStages, int FLAGS = 0>
cudaError_t Launch(const LaunchSpec& s, cudaStream_t stream) {
  using Sh = Shape<BITS, ZP, MB, TN, TK, FLAGS>;
  auto kernel = MarlinKernel<T, BITS, ZP, MB, TN, TK, STAGES, FLAGS>;
  const size_t smem = Sh::SmemBytes(STAGES);
  const int dev = s.device;
  cudaError_t err = cudaSuccess;
  // Raising the dynamic shared-memory limit and asking occupancy are per device; cache both.
  static int occupancy[64] = {0};
  int& occ = occupancy[dev & 63];
  if (occ == 0) {
    err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (err != cudaSuccess) return err;
    int nb = 0;
    err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&nb, kernel, Sh::kThreads, smem);
    if (err != cudaSuccess) return err;
    occ = std::max(nb, 1);
  }
  const GemmArgs& g = *s.g;
  KernelArgs p{};
  p.a = static_cast<const char*>(s.a) + static_cast<size_t>(s.row0) * g.k * 2;
  p.b = static_cast<const int4*>(g.b);
  p.scales = g.scales;
  p.zeros = static_cast<const uint32_t*>(g.zeros);
  p.bias = g.bias;
  p.c = static_cast<char*>(g.c) + static_cast<size_t>(s.row0) * g.n * 2;
  p.partial = s.partial;
  p.counters = s.counters;
  p.m = s.rows;
  p.n = g.n;
  p.k = g.k;
  p.lda = g.k;
  p.ldc = g.n;
  const bool per_channel = g.group_size == -1 || g.group_size >= g.k;
  p.per_channel = per_channel ? 1 : 0;
  p.group_size = per_channel ? g.k : g.group_size;
  p.group_shift = 0;
  if (!per_channel)
    while ((1 << p.group_shift) < g.group_size) p.group_shift++;
  p.problems = (s.rows + Sh::kARows - 1) / Sh::kARows;
  const int ntiles = g.n / (TN * 16), ktiles = g.k / (TK * 16);
  const int total = p.problems * ntiles * ktiles;
  int iters;
  if (g.tuning.batch_invariant) {
    iters = ktiles;  // whole columns per block: no split-k
  } else {
    int bps = g.tuning.blocks_per_sm > 0 ? g.tuning.blocks_per_sm : Env().bps;
    if (bps <= 0) bps = occ;
    bps = std::min(bps, occ);
    const int target = std::max(1, s.sms * bps);
    iters = (total + target - 1) / target;
    // Fewer, longer slices per column (an experiment for small layers).
    const int max_slices = Knob(g.tuning.max_slices, Env().max_slices, kDefaultMaxSlices);
    if (max_slices > 0) iters = std::max(iters, (ktiles + max_slices - 1) / max_slices);
    // Two partial slots per block must fit the workspace.
    const size_t max_blocks = s.partial_floats / (2 * static_cast<size_t>(Sh::kTileFloats));
    while (static_cast<size_t>((total + iters - 1) / iters) > max_blocks) iters++;
  }
  p.iters = iters;
  // The parallel reduction (m <= 32 tiles) stores 4 outputs (8 bytes) at a time.
  p.reduce = Knob(g.tuning.reduce, Env().reduce, kDefaultReduce) > 0 && (reinterpret_cast<uintptr_t>(p.c) & 7) == 0 ? 1 : 0;
  const int l2pf = Knob(g.tuning.l2_prefetch, Env().l2_prefetch, kDefaultL2Prefetch);
  p.l2_prefetch = l2pf > 0 && IsSm90(dev) ? l2pf : 0;
  const int grid = (total + iters - 1) / iters;
  if (Env().debug)
    std::fprintf(stderr,
                 "marlin launch: MB=%d TN=%d TK=%d stages=%d flags=%d smem=%zu occ=%d problems=%d ntiles=%d ktiles=%d total=%d iters=%d "
                 "grid=%d reduce=%d l2pf=%d\n",
                 MB, TN, TK, STAGES, FLAGS, smem, occ, p.problems, ntiles, ktiles, total, iters, grid, p.reduce, p.l2_prefetch);
  return LaunchPdl(kernel, dim3(grid), dim3(Sh::kThreads), smem, stream, p);
}

// The m <= 16 tile with 128 x 128 stages: the variant (ring depth, swapped MMA at m <= 8, bulk
// copies) the knobs ask for when it is compiled and fits, else the default.
template <int ST, int FL>
constexpr bool CompiledSmall() {
  constexpr int bulk = kDefaultBulk > 0 ? kBulkCopy : 0;
  return kExperiments || (ST == kDefaultStagesSmall && (FL == bulk || (kDefaultSwap > 0 && FL == (kSwapAB | bulk))));
}
template <typename T, int BITS, bool ZP, int ST, int FL>
bool TrySmall(const LaunchSpec& s, cudaStream_t stream, int st, int fl, cudaError_t* err) {
  if constexpr (CompiledSmall<ST, FL>() && (BITS == 4 || (FL & kBulkCopy) == 0)) {
    if (st != ST || fl != FL || !Fits<BITS, ZP, 1, 8, 8, ST, FL>(s.device)) return false;
    *err = Launch<T, BITS, ZP, 1, 8, 8, ST, FL>(s, stream);
    return true;
  } else {
    return false;
  }
}
template <typename T, int BITS, bool ZP>
cudaError_t LaunchSmall(const LaunchSpec& s, cudaStream_t stream) {
  const GemmTuning& t = s.g->tuning;
  // Not under batch invariance: the swapped MMA may round a row's sums differently from the
  // 16-row tile that larger m uses.
  const bool swap = s.rows <= 8 && !t.batch_invariant && Knob(t.swap, Env().swap, kDefaultSwap) > 0;
  const bool bulk = BITS == 4 && IsSm90(s.device) && Knob(t.bulk, Env().bulk, kDefaultBulk) > 0;
  const int st = Knob(t.stages, Env().stages, kDefaultStagesSmall);
  const int fl = (swap ? kSwapAB : 0) | (bulk ? kBulkCopy : 0);
  cudaError_t err = cudaSuccess;
  // The deepest compiled ring that fits, at most the one asked for, with the flags asked for.
  for (const int stc : {8, 6, 4}) {
    if (stc > st) continue;
    if (TrySmall<T, BITS, ZP, 4, 0>(s, stream, stc, fl, &err) || TrySmall<T, BITS, ZP, 6, 0>(s, stream, stc, fl, &err) ||
        TrySmall<T, BITS, ZP, 4, kSwapAB>(s, stream, stc, fl, &err) || TrySmall<T, BITS, ZP, 6, kSwapAB>(s, stream, stc, fl, &err) ||
        TrySmall<T, BITS, ZP, 8, kSwapAB>(s, stream, stc, fl, &err) || TrySmall<T, BITS, ZP, 4, kBulkCopy>(s, stream, stc, fl, &err) ||
        TrySmall<T, BITS, ZP, 6, kBulkCopy>(s, stream, stc, fl, &err) ||
        TrySmall<T, BITS, ZP, 6, kSwapAB | kBulkCopy>(s, stream, stc, fl, &err) ||
        TrySmall<T, BITS, ZP, 8, kSwapAB | kBulkCopy>(s, stream, stc, fl, &err))
      return err;
  }
  return Launch<T, BITS, ZP, 1, 8, 8>(s, stream);
}

// Tile choice: m <= 16 / 32 use 128 x 128 (k x n) tiles, larger m 64 x 256 (k x n: 128 x 256 for
// 4-bit), narrowing n when n does not divide or when too few columns would leave SMs idle. A tile
// that does not fit the device's shared memory gives way to the next smaller one (fewer rows per
// problem, more problems), down to 16 rows, which fits every supported GPU.
template <typename T, int BITS, bool ZP>
cudaError_t LaunchTyped(const LaunchSpec& s, cudaStream_t stream) {
  const GemmArgs& g = *s.g;
  const int rows = s.rows;
  const int dev = s.device;
  int tk = g.tuning.tk ? g.tuning.tk : Env().tk;
  int tn = g.tuning.tn ? g.tuning.tn : Env().tn;
  int mb = rows <= 16 ? 1 : rows <= 32 ? 2 : 4;
  // 33..64 rows on a small layer run as two 32-row problems (twice the blocks' work in flight;
  // the second read of each weight tile hits L2). Measured on H100: 4096 x 4096 at m = 64 is 18%
  // faster so, 8192 x 57344 11% slower; the cut is at 32 units of 64 x 256 per SM.
  if (mb == 4 && rows <= 64 && !g.tuning.batch_invariant && tn == 0 && tk == 0) {
    const long units = static_cast<long>(g.n / 256 > 0 ? g.n / 256 : 1) * (g.k / 64);
    const int pick = Env().mb64;  // 2 or 4 forces the choice
    if (pick == 2 || (pick != 4 && g.n % 128 == 0 && units < 32L * s.sms)) mb = 2;
  }
  if (mb < 4) {
    tk = 8;
    if (tn != 4 && tn != 8) tn = 8;
  } else {
    if (tn != 4 && tn != 8 && tn != 16) tn = g.tuning.batch_invariant ? 8 : 16;
    tk = tn == 16 ? (tk == 4 ? 4 : MARLIN_MB4_TK) : 8;
  }
  while (g.n % (tn * 16) != 0) tn /= 2;
  if (mb == 4 && tn < 16) tk = 8;
  if (mb == 4 && tn == 16 && tk == 8) {
    if constexpr (BITS == 4) {
      if (!Fits<BITS, ZP, 4, 16, 8>(dev)) tk = 4;
    } else {
      tk = 4;  // 8-bit 128 x 256 stages do not fit four deep
    }
  }
  if (mb == 4 && !(tn == 16 ? Fits<BITS, ZP, 4, 16, 4>(dev) : tn == 8 ? Fits<BITS, ZP, 4, 8, 8>(dev) : Fits<BITS, ZP, 4, 4, 8>(dev))) {
    mb = 2;
    tn = tn == 4 ? 4 : 8;
    tk = 8;
  }
  if (mb == 2 && !(tn == 8 ? Fits<BITS, ZP, 2, 8, 8>(dev) : Fits<BITS, ZP, 2, 4, 8>(dev))) mb = 1;
  if (mb == 1) return tn == 8 ? LaunchSmall<T, BITS, ZP>(s, stream) : Launch<T, BITS, ZP, 1, 4, 8>(s, stream);
  if (mb == 2) return tn == 8 ? Launch<T, BITS, ZP, 2, 8, 8>(s, stream) : Launch<T, BITS, ZP, 2, 4, 8>(s, stream);
  if (tn == 16) {
    if constexpr (BITS == 4)
      if (tk == 8) return Launch<T, BITS, ZP, 4, 16, 8>(s, stream);
    return Launch<T, BITS, ZP, 4, 16, 4>(s, stream);
  }
  if (tn == 8) return Launch<T, BITS, ZP, 4, 8, 8>(s, stream);
  return Launch<T, BITS, ZP, 4, 4, 8>(s, stream);
}

}  // namespace gpu
}  // namespace marlin

