#pragma once
// CPU implementations behind the same API as the GPU kernels: multi-threaded, fp32 accumulation,
// and each output row summed over k in one fixed order whatever m is (batch invariant).
#include <cstdint>

#include "kernel/marlin/gemm.h"

namespace marlin {

struct CpuGemmArgs {
  ActType act;
  WeightKind weight;
  int m, n, k;
  int group_size;          // -1 per-channel
  const uint16_t* a;       // [m, k]
  const uint32_t* b;       // Marlin-packed
  const uint16_t* scales;  // permuted [groups, n]
  const uint32_t* zeros;   // packed [groups, n*bits/32] or null
  const int32_t* perm;     // act-order or null
  const uint16_t* bias;    // [n] or null
  uint16_t* c;             // [m, n]
};

void CpuMarlinGemm(const CpuGemmArgs& args);

// out[m, n] = a[m, k] * w[k, n] (+ bias), w row-major [k, n], same element type as a.
void CpuDenseGemm(ActType act, int m, int n, int k, const uint16_t* a, const uint16_t* w, const uint16_t* bias, uint16_t* c);

}  // namespace marlin
