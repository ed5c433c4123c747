// Workspace layout and shape rules of the Hopper kernel (compiled in every build: CPU builds report them).
#include <algorithm>

#include "kernel/hopper/gemm.h"

namespace marlin {
namespace hopper {

static size_t Align256(size_t x) { return (x + 255) / 256 * 256; }

WorkspaceLayout HopperWorkspaceLayout(int m, int k, int sms, bool act_order) {
  WorkspaceLayout l{};
  // Counters inside the Marlin kernel's counter region (zero between calls of either kernel),
  // partial tiles after that region (the Marlin kernel's counters never see them).
  l.counters_offset = 0;
  l.counters_bytes = size_t(kMaxGrid) * sizeof(int);
  l.partial_offset = std::max(kCounterBytes, l.counters_bytes);
  const size_t blocks = static_cast<size_t>(std::min(std::max(sms, 1), kMaxGrid));
  l.partial_bytes = Align256(2 * blocks * kMaxPartialFloats * sizeof(float));
  l.gather_offset = l.partial_offset + l.partial_bytes;
  l.gather_bytes = act_order ? Align256(static_cast<size_t>(std::min(m, kMaxGatherRows)) * k * 2) : 0;
  l.total = l.gather_offset + l.gather_bytes;
  return l;
}

std::string ShapeRefusal(int n, int k, int group_size, WeightKind weight) {
  if (weight != WeightKind::kU4 && weight != WeightKind::kU4Zp && weight != WeightKind::kU8) return "unknown weight kind";
  if (n % 128 != 0) return "n = " + std::to_string(n) + " is not a multiple of 128 (the wgmma kernel's smallest feature tile)";
  if (k % 128 != 0) return "k = " + std::to_string(k) + " is not a multiple of 128";
  const bool per_channel = group_size == -1 || group_size >= k;
  if (!per_channel && group_size != 32 && group_size != 64 && group_size != 128)
    return "group size " + std::to_string(group_size) + " is not supported (-1, 32, 64, 128)";
  if (!per_channel && k % group_size != 0) return "k is not a multiple of the group size";
  return "";
}

}  // namespace hopper
}  // namespace marlin
