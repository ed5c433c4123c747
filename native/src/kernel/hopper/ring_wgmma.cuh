#pragma once
// The ring kernel's wgmma tile launch (see kernel/marlin/wgmma_tile.h); instantiated per activation
// type in ring_wgmma_f16.cu / ring_wgmma_bf16.cu, the sm_90a units.
#include "kernel/marlin/launch.cuh"
#include "kernel/marlin/wgmma_tile.h"

namespace marlin {
namespace gpu {

template <typename T, int BITS, bool ZP>
cudaError_t LaunchWgTile(const LaunchSpec& s, cudaStream_t stream, bool* taken) {
  *taken = false;
  const GemmArgs& g = *s.g;
  if (s.rows > 1024 || g.n % 256 != 0 || g.k % 128 != 0) return cudaSuccess;
  const int dev = s.device;
  *taken = true;
  if (s.rows <= 8 && Fits<BITS, ZP, 1, 16, 8, true, true>(dev)) return Launch<T, BITS, ZP, 1, 16, 8, true, true>(s, stream);
  if (s.rows <= 16 && Fits<BITS, ZP, 2, 16, 8, true, true>(dev)) return Launch<T, BITS, ZP, 2, 16, 8, true, true>(s, stream);
  if (s.rows <= 32 && Fits<BITS, ZP, 4, 16, 8, true, true>(dev)) return Launch<T, BITS, ZP, 4, 16, 8, true, true>(s, stream);
  if (Fits<BITS, ZP, 8, 16, 8, true, true>(dev)) return Launch<T, BITS, ZP, 8, 16, 8, true, true>(s, stream);
  *taken = false;
  return cudaSuccess;
}

}  // namespace gpu
}  // namespace marlin
