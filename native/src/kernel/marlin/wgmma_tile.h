#pragma once
// The ring kernel's swapped tile on warpgroup MMAs (kernel.cuh, WG = true): sm_90a code, compiled in
// kernel/hopper/ring_wgmma_*.cu (the units built for sm_90a only) and reached from LaunchTyped.
#include "kernel/marlin/gemm.h"

namespace marlin {
namespace gpu {

// Launches the tile of 8, 16, 32 or 64 tokens that covers s.rows (more rows: problems of 64) when
// its stages fit the device's shared memory and k and n suit it (k % 128, n % 256); *taken says
// whether it did.
template <typename T, int BITS, bool ZP>
cudaError_t LaunchWgTile(const LaunchSpec& s, cudaStream_t stream, bool* taken);

}  // namespace gpu
}  // namespace marlin
