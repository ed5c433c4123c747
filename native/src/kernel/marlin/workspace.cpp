// Workspace layout of the GPU kernel (also compiled in CPU builds, which report it).
#include <algorithm>

#include "kernel/marlin/gemm.h"

namespace marlin {

static size_t Align256(size_t x) { return (x + 255) / 256 * 256; }

WorkspaceLayout GemmWorkspaceLayout(int m, int n, int k, int sms, bool act_order) {
  WorkspaceLayout l{};
  l.counters_offset = 0;
  (void)n;
  l.counters_bytes = kCounterBytes;
  l.partial_offset = l.counters_bytes;
  l.partial_bytes = Align256(static_cast<size_t>(std::max(sms, 1)) * kPartialFloatsPerSm * sizeof(float));
  l.gather_offset = l.partial_offset + l.partial_bytes;
  l.gather_bytes = act_order ? Align256(static_cast<size_t>(std::min(m, kMaxRowsPerLaunch)) * k * 2) : 0;
  l.total = l.gather_offset + l.gather_bytes;
  return l;
}

}  // namespace marlin
