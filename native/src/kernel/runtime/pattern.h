#pragma once
// A trivial kernel that writes every element of a uint32 array: out[i] = PatternValue(i, seed).
// Used by the buffer round-trip test; the same function runs on the host for the comparison.
#include <cstddef>
#include <cstdint>
#ifdef MARLIN_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace marlin {

#ifdef __CUDACC__
__host__ __device__
#endif
inline uint32_t PatternValue(uint64_t i, uint32_t seed) {
  uint32_t x = static_cast<uint32_t>(i) ^ static_cast<uint32_t>(i >> 32) * 0x9e3779b9u ^ seed;
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

#ifdef MARLIN_WITH_CUDA
cudaError_t LaunchPattern(uint32_t* out, size_t count, uint32_t seed, cudaStream_t stream);
#endif

}  // namespace marlin
