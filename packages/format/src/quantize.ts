import { InvalidArgumentError, ShapeError } from "@marlin/core";
import { f16Lookup, numberToF16, roundEven } from "./half.js";

export type Bits = 4 | 8;

/**
 * A quantized linear layer in plain form. W is [k, n] (k inputs, n outputs: the transpose of a
 * torch Linear weight). value[i][j] = (q[i][j] - zero) * scale, where the group of row i is
 * gIdx[i] when given, else floor(i / groupSize); zero is `zeros[g*n + j]` when asymmetric, else
 * 2^(bits-1) (8 for 4-bit, 128 for 8-bit).
 */
export interface QuantizedLayer {
  k: number;
  n: number;
  bits: Bits;
  /** -1: one group over all of k. */
  groupSize: number;
  symmetric: boolean;
  /** [k*n] row-major [k, n], each in [0, 2^bits). */
  q: Uint8Array;
  /** fp16 bits, [groups*n] row-major [groups, n]. */
  scales: Uint16Array;
  /** Raw zero points (not minus one), [groups*n]; present iff !symmetric. */
  zeros?: Uint8Array;
  /** Group of each input row (act-order); [k]. Absent: floor(i / groupSize). */
  gIdx?: Int32Array;
}

export interface QuantizeOptions {
  bits: Bits;
  /** -1 (one group), or a divisor of k such as 32, 64, 128. */
  groupSize: number;
  symmetric: boolean;
  /** Act-order: the group of each row (g_idx, [k]); groups then need not be contiguous. */
  gIdx?: Int32Array;
}

/** Number of groups along k. */
export function numGroups(k: number, groupSize: number): number {
  return groupSize === -1 ? 1 : Math.ceil(k / groupSize);
}

/** The symmetric zero: 8 for 4-bit, 128 for 8-bit. */
export function symmetricZero(bits: Bits): number {
  return 1 << (bits - 1);
}

function checkDims(k: number, n: number): void {
  if (!Number.isSafeInteger(k) || !Number.isSafeInteger(n) || k <= 0 || n <= 0) {
    throw new ShapeError(`invalid layer shape k=${k}, n=${n}`);
  }
}

export function checkBitsAndGroup(bits: number, groupSize: number, k: number): void {
  if (bits !== 4 && bits !== 8) throw new InvalidArgumentError(`bits must be 4 or 8, got ${bits}`);
  if (groupSize !== -1 && (!Number.isSafeInteger(groupSize) || groupSize <= 0)) {
    throw new InvalidArgumentError(`group size must be -1 or positive, got ${groupSize}`);
  }
  if (groupSize !== -1 && k % groupSize !== 0) {
    throw new ShapeError(`k=${k} is not a multiple of the group size ${groupSize}`);
  }
}

/** Index of the first byte above 15, or -1; checks 4 bytes per step where aligned (hot path of packing). */
function firstAbove15(a: Uint8Array): number {
  let i = 0;
  const head = Math.min(a.length, (4 - (a.byteOffset & 3)) & 3);
  for (; i < head; i++) if (a[i] > 15) return i;
  const words = (a.length - i) >> 2;
  const w = new Uint32Array(a.buffer, a.byteOffset + i, words);
  let acc = 0;
  for (let j = 0; j < words; j++) acc |= w[j];
  if ((acc & 0xf0f0f0f0) !== 0) {
    for (let j = i; j < a.length; j++) if (a[j] > 15) return j;
  }
  for (i += words * 4; i < a.length; i++) if (a[i] > 15) return i;
  return -1;
}

/** Checks every field of a layer: sizes, value ranges, g_idx range. Throws typed errors. */
export function validateLayer(layer: QuantizedLayer): void {
  const { k, n, bits, groupSize } = layer;
  checkDims(k, n);
  if (bits !== 4 && bits !== 8) throw new InvalidArgumentError(`bits must be 4 or 8, got ${bits}`);
  if (groupSize !== -1 && (!Number.isSafeInteger(groupSize) || groupSize <= 0)) {
    throw new InvalidArgumentError(`group size must be -1 or positive, got ${groupSize}`);
  }
  if (!layer.gIdx && groupSize !== -1 && k % groupSize !== 0) {
    throw new ShapeError(`k=${k} is not a multiple of the group size ${groupSize}`);
  }
  const groups = numGroups(k, groupSize);
  if (!(layer.q instanceof Uint8Array) || layer.q.length !== k * n) {
    throw new ShapeError(`q must be a Uint8Array of k*n=${k * n}, got ${layer.q?.length}`);
  }
  if (!(layer.scales instanceof Uint16Array) || layer.scales.length !== groups * n) {
    throw new ShapeError(`scales must be a Uint16Array of groups*n=${groups * n}, got ${layer.scales?.length}`);
  }
  if (bits === 4) {
    const bad = firstAbove15(layer.q);
    if (bad >= 0) throw new InvalidArgumentError(`q[${bad}]=${layer.q[bad]} is out of range for 4 bits`);
  }
  if (layer.symmetric) {
    if (layer.zeros) throw new InvalidArgumentError("a symmetric layer must not carry zeros");
  } else {
    if (!(layer.zeros instanceof Uint8Array) || layer.zeros.length !== groups * n) {
      throw new ShapeError(`zeros must be a Uint8Array of groups*n=${groups * n}, got ${layer.zeros?.length}`);
    }
    if (bits === 4) {
      const bad = firstAbove15(layer.zeros);
      if (bad >= 0) throw new InvalidArgumentError(`zeros[${bad}]=${layer.zeros[bad]} is out of range for 4 bits`);
    }
  }
  if (layer.gIdx) {
    if (!(layer.gIdx instanceof Int32Array) || layer.gIdx.length !== k) {
      throw new ShapeError(`gIdx must be an Int32Array of k=${k}, got ${layer.gIdx?.length}`);
    }
    for (let i = 0; i < k; i++) {
      const g = layer.gIdx[i];
      if (g < 0 || g >= groups) throw new InvalidArgumentError(`gIdx[${i}]=${g} is outside [0, ${groups})`);
    }
  }
}

/** Group of each row: gIdx when present, else floor(i / groupSize). */
export function rowGroups(layer: Pick<QuantizedLayer, "k" | "groupSize" | "gIdx">): Int32Array {
  if (layer.gIdx) return layer.gIdx;
  const g = new Int32Array(layer.k);
  if (layer.groupSize !== -1) for (let i = 0; i < layer.k; i++) g[i] = Math.floor(i / layer.groupSize);
  return g;
}

/**
 * Round-to-nearest quantization of W [k, n] (row-major float32). Scales are rounded to fp16
 * first and the integers computed from the rounded scale, so dequantize reproduces exactly
 * what a kernel computes. Symmetric: scale = 2*absmax/(2^bits - 1), zero 2^(bits-1).
 * Asymmetric: scale = (max - min)/(2^bits - 1) over a range that includes 0,
 * zero = round(-min/scale). (The GPTQ quantizer's conventions.)
 */
export function quantizeRtn(w: Float32Array, k: number, n: number, opts: QuantizeOptions): QuantizedLayer {
  checkDims(k, n);
  const { bits, groupSize, symmetric, gIdx } = opts;
  if (gIdx) {
    if (bits !== 4 && bits !== 8) throw new InvalidArgumentError(`bits must be 4 or 8, got ${bits}`);
    if (groupSize === -1 || !Number.isSafeInteger(groupSize) || groupSize <= 0) {
      throw new InvalidArgumentError(`act-order needs a positive group size, got ${groupSize}`);
    }
  } else {
    checkBitsAndGroup(bits, groupSize, k);
  }
  if (w.length !== k * n) throw new ShapeError(`w has ${w.length} elements, expected k*n=${k * n}`);
  const maxq = (1 << bits) - 1;
  const groups = numGroups(k, groupSize);
  if (gIdx) {
    if (gIdx.length !== k) throw new ShapeError(`gIdx has ${gIdx.length} entries, expected k=${k}`);
    for (let i = 0; i < k; i++) {
      if (gIdx[i] < 0 || gIdx[i] >= groups) throw new InvalidArgumentError(`gIdx[${i}]=${gIdx[i]} is outside [0, ${groups})`);
    }
  }
  const grp = rowGroups({ k, groupSize, gIdx });
  const q = new Uint8Array(k * n);
  const scales = new Uint16Array(groups * n);
  const zeros = symmetric ? undefined : new Uint8Array(groups * n);
  // Per (group, column) range; the range always includes 0 (GPTQ's convention).
  const lo = new Float64Array(groups * n);
  const hi = new Float64Array(groups * n);
  for (let i = 0; i < k; i++) {
    const row = i * n;
    const g = grp[i] * n;
    for (let j = 0; j < n; j++) {
      const v = w[row + j];
      if (!Number.isFinite(v)) throw new InvalidArgumentError(`w[${i}][${j}] is ${v}`);
      if (v < lo[g + j]) lo[g + j] = v;
      if (v > hi[g + j]) hi[g + j] = v;
    }
  }
  const f16 = f16Lookup();
  const sf = lo; // reused: fp16 scale value per (group, column)
  const zf = hi; // reused: zero per (group, column)
  for (let x = 0; x < groups * n; x++) {
    const range = symmetric ? 2 * Math.max(-lo[x], hi[x]) : hi[x] - lo[x];
    const s = range === 0 ? 1 : range / maxq;
    let sbits = numberToF16(s);
    if (!Number.isFinite(f16[sbits])) {
      throw new InvalidArgumentError(`group ${Math.floor(x / n)}, column ${x % n}: scale ${s} overflows fp16`);
    }
    if (f16[sbits] === 0) sbits = 1; // smallest subnormal: keeps q finite for tiny ranges
    const s16 = f16[sbits];
    const z = symmetric ? symmetricZero(bits) : Math.min(maxq, Math.max(0, roundEven(-lo[x] / s16)));
    scales[x] = sbits;
    if (zeros) zeros[x] = z;
    sf[x] = s16;
    zf[x] = z;
  }
  for (let i = 0; i < k; i++) {
    const row = i * n;
    const g = grp[i] * n;
    for (let j = 0; j < n; j++) {
      const v = roundEven(w[row + j] / sf[g + j]) + zf[g + j];
      q[row + j] = Math.max(0, Math.min(v, maxq));
    }
  }
  const layer: QuantizedLayer = { k, n, bits, groupSize, symmetric, q, scales };
  if (zeros) layer.zeros = zeros;
  if (gIdx) layer.gIdx = Int32Array.from(gIdx);
  return layer;
}

/** value = (q - zero) * scale, as float32 [k, n]. */
export function dequantize(layer: QuantizedLayer): Float32Array {
  validateLayer(layer);
  const { k, n, q, scales, zeros } = layer;
  const f16 = f16Lookup();
  const groups = rowGroups(layer);
  const zsym = symmetricZero(layer.bits);
  const out = new Float32Array(k * n);
  for (let i = 0; i < k; i++) {
    const g = groups[i] * n;
    const row = i * n;
    for (let j = 0; j < n; j++) {
      const z = zeros ? zeros[g + j] : zsym;
      out[row + j] = (q[row + j] - z) * f16[scales[g + j]];
    }
  }
  return out;
}

/** Deep copy (tests, and callers that mutate). */
export function cloneLayer(l: QuantizedLayer): QuantizedLayer {
  return {
    ...l,
    q: l.q.slice(),
    scales: l.scales.slice(),
    zeros: l.zeros?.slice(),
    gIdx: l.gIdx?.slice(),
  };
}
