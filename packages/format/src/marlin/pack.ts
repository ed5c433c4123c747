import { AlignmentError, InvalidArgumentError, ShapeError } from "@marlin/core";
import { type Bits, numGroups, type QuantizedLayer, validateLayer } from "../quantize.js";
import { interleaveFor, SCALE_PERM, SCALE_PERM_SINGLE } from "./perms.js";

/** A layer in the Marlin layout, ready for the kernel (see README, "Marlin layouts"). */
export interface MarlinLayer {
  k: number;
  n: number;
  bits: Bits;
  groupSize: number;
  symmetric: boolean;
  /** Int32 [k/16, n*16*bits/32]: [k/16, 2n] for 4-bit, [k/16, 4n] for 8-bit. */
  qweight: Int32Array;
  /** fp16 bits [groups, n], columns permuted in blocks of 64 (grouped) or 32 (per-channel). */
  scales: Uint16Array;
  /** Int32 [groups, n*bits/32]: zero points permuted, interleaved and packed; iff asymmetric. */
  zeros?: Int32Array;
  /** Act-order: activations are gathered as A[:, perm]; int32 [k]. */
  perm?: Int32Array;
  /** Act-order: g_idx in packed (sorted) order; int32 [k]. */
  gIdx?: Int32Array;
}

export const MARLIN_TILE = 16;
/** Smallest n and k multiples the packer takes (the kernel adds its own, stricter rules). */
export const MARLIN_N_MULTIPLE = 64;
export const MARLIN_K_MULTIPLE = 16;

/** True when scales use the 32-entry per-channel permutation. */
export function isPerChannel(k: number, groupSize: number): boolean {
  return groupSize === -1 || groupSize >= k;
}

export function marlinShapes(k: number, n: number, bits: Bits, groupSize: number) {
  const groups = numGroups(k, groupSize);
  return {
    qweight: [k / MARLIN_TILE, (n * MARLIN_TILE * bits) / 32] as [number, number],
    scales: [groups, n] as [number, number],
    zeros: [groups, (n * bits) / 32] as [number, number],
  };
}

function checkShape(k: number, n: number): void {
  if (k % MARLIN_K_MULTIPLE !== 0) throw new AlignmentError(`Marlin layout needs k % 16 == 0, got k=${k}`);
  if (n % MARLIN_N_MULTIPLE !== 0) throw new AlignmentError(`Marlin layout needs n % 64 == 0, got n=${n}`);
}

/*
 * The fast paths below walk the lane table of `weightPerm` directly instead of looking it up:
 * lane L (c = L >> 2, r = 2 * (L & 3)) of tile t takes rows r, r+1, r+8, r+9 of columns c and
 * c + 8, and after the interleave a 4-bit word holds (r,c) (r+8,c) (r,c+8) (r+8,c+8) (r+1,c)
 * (r+9,c) (r+1,c+8) (r+9,c+8); an 8-bit word pair holds (r,c) (r+8,c) (r+1,c) (r+9,c), then the
 * same at column c + 8. Words run lane-major, tile-minor. The tests check these against the
 * table-driven slow packer.
 */

/** Packs q [k, n] (row-major, values < 2^bits) into Marlin tiles. */
export function packMarlinWeights(q: Uint8Array, k: number, n: number, bits: Bits): Int32Array {
  checkShape(k, n);
  if (q.length !== k * n) throw new ShapeError(`q has ${q.length} elements, expected ${k * n}`);
  const out = new Int32Array((k * n * bits) / 32);
  let o = 0;
  for (let band = 0; band < k * n; band += 16 * n) {
    for (let b = band; b < band + n; b += 64) {
      for (let lane = 0; lane < 32; lane++) {
        const p0 = b + 2 * (lane & 3) * n + (lane >> 2); // row r
        const p1 = p0 + n; // row r + 1
        const p8 = p0 + 8 * n; // row r + 8
        const p9 = p8 + n; // row r + 9
        if (bits === 4) {
          for (let t = 0; t < 64; t += 16) {
            out[o++] =
              q[p0 + t] |
              (q[p8 + t] << 4) |
              (q[p0 + t + 8] << 8) |
              (q[p8 + t + 8] << 12) |
              (q[p1 + t] << 16) |
              (q[p9 + t] << 20) |
              (q[p1 + t + 8] << 24) |
              (q[p9 + t + 8] << 28);
          }
        } else {
          for (let t = 0; t < 64; t += 16) {
            out[o++] = q[p0 + t] | (q[p8 + t] << 8) | (q[p1 + t] << 16) | (q[p9 + t] << 24);
            out[o++] = q[p0 + t + 8] | (q[p8 + t + 8] << 8) | (q[p1 + t + 8] << 16) | (q[p9 + t + 8] << 24);
          }
        }
      }
    }
  }
  return out;
}

/** Inverse of packMarlinWeights. */
export function unpackMarlinWeights(packed: Int32Array, k: number, n: number, bits: Bits): Uint8Array {
  checkShape(k, n);
  if (packed.length !== (k * n * bits) / 32) {
    throw new ShapeError(`qweight has ${packed.length} words, expected ${(k * n * bits) / 32}`);
  }
  const q = new Uint8Array(k * n);
  let o = 0;
  for (let band = 0; band < k * n; band += 16 * n) {
    for (let b = band; b < band + n; b += 64) {
      for (let lane = 0; lane < 32; lane++) {
        const p0 = b + 2 * (lane & 3) * n + (lane >> 2);
        const p1 = p0 + n;
        const p8 = p0 + 8 * n;
        const p9 = p8 + n;
        if (bits === 4) {
          for (let t = 0; t < 64; t += 16) {
            const w = packed[o++];
            q[p0 + t] = w & 15;
            q[p8 + t] = (w >>> 4) & 15;
            q[p0 + t + 8] = (w >>> 8) & 15;
            q[p8 + t + 8] = (w >>> 12) & 15;
            q[p1 + t] = (w >>> 16) & 15;
            q[p9 + t] = (w >>> 20) & 15;
            q[p1 + t + 8] = (w >>> 24) & 15;
            q[p9 + t + 8] = w >>> 28;
          }
        } else {
          for (let t = 0; t < 64; t += 16) {
            const w = packed[o++];
            q[p0 + t] = w & 255;
            q[p8 + t] = (w >>> 8) & 255;
            q[p1 + t] = (w >>> 16) & 255;
            q[p9 + t] = w >>> 24;
            const v = packed[o++];
            q[p0 + t + 8] = v & 255;
            q[p8 + t + 8] = (v >>> 8) & 255;
            q[p1 + t + 8] = (v >>> 16) & 255;
            q[p9 + t + 8] = v >>> 24;
          }
        }
      }
    }
  }
  return q;
}

function permuteBlocks<T extends Uint16Array | Uint8Array>(src: T, perm: Int32Array, inverse: boolean): T {
  const out = new (src.constructor as { new (n: number): T })(src.length);
  const p = perm.length;
  if (src.length % p !== 0) throw new ShapeError(`length ${src.length} is not a multiple of ${p}`);
  for (let b = 0; b < src.length; b += p) {
    for (let i = 0; i < p; i++) {
      if (inverse) out[b + perm[i]] = src[b + i];
      else out[b + i] = src[b + perm[i]];
    }
  }
  return out;
}

/** Permutes scales [groups, n] into Marlin order (64-entry grouped or 32-entry per-channel). */
export function permuteMarlinScales(scales: Uint16Array, k: number, n: number, groupSize: number): Uint16Array {
  if (scales.length !== numGroups(k, groupSize) * n) throw new ShapeError(`scales length ${scales.length}`);
  return permuteBlocks(scales, isPerChannel(k, groupSize) ? SCALE_PERM_SINGLE : SCALE_PERM, false);
}

export function unpermuteMarlinScales(scales: Uint16Array, k: number, n: number, groupSize: number): Uint16Array {
  if (scales.length !== numGroups(k, groupSize) * n) throw new ShapeError(`scales length ${scales.length}`);
  return permuteBlocks(scales, isPerChannel(k, groupSize) ? SCALE_PERM_SINGLE : SCALE_PERM, true);
}

/**
 * Zero points [groups, n] -> Int32 [groups, n*bits/32]: the 64-entry scale permutation (always
 * the grouped one, since zeros apply on every MMA), then the weight interleave inside each
 * word, then packed low bits first.
 */
export function packMarlinZeros(zeros: Uint8Array, groups: number, n: number, bits: Bits): Int32Array {
  if (zeros.length !== groups * n) throw new ShapeError(`zeros length ${zeros.length}, expected ${groups * n}`);
  if (n % 64 !== 0) throw new AlignmentError(`n=${n} is not a multiple of 64`);
  const z = permuteBlocks(zeros, SCALE_PERM, false);
  const il = interleaveFor(bits);
  const per = 32 / bits;
  const out = new Int32Array(z.length / per);
  for (let w = 0; w < out.length; w++) {
    let v = 0;
    for (let i = 0; i < per; i++) v |= z[w * per + il[i]] << (bits * i);
    out[w] = v;
  }
  return out;
}

export function unpackMarlinZeros(packed: Int32Array, groups: number, n: number, bits: Bits): Uint8Array {
  const per = 32 / bits;
  if (packed.length * per !== groups * n) throw new ShapeError(`zeros has ${packed.length} words`);
  const il = interleaveFor(bits);
  const mask = (1 << bits) - 1;
  const z = new Uint8Array(groups * n);
  for (let w = 0; w < packed.length; w++) {
    for (let i = 0; i < per; i++) z[w * per + il[i]] = (packed[w] >>> (bits * i)) & mask;
  }
  return permuteBlocks(z, SCALE_PERM, true);
}

/** Stable argsort of g_idx (a counting sort: groups are small integers). */
export function actOrderPerm(gIdx: Int32Array, groups: number): Int32Array {
  const count = new Int32Array(groups + 1);
  for (let i = 0; i < gIdx.length; i++) {
    const g = gIdx[i];
    if (g < 0 || g >= groups) throw new InvalidArgumentError(`g_idx[${i}]=${g} is outside [0, ${groups})`);
    count[g + 1]++;
  }
  for (let g = 0; g < groups; g++) count[g + 1] += count[g];
  const perm = new Int32Array(gIdx.length);
  for (let i = 0; i < gIdx.length; i++) perm[count[gIdx[i]]++] = i;
  return perm;
}

function gatherRows(q: Uint8Array, perm: Int32Array, n: number): Uint8Array {
  const out = new Uint8Array(q.length);
  for (let i = 0; i < perm.length; i++) out.set(q.subarray(perm[i] * n, perm[i] * n + n), i * n);
  return out;
}

function scatterRows(q: Uint8Array, perm: Int32Array, n: number): Uint8Array {
  const out = new Uint8Array(q.length);
  for (let i = 0; i < perm.length; i++) out.set(q.subarray(i * n, i * n + n), perm[i] * n);
  return out;
}

/** Packs a quantized layer into the Marlin layout. */
export function packMarlin(layer: QuantizedLayer): MarlinLayer {
  validateLayer(layer);
  const { k, n, bits, groupSize, symmetric } = layer;
  checkShape(k, n);
  const groups = numGroups(k, groupSize);
  let q = layer.q;
  let perm: Int32Array | undefined;
  let gIdx: Int32Array | undefined;
  if (layer.gIdx) {
    perm = actOrderPerm(layer.gIdx, groups);
    gIdx = new Int32Array(k);
    for (let i = 0; i < k; i++) gIdx[i] = layer.gIdx[perm[i]];
    q = gatherRows(q, perm, n);
  }
  const out: MarlinLayer = {
    k,
    n,
    bits,
    groupSize,
    symmetric,
    qweight: packMarlinWeights(q, k, n, bits),
    scales: permuteMarlinScales(layer.scales, k, n, groupSize),
  };
  if (!symmetric) out.zeros = packMarlinZeros(layer.zeros!, groups, n, bits);
  if (perm) {
    out.perm = perm;
    out.gIdx = gIdx;
  }
  return out;
}

/** Inverse of packMarlin: back to plain q [k, n], scales, zeros and the original g_idx. */
export function unpackMarlin(packed: MarlinLayer): QuantizedLayer {
  const { k, n, bits, groupSize, symmetric } = packed;
  checkShape(k, n);
  if (bits !== 4 && bits !== 8) throw new InvalidArgumentError(`bits must be 4 or 8, got ${bits}`);
  const groups = numGroups(k, groupSize);
  let q = unpackMarlinWeights(packed.qweight, k, n, bits);
  const layer: QuantizedLayer = {
    k,
    n,
    bits,
    groupSize,
    symmetric,
    q,
    scales: unpermuteMarlinScales(packed.scales, k, n, groupSize),
  };
  if (!symmetric) {
    if (!packed.zeros) throw new InvalidArgumentError("an asymmetric Marlin layer needs zeros");
    layer.zeros = unpackMarlinZeros(packed.zeros, groups, n, bits);
  }
  if (packed.perm) {
    const { perm } = packed;
    if (perm.length !== k || !packed.gIdx || packed.gIdx.length !== k) {
      throw new ShapeError(`act-order needs perm and gIdx of length k=${k}`);
    }
    const seen = new Uint8Array(k);
    for (let i = 0; i < k; i++) {
      const p = perm[i];
      if (p < 0 || p >= k || seen[p]) throw new InvalidArgumentError(`perm is not a permutation (entry ${i}: ${p})`);
      seen[p] = 1;
    }
    q = scatterRows(q, perm, n);
    layer.q = q;
    const g = new Int32Array(k);
    for (let i = 0; i < k; i++) g[perm[i]] = packed.gIdx[i];
    layer.gIdx = g;
  }
  return layer;
}
