// Decodes a Marlin-layout layer to fp16/bf16 W[k, n] (any sm_80+ GPU), and the GEMM through cuBLAS.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "kernel/blas/bias.h"
#include "kernel/blas/cublas_loader.h"
#include "kernel/blas/dequant.h"
#include "kernel/hopper/fragment_map.h"
#include "kernel/hopper/marlin_lane.cuh"

namespace marlin {
namespace blas {
namespace {

using hopper::GroupedScalePos;
using hopper::LaneTile;
using hopper::Pair;
using hopper::PerChannelScalePos;

constexpr int kWarps = 4;        // one 16 x 64 Marlin block per warp
constexpr int kStageStride = 72;  // staging row of 64 values, padded (16-byte aligned rows)

struct DequantArgs {
  const uint8_t* b;
  const uint8_t* scales;
  const uint8_t* zeros;
  const int32_t* perm;
  void* w;
  int n, k, n0, cols, group_shift, per_channel;
};

// Block (blockIdx.y = k16 row, blockIdx.x * 4 + warp = 64-column block of the slice): each lane
// decodes its four tiles, the warp stages the 16 x 64 values and writes 16 rows of 128 bytes.
template <typename T, int BITS, bool ZP>
__global__ void __launch_bounds__(kWarps * 32) DequantKernel(const DequantArgs p) {
  using T2 = typename Pair<T>::type;
  using LT = LaneTile<T, BITS>;
  __shared__ __align__(16) T stage[kWarps][16 * kStageStride];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int cb = blockIdx.x * kWarps + warp;  // 64-column block inside the slice
  if (cb * 64 >= p.cols) return;
  const int kt = blockIdx.y;
  const int blk = p.n0 / 64 + cb;  // 64-column block of the layer
  const uint32_t* words = reinterpret_cast<const uint32_t*>(p.b + size_t(kt) * p.n * 2 * BITS + size_t(blk) * 128 * BITS) + lane * 4 * LT::kWords;
  const int grow = p.per_channel ? 0 : (kt * 16) >> p.group_shift;
  const T* srow = reinterpret_cast<const T*>(p.scales) + size_t(grow) * p.n;
  uint32_t zw = 0;
  if constexpr (ZP) zw = reinterpret_cast<const uint32_t*>(p.zeros + size_t(grow) * p.n * BITS / 8)[blk * 8 + g];
  T* st = stage[warp];
#pragma unroll
  for (int tile = 0; tile < 4; tile++) {
    T2 s[2];
#pragma unroll
    for (int h = 0; h < 2; h++) {
      const int c = 16 * tile + g + 8 * h;  // column inside the 64-column block
      const T v = srow[p.per_channel ? PerChannelScalePos(blk * 64 + c) : blk * 64 + GroupedScalePos(c)];
      s[h] = T2{v, v};
    }
    typename LT::Zero z0 = LT::Symmetric(), z1 = LT::Symmetric();
    if constexpr (ZP) LT::ZerosOf(zw, tile, z0, z1);
    T2 v[4];
    LT::Run(words + tile * LT::kWords, z0, z1, s[0], s[1], v);
    // v[0]: column g rows 2t, 2t+1; v[1]: column g rows 2t+8, 2t+9; v[2], v[3]: column g + 8.
    const int c0 = 16 * tile + g;
    st[(2 * t) * kStageStride + c0] = v[0].x;
    st[(2 * t + 1) * kStageStride + c0] = v[0].y;
    st[(2 * t + 8) * kStageStride + c0] = v[1].x;
    st[(2 * t + 9) * kStageStride + c0] = v[1].y;
    st[(2 * t) * kStageStride + c0 + 8] = v[2].x;
    st[(2 * t + 1) * kStageStride + c0 + 8] = v[2].y;
    st[(2 * t + 8) * kStageStride + c0 + 8] = v[3].x;
    st[(2 * t + 9) * kStageStride + c0 + 8] = v[3].y;
  }
  __syncwarp();
  T* w = static_cast<T*>(p.w);
#pragma unroll
  for (int i = lane; i < 16 * 8; i += 32) {
    const int r = i >> 3, ch = i & 7;
    const int kr = kt * 16 + r;
    const int out = p.perm ? p.perm[kr] : kr;  // act-order: packed row kr is original row perm[kr]
    if (static_cast<unsigned>(out) < static_cast<unsigned>(p.k))  // a bad perm must not write outside W
      *reinterpret_cast<int4*>(w + size_t(out) * p.cols + cb * 64 + ch * 8) = *reinterpret_cast<const int4*>(st + r * kStageStride + ch * 8);
  }
}

}  // namespace

cudaError_t LaunchDequant(const GemmArgs& g, int n0, int cols, void* w, cudaStream_t stream) {
  if (cols <= 0 || cols % 64 != 0 || n0 % 64 != 0 || n0 + cols > g.n || g.k % 16 != 0) return cudaErrorInvalidValue;
  DequantArgs p{};
  p.b = static_cast<const uint8_t*>(g.b);
  p.scales = static_cast<const uint8_t*>(g.scales);
  p.zeros = static_cast<const uint8_t*>(g.zeros);
  p.perm = g.perm;
  p.w = w;
  p.n = g.n;
  p.k = g.k;
  p.n0 = n0;
  p.cols = cols;
  p.per_channel = g.group_size == -1 || g.group_size >= g.k;
  p.group_shift = 7;
  if (!p.per_channel)
    while ((1 << p.group_shift) > g.group_size) p.group_shift--;
  const dim3 grid((cols / 64 + kWarps - 1) / kWarps, g.k / 16);
  const bool bf16 = g.act == ActType::kBF16;
  if (g.weight == WeightKind::kU4)
    bf16 ? DequantKernel<__nv_bfloat16, 4, false><<<grid, kWarps * 32, 0, stream>>>(p) : DequantKernel<__half, 4, false><<<grid, kWarps * 32, 0, stream>>>(p);
  else if (g.weight == WeightKind::kU4Zp)
    bf16 ? DequantKernel<__nv_bfloat16, 4, true><<<grid, kWarps * 32, 0, stream>>>(p) : DequantKernel<__half, 4, true><<<grid, kWarps * 32, 0, stream>>>(p);
  else
    bf16 ? DequantKernel<__nv_bfloat16, 8, false><<<grid, kWarps * 32, 0, stream>>>(p) : DequantKernel<__half, 8, false><<<grid, kWarps * 32, 0, stream>>>(p);
  return cudaGetLastError();
}

cudaError_t DequantGemm(const GemmArgs& g, void* scratch, size_t scratch_bytes, void* handle, cudaStream_t stream, int* blas_status) {
  *blas_status = 0;
  const int cols = DequantSliceColumns(g.n, g.k, scratch_bytes);
  if (cols < 64) return cudaErrorInvalidValue;
  const bool bf16 = g.act == ActType::kBF16;
  for (int n0 = 0; n0 < g.n; n0 += cols) {
    const int nc = std::min(cols, g.n - n0);
    cudaError_t err = LaunchDequant(g, n0, nc, scratch, stream);
    if (err != cudaSuccess) return err;
    // C[:, n0 : n0 + nc] (row stride n) = A [m, k] * W slice [k, nc].
    const int st = GemmLd(handle, stream, bf16, g.m, nc, g.k, g.a, g.k, scratch, nc, static_cast<char*>(g.c) + size_t(n0) * 2, g.n);
    if (st != 0) {
      *blas_status = st;
      return cudaSuccess;
    }
  }
  if (g.bias) return LaunchAddBias(bf16, g.c, g.bias, g.m, g.n, stream);
  return cudaSuccess;
}

}  // namespace blas
}  // namespace marlin
