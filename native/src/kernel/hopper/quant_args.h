#pragma once
// Argument parsing shared by the GPU entry points that take a Marlin-layout layer the way
// marlinGemm does: (a, aOffset, b, scales, zeros|null, perm|null, bias|null, c, cOffset, <buffer>,
// m, n, k, groupSize, act, weight, stream?). Every check throws a typed error before any launch.
#include <napi.h>

#include <functional>
#include <string>

#include "kernel/marlin/gemm.h"

namespace marlin {

struct QuantCall {
  GemmArgs g;  // workspace fields left empty: index 9 is the caller's
  int device;
  int bits;
  size_t groups;
};

// `refuse(n, k, group, weight)` gives the entry point's own shape rule ("" when it takes the shape).
QuantCall ArgQuantCall(const Napi::CallbackInfo& info, const std::function<std::string(int, int, int, WeightKind)>& refuse);

}  // namespace marlin
