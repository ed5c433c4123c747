#pragma once
// Host-side interface of the Marlin GPU kernel (CUDA builds only) and of its workspace.
#include <cstddef>
#include <cstdint>

#ifdef MARLIN_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#endif

namespace marlin {

enum class ActType { kF16 = 0, kBF16 = 1 };
enum class WeightKind { kU4 = 0, kU4Zp = 1, kU8 = 2 };

// The most row blocks of 64 one launch takes; larger m is split into launches of this many.
constexpr int kMaxProblems = 16;
constexpr int kMaxRowsPerLaunch = kMaxProblems * 64;
// Largest n a call takes: the counters sit at a fixed place sized for it, so one workspace serves
// layers of any n (the counters stay zero between calls; nothing else ever writes there).
constexpr int kMaxN = 262144;
constexpr size_t kCounterBytes = size_t(kMaxProblems) * (kMaxN / 64) * sizeof(int);
// fp32 partial tile capacity per SM (two slots of the largest tile, 64 x 256).
constexpr size_t kPartialFloatsPerSm = 2 * 64 * 256;

// Tuning overrides (0 = automatic): tile (k x n) as tk*16 x tn*16, blocks per SM, batch invariance.
struct GemmTuning {
  int tk = 0, tn = 0, blocks_per_sm = 0;
  bool batch_invariant = false;  // no split-k and a tile fixed by n: each row's sums do not depend on m
};

struct GemmArgs {
  ActType act;
  WeightKind weight;
  int m, n, k;
  int group_size;  // -1 per-channel, else 32/64/128 (or == k)
  const void* a;   // [m, k]
  const void* b;
  const void* scales;
  const void* zeros;    // null unless kU4Zp
  const int32_t* perm;  // act-order gather of A's columns, or null
  const void* bias;     // [n] or null
  void* c;              // [m, n]
  void* workspace;
  size_t workspace_bytes;
  GemmTuning tuning;
};

struct WorkspaceLayout {
  size_t counters_offset, counters_bytes;
  size_t partial_offset, partial_bytes;
  size_t gather_offset, gather_bytes;
  size_t total;
};

// Bytes a call needs: counters (zero between calls), partial tiles, and the act-order copy of A.
WorkspaceLayout GemmWorkspaceLayout(int m, int n, int k, int sms, bool act_order);

#ifdef MARLIN_WITH_CUDA
// Queues the product on `stream`; no host synchronization. Returns the first CUDA error.
cudaError_t MarlinGemm(const GemmArgs& args, cudaStream_t stream);

namespace gpu {
struct LaunchSpec {
  const GemmArgs* g;
  const void* a;  // possibly the gathered copy
  int row0, rows; // rows of this launch
  float* partial;
  size_t partial_floats;
  int* counters;
  int sms;
  int device;
};
template <typename T, int BITS, bool ZP>
cudaError_t LaunchTyped(const LaunchSpec& s, cudaStream_t stream);
}  // namespace gpu
#endif

}  // namespace marlin
