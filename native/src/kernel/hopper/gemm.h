#pragma once
// Host interface of the Hopper (sm_90a) wgmma kernel. It takes the same arguments as the mma.sync
// Marlin kernel (GemmArgs: weights in the standard Marlin layout, read as they are) and a workspace
// laid out so that one buffer can serve both kernels (its counters sit inside the Marlin kernel's
// zeroed counter region; its partial tiles start after it).
#include <cstddef>
#include <string>

#include "kernel/marlin/gemm.h"

namespace marlin {
namespace hopper {

// Overrides for benchmarks and tests (0 = automatic).
struct Tuning {
  int bm = 0;        // token tile: 64 or 128
  int max_grid = 0;  // blocks (at most one per SM)
};

struct WorkspaceLayout {
  size_t counters_offset, counters_bytes;
  size_t partial_offset, partial_bytes;
  size_t gather_offset, gather_bytes;
  size_t total;
};

// Rows per launch when act-order gathers A (the gathered copy lives in the workspace).
constexpr int kMaxGatherRows = 1024;
// Blocks of one launch at most (sizes the counters).
constexpr int kMaxGrid = 1024;
// fp32 floats of the largest partial tile (256 consumer threads x 128 accumulators).
constexpr size_t kMaxPartialFloats = 256 * 128;

WorkspaceLayout HopperWorkspaceLayout(int m, int k, int sms, bool act_order);

// Why the kernel cannot take a problem of this shape and weight type ("" when it can).
std::string ShapeRefusal(int n, int k, int group_size, WeightKind weight);

#ifdef MARLIN_WITH_CUDA
// Whether this build holds the sm_90a kernel (CMake compiles it when 90 is among the architectures).
bool Built();
// "" when device `dev` can run the kernel, else why not (no sm_90a build, not compute capability 9.0).
std::string DeviceRefusal(int dev);
// Queues the product on `stream` (no host synchronization). cudaErrorInvalidValue for a problem the
// kernel refuses (check ShapeRefusal / DeviceRefusal first) or a workspace that is too small.
cudaError_t HopperGemm(const GemmArgs& g, const Tuning& t, cudaStream_t stream);
#endif

}  // namespace hopper
}  // namespace marlin
