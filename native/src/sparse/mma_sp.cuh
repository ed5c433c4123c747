#pragma once
// Device helpers of the 2:4 kernel: 4-bit dequantization into A fragments of mma.sp m16n8k32 and
// the mma.sp itself, for fp16 and bf16 (Dtype<T> picks the bit patterns and the PTX type).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace marlin {
namespace sparse24 {

template <typename T>
struct Dtype;

// 0x6400 | q is the fp16 1024 + q; minus 1032 gives q - 8 exactly.
template <>
struct Dtype<__half> {
  using T2 = __half2;
  static constexpr uint32_t kExp = 0x64006400u;
  static __device__ __forceinline__ T2 Bias() { return __half2half2(__ushort_as_half(0x6408)); }  // 1032
  static __device__ __forceinline__ T2 PairBits(uint16_t s) { return __half2half2(__ushort_as_half(s)); }
  static __device__ __forceinline__ float ToFloat(__half x) { return __half2float(x); }
  static __device__ __forceinline__ __half FromFloat(float x) { return __float2half_rn(x); }
};

// 0x4300 | q is the bf16 128 + q (7 mantissa bits hold q < 16 exactly); minus 136 gives q - 8.
template <>
struct Dtype<__nv_bfloat16> {
  using T2 = __nv_bfloat162;
  static constexpr uint32_t kExp = 0x43004300u;
  static __device__ __forceinline__ T2 Bias() { return __bfloat162bfloat162(__ushort_as_bfloat16(0x4308)); }  // 136
  static __device__ __forceinline__ T2 PairBits(uint16_t s) { return __bfloat162bfloat162(__ushort_as_bfloat16(s)); }
  static __device__ __forceinline__ float ToFloat(__nv_bfloat16 x) { return __bfloat162float(x); }
  static __device__ __forceinline__ __nv_bfloat16 FromFloat(float x) { return __float2bfloat16_rn(x); }
};

// The 4 A registers of one lane from its values word: register i = elements 2i, 2i+1 (nibble
// positions i and i+4), scaled by the scale of its row (g for even i, g + 8 for odd i).
template <typename T>
__device__ __forceinline__ void Dequant(uint32_t w, typename Dtype<T>::T2 s_lo, typename Dtype<T>::T2 s_hi, uint32_t (&a)[4]) {
  using D = Dtype<T>;
  using T2 = typename D::T2;
#pragma unroll
  for (int i = 0; i < 4; i++) {
    uint32_t bits = ((w >> (4 * i)) & 0x000f000fu) | D::kExp;
    T2 v = *reinterpret_cast<T2*>(&bits);
    v = __hmul2(__hsub2(v, D::Bias()), (i & 1) ? s_hi : s_lo);
    a[i] = *reinterpret_cast<uint32_t*>(&v);
  }
}

// d += A (16 x 32, 2:4 sparse, compressed in a) * B (32 x 8), metadata e from lanes 0, 1 of each quad
// (selector 0). ordered_metadata: our indices ascend within each chunk, as that form requires.
template <typename T>
__device__ __forceinline__ void MmaSp(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[4], uint32_t e);

template <>
__device__ __forceinline__ void MmaSp<__half>(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[4], uint32_t e) {
  asm volatile(
      "mma.sp::ordered_metadata.sync.aligned.m16n8k32.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9,%10,%11}, "
      "{%0,%1,%2,%3}, %12, 0x0;\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(b[2]), "r"(b[3]), "r"(e));
}

template <>
__device__ __forceinline__ void MmaSp<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[4], uint32_t e) {
  asm volatile(
      "mma.sp::ordered_metadata.sync.aligned.m16n8k32.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9,%10,%11}, "
      "{%0,%1,%2,%3}, %12, 0x0;\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(b[2]), "r"(b[3]), "r"(e));
}

}  // namespace sparse24
}  // namespace marlin
