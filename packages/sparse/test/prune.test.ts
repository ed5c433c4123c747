// Magnitude 2:4 pruning, then RTN quantization: pruned positions get the zero code and pack.
import { Rng, runSeed, ShapeError } from "@marlin/core";
import { dequantize, quantizeRtn } from "@marlin/format";
import { describe, expect, it } from "vitest";
import { is24Sparse, magnitudeSparse24, packSparse24, pruneMagnitude24, sparse24ToDense, unpackSparse24 } from "../src/index.js";

const seed = runSeed();
console.log(`sparse24 prune tests: MARLIN_SEED=${seed}`);
const rng = new Rng(seed);

describe("pruneMagnitude24", () => {
  it("keeps the 2 largest |w| of every 4 inputs of each output", () => {
    const k = 64;
    const n = 24;
    const w = rng.fillNormal(new Float32Array(k * n));
    const p = pruneMagnitude24(w, k, n);
    expect(is24Sparse(p, k, n)).toBe(true);
    for (let i = 0; i < k; i += 4)
      for (let j = 0; j < n; j++) {
        const a = [0, 1, 2, 3].map((d) => Math.abs(w[(i + d) * n + j])).sort((x, y) => y - x);
        const kept = [0, 1, 2, 3].filter((d) => p[(i + d) * n + j] !== 0);
        expect(kept.length).toBe(2);
        for (const d of kept) {
          expect(p[(i + d) * n + j]).toBe(w[(i + d) * n + j]);
          expect(Math.abs(w[(i + d) * n + j])).toBeGreaterThanOrEqual(a[1]);
        }
      }
  });
  it("ties keep the lower inputs", () => {
    const w = new Float32Array([1, 1, 1, 1]);
    expect(Array.from(pruneMagnitude24(w, 4, 1))).toEqual([1, 1, 0, 0]);
  });
  it("refuses bad shapes and values", () => {
    expect(() => pruneMagnitude24(new Float32Array(6), 6, 1)).toThrow(ShapeError);
    expect(() => pruneMagnitude24(new Float32Array(7), 4, 2)).toThrow(ShapeError);
    expect(() => pruneMagnitude24(new Float32Array([Number.NaN, 0, 0, 0]), 4, 1)).toThrow(/NaN/);
  });
  for (const g of [128, -1])
    it(`pruned then RTN-quantized (group ${g}): exact zeros, packs, dense form matches`, () => {
      const k = 256;
      const n = 48;
      const w = pruneMagnitude24(rng.fillNormal(new Float32Array(k * n), 0.05), k, n);
      const layer = quantizeRtn(w, k, n, { bits: 4, groupSize: g, symmetric: true });
      const dq = dequantize(layer);
      for (let x = 0; x < w.length; x++) if (w[x] === 0) expect(dq[x]).toBe(0);
      const dense = sparse24ToDense(packSparse24(layer)); // [n, k]
      for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) expect(dense[j * k + i]).toBe(dq[i * n + j]);
    });
  it("magnitudeSparse24 = prune, RTN, pack; refuses shapes off the layout first", () => {
    const k = 128;
    const n = 32;
    const w = rng.fillNormal(new Float32Array(k * n), 0.05);
    const p = magnitudeSparse24(w, k, n);
    const want = quantizeRtn(pruneMagnitude24(w, k, n), k, n, { bits: 4, groupSize: 128, symmetric: true });
    expect(unpackSparse24(p)).toEqual(want);
    expect(() => magnitudeSparse24(new Float32Array(96 * 32), 96, 32)).toThrow(/k % 128/);
    expect(() => magnitudeSparse24(w, k, n, { groupSize: 32 })).toThrow(/group size 32/);
  });
});
