// CPU 2:4 GEMM: per 16-output tile, each 128-input quad is decoded to fp32 once (the kept values
// times their scales, with their input positions) and applied to every activation row.
#include "sparse/cpu_gemm.h"

#include <vector>

#include "common/half.h"
#include "common/parallel.h"
#include "sparse/layout.h"

namespace marlin {

using namespace sparse24;

namespace {

// One decoded quad of a 16-row tile: for each row, 64 kept (input index, value) pairs in k order.
struct Quad {
  int idx[kTileN][64];
  float val[kTileN][64];
};

void DecodeQuad(const Sparse24CpuArgs& p, int64_t kq, int64_t nt, Quad& q) {
  const int64_t n_tiles = p.n / kTileN;
  const int groups_div = (p.group_size == -1 || p.group_size >= p.k) ? p.k : p.group_size;
  const int64_t grp = (kq * kQuadK) / groups_div;
  for (int j = 0; j < 4; j++) {
    for (int lane = 0; lane < 32; lane++) {
      const int g = lane >> 2, t = lane & 3;
      const uint32_t w = p.values[ValueWord(kq, nt, n_tiles, lane, j)];
      for (int e = 0; e < 8; e++) {
        const int row = g + ((e >> 1) & 1) * 8;
        const int chunk = t + (e >> 2) * 4;
        const int h = chunk >> 2, c = chunk & 3;
        const uint32_t m = p.meta[MetaWord(kq, nt, n_tiles, g, h, j)];
        const uint32_t nib = (m >> ((row >= 8 ? 16 : 0) + 4 * c)) & 0xf;
        const int pos = (e & 1) ? int(nib >> 2) : int(nib & 3);
        const int qv = int((w >> (4 * kPos[e])) & 0xf) - kZero;
        const float s = HalfToFloat(p.scales[grp * p.n + nt * kTileN + row]);
        const int slot = j * 16 + chunk * 2 + (e & 1);  // k order: tile, chunk, kept index
        q.idx[row][slot] = int(kq * kQuadK + j * kTileK + chunk * 4 + pos);
        q.val[row][slot] = float(qv) * s;
      }
    }
  }
}

}  // namespace

void CpuSparse24Gemm(const Sparse24CpuArgs& p) {
  const int64_t n_tiles = p.n / kTileN, quads = p.k / kQuadK;
  ParallelFor(size_t(n_tiles), [&](size_t lo, size_t hi) {
    Quad q;
    std::vector<float> acc(size_t(p.m) * kTileN);
    for (size_t nt = lo; nt < hi; nt++) {
      std::fill(acc.begin(), acc.end(), 0.f);
      for (int64_t kq = 0; kq < quads; kq++) {
        DecodeQuad(p, kq, int64_t(nt), q);
        for (int r = 0; r < p.m; r++) {
          const uint16_t* a = p.a + size_t(r) * p.k;
          for (int row = 0; row < kTileN; row++) {
            float s = 0.f;
            for (int i = 0; i < 64; i++) s += HalfToFloat(a[q.idx[row][i]]) * q.val[row][i];
            acc[size_t(r) * kTileN + row] += s;
          }
        }
      }
      for (int r = 0; r < p.m; r++)
        for (int row = 0; row < kTileN; row++) {
          const int64_t col = int64_t(nt) * kTileN + row;
          float v = acc[size_t(r) * kTileN + row];
          if (p.bias) v += HalfToFloat(p.bias[col]);
          p.c[size_t(r) * p.n + col] = FloatToHalf(v);
        }
    }
  });
}

}  // namespace marlin
