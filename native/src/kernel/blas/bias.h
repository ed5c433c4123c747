#pragma once
#ifdef MARLIN_WITH_CUDA
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>

namespace marlin {
namespace blas {
cudaError_t LaunchAddBias(bool bf16, void* c, const void* bias, int m, int n, cudaStream_t stream);
}
}  // namespace marlin
#endif
