#pragma once
// The 2:4 sparse 4-bit layout (packages/sparse/src/layout.ts holds the same rules; the tests check
// both against each other). W is [n (out), k (in)]; in every 4 consecutive inputs of a row, 2 are
// kept. The layout is cut in 16 (n) x 32 (k) tiles, one A operand of mma.sp m16n8k32, and tiles
// are grouped by 4 along k (a "quad", 128 inputs = one scale group) so that each lane reads the
// words of 4 tiles with one 16-byte load.
//   values word  ((kq * n/16 + nt) * 32 + lane) * 4 + j    (tile kt = 4 kq + j)
//   meta word    ((kq * n/16 + nt) * 16 + 2 g + h) * 4 + j (lanes with lane % 4 = h < 2)
// Lane (g = lane / 4, t = lane % 4) holds 8 nibbles: element e sits at nibble position POS[e]
// (the interleave [0,2,4,6,1,3,5,7] of the dense format, so that (w >> 4i) & 0x000f000f yields
// elements 2i, 2i+1); elements 0,1: row g, chunk t; 2,3: row g+8, chunk t; 4,5: row g, chunk 4+t;
// 6,7: row g+8, chunk 4+t; each pair = the chunk's 2 kept values in ascending position.
// Meta word of lane (g, h): bits 4c..4c+3 (c < 4) chunk 4h+c of row g, bits 16+4c.. of row g+8; a
// chunk's nibble is idx0 | idx1 << 2 with idx0 < idx1 (positions inside the chunk).
#include <cstdint>

#ifdef __CUDACC__
#define MARLIN_HD __host__ __device__
#else
#define MARLIN_HD
#endif

namespace marlin {
namespace sparse24 {

constexpr int kTileN = 16;
constexpr int kTileK = 32;
constexpr int kQuadK = 128;     // 4 tiles along k: one 16-byte load per lane
constexpr int kZero = 8;        // symmetric 4-bit zero: pruned positions hold 8

// Nibble position of element e (inverse of the interleave [0,2,4,6,1,3,5,7]).
// (host only: the device code never needs it)
constexpr int kPos[8] = {0, 4, 1, 5, 2, 6, 3, 7};

MARLIN_HD inline int64_t ValueWord(int64_t kq, int64_t nt, int64_t n_tiles, int lane, int j) {
  return ((kq * n_tiles + nt) * 32 + lane) * 4 + j;
}
MARLIN_HD inline int64_t MetaWord(int64_t kq, int64_t nt, int64_t n_tiles, int g, int h, int j) {
  return ((kq * n_tiles + nt) * 16 + 2 * g + h) * 4 + j;
}

}  // namespace sparse24
}  // namespace marlin
