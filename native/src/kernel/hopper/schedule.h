#pragma once
// Work division of the Hopper kernel (host and device; the standalone emulator checks it on the CPU).
//
// Output tiles are BN features x BM tokens; each has `ks` k-stages of 64. With T tiles on G resident
// blocks (one per SM), the first floor(T / G) * G tiles go round-robin, whole ("data-parallel");
// the rest are cut into equal stripes of k-stages ("stream-K"), one stripe per block, at most
// kMaxSlices per tile. A stripe covers at most two tiles (sk_iters <= ks), so a block owns at most two
// partial tiles: slot 0 for the first, 1 for the second. The block that finishes a split tile last
// sums every slice in k order (deterministic) and resets the tile's counter to zero.
//
// Tiles are numbered in groups of kGroupRows token tiles, features varying slowest within a group,
// so the blocks running at one time share weight tiles and activation tiles in L2.
#ifdef __CUDACC__
#define HOPPER_HD __host__ __device__ __forceinline__
#else
#define HOPPER_HD inline
#endif

namespace marlin {
namespace hopper {

constexpr int kGroupRows = 8;
constexpr int kMaxSlices = 8;

struct Schedule {
  int tm, tn, ks;  // token tiles, feature tiles, k-stages per tile
  int grid;        // blocks
  int dp_tiles;    // tiles [0, dp_tiles): whole, tile b + i * grid to block b
  int sk_iters;    // k-stages per stream-K stripe (0 when there is none)
  int sk_units;    // k-stages of the stream-K tiles [dp_tiles, tm * tn)
};

// A contiguous k range [k0, k1) of one tile, in the order a block works through them.
struct Span {
  int tile, k0, k1;
};

struct SpanCursor {
  int next_dp, u, u_end;
  HOPPER_HD void Init(const Schedule& s, int block) {
    next_dp = block;
    u = block * s.sk_iters < s.sk_units ? block * s.sk_iters : s.sk_units;
    u_end = u + s.sk_iters < s.sk_units ? u + s.sk_iters : s.sk_units;
  }
  HOPPER_HD bool Next(const Schedule& s, Span& sp) {
    if (next_dp < s.dp_tiles) {
      sp.tile = next_dp;
      sp.k0 = 0;
      sp.k1 = s.ks;
      next_dp += s.grid;
      return true;
    }
    if (u < u_end) {
      const int t = u / s.ks;
      sp.tile = s.dp_tiles + t;
      sp.k0 = u - t * s.ks;
      sp.k1 = sp.k0 + (u_end - u) < s.ks ? sp.k0 + (u_end - u) : s.ks;
      u += sp.k1 - sp.k0;
      return true;
    }
    return false;
  }
};

HOPPER_HD bool IsWhole(const Schedule& s, const Span& sp) { return sp.k0 == 0 && sp.k1 == s.ks; }

// The blocks that hold slices of stream-K tile `sk` (= tile - dp_tiles), first to last in k order.
HOPPER_HD void SliceBlocks(const Schedule& s, int sk, int& b0, int& b1) {
  b0 = sk * s.ks / s.sk_iters;
  b1 = (sk * s.ks + s.ks - 1) / s.sk_iters;
}
// Partial slot of block b's slice of stream-K tile sk.
HOPPER_HD int PartialSlot(const Schedule& s, int b, int sk) { return 2 * b + ((b * s.sk_iters) / s.ks == sk ? 0 : 1); }

// Tile index -> (token tile, feature tile).
HOPPER_HD void TileCoords(const Schedule& s, int tile, int& tm, int& tn) {
  const int per_group = kGroupRows * s.tn;
  const int group = tile / per_group;
  const int first = group * kGroupRows;
  const int rows = s.tm - first < kGroupRows ? s.tm - first : kGroupRows;
  const int r = tile - group * per_group;
  tm = first + r % rows;
  tn = r / rows;
}

// The schedule for `tiles` = tm * tn tiles of `ks` stages on at most `max_grid` blocks.
inline Schedule MakeSchedule(int tm, int tn, int ks, int max_grid) {
  Schedule s{};
  s.tm = tm;
  s.tn = tn;
  s.ks = ks;
  const long long tiles = static_cast<long long>(tm) * tn;
  const long long units = tiles * ks;
  long long g = max_grid < 1 ? 1 : max_grid;
  if (g > units) g = units;
  s.dp_tiles = static_cast<int>((tiles / g) * g);
  const long long sk_tiles = tiles - s.dp_tiles;
  s.sk_units = static_cast<int>(sk_tiles * ks);
  if (s.sk_units > 0) {
    long long it = (s.sk_units + g - 1) / g;
    const long long min_it = (ks + kMaxSlices - 1) / kMaxSlices;  // bounds the slices one tile sums
    if (it < min_it) it = min_it;
    if (it > ks) it = ks;
    s.sk_iters = static_cast<int>(it);
    const long long sk_blocks = (s.sk_units + it - 1) / it;
    if (s.dp_tiles == 0) g = sk_blocks;  // no block without work
  }
  s.grid = static_cast<int>(g);
  return s;
}

}  // namespace hopper
}  // namespace marlin
