/**
 * The 2:4 sparse 4-bit layout (native/src/sparse/layout.h holds the same rules for the kernels).
 *
 * W is [n (out), k (in)]; in every 4 consecutive inputs of an output, at most 2 values are nonzero.
 * The kept 2 of each such chunk are stored (4-bit codes, symmetric, zero 8) with 2-bit indices of
 * their positions (the metadata). The layout is cut in 16 (n) x 32 (k) tiles, each the sparse A
 * operand of one `mma.sp m16n8k32` (the weights are A and the activations B, so the kernel computes
 * C^T), and tiles are grouped by 4 along k (a "quad" of 128 inputs: one scale group) so that each
 * lane reads the words of 4 tiles with one 16-byte load, as in the dense format:
 *
 *   values word  ((kq * n/16 + nt) * 32 + lane) * 4 + j     (tile kt = 4 kq + j)
 *   meta word    ((kq * n/16 + nt) * 16 + 2 g + h) * 4 + j  (lanes with lane % 4 = h < 2)
 *
 * Lane (g = lane >> 2, t = lane & 3) holds 8 codes, element e at nibble NIBBLE_POS[e] (the dense
 * format's interleave [0,2,4,6,1,3,5,7], so (w >> 4i) & 0x000f000f yields elements 2i, 2i+1 = A
 * register i): elements 0,1 are row g, chunk t; 2,3 row g+8, chunk t; 4,5 row g, chunk 4+t; 6,7
 * row g+8, chunk 4+t; each pair is a chunk's 2 kept codes in ascending position.
 * Meta word of lane (g, h) (selector 0: lanes 0 and 1 of each quad): bits 4c..4c+3 hold chunk 4h+c
 * of row g and bits 16+4c.. the same chunk of row g+8; a chunk's nibble is idx0 | idx1 << 2 with
 * idx0 < idx1 (mma.sp needs two distinct indices even where fewer than 2 values are nonzero).
 * Scales are fp16 [groups, n] in plain order (group 128, or one group: per-channel).
 */
export const TILE_N = 16;
export const TILE_K = 32;
/** 4 tiles along k: one 16-byte load per lane, one group of 128. */
export const QUAD_K = 128;
/** The symmetric 4-bit zero: pruned positions hold this code. */
export const ZERO_CODE = 8;
/** Nibble position of element e inside a lane's word. */
export const NIBBLE_POS: readonly number[] = [0, 4, 1, 5, 2, 6, 3, 7];
/** Group sizes the layout takes (-1: one group over k, per-channel scales). */
export const SPARSE24_GROUP_SIZES: readonly number[] = [-1, 128];

/** A layer in the 2:4 layout. */
export interface Sparse24Layer {
  k: number;
  n: number;
  bits: 4;
  /** -1 (per-channel) or 128. */
  groupSize: number;
  /** Int32 [k/128, 8n]: k*n/16 words of kept codes. */
  values: Int32Array;
  /** Int32 [k/128, 4n]: k*n/32 words of 2-bit indices. */
  meta: Int32Array;
  /** fp16 bits [groups, n]. */
  scales: Uint16Array;
}

export function valueWord(kq: number, nt: number, nTiles: number, lane: number, j: number): number {
  return ((kq * nTiles + nt) * 32 + lane) * 4 + j;
}

export function metaWord(kq: number, nt: number, nTiles: number, g: number, h: number, j: number): number {
  return ((kq * nTiles + nt) * 16 + 2 * g + h) * 4 + j;
}

/** The number of scale groups along k. */
export function sparse24Groups(k: number, groupSize: number): number {
  return groupSize === -1 ? 1 : k / groupSize;
}

/** Tensor shapes of a layer: values [k/128, 8n], meta [k/128, 4n], scales [groups, n]. */
export function sparse24Shapes(k: number, n: number, groupSize: number) {
  return {
    values: [k / QUAD_K, 8 * n] as [number, number],
    meta: [k / QUAD_K, 4 * n] as [number, number],
    scales: [sparse24Groups(k, groupSize), n] as [number, number],
  };
}

/** Bytes one matmul streams (codes, metadata, scales). */
export function sparse24WeightBytes(p: Pick<Sparse24Layer, "k" | "n" | "groupSize">): number {
  return (p.k * p.n) / 4 + (p.k * p.n) / 8 + sparse24Groups(p.k, p.groupSize) * p.n * 2;
}
