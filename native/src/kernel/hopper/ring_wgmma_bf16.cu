// The ring kernel's wgmma tile for __nv_bfloat16 activations (sm_90a unit; see kernel/marlin/wgmma_tile.h).
#include "kernel/hopper/ring_wgmma.cuh"

namespace marlin {
namespace gpu {
template cudaError_t LaunchWgTile<__nv_bfloat16, 4, false>(const LaunchSpec& s, cudaStream_t stream, bool* taken);
template cudaError_t LaunchWgTile<__nv_bfloat16, 4, true>(const LaunchSpec& s, cudaStream_t stream, bool* taken);
}  // namespace gpu
}  // namespace marlin
