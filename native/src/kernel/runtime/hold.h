#pragma once
// A one-thread kernel that keeps a stream busy for a given time. Benchmarks queue a timed batch of
// launches behind it, so the GPU time they measure does not include the host's launch latency
// (the way nvbench's blocking kernel works).
#ifdef MARLIN_WITH_CUDA
#include <cuda_runtime.h>

namespace marlin {
cudaError_t LaunchHold(unsigned microseconds, cudaStream_t stream);
}  // namespace marlin
#endif
