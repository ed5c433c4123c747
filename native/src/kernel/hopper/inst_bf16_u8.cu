// One weight/activation type per translation unit keeps the CUDA build parallel (sm_90a only).
#include "kernel/hopper/launch.cuh"

namespace marlin {
namespace hopper {
template cudaError_t LaunchVariant<__nv_bfloat16, 8, false>(const LaunchArgs& la, cudaStream_t stream);
}  // namespace hopper
}  // namespace marlin
