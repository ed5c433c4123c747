#pragma once
// The uniform draw shared by the CPU and CUDA samplers: a hash of (seed, draw counter, token id),
// so a seeded request draws the same way whatever batch it is in.
#include <cstdint>

#ifdef __CUDACC__
#define MARLIN_HD __host__ __device__ __forceinline__
#else
#define MARLIN_HD inline
#endif

namespace marlin {
namespace ops {

MARLIN_HD double SampleUniformHD(uint64_t seed, uint32_t counter, uint32_t index) {
  uint64_t z = seed ^ (0x9E3779B97F4A7C15ull * (static_cast<uint64_t>(counter) + 1)) ^
               (0xD1B54A32D192ED03ull * (static_cast<uint64_t>(index) + 1));
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (static_cast<double>(z >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

}  // namespace ops
}  // namespace marlin
