// CPU emulation of the Hopper kernel's data flow, for checking its index math without a GPU.
//
// It runs the kernel's schedule (schedule.h) block by block, fills each stage the way the producer
// does (the tensor copy's 128-byte swizzle included), decodes every consumer thread's fragments from
// the stage bytes at the offsets of fragment_map.h, assembles the wgmma operands as PTX defines them
// (A from the threads' registers, B through the shared-memory descriptor with the swizzle applied),
// and writes C through the kernel's epilogue mapping, split tiles through the partial slots and
// counters. What it cannot check is the hardware's reading of those definitions; the GPU harness does.
//
// Build and run (CPU only): g++ -std=c++17 -O2 -I native/src native/src/kernel/hopper/standalone/emulate.cpp -o /tmp/emulate && /tmp/emulate
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "common/half.h"
#include "kernel/hopper/fragment_map.h"
#include "kernel/hopper/schedule.h"
#include "kernel/hopper/shape.h"
#include "kernel/marlin/layout.h"

using namespace marlin;
using namespace marlin::hopper;

namespace {

struct Problem {
  int m, n, k, bits, group;  // group -1: per-channel
  bool zp, bf16, bias;
  int grid;
};

float Round(bool bf16, float x) { return bf16 ? Bf16ToFloat(FloatToBf16(x)) : HalfToFloat(FloatToHalf(x)); }
uint16_t Bits16(bool bf16, float x) { return bf16 ? FloatToBf16(x) : FloatToHalf(x); }
float Value(bool bf16, uint16_t h) { return bf16 ? Bf16ToFloat(h) : HalfToFloat(h); }

// The 128-byte swizzle as the tensor copy applies it (and wgmma undoes it): byte address bits 4..6
// XOR bits 7..9 (the stage's activation tile starts 1024-byte aligned).
size_t Swizzle(size_t addr) { return addr ^ (((addr >> 7) & 7) << 4); }

template <int BITS, bool ZP, int BM, int NJ>
int Run(const Problem& pr, uint64_t seed) {
  using S = Shape<BITS, ZP, BM, NJ>;
  const int m = pr.m, n = pr.n, k = pr.k;
  const bool bf16 = pr.bf16;
  const bool per_channel = pr.group == -1 || pr.group >= k;
  const int gs = per_channel ? k : pr.group;
  const int groups = per_channel ? 1 : k / gs;
  int gshift = 7;
  if (!per_channel) {
    gshift = 0;
    while ((1 << gshift) < gs) gshift++;
  }
  std::mt19937_64 rng(seed);
  const int maxq = (1 << BITS) - 1;
  std::vector<uint8_t> q(size_t(k) * n), z(size_t(groups) * n, uint8_t(1 << (BITS - 1)));
  for (auto& x : q) x = static_cast<uint8_t>(rng() % (maxq + 1));
  if (ZP)
    for (auto& x : z) x = static_cast<uint8_t>(rng() % (maxq + 1));
  std::uniform_real_distribution<float> ud(0.5f, 1.5f);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<uint16_t> sc(size_t(groups) * n), a(size_t(m) * k), bias(n);
  for (auto& x : sc) x = Bits16(bf16, 0.02f * ud(rng));
  for (auto& x : a) x = Bits16(bf16, nd(rng));
  for (auto& x : bias) x = Bits16(bf16, nd(rng));
  // The Marlin layout, as @marlin/format packs it.
  const std::vector<uint32_t> packed = layout::Pack(q.data(), k, n, BITS);
  std::vector<uint16_t> sc_p(sc.size());
  for (int gi = 0; gi < groups; gi++) layout::PermuteRow(&sc[size_t(gi) * n], &sc_p[size_t(gi) * n], n, per_channel);
  std::vector<uint32_t> z_p(ZP ? size_t(groups) * n * BITS / 32 : 0);
  if (ZP)
    for (int gi = 0; gi < groups; gi++) layout::PackZeroRow(&z[size_t(gi) * n], n, BITS, &z_p[size_t(gi) * n * BITS / 32]);
  const uint8_t* qb = reinterpret_cast<const uint8_t*>(packed.data());
  const uint8_t* sb = reinterpret_cast<const uint8_t*>(sc_p.data());
  const uint8_t* zb = reinterpret_cast<const uint8_t*>(z_p.data());

  const Schedule sched = MakeSchedule((m + BM - 1) / BM, n / S::kBN, k / kStageK, pr.grid);
  std::vector<float> partial(size_t(2) * sched.grid * S::kPartialFloats, std::nanf(""));
  std::vector<int> counters(std::max(sched.grid, 1), 0);
  std::vector<uint16_t> c(size_t(m) * n, 0xffff);  // poison
  std::vector<int> writes(size_t(m) * n, 0);
  std::vector<uint8_t> stage(S::kStageBytes);
  const int stage_rows = gshift == 5 ? 2 : 1;
  const int srows = per_channel ? 0 : stage_rows, zrows = ZP ? (per_channel ? 1 : stage_rows) : 0;
  const size_t w_row = size_t(n) * 2 * BITS, z_row = size_t(n) * BITS / 8;

  for (int blk = 0; blk < sched.grid; blk++) {
    SpanCursor cur;
    cur.Init(sched, blk);
    Span sp;
    while (cur.Next(sched, sp)) {
      int tm, tn;
      TileCoords(sched, sp.tile, tm, tn);
      // D of each warpgroup's NJ MMAs: [wg][j][64 rows][BM tokens], fp32 as the tensor cores keep it.
      std::vector<double> d(size_t(2) * NJ * 64 * BM, 0.0);
      // Per-thread decode state kept across k16 steps, as in the kernel.
      std::vector<float> scale(256 * NJ * 2), zero(256 * NJ * 2);
      for (int th = 0; th < 256; th++)
        for (int j = 0; j < NJ; j++)
          for (int h = 0; h < 2; h++) {
            zero[(th * NJ + j) * 2 + h] = float(1 << (BITS - 1));
            if (per_channel) {
              const int f = tn * S::kBN + (th / 32) * S::kWarpFeatures + 16 * j + (th % 32) / 4 + 8 * h;
              scale[(th * NJ + j) * 2 + h] = Value(bf16, sc_p[PerChannelScalePos(f)]);
            }
          }
      for (int kst = sp.k0; kst < sp.k1; kst++) {
        // ---- producer: the stage's bytes
        std::fill(stage.begin(), stage.end(), 0xAB);
        for (int r = 0; r < BM; r++)
          for (int ch = 0; ch < 8; ch++) {
            const int row = tm * BM + r;
            uint8_t* dst = &stage[Swizzle(size_t(r) * 128 + ch * 16)];
            if (row < m)
              std::memcpy(dst, &a[size_t(row) * k + kst * kStageK + ch * 8], 16);
            else
              std::memset(dst, 0, 16);
          }
        for (int r = 0; r < 4; r++)
          std::memcpy(&stage[S::kWOffset + r * S::kWRowBytes], qb + size_t(kst) * 4 * w_row + r * w_row + size_t(tn) * S::kWRowBytes, S::kWRowBytes);
        const int g0 = per_channel ? 0 : (kst * kStageK) >> gshift;
        for (int r = 0; r < srows; r++)
          std::memcpy(&stage[S::kSOffset + r * S::kSRowBytes], sb + (size_t(g0 + r) * n + size_t(tn) * S::kBN) * 2, S::kSRowBytes);
        for (int r = 0; r < zrows; r++)
          std::memcpy(&stage[S::kZOffset + r * S::kZRowBytes], zb + size_t(g0 + r) * z_row + size_t(tn) * S::kZRowBytes, S::kZRowBytes);
        // ---- consumers
        for (int s = 0; s < 4; s++) {
          const int row = (s * 16) >> gshift;
          // A operands of both warpgroups' MMAs, assembled from every thread's fragment.
          std::vector<float> amat(size_t(2) * NJ * 64 * 16, std::nanf(""));
          for (int th = 0; th < 256; th++) {
            const int cw = th / 32, lane = th % 32, gq = lane >> 2, t = lane & 3;
            const int tile0 = WarpTile0<NJ>(cw);
            if (s == 0 || (s == 2 && stage_rows == 2)) {
              if (!per_channel)
                for (int j = 0; j < NJ; j++)
                  for (int h = 0; h < 2; h++) {
                    uint16_t v;
                    std::memcpy(&v, &stage[S::kSOffset + row * S::kSRowBytes + ScaleByte<NJ>(cw, lane) + 4 * j + 2 * h], 2);
                    scale[(th * NJ + j) * 2 + h] = Value(bf16, v);
                  }
              if (ZP) {
                uint32_t zw;
                std::memcpy(&zw, &stage[S::kZOffset + (per_channel ? 0 : row) * S::kZRowBytes + ZeroByte<NJ>(cw, lane)], 4);
                for (int j = 0; j < NJ; j++)
                  for (int h = 0; h < 2; h++) zero[(th * NJ + j) * 2 + h] = float((zw >> (4 * (tile0 + j) + 16 * h)) & 15);
              }
            }
            for (int j = 0; j < NJ; j++) {
              // v[0..3] of marlin_lane.cuh: (x, y) pairs, from the tile's word(s).
              float v[4][2];
              uint32_t w[2] = {0, 0};
              const int words = BITS == 4 ? 1 : 2;
              std::memcpy(w, &stage[S::kWOffset + s * S::kWRowBytes + WeightByte<BITS, NJ>(cw, lane) + 4 * words * j], 4 * words);
              int qv[4][2];
              if (BITS == 4) {
                for (int i = 0; i < 4; i++) {
                  qv[i][0] = (w[0] >> (4 * i)) & 15;
                  qv[i][1] = (w[0] >> (4 * i + 16)) & 15;
                }
              } else {
                for (int hh = 0; hh < 2; hh++) {
                  qv[2 * hh][0] = w[hh] & 255;
                  qv[2 * hh][1] = (w[hh] >> 16) & 255;
                  qv[2 * hh + 1][0] = (w[hh] >> 8) & 255;
                  qv[2 * hh + 1][1] = (w[hh] >> 24) & 255;
                }
              }
              for (int i = 0; i < 4; i++) {
                const int h = i >> 1;  // v0, v1: column g; v2, v3: column g + 8
                for (int e = 0; e < 2; e++)
                  v[i][e] = Round(bf16, (float(qv[i][e]) - zero[(th * NJ + j) * 2 + h]) * scale[(th * NJ + j) * 2 + h]);
              }
              // Registers a[0..3] = v0, v2, v1, v3; register r, half e holds A[row g + 8 (r & 1)][k 2t + e + 8 (r >> 1)].
              const float* regs[4] = {v[0], v[2], v[1], v[3]};
              const int wg = cw / 4, w4 = cw % 4;
              for (int r = 0; r < 4; r++)
                for (int e = 0; e < 2; e++) {
                  const int arow = 16 * w4 + gq + 8 * (r & 1), acol = 2 * t + e + 8 * (r >> 1);
                  amat[((size_t(wg) * NJ + j) * 64 + arow) * 16 + acol] = regs[r][e];
                }
            }
          }
          // B through the descriptor: K-major, 128-byte swizzle, start = tile + 32 s, 8-row atoms 1024 B apart.
          std::vector<float> bmat(size_t(16) * BM);
          for (int tok = 0; tok < BM; tok++)
            for (int kk = 0; kk < 16; kk++) {
              const size_t addr = size_t(s) * 32 + size_t(tok / 8) * 1024 + size_t(tok % 8) * 128 + size_t(kk) * 2;
              uint16_t v;
              std::memcpy(&v, &stage[Swizzle(addr)], 2);
              bmat[kk * BM + tok] = Value(bf16, v);
            }
          for (int wg = 0; wg < 2; wg++)
            for (int j = 0; j < NJ; j++)
              for (int r = 0; r < 64; r++)
                for (int kk = 0; kk < 16; kk++) {
                  const double av = amat[((size_t(wg) * NJ + j) * 64 + r) * 16 + kk];
                  if (std::isnan(av)) {
                    std::printf("A operand element (wg %d, j %d, row %d, k %d) not set by any thread\n", wg, j, r, kk);
                    return 1;
                  }
                  double* dr = &d[((size_t(wg) * NJ + j) * 64 + r) * BM];
                  for (int tok = 0; tok < BM; tok++) dr[tok] += av * bmat[kk * BM + tok];
                }
        }
      }
      // ---- epilogue: thread (cw, lane) accumulator (j, i) is D[wg][j][16 (cw % 4) + AccFeature - 16 j][AccToken].
      auto acc = [&](int th, int j, int i) {
        const int cw = th / 32, lane = th % 32;
        return float(d[((size_t(cw / 4) * NJ + j) * 64 + 16 * (cw % 4) + AccFeature(j, i, lane) - 16 * j) * BM + AccToken(i, lane)]);
      };
      auto emit = [&](int th, int j, int i, float v) {
        const int cw = th / 32, lane = th % 32;
        const int f = tn * S::kBN + cw * S::kWarpFeatures + AccFeature(j, i, lane);
        const int r = tm * BM + AccToken(i, lane);
        if (r >= m) return;
        const float b = pr.bias ? Value(bf16, bias[f]) : 0.f;
        c[size_t(r) * n + f] = Bits16(bf16, v + b);
        writes[size_t(r) * n + f]++;
      };
      if (IsWhole(sched, sp)) {
        for (int th = 0; th < 256; th++)
          for (int j = 0; j < NJ; j++)
            for (int i = 0; i < S::kAccPerJ; i++) emit(th, j, i, acc(th, j, i));
        continue;
      }
      const int sk = sp.tile - sched.dp_tiles;
      int b0, b1;
      SliceBlocks(sched, sk, b0, b1);
      float* slot = &partial[size_t(PartialSlot(sched, blk, sk)) * S::kPartialFloats];
      for (int th = 0; th < 256; th++)
        for (int j = 0; j < NJ; j++)
          for (int i = 0; i < S::kAccPerJ; i++) slot[(size_t(j * (S::kAccPerJ / 4) + i / 4) * 256 + th) * 4 + i % 4] = acc(th, j, i);
      const int old = counters[sk]++;
      if (old != b1 - b0) continue;
      counters[sk] = 0;
      for (int th = 0; th < 256; th++)
        for (int j = 0; j < NJ; j++)
          for (int i = 0; i < S::kAccPerJ; i++) {
            float sum = 0.f;
            for (int b = b0; b <= b1; b++)
              sum += partial[size_t(PartialSlot(sched, b, sk)) * S::kPartialFloats + (size_t(j * (S::kAccPerJ / 4) + i / 4) * 256 + th) * 4 + i % 4];
            emit(th, j, i, sum);
          }
    }
  }
  // ---- checks against fp64 of the plain (unpacked) weights
  double num = 0, den = 0;
  size_t bad_writes = 0;
  for (int r = 0; r < m; r++)
    for (int f = 0; f < n; f++) {
      double ref = pr.bias ? Value(bf16, bias[f]) : 0.0;
      for (int i = 0; i < k; i++) {
        const int gi = i / gs;
        ref += double(Value(bf16, a[size_t(r) * k + i])) * (double(q[size_t(i) * n + f]) - z[size_t(gi) * n + f]) * Value(bf16, sc[size_t(gi) * n + f]);
      }
      const double o = Value(bf16, c[size_t(r) * n + f]);
      if (writes[size_t(r) * n + f] != 1) {
        if (bad_writes < 5) std::printf("  C[%d, %d] written %d times\n", r, f, writes[size_t(r) * n + f]);
        bad_writes++;
      }
      num += (o - ref) * (o - ref);
      den += ref * ref;
    }
  int nz = 0;
  for (int x : counters) nz += x != 0;
  const double rel = std::sqrt(num / den);
  const bool ok = bad_writes == 0 && nz == 0 && rel < (bf16 ? 1e-2 : 2e-3);
  std::printf("%-4s BM=%-3d NJ=%d bits=%d zp=%d %s group=%-4d bias=%d m=%-4d n=%-4d k=%-4d grid=%-3d (dp %d, sk %d x %d): rel=%.2e writes-off=%zu counters-left=%d\n",
              ok ? "ok" : "FAIL", BM, NJ, BITS, int(ZP), bf16 ? "bf16" : "f16 ", pr.group, int(pr.bias), m, n, k, sched.grid, sched.dp_tiles, sched.sk_units,
              sched.sk_iters, rel, bad_writes, nz);
  return ok ? 0 : 1;
}

// Every stripe of every schedule: each (tile, stage) exactly once, at most two partial tiles per
// block, slots unique, slices of a tile contiguous in k.
int CheckSchedules() {
  int fails = 0, cases = 0;
  for (int tm : {1, 2, 3, 9, 33})
    for (int tn : {1, 2, 5, 40, 224})
      for (int ks : {2, 3, 64, 128, 448})
        for (int grid : {1, 7, 132}) {
          const Schedule s = MakeSchedule(tm, tn, ks, grid);
          std::vector<int> seen(size_t(tm) * tn * ks, 0);
          std::vector<int> slot_users(size_t(2) * s.grid, 0);
          bool ok = s.grid >= 1 && s.grid <= grid;
          for (int b = 0; b < s.grid; b++) {
            SpanCursor cur;
            cur.Init(s, b);
            Span sp;
            int partials = 0;
            while (cur.Next(s, sp)) {
              ok = ok && sp.k0 < sp.k1 && sp.tile < tm * tn;
              for (int kk = sp.k0; kk < sp.k1; kk++) seen[size_t(sp.tile) * ks + kk]++;
              int tmi, tni;
              TileCoords(s, sp.tile, tmi, tni);
              ok = ok && tmi >= 0 && tmi < tm && tni >= 0 && tni < tn;
              if (!IsWhole(s, sp)) {
                ok = ok && sp.tile >= s.dp_tiles;
                partials++;
                slot_users[PartialSlot(s, b, sp.tile - s.dp_tiles)]++;
                int b0, b1;
                SliceBlocks(s, sp.tile - s.dp_tiles, b0, b1);
                ok = ok && b0 <= b && b <= b1 && b1 - b0 + 1 <= kMaxSlices + 1;
              }
            }
            ok = ok && partials <= 2;
          }
          for (int x : seen) ok = ok && x == 1;
          for (int x : slot_users) ok = ok && x <= 1;
          // Every tile's coordinates are distinct.
          std::vector<int> hit(size_t(tm) * tn, 0);
          for (int t = 0; t < tm * tn; t++) {
            int a, b;
            TileCoords(s, t, a, b);
            hit[size_t(a) * tn + b]++;
          }
          for (int x : hit) ok = ok && x == 1;
          cases++;
          if (!ok) {
            fails++;
            std::printf("FAIL schedule tm=%d tn=%d ks=%d grid=%d -> grid %d dp %d sk_iters %d sk_units %d\n", tm, tn, ks, grid, s.grid, s.dp_tiles, s.sk_iters,
                        s.sk_units);
          }
        }
  std::printf("schedules: %d cases, %d failed\n", cases, fails);
  return fails;
}

}  // namespace

int main() {
  int fails = CheckSchedules();
  uint64_t seed = 1;
  // Small shapes that reach whole tiles, split tiles, two token tiles, partial token tiles.
  const Problem ps[] = {
      {70, 256, 256, 4, 128, false, false, true, 3},   {64, 512, 512, 4, 32, false, false, false, 5}, {130, 256, 256, 4, -1, false, false, false, 2},
      {33, 256, 384, 4, 64, true, false, true, 4},     {100, 256, 256, 4, 32, true, true, false, 3},  {65, 256, 256, 8, 128, false, false, false, 3},
      {200, 512, 256, 8, -1, false, true, true, 7},    {17, 256, 640, 4, -1, true, false, false, 5},
  };
  for (const Problem& p : ps) {
    fails += Run<4, false, 64, 2>(p.bits == 4 && !p.zp ? p : Problem{p.m, p.n, p.k, 4, p.group, false, p.bf16, p.bias, p.grid}, seed++);
    if (p.bits == 4 && p.zp) fails += Run<4, true, 128, 2>(p, seed++);
    if (p.bits == 8) fails += Run<8, false, 128, 2>(p, seed++);
    fails += Run<4, false, 128, 1>(Problem{p.m, 384, p.k, 4, p.group, false, p.bf16, p.bias, p.grid}, seed++);
  }
  fails += Run<4, true, 64, 2>(Problem{40, 256, 256, 4, 32, true, false, true, 3}, seed++);
  fails += Run<8, false, 64, 2>(Problem{40, 512, 256, 8, 64, false, true, false, 6}, seed++);
  fails += Run<4, true, 128, 1>(Problem{150, 384, 256, 4, 128, true, true, true, 4}, seed++);
  std::printf("EMULATION SUMMARY: %d failed\n", fails);
  return fails ? 1 : 0;
}
