#pragma once
// One-pass softmax attention of a key group, shared by the decode and the paged attention so a
// decode row of one chunk gets the paged kernel's arithmetic bit for bit. A block's threads form
// groups of L lanes (8 head dimensions a lane); group g takes keys g, g + G, ... of a range, U per
// pass, loading each key's k and v rows together, and keeps a running max, sum and weighted values
// (rescaled when the max grows). At the end the groups are combined in group order. The arithmetic
// is spelled with round-to-nearest intrinsics (no contraction left to the compiler), so both
// kernels do the same operations whatever code surrounds them.
#include <cuda_fp16.h>

#include <cfloat>

#include "engine/cuda_common.cuh"

namespace marlin {
namespace ops {
namespace cuda {

// A lane's share of q . k over its 8 dimensions.
__device__ __forceinline__ float Dot8(const float* q, const float* k) {
  float x = 0;
#pragma unroll
  for (int j = 0; j < 8; j++) x = __fmaf_rn(q[j], k[j], x);
  return x;
}

template <int U>
struct GroupSoftmax {
  float m = -FLT_MAX, sum = 0.f;
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};

  // One pass: scores sc[u] of the group's keys, those with ok[u] taken; their values are the
  // fp16 rows vv[u], or (where !cached[u], the decode step's current position) vcur[0..7].
  __device__ __forceinline__ void Pass(const float (&sc)[U], const bool (&ok)[U], const uint4 (&vv)[U], const bool (&cached)[U], const float* vcur) {
    float mx = m;
#pragma unroll
    for (int u = 0; u < U; u++)
      if (ok[u]) mx = fmaxf(mx, sc[u]);
    const float corr = __expf(__fsub_rn(m, mx));  // 0 while m is still -FLT_MAX, 1 when the max holds
    m = mx;
    sum = __fmul_rn(sum, corr);
#pragma unroll
    for (int j = 0; j < 8; j++) acc[j] = __fmul_rn(acc[j], corr);
#pragma unroll
    for (int u = 0; u < U; u++) {
      if (!ok[u]) continue;
      const float e = __expf(__fsub_rn(sc[u], m));
      sum = __fadd_rn(sum, e);
      float vf[8];
      if (cached[u]) Unpack8(vv[u], vf);
      else
#pragma unroll
        for (int j = 0; j < 8; j++) vf[j] = vcur[j];
#pragma unroll
      for (int j = 0; j < 8; j++) acc[j] = __fmaf_rn(e, vf[j], acc[j]);
    }
  }

  // Lane l of group g leaves its share in shared memory: part[G][D], gmax[G], gsum[G].
  __device__ __forceinline__ void Store(float* part, float* gmax, float* gsum, int g, int l, int D) const {
#pragma unroll
    for (int j = 0; j < 8; j++) part[g * D + l * 8 + j] = acc[j];
    if (l == 0) {
      gmax[g] = m;
      gsum[g] = sum;
    }
  }
};

// After every group's Store and a sync: the range's max and softmax denominator (a group without
// keys has sum 0 and adds nothing).
__device__ __forceinline__ void CombineGroups(int G, const float* gmax, const float* gsum, float* cmax, float* den) {
  float mx = -FLT_MAX;
  for (int i = 0; i < G; i++) mx = fmaxf(mx, gmax[i]);
  float d = 0;
  for (int i = 0; i < G; i++) d = __fmaf_rn(gsum[i], __expf(__fsub_rn(gmax[i], mx)), d);
  *cmax = mx;
  *den = d;
}

// Dimension dd's weighted value sum over the groups (the numerator of the output), in group order.
__device__ __forceinline__ float GroupValue(int G, int D, const float* part, const float* gmax, float cmax, int dd) {
  float o = 0;
  for (int i = 0; i < G; i++) o = __fmaf_rn(part[i * D + dd], __expf(__fsub_rn(gmax[i], cmax)), o);
  return o;
}

}  // namespace cuda
}  // namespace ops
}  // namespace marlin
