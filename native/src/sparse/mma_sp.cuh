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

template <>
struct Dtype<__half> {
  static __device__ __forceinline__ float BitsToFloat(uint16_t s) { return __half2float(__ushort_as_half(s)); }
  static __device__ __forceinline__ float ToFloat(__half x) { return __half2float(x); }
  static __device__ __forceinline__ __half FromFloat(float x) { return __float2half_rn(x); }
};

template <>
struct Dtype<__nv_bfloat16> {
  static __device__ __forceinline__ float BitsToFloat(uint16_t s) { return __bfloat162float(__ushort_as_bfloat16(s)); }
  static __device__ __forceinline__ float ToFloat(__nv_bfloat16 x) { return __bfloat162float(x); }
  static __device__ __forceinline__ __nv_bfloat16 FromFloat(float x) { return __float2bfloat16_rn(x); }
};

// The 4 A registers of one lane from its values word, unscaled: register i = the codes minus 8 of
// elements 2i, 2i+1 (nibble positions i and i+4), exact in fp16 and bf16. The group scale is
// applied to the fp32 sums of a whole quad (kernel.cuh), not to every code.
template <typename T>
__device__ __forceinline__ void DequantCodes(uint32_t w, uint32_t (&a)[4]);

// fp16: the odd registers skip the shift: (w & 0x00f000f0) | 0x6400 is 1024 + 16 q, and
// fma(x, 1/16, -72) = q - 8 exactly; 9 instructions for 8 codes instead of 11.
template <>
__device__ __forceinline__ void DequantCodes<__half>(uint32_t w, uint32_t (&a)[4]) {
  const uint32_t w8 = w >> 8;
  const uint32_t b[4] = {(w & 0x000f000fu) | 0x64006400u, (w & 0x00f000f0u) | 0x64006400u, (w8 & 0x000f000fu) | 0x64006400u,
                         (w8 & 0x00f000f0u) | 0x64006400u};
  const __half2 bias = __half2half2(__ushort_as_half(0x6408));      // 1032
  const __half2 sixteenth = __half2half2(__ushort_as_half(0x2c00));  // 1/16
  const __half2 m72 = __half2half2(__ushort_as_half(0xd480));        // -72
#pragma unroll
  for (int i = 0; i < 4; i++) {
    __half2 v = *reinterpret_cast<const __half2*>(&b[i]);
    v = (i & 1) ? __hfma2(v, sixteenth, m72) : __hsub2(v, bias);
    a[i] = *reinterpret_cast<uint32_t*>(&v);
  }
}

// bf16 keeps 7 mantissa bits, too few for 16 q: every register is shifted into place.
template <>
__device__ __forceinline__ void DequantCodes<__nv_bfloat16>(uint32_t w, uint32_t (&a)[4]) {
  const __nv_bfloat162 bias = __bfloat162bfloat162(__ushort_as_bfloat16(0x4308));  // 136
#pragma unroll
  for (int i = 0; i < 4; i++) {
    uint32_t bits = ((w >> (4 * i)) & 0x000f000fu) | 0x43004300u;
    __nv_bfloat162 v = __hsub2(*reinterpret_cast<__nv_bfloat162*>(&bits), bias);
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
