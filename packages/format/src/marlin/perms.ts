/**
 * Permutation tables of the Marlin layout (our own derivation of the published format; see the
 * package README for what each entry means).
 */

/** Interleave inside each packed int32 word: 4-bit holds 8 values, 8-bit holds 4. */
export const INTERLEAVE_4 = [0, 2, 4, 6, 1, 3, 5, 7] as const;
export const INTERLEAVE_8 = [0, 2, 1, 3] as const;

export function interleaveFor(bits: 4 | 8): readonly number[] {
  return bits === 4 ? INTERLEAVE_4 : INTERLEAVE_8;
}

const weightPerms = new Map<number, Int32Array>();

/**
 * The 1024-entry permutation over one 16 x 64 block (four 16x16 tiles laid out tile after tile,
 * each row-major). Entry e of the output row takes element perm[e] of the block.
 *
 * Lane t (0..31) of a warp holds, for the B operand of m16n8k16, rows 2(t%4), 2(t%4)+1,
 * 2(t%4)+8, 2(t%4)+9 of column t/4 (first n8 half) and column t/4 + 8 (second half); the lane's
 * 8 values are taken from each of the 4 tiles in turn. Then each group of 8 (4-bit) or 4
 * (8-bit) is interleaved so the dequantizer's bit tricks yield values in order.
 */
export function weightPerm(bits: 4 | 8): Int32Array {
  let p = weightPerms.get(bits);
  if (p) return p;
  const base: number[] = [];
  for (let lane = 0; lane < 32; lane++) {
    const col = lane >> 2;
    const r = 2 * (lane & 3);
    const lanePart: number[] = [];
    for (const half of [0, 8]) {
      for (const row of [r, r + 1, r + 8, r + 9]) lanePart.push(16 * row + col + half);
    }
    for (let tile = 0; tile < 4; tile++) for (const x of lanePart) base.push(x + 256 * tile);
  }
  const il = interleaveFor(bits);
  p = new Int32Array(1024);
  for (let g = 0; g < 1024; g += il.length) {
    for (let i = 0; i < il.length; i++) p[g + i] = base[g + il[i]];
  }
  weightPerms.set(bits, p);
  return p;
}

/** 64-entry scale permutation for grouped scales (and for zero points, always). */
export const SCALE_PERM: Int32Array = (() => {
  const p = new Int32Array(64);
  for (let i = 0; i < 8; i++) for (let j = 0; j < 8; j++) p[i * 8 + j] = i + 8 * j;
  return p;
})();

/** 32-entry scale permutation for per-channel scales (group size -1, or == k). */
export const SCALE_PERM_SINGLE: Int32Array = (() => {
  const p = new Int32Array(32);
  const offs = [0, 1, 8, 9, 16, 17, 24, 25];
  for (let i = 0; i < 4; i++) for (let j = 0; j < 8; j++) p[i * 8 + j] = 2 * i + offs[j];
  return p;
})();

export function invert(p: Int32Array): Int32Array {
  const inv = new Int32Array(p.length);
  for (let i = 0; i < p.length; i++) inv[p[i]] = i;
  return inv;
}
