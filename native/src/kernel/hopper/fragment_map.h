#pragma once
// Where each consumer thread's data sits (host and device: the kernel and the CPU emulator in
// standalone/emulate.cpp use the same functions).
//
// Consumer warp cw (0..7) owns features [16 NJ cw, 16 NJ (cw + 1)) of the block tile: 16 x 16 tiles
// tile0 .. tile0 + NJ - 1 of Marlin 64-column block blk. Lane (g = lane / 4, t = lane % 4) holds, per
// tile, rows 2t, 2t+1, 2t+8, 2t+9 of columns g and g+8 of the k16 row: its words follow each other
// in the layout, so NJ tiles are one load.
#include "kernel/hopper/schedule.h"  // HOPPER_HD

namespace marlin {
namespace hopper {

// Position of column c (0..63 inside a 64-column block) in the layout's scale rows.
HOPPER_HD int GroupedScalePos(int c) { return 8 * (c & 7) + (c >> 3); }
HOPPER_HD int PerChannelScalePos(int c) {
  const int ci = c & 31;
  return (c - ci) + 8 * ((ci & 7) >> 1) + 2 * (ci >> 3) + (ci & 1);
}

template <int NJ>
HOPPER_HD int WarpBlock(int cw) {
  return (cw * NJ) >> 2;
}
template <int NJ>
HOPPER_HD int WarpTile0(int cw) {
  return (cw * NJ) & 3;
}
// Byte offset of the lane's first word in one Marlin k16 row of the block tile.
template <int BITS, int NJ>
HOPPER_HD int WeightByte(int cw, int lane) {
  const int blk = WarpBlock<NJ>(cw), tile0 = WarpTile0<NJ>(cw);
  return BITS == 4 ? ((blk * 32 + lane) * 4 + tile0) * 4 : ((blk * 32 + lane) * 8 + 2 * tile0) * 4;
}
// Byte offset, in a grouped scale row of the tile, of NJ words: word j = (scale of column g,
// scale of column g + 8) of tile tile0 + j (the layout's 64-column permutation: column c at 8 (c & 7) + c / 8).
template <int NJ>
HOPPER_HD int ScaleByte(int cw, int lane) {
  return (WarpBlock<NJ>(cw) * 64 + 8 * (lane >> 2) + 2 * WarpTile0<NJ>(cw)) * 2;
}
// Byte offset, in a 4-bit zero-point row of the tile, of the word holding columns g + 8 j of the block.
template <int NJ>
HOPPER_HD int ZeroByte(int cw, int lane) {
  return (WarpBlock<NJ>(cw) * 8 + (lane >> 2)) * 4;
}

// Accumulator i of row block j of a thread (wgmma m64nN D layout, with rows = features and columns =
// tokens): feature offset inside the warp's 16 NJ features, and token offset inside the tile.
HOPPER_HD int AccFeature(int j, int i, int lane) { return 16 * j + (lane >> 2) + 8 * ((i >> 1) & 1); }
HOPPER_HD int AccToken(int i, int lane) { return 8 * (i >> 2) + 2 * (lane & 3) + (i & 1); }

}  // namespace hopper
}  // namespace marlin
