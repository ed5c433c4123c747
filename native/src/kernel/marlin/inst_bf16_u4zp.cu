// One weight/activation type per translation unit keeps the CUDA build parallel.
#include "kernel/marlin/launch.cuh"

namespace marlin {
namespace gpu {
template cudaError_t LaunchTyped<__nv_bfloat16, 4, true>(const LaunchSpec& s, cudaStream_t stream);
}  // namespace gpu
}  // namespace marlin
