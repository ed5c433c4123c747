// c[r, j] += bias[j] for the dense path (cuBLAS GemmEx has no bias epilogue).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernel/blas/bias.h"

namespace marlin {
namespace blas {

template <typename T>
__global__ void AddBias(T* c, const T* bias, size_t rows, int n) {
  const size_t total = rows * n;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < total; i += size_t(gridDim.x) * blockDim.x) {
    const int j = static_cast<int>(i % n);
    c[i] = static_cast<T>(static_cast<float>(c[i]) + static_cast<float>(bias[j]));
  }
}

cudaError_t LaunchAddBias(bool bf16, void* c, const void* bias, int m, int n, cudaStream_t stream) {
  const size_t total = size_t(m) * n;
  const int blocks = static_cast<int>(std::min<size_t>((total + 255) / 256, 8192));
  if (bf16)
    AddBias<__nv_bfloat16><<<blocks, 256, 0, stream>>>(static_cast<__nv_bfloat16*>(c), static_cast<const __nv_bfloat16*>(bias), m, n);
  else
    AddBias<__half><<<blocks, 256, 0, stream>>>(static_cast<__half*>(c), static_cast<const __half*>(bias), m, n);
  return cudaGetLastError();
}

}  // namespace blas
}  // namespace marlin
