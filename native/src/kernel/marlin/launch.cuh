#pragma once
// Chooses a tile configuration for one launch and starts the matching kernel instantiation.
#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "kernel/marlin/gemm.h"
#include "kernel/marlin/kernel.cuh"
#include "kernel/marlin/wgmma_tile.h"

namespace marlin {
namespace gpu {

#ifndef MARLIN_STAGES
#define MARLIN_STAGES 4
#endif
constexpr int kStages = MARLIN_STAGES;
#ifndef MARLIN_MB4_TK
#define MARLIN_MB4_TK 8
#endif

// Compute capability 9.0 exactly (the sm_90a code of the wgmma tile runs nowhere else), per device.
inline bool IsSm90(int dev) {
  static signed char cache[64] = {0};
  signed char& v = cache[dev & 63];
  if (v == 0) {
    int major = 0, minor = 0;
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
    v = major == 9 && minor == 0 ? 1 : -1;
  }
  return v > 0;
}

inline int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

// Tuning overrides from the environment, read once per process (benchmarks and experiments).
// MARLIN_SMEM_LIMIT caps the shared memory a block may use (tests the choices of smaller GPUs).
struct EnvTuning {
  int bps, tk, tn, mb64, debug, smem_limit, swap, wg;  // wg: -1 automatic
};
inline const EnvTuning& Env() {
  static const EnvTuning e{EnvInt("MARLIN_BPS", 0),        EnvInt("MARLIN_TK", 0),          EnvInt("MARLIN_TN", 0),  EnvInt("MARLIN_MB64", 0),
                           EnvInt("MARLIN_DEBUG", 0),      EnvInt("MARLIN_SMEM_LIMIT", 0),  EnvInt("MARLIN_SWAP", 1),
                           EnvInt("MARLIN_WG", -1)};
  return e;
}

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

template <int BITS, bool ZP, int MB, int TN, int TK, bool SWAP = false, bool WG = false>
bool Fits(int dev) {
  return Shape<BITS, ZP, MB, TN, TK, SWAP, WG>::SmemBytes(kStages) <= static_cast<size_t>(SmemOptin(dev));
}

template <typename T, int BITS, bool ZP, int MB, int TN, int TK, bool SWAP = false, bool WG = false>
cudaError_t Launch(const LaunchSpec& s, cudaStream_t stream) {
  using Sh = Shape<BITS, ZP, MB, TN, TK, SWAP, WG>;
  auto kernel = MarlinKernel<T, BITS, ZP, MB, TN, TK, kStages, SWAP, WG>;
  const size_t smem = Sh::SmemBytes(kStages);
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
    // Two partial slots per block must fit the workspace.
    const size_t max_blocks = s.partial_floats / (2 * static_cast<size_t>(Sh::kTileFloats));
    while (static_cast<size_t>((total + iters - 1) / iters) > max_blocks) iters++;
  }
  p.iters = iters;
  const int grid = (total + iters - 1) / iters;
  if (Env().debug)
    std::fprintf(stderr, "marlin launch: MB=%d%s TN=%d TK=%d smem=%zu occ=%d problems=%d ntiles=%d ktiles=%d total=%d iters=%d grid=%d\n", MB, WG ? " (swapped, wgmma)" : SWAP ? " (swapped)" : "", TN,
                 TK, smem, occ, p.problems, ntiles, ktiles, total, iters, grid);
  return LaunchPdl(kernel, dim3(grid), dim3(Sh::kThreads), smem, stream, p);
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
  // m = 17..32 (4-bit) with k and n >= 8192: 64 x 256 tiles (the 64-row family's shape) instead of
  // 128 x 128. Measured on the H200 (harness bench, ms per block at m = 17 / 32, one call): 70B
  // 0.2510 -> 0.2415 / 0.2540 -> 0.2473, 16384 x 65536 0.2821 -> 0.2648 / 0.2843 -> 0.2686; on the
  // 7B and 13B blocks all layers so were 1-7% slower, and their down_proj alone (k 11008 / 13824,
  // n 4096 / 5120) 2-3% slower, hence n >= 8192 too.
  // m = 17..128 on sm_90: the swapped tile on warpgroup MMAs (64 tokens a problem above 64 rows)
  // where the layer is wide enough. Harness sweep, H200, one call, ms at m = 32 / 64 / 128 (mma.sync
  // tiles -> wgmma): 4096 x 22016 0.0331 -> 0.0289 / 0.0462 -> 0.0439 / 0.0798 -> 0.0763, 8192 x
  // 8192 0.0251 -> 0.0227 / 0.0427 -> 0.0358 / 0.0579 -> 0.0537, 8192 x 57344 0.1237 -> 0.1126 /
  // 0.1774 -> 0.1582 / 0.3413 -> 0.3055, 16384 x 65536 0.2661 -> 0.2406 / 0.3805 -> 0.3299 / 0.7454
  // -> 0.6458. Slower on narrow layers at m <= 64 (11008 x 4096 0.0203 -> 0.0210 / 0.0311 -> 0.0357,
  // 4096 x 8192 0.0212 -> 0.0249 at 64) and on 4096 x 4096 at 128 (0.0239 -> 0.0245); at m <= 16
  // slower but on 16384 x 65536 (70B block m = 16 0.1725 -> 0.1787).
  // MARLIN_WG=0 turns it off; 1 takes m = 9..64, 2 m = 1..64, 3 m = 1..128 on any n % 256 (measurements).
#if defined(MARLIN_WITH_HOPPER)
  if constexpr (BITS == 4) {
    const int wg = Env().wg;
    const bool wide = rows > 64 ? static_cast<long long>(g.k) * g.n >= (1LL << 25) : g.n >= 12288 || (g.n >= 8192 && g.k >= 8192);
    const bool pick = wg < 0 ? rows > 16 && rows <= 128 && wide : wg > 0 && rows <= (wg >= 3 ? 128 : 64) && (rows > 8 || wg >= 2);
    if (pick && !g.tuning.batch_invariant && tk == 0 && tn == 0 && g.n % 256 == 0 && IsSm90(dev)) {
      bool taken = false;
      const cudaError_t e = LaunchWgTile<T, BITS, ZP>(s, stream, &taken);
      if (taken || e != cudaSuccess) return e;
    }
  }
#endif
  if constexpr (BITS == 4) {
    if (mb == 2 && rows <= 32 && !g.tuning.batch_invariant && tk == 0 && (tn == 16 || (tn == 0 && g.k >= 8192 && g.n >= 8192)) && g.n % 256 == 0 && Fits<BITS, ZP, 2, 16, 4>(dev))
      return Launch<T, BITS, ZP, 2, 16, 4>(s, stream);
  }
  // m <= 8, 4-bit: the swapped tile with 256-row stages where k and n allow (each warp takes 4 k16
  // tiles a stage, not 2: the stage's fixed instructions over twice the weights). Harness bench,
  // H200, one call, ms per block at m = 1 (128-row stages -> 256): 7B 0.0523 -> 0.0526, 13B 0.0715
  // -> 0.0680, 70B 0.1445 -> 0.1393, 16384 x 65536 0.1569 -> 0.1491 (87.5% of the floor); ncu on
  // 16384 x 65536: 105.9M -> 97.0M warp instructions. A size rule (128 rows below 2^27 weights, where
  // single layers were 5-7% faster so) lost on whole blocks in one call: 13B 0.0679 -> 0.0714, 70B
  // 0.1392 -> 0.1410 (7B even). MARLIN_TK=8 (or tuning tk 8) keeps 128 rows.
  if constexpr (BITS == 4) {
    if ((tk == 0 || tk == 16) && rows <= 8 && Env().swap && !g.tuning.batch_invariant && (tn == 0 || tn == 8) && g.n % 128 == 0 &&
        g.k % 256 == 0 && Fits<BITS, ZP, 1, 8, 16, true>(dev))
      return Launch<T, BITS, ZP, 1, 8, 16, true>(s, stream);
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
  // m <= 8: the swapped 8-row tile (weights as the MMA's A operand); not under batch invariance
  // (the tile would change with m); MARLIN_SWAP=0 turns it off (measurements).
  if (mb == 1 && rows <= 8 && Env().swap && !g.tuning.batch_invariant)
    return tn == 8 ? Launch<T, BITS, ZP, 1, 8, 8, true>(s, stream) : Launch<T, BITS, ZP, 1, 4, 8, true>(s, stream);
  if (mb == 1) return tn == 8 ? Launch<T, BITS, ZP, 1, 8, 8>(s, stream) : Launch<T, BITS, ZP, 1, 4, 8>(s, stream);
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

