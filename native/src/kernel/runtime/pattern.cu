#include "kernel/runtime/pattern.h"

namespace marlin {

__global__ void PatternKernel(uint32_t* out, size_t count, uint32_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    out[i] = PatternValue(i, seed);
}

cudaError_t LaunchPattern(uint32_t* out, size_t count, uint32_t seed, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  size_t blocks = (count + 255) / 256;
  if (blocks > 65535) blocks = 65535;
  PatternKernel<<<static_cast<unsigned>(blocks), 256, 0, stream>>>(out, count, seed);
  return cudaGetLastError();
}

}  // namespace marlin
