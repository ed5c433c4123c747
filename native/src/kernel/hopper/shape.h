#pragma once
// Tile shapes of the Hopper kernel and their shared-memory plan (host and device).
//
// A block: two consumer warpgroups and a producer warpgroup (384 threads). The block's output tile is
// BN = 128 * NJ features x BM tokens; consumer warp w (0..7) owns features [16 NJ w, 16 NJ (w+1)),
// NJ wgmma row blocks of 16 each (warpgroup w / 4 issues NJ m64nBMk16 MMAs per k16 step). That
// mapping lets warp w read its NJ tiles' words of every lane as one NJ-word load from the Marlin
// layout as it is (no repacking).
//
// One pipeline stage holds 64 k-rows: activations BM x 64 (128-byte rows, 128-byte swizzle, as the
// tensor copy writes them and wgmma reads them), the weight rows (4 Marlin k16 rows of the tile),
// up to two scale rows and two zero-point rows.
#include <cstddef>

namespace marlin {
namespace hopper {

constexpr int kConsumerThreads = 256;
constexpr int kThreads = kConsumerThreads + 128;  // + the producer warpgroup (one thread copies)
constexpr int kProducerRegs = 40, kConsumerRegs = 232;  // 128 * 40 + 256 * 232 <= 65536
constexpr int kStageK = 64;
constexpr size_t kSmemLimit = 227 * 1024;  // sm_90 opt-in maximum per block
constexpr int kMaxStages = 8;

template <int BITS, bool ZP, int BM, int NJ>
struct Shape {
  static_assert(BITS == 4 || BITS == 8, "4- or 8-bit weights");
  static_assert(!(ZP && BITS == 8), "8-bit weights are symmetric");
  static_assert(BM == 64 || BM == 128 || BM == 256, "token tile");
  static_assert(NJ == 1 || NJ == 2 || NJ == 4, "row blocks per warp");
  static constexpr int kBN = 128 * NJ;
  static constexpr int kWarpFeatures = 16 * NJ;
  static constexpr int kAccPerJ = BM / 2;  // fp32 accumulators per thread per row block
  static constexpr int kAcc = NJ * kAccPerJ;
  static_assert(kAcc <= 128, "accumulators must stay in registers");

  static constexpr int kABytes = BM * 128;
  static constexpr int kWRowBytes = kBN * 2 * BITS;  // one Marlin k16 row of the tile's columns
  static constexpr int kWBytes = 4 * kWRowBytes;
  static constexpr int kSRowBytes = kBN * 2;
  static constexpr int kSBytes = 2 * kSRowBytes;
  static constexpr int kZRowBytes = kBN * BITS / 8;
  static constexpr int kZBytes = ZP ? 2 * kZRowBytes : 0;
  static constexpr int kWOffset = kABytes;
  static constexpr int kSOffset = kWOffset + kWBytes;
  static constexpr int kZOffset = kSOffset + kSBytes;
  static constexpr int kStageBytes = (kZOffset + kZBytes + 1023) / 1024 * 1024;  // keeps each A tile 1024-aligned

  // Epilogue: each consumer warp stages 16 features x kEpiTokens tokens at a time (rows padded to
  // 24 values: conflict-free writes, 16-byte aligned reads).
  static constexpr int kEpiTokens = BM < 128 ? BM : 128;
  static constexpr int kEpiStride = 24;
  static constexpr int kEpiWarpBytes = kEpiTokens * kEpiStride * 2;
  static constexpr int kEpiBytes = 8 * kEpiWarpBytes;
  static constexpr int kBarBytes = 256;  // full[kMaxStages], empty[kMaxStages], a flag
  static constexpr int kFixed = 1024 + kEpiBytes + kBarBytes;  // 1024: aligning the dynamic base
  static constexpr int kFit = static_cast<int>((kSmemLimit - kFixed) / kStageBytes);
  static constexpr int kStages = kFit < kMaxStages ? kFit : kMaxStages;
  static_assert(kStages >= 2, "at least two stages");
  static constexpr size_t kSmemBytes = size_t(kFixed) + size_t(kStages) * kStageBytes;
  static constexpr int kEpiOffset = kStages * kStageBytes;
  static constexpr int kBarOffset = kEpiOffset + kEpiBytes;

  // fp32 partial of one tile (split k): kAcc per consumer thread.
  static constexpr int kPartialFloats = kConsumerThreads * kAcc;
};

}  // namespace hopper
}  // namespace marlin
