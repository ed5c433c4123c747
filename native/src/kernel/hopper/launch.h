#pragma once
// What one launch of the Hopper kernel needs (the typed launches are in launch.cuh, instantiated by
// the inst_*.cu files; dispatch.cu includes only this header so that it compiles no kernel).
#include <cuda.h>
#include <cuda_runtime.h>

#include "kernel/hopper/gemm.h"

namespace marlin {
namespace hopper {

struct LaunchArgs {
  const GemmArgs* g;
  const void* a;  // [rows, k] activations of this launch (the gathered copy under act-order)
  void* c;        // [rows, n]
  int rows;
  float* partial;
  size_t partial_floats;
  int* counters;
  int counter_capacity;
  int sms;
  int device;
  Tuning tuning;
  long long watchdog;
  bool debug;
};

// cuTensorMapEncodeTiled from the driver (through the runtime: the addon links no libcuda).
using EncodeTiledFn = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*, const cuuint64_t*, const cuuint32_t*,
                                   const cuuint32_t*, CUtensorMapInterleave, CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
EncodeTiledFn EncodeTiled();

// Queues the launch for this variant (tile chosen by n and rows).
template <typename T, int BITS, bool ZP>
cudaError_t LaunchVariant(const LaunchArgs& la, cudaStream_t stream);

}  // namespace hopper
}  // namespace marlin
