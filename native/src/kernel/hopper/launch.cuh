#pragma once
// Host side of one Hopper kernel launch: the tile choice, the activation tensor map, the schedule.
#include <cuda.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

#include "common/pdl.cuh"
#include "kernel/hopper/kernel.cuh"
#include "kernel/hopper/launch.h"

namespace marlin {
namespace hopper {

// The activation map: [rows, k] 16-bit values, boxes of 64 (k) x BM (rows), 128-byte swizzle.
inline cudaError_t ActivationMap(CUtensorMap* map, const void* a, int rows, int k, int bm, bool bf16) {
  EncodeTiledFn encode = EncodeTiled();
  if (!encode) return cudaErrorNotSupported;
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(k), static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(k) * 2};
  const cuuint32_t box[2] = {static_cast<cuuint32_t>(kStageK), static_cast<cuuint32_t>(bm)};
  const cuuint32_t elem[2] = {1, 1};
  const CUresult r = encode(map, bf16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 2, const_cast<void*>(a), dims, strides, box,
                            elem, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                            CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) std::fprintf(stderr, "hopper kernel: cuTensorMapEncodeTiled failed (CUresult %d) for [%d, %d] at %p\n", int(r), rows, k, a);
  return r == CUDA_SUCCESS ? cudaSuccess : cudaErrorInvalidValue;
}

template <typename T, int BITS, bool ZP, int BM, int NJ>
cudaError_t Launch(const LaunchArgs& la, cudaStream_t stream) {
  using S = Shape<BITS, ZP, BM, NJ>;
  auto kernel = HopperKernel<T, BITS, ZP, BM, NJ>;
  const GemmArgs& g = *la.g;
  static bool attr_set[64] = {false};  // the dynamic shared-memory limit is raised once per device
  if (!attr_set[la.device & 63]) {
    const cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(S::kSmemBytes));
    if (err != cudaSuccess) return err;
    attr_set[la.device & 63] = true;
  }
  CUtensorMap map;
  cudaError_t err = ActivationMap(&map, la.a, la.rows, g.k, BM, g.act == ActType::kBF16);
  if (err != cudaSuccess) return err;
  Params p{};
  p.b = static_cast<const uint8_t*>(g.b);
  p.scales = static_cast<const uint8_t*>(g.scales);
  p.zeros = static_cast<const uint8_t*>(g.zeros);
  p.bias = g.bias;
  p.c = la.c;
  p.partial = la.partial;
  p.counters = la.counters;
  p.m = la.rows;
  p.n = g.n;
  p.k = g.k;
  const bool per_channel = g.group_size == -1 || g.group_size >= g.k;
  p.per_channel = per_channel ? 1 : 0;
  p.group_shift = 7;  // per-channel: any shift of 6 or more gives one row per stage
  if (!per_channel) {
    p.group_shift = 0;
    while ((1 << p.group_shift) < g.group_size) p.group_shift++;
  }
  p.watchdog = la.watchdog;
  const int tm = (la.rows + BM - 1) / BM, tn = g.n / S::kBN, ks = g.k / kStageK;
  int max_grid = la.tuning.max_grid > 0 ? std::min(la.tuning.max_grid, la.sms) : la.sms;
  // Two partial slots per block must fit the workspace; each stream-K tile needs a counter.
  max_grid = static_cast<int>(std::min<size_t>(max_grid, la.partial_floats / (2 * size_t(S::kPartialFloats))));
  max_grid = std::min(max_grid, la.counter_capacity);
  if (max_grid < 1) return cudaErrorInvalidValue;
  p.sched = MakeSchedule(tm, tn, ks, max_grid);
  if (la.debug)
    std::fprintf(stderr,
                 "hopper launch: BM=%d NJ=%d BN=%d stages=%d smem=%zu rows=%d tiles=%dx%d ks=%d grid=%d dp_tiles=%d sk_iters=%d sk_units=%d\n", BM,
                 NJ, S::kBN, S::kStages, S::kSmemBytes, la.rows, tm, tn, ks, p.sched.grid, p.sched.dp_tiles, p.sched.sk_iters, p.sched.sk_units);
  return LaunchPdl(kernel, dim3(p.sched.grid), dim3(kThreads), S::kSmemBytes, stream, map, p);
}

// The tile for this launch: 256 features per block when n allows, 64 tokens up to m = 64.
template <typename T, int BITS, bool ZP>
cudaError_t LaunchVariant(const LaunchArgs& la, cudaStream_t stream) {
  const int n = la.g->n;
  if (n % 256 != 0) return Launch<T, BITS, ZP, 128, 1>(la, stream);
  const int bm = la.tuning.bm == 64 || la.tuning.bm == 128 ? la.tuning.bm : la.rows <= 64 ? 64 : 128;
  return bm == 64 ? Launch<T, BITS, ZP, 64, 2>(la, stream) : Launch<T, BITS, ZP, 128, 2>(la, stream);
}

}  // namespace hopper
}  // namespace marlin
