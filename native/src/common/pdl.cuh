#pragma once
// Programmatic dependent launch (compute capability 9.0+). A kernel launched with LaunchPdl may be
// scheduled while the kernel before it on the stream is still running, so launch latency and its
// own prologue (e.g. Marlin's first weight loads) overlap the previous kernel's tail.
//
// Contract for a kernel launched this way: call PdlTrigger() first (lets the next kernel be
// scheduled once every block of this one runs), and PdlWait() before it reads anything an earlier
// kernel writes or writes anything an earlier kernel touches. PdlWait returns when the earlier
// kernels have completed and their memory is visible, as with plain stream order. Before it, only
// constant data (weights) may be read. On older GPUs both are no-ops and launches are plain.
#include <cuda_runtime.h>

#include <cstdlib>
#include <utility>

namespace marlin {

__device__ __forceinline__ void PdlTrigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void PdlWait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

// Whether launches on the current device use the attribute: compute capability 9.0 or newer and
// MARLIN_PDL not "0" (an off switch for measurements). Cached per device.
inline bool PdlEnabled() {
  static const bool env_off = [] {
    const char* v = std::getenv("MARLIN_PDL");
    return v && v[0] == '0' && v[1] == 0;
  }();
  if (env_off) return false;
  static signed char cache[64] = {0};  // 0 unknown, 1 yes, -1 no
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return false;
  signed char& c = cache[dev & 63];
  if (c == 0) {
    int major = 0;
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
    c = major >= 9 ? 1 : -1;
  }
  return c > 0;
}

template <typename... KArgs, typename... Args>
cudaError_t LaunchPdl(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, Args&&... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = PdlEnabled() ? 1 : 0;
  return cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

}  // namespace marlin
