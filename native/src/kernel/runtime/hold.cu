#include "kernel/runtime/hold.h"

namespace marlin {

__device__ __forceinline__ unsigned long long GlobalTimerNs() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

__global__ void HoldKernel(unsigned long long ns) {
  const unsigned long long t0 = GlobalTimerNs();
  while (GlobalTimerNs() - t0 < ns) __nanosleep(1000);
}

cudaError_t LaunchHold(unsigned microseconds, cudaStream_t stream) {
  HoldKernel<<<1, 1, 0, stream>>>(1000ull * microseconds);
  return cudaGetLastError();
}

}  // namespace marlin
