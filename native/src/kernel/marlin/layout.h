#pragma once
// The Marlin weight layout on the host (header-only): the per-16x64-block permutation, unpacking
// to plain q[k, n] for the CPU path, and packing (used by the standalone GPU harness). Matches
// @marlin/format's packMarlin.
#include <array>
#include <cstdint>
#include <vector>

namespace marlin {
namespace layout {

// Entry e (packed order) of a 16 x 64 block takes source element perm[e] of the block laid out as
// four 16x16 tiles, each row-major: lane t holds B-fragment rows 2(t%4), +1, +8, +9 of columns
// t/4 and t/4+8 of each tile, then each word's values are interleaved for the dequantizer.
inline std::array<int, 1024> WeightPerm(int bits) {
  std::array<int, 1024> base{}, out{};
  int o = 0;
  for (int lane = 0; lane < 32; lane++) {
    const int col = lane >> 2, r = 2 * (lane & 3);
    int part[8], pi = 0;
    for (int half : {0, 8})
      for (int row : {r, r + 1, r + 8, r + 9}) part[pi++] = 16 * row + col + half;
    for (int tile = 0; tile < 4; tile++)
      for (int x : part) base[o++] = x + 256 * tile;
  }
  static const int il4[8] = {0, 2, 4, 6, 1, 3, 5, 7};
  static const int il8[4] = {0, 2, 1, 3};
  const int per = bits == 4 ? 8 : 4;
  const int* il = bits == 4 ? il4 : il8;
  for (int g = 0; g < 1024; g += per)
    for (int i = 0; i < per; i++) out[g + i] = base[g + il[i]];
  return out;
}

// Offset of packed entry e inside the row-major [k, n] source, relative to the block's corner.
inline std::vector<int> BlockOffsets(int bits, int n) {
  const auto perm = WeightPerm(bits);
  std::vector<int> off(1024);
  for (int e = 0; e < 1024; e++) {
    const int p = perm[e], tile = p >> 8, row = (p & 255) >> 4, col = p & 15;
    off[e] = row * n + tile * 16 + col;
  }
  return off;
}

// Unpacks rows [kt0*16, kt1*16) of q (row-major [k, n], values < 2^bits) from the packed words.
inline void UnpackRows(const uint32_t* packed, int n, int bits, int kt0, int kt1, uint8_t* q, const std::vector<int>& off) {
  const int per = 32 / bits;
  const uint32_t mask = (1u << bits) - 1;
  const size_t words_per_kt = static_cast<size_t>(n) * 16 * bits / 32;
  for (int kt = kt0; kt < kt1; kt++) {
    const uint32_t* w = packed + kt * words_per_kt;
    for (int c = 0; c < n / 64; c++) {
      uint8_t* b = q + static_cast<size_t>(kt) * 16 * n + c * 64;
      for (int e = 0; e < 1024; e += per) {
        const uint32_t x = *w++;
        for (int s = 0; s < per; s++) b[off[e + s]] = static_cast<uint8_t>((x >> (s * bits)) & mask);
      }
    }
  }
}

inline std::vector<uint32_t> Pack(const uint8_t* q, int k, int n, int bits) {
  const auto off = BlockOffsets(bits, n);
  const int per = 32 / bits;
  std::vector<uint32_t> out(static_cast<size_t>(k) * n * bits / 32);
  size_t o = 0;
  for (int kt = 0; kt < k / 16; kt++)
    for (int c = 0; c < n / 64; c++) {
      const uint8_t* b = q + static_cast<size_t>(kt) * 16 * n + c * 64;
      for (int e = 0; e < 1024; e += per) {
        uint32_t x = 0;
        for (int s = 0; s < per; s++) x |= static_cast<uint32_t>(b[off[e + s]]) << (s * bits);
        out[o++] = x;
      }
    }
  return out;
}

// Scale permutations: position -> source column inside a block of 64 (grouped) or 32 (per-channel).
inline int ScalePerm64(int pos) { return (pos >> 3) + 8 * (pos & 7); }
inline int ScalePerm32(int pos) {
  static const int offs[8] = {0, 1, 8, 9, 16, 17, 24, 25};
  return 2 * (pos >> 3) + offs[pos & 7];
}

// Unpermutes one row of n scales (or zero points) into plain column order.
template <typename V>
inline void UnpermuteRow(const V* src, V* dst, int n, bool per_channel) {
  const int blk = per_channel ? 32 : 64;
  for (int b = 0; b < n; b += blk)
    for (int pos = 0; pos < blk; pos++) dst[b + (per_channel ? ScalePerm32(pos) : ScalePerm64(pos))] = src[b + pos];
}
template <typename V>
inline void PermuteRow(const V* src, V* dst, int n, bool per_channel) {
  const int blk = per_channel ? 32 : 64;
  for (int b = 0; b < n; b += blk)
    for (int pos = 0; pos < blk; pos++) dst[b + pos] = src[b + (per_channel ? ScalePerm32(pos) : ScalePerm64(pos))];
}

// Zero points: one row of n raw zeros <-> n*bits/32 words (64-permuted, interleaved, packed).
inline void UnpackZeroRow(const uint32_t* words, int n, int bits, uint8_t* z) {
  static const int il4[8] = {0, 2, 4, 6, 1, 3, 5, 7};
  static const int il8[4] = {0, 2, 1, 3};
  const int per = 32 / bits;
  const int* il = bits == 4 ? il4 : il8;
  std::vector<uint8_t> permuted(n);
  for (int w = 0; w < n / per; w++)
    for (int i = 0; i < per; i++) permuted[w * per + il[i]] = static_cast<uint8_t>((words[w] >> (bits * i)) & ((1u << bits) - 1));
  UnpermuteRow(permuted.data(), z, n, false);
}
inline void PackZeroRow(const uint8_t* z, int n, int bits, uint32_t* words) {
  static const int il4[8] = {0, 2, 4, 6, 1, 3, 5, 7};
  static const int il8[4] = {0, 2, 1, 3};
  const int per = 32 / bits;
  const int* il = bits == 4 ? il4 : il8;
  std::vector<uint8_t> permuted(n);
  PermuteRow(z, permuted.data(), n, false);
  for (int w = 0; w < n / per; w++) {
    uint32_t x = 0;
    for (int i = 0; i < per; i++) x |= static_cast<uint32_t>(permuted[w * per + il[i]]) << (bits * i);
    words[w] = x;
  }
}

}  // namespace layout
}  // namespace marlin
