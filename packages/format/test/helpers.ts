import type { Rng } from "@marlin/core";
import { relativeError } from "@marlin/core";
import { type Bits, numGroups, type QuantizedLayer } from "../src/index.js";

/** A random quantized layer; act-order layers get a shuffled g_idx with every group used. */
export function randomLayer(
  rng: Rng,
  k: number,
  n: number,
  bits: Bits,
  groupSize: number,
  symmetric: boolean,
  actOrder = false,
): QuantizedLayer {
  const groups = numGroups(k, groupSize);
  const maxq = (1 << bits) - 1;
  const q = Uint8Array.from({ length: k * n }, () => rng.int(0, maxq + 1));
  // Positive normal fp16 scales in about [2^-10, 2).
  const scales = Uint16Array.from({ length: groups * n }, () => rng.int(0x1400, 0x4000));
  const layer: QuantizedLayer = { k, n, bits, groupSize, symmetric, q, scales };
  if (!symmetric) layer.zeros = Uint8Array.from({ length: groups * n }, () => rng.int(0, maxq + 1));
  if (actOrder) {
    const g = Int32Array.from({ length: k }, (_, i) => (groupSize === -1 ? 0 : Math.floor(i / groupSize)));
    for (let i = k - 1; i > 0; i--) {
      const j = rng.int(0, i + 1);
      [g[i], g[j]] = [g[j], g[i]];
    }
    layer.gIdx = g;
  }
  return layer;
}


type Arr = ArrayLike<number> & { length: number };
/** Element-wise equality with a short message at the first difference (toEqual is slow on big arrays). */
export function expectSame(a: Arr | undefined, b: Arr | undefined, what = "array"): void {
  if (a === undefined || b === undefined) {
    if (a !== b) throw new Error(`${what}: one side is undefined`);
    return;
  }
  if (a.length !== b.length) throw new Error(`${what}: length ${a.length} != ${b.length}`);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) {
      throw new Error(`${what}: first difference at ${i}: ${a[i]} != ${b[i]}`);
    }
  }
}

/** Relative error against a reference (shared with every package through @marlin/core). */
export const relErr = relativeError;
