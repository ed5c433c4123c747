#pragma once
// The multi-threaded CPU path over the 2:4 sparse layout: fp16 activations, fp32 accumulation, fp16
// out. Each output is summed over k in one fixed order whatever m is (batch invariant).
#include <cstdint>

namespace marlin {

struct Sparse24CpuArgs {
  int m, n, k;
  int group_size;          // -1 per-channel, or 128
  const uint16_t* a;       // fp16 [m, k]
  const uint32_t* values;  // [k * n / 16] words
  const uint32_t* meta;    // [k * n / 32] words
  const uint16_t* scales;  // fp16 [groups, n]
  const uint16_t* bias;    // fp16 [n] or null
  uint16_t* c;             // fp16 [m, n]
};

void CpuSparse24Gemm(const Sparse24CpuArgs& args);

}  // namespace marlin
