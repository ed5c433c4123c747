#pragma once
// Decoding one lane's share of the Marlin layout (device code for sm_80+; used by the Hopper wgmma
// kernel and by the dequantize-to-fp16 kernel of the cuBLAS path).
//
// In each 16 x 64 block of the layout, lane L (g = L / 4, t = L % 4) holds, for each of the four
// 16 x 16 tiles, the 8 values at rows 2t, 2t+1, 2t+8, 2t+9 of columns g and g+8: one 32-bit word
// for 4-bit weights, two (column g, then g+8) for 8-bit. That is both the mma.sync B fragment and the
// wgmma A fragment of W^T (row = output feature, column = k), so a tile decodes straight into
// registers. Decode gives four pairs v[0..3] = (q - z) * s, exact before the one rounding by s:
//   v[0] column g rows (2t, 2t+1)   v[1] column g rows (2t+8, 2t+9)
//   v[2] column g+8 rows (2t, 2t+1) v[3] column g+8 rows (2t+8, 2t+9)
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace marlin {
namespace hopper {

template <typename T>
struct Pair;
template <>
struct Pair<__half> {
  using type = __half2;
};
template <>
struct Pair<__nv_bfloat16> {
  using type = __nv_bfloat162;
};

template <typename V>
__device__ __forceinline__ uint32_t Bits(V v) {
  return *reinterpret_cast<uint32_t*>(&v);
}
template <typename V>
__device__ __forceinline__ V FromBits(uint32_t u) {
  return *reinterpret_cast<V*>(&u);
}

// (a & MASK) | OR in one LOP3 (the C form becomes two instructions when both are immediates).
template <uint32_t MASK, uint32_t OR>
__device__ __forceinline__ uint32_t MaskOr(uint32_t a) {
  uint32_t r;
  asm("lop3.b32 %0, %1, %2, %3, 0xea;\n" : "=r"(r) : "r"(a), "n"(MASK), "n"(OR));
  return r;
}

template <typename T, int BITS>
struct LaneTile;

// fp16, 4-bit: OR-ing a nibble under the exponent of 1024 gives 1024 + q (low nibble) or
// 1024 + 16 q (high nibble); subtracting 1024 + z, or fma(x, 1/16, -64 - z), leaves q - z exactly.
template <>
struct LaneTile<__half, 4> {
  static constexpr int kWords = 1;
  struct Zero {
    __half2 lo, hi;
  };
  __device__ __forceinline__ static Zero Symmetric() { return {__half2half2(__float2half(1032.f)), __half2half2(__float2half(-72.f))}; }
  // Zero points of tile `tile` from the packed zero word of lane group g (word g of a 64-column
  // block holds columns g + 8 j with the weights' interleave, so nibbles tile and tile + 4 are the
  // tile's columns g and g + 8): 1024 + z comes out of the same bit trick.
  __device__ __forceinline__ static void ZerosOf(uint32_t word, int tile, Zero& z0, Zero& z1) {
    const __half2 lo = FromBits<__half2>(MaskOr<0x000f000fu, 0x64006400u>(word >> (4 * tile)));
    const __half2 hi = __hsub2(__half2half2(__float2half(960.f)), lo);  // -64 - z
    z0 = {__low2half2(lo), __low2half2(hi)};
    z1 = {__high2half2(lo), __high2half2(hi)};
  }
  __device__ __forceinline__ static void Run(const uint32_t* w, const Zero& z0, const Zero& z1, __half2 s0, __half2 s1, __half2 (&v)[4]) {
    uint32_t q = w[0];
    const uint32_t lo0 = MaskOr<0x000f000fu, 0x64006400u>(q);
    const uint32_t hi0 = MaskOr<0x00f000f0u, 0x64006400u>(q);
    q >>= 8;
    const uint32_t lo1 = MaskOr<0x000f000fu, 0x64006400u>(q);
    const uint32_t hi1 = MaskOr<0x00f000f0u, 0x64006400u>(q);
    const __half2 sixteenth = __half2half2(__float2half(1.f / 16.f));
    v[0] = __hmul2(__hsub2(FromBits<__half2>(lo0), z0.lo), s0);
    v[1] = __hmul2(__hfma2(FromBits<__half2>(hi0), sixteenth, z0.hi), s0);
    v[2] = __hmul2(__hsub2(FromBits<__half2>(lo1), z1.lo), s1);
    v[3] = __hmul2(__hfma2(FromBits<__half2>(hi1), sixteenth, z1.hi), s1);
  }
};

// bf16, 4-bit: a nibble under the exponent of 128 (7 mantissa bits) gives 128 + q.
template <>
struct LaneTile<__nv_bfloat16, 4> {
  static constexpr int kWords = 1;
  struct Zero {
    __nv_bfloat162 lo;
  };
  __device__ __forceinline__ static Zero Symmetric() { return {__bfloat162bfloat162(__float2bfloat16(136.f))}; }
  __device__ __forceinline__ static void ZerosOf(uint32_t word, int tile, Zero& z0, Zero& z1) {
    const __nv_bfloat162 lo = FromBits<__nv_bfloat162>(MaskOr<0x000f000fu, 0x43004300u>(word >> (4 * tile)));  // 128 + z
    z0 = {__low2bfloat162(lo)};
    z1 = {__high2bfloat162(lo)};
  }
  __device__ __forceinline__ static void Run(const uint32_t* w, const Zero& z0, const Zero& z1, __nv_bfloat162 s0, __nv_bfloat162 s1,
                                             __nv_bfloat162 (&v)[4]) {
    const uint32_t q = w[0];
    v[0] = __hmul2(__hsub2(FromBits<__nv_bfloat162>(MaskOr<0x000f000fu, 0x43004300u>(q)), z0.lo), s0);
    v[1] = __hmul2(__hsub2(FromBits<__nv_bfloat162>(MaskOr<0x000f000fu, 0x43004300u>(q >> 4)), z0.lo), s0);
    v[2] = __hmul2(__hsub2(FromBits<__nv_bfloat162>(MaskOr<0x000f000fu, 0x43004300u>(q >> 8)), z1.lo), s1);
    v[3] = __hmul2(__hsub2(FromBits<__nv_bfloat162>(MaskOr<0x000f000fu, 0x43004300u>(q >> 12)), z1.lo), s1);
  }
};

// fp16, 8-bit (symmetric only): bytes 0, 2 of a word are rows 2t, 2t+1, bytes 1, 3 rows 2t+8, 2t+9;
// a byte under the exponent of 1024 gives 1024 + q.
template <>
struct LaneTile<__half, 8> {
  static constexpr int kWords = 2;
  struct Zero {};
  __device__ __forceinline__ static Zero Symmetric() { return {}; }
  __device__ __forceinline__ static void Run(const uint32_t* w, const Zero&, const Zero&, __half2 s0, __half2 s1, __half2 (&v)[4]) {
    const __half2 sub = __half2half2(__float2half(1024.f + 128.f));
    v[0] = __hmul2(__hsub2(FromBits<__half2>(__byte_perm(w[0], 0x64646464u, 0x4240)), sub), s0);
    v[1] = __hmul2(__hsub2(FromBits<__half2>(__byte_perm(w[0], 0x64646464u, 0x4341)), sub), s0);
    v[2] = __hmul2(__hsub2(FromBits<__half2>(__byte_perm(w[1], 0x64646464u, 0x4240)), sub), s1);
    v[3] = __hmul2(__hsub2(FromBits<__half2>(__byte_perm(w[1], 0x64646464u, 0x4341)), sub), s1);
  }
};

// bf16, 8-bit: bf16 cannot hold 128 + q exactly for q >= 128, so bytes go through fp32 (2^23 + q).
template <>
struct LaneTile<__nv_bfloat16, 8> {
  static constexpr int kWords = 2;
  struct Zero {};
  __device__ __forceinline__ static Zero Symmetric() { return {}; }
  __device__ __forceinline__ static __nv_bfloat162 Bytes(uint32_t w, uint32_t sel_a, uint32_t sel_b) {
    const float sub = 8388608.f + 128.f;
    return __floats2bfloat162_rn(__uint_as_float(__byte_perm(w, 0x4B000000u, sel_a)) - sub, __uint_as_float(__byte_perm(w, 0x4B000000u, sel_b)) - sub);
  }
  __device__ __forceinline__ static void Run(const uint32_t* w, const Zero&, const Zero&, __nv_bfloat162 s0, __nv_bfloat162 s1,
                                             __nv_bfloat162 (&v)[4]) {
    v[0] = __hmul2(Bytes(w[0], 0x7540, 0x7542), s0);
    v[1] = __hmul2(Bytes(w[0], 0x7541, 0x7543), s0);
    v[2] = __hmul2(Bytes(w[1], 0x7540, 0x7542), s1);
    v[3] = __hmul2(Bytes(w[1], 0x7541, 0x7543), s1);
  }
};

}  // namespace hopper
}  // namespace marlin
