import { InvalidArgumentError, Rng, runSeed, ShapeError } from "@marlin/core";
import { describe, expect, it } from "vitest";
import { type Bits, dequantize, f16BitsToNumber, numGroups, quantizeRtn } from "../src/index.js";
import { relErr } from "./helpers.js";

const seed = runSeed();
console.log(`quantize seed ${seed}`);

describe("quantizeRtn / dequantize", () => {
  const cases: [Bits, number, boolean][] = [];
  for (const bits of [4, 8] as Bits[])
    for (const g of [-1, 32, 64, 128]) for (const sym of [true, false]) cases.push([bits, g, sym]);

  it.each(cases)("bits %i group %i sym %s: error within half a step, values in range", (bits, groupSize, symmetric) => {
    const rng = new Rng(seed + bits * 1000 + groupSize + (symmetric ? 1 : 0));
    const k = 256;
    const n = 96;
    const w = new Float32Array(k * n);
    rng.fillNormal(w, 0.05);
    // a column with an offset, so asymmetric ranges are exercised
    for (let i = 0; i < k; i++) w[i * n + 3] += 0.2;
    const layer = quantizeRtn(w, k, n, { bits, groupSize, symmetric });
    const maxq = (1 << bits) - 1;
    const groups = numGroups(k, groupSize);
    expect(layer.scales.length).toBe(groups * n);
    expect(layer.q.every((v) => v <= maxq)).toBe(true);
    if (symmetric) expect(layer.zeros).toBeUndefined();
    else expect(layer.zeros!.every((z) => z <= maxq)).toBe(true);
    const deq = dequantize(layer);
    const gs = groupSize === -1 ? k : groupSize;
    for (let i = 0; i < k; i++) {
      for (let j = 0; j < n; j++) {
        const s = f16BitsToNumber(layer.scales[Math.floor(i / gs) * n + j]);
        const err = Math.abs(deq[i * n + j] - w[i * n + j]);
        // Symmetric: grid step s, only the top value clips by half a step. Asymmetric: the
        // rounded zero shifts the grid by up to half a step, so the range edge can be a step off.
        // The fp16 rounding of the scale (relative 2^-11) moves the top of the grid by up to maxq/2 of it.
        const bound = ((symmetric ? 0.5 : 1) + (1 << bits) * 2 ** -11) * s + 1e-7;
        if (err > bound) expect.fail(`[${i},${j}] err ${err} > ${bound}`);
      }
    }
    const rel = relErr(deq, w);
    const expected = bits === 4 ? 0.2 : 0.012;
    expect(rel).toBeLessThan(expected);
    expect(rel).toBeGreaterThan(0);
  });

  it("uses the stored zeros: 8 for 4-bit and 128 for 8-bit symmetric", () => {
    const w = Float32Array.of(-1, 0.5, 0, 1); // k=4, n=1
    const l4 = quantizeRtn(w, 4, 1, { bits: 4, groupSize: -1, symmetric: true });
    // scale = 2*1/15, q = round(w/s) + 8
    const s = f16BitsToNumber(l4.scales[0]);
    expect(Math.abs(s - 2 / 15)).toBeLessThan(1e-3);
    expect(Array.from(l4.q)).toEqual([0, 12, 8, 15]); // 1/s = 7.5 -> 8 -> 16 clipped to 15
    const l8 = quantizeRtn(w, 4, 1, { bits: 8, groupSize: -1, symmetric: true });
    expect(l8.q[2]).toBe(128);
    const a4 = quantizeRtn(Float32Array.of(0, 1, 2, 3), 4, 1, { bits: 4, groupSize: -1, symmetric: false });
    expect(a4.zeros![0]).toBe(0);
    expect(Array.from(dequantize(a4))).toEqual([0, 1, 2, 3].map((v) => Math.round(v / 0.2) * f16BitsToNumber(a4.scales[0])));
  });

  it("handles all-zero groups and rejects bad input", () => {
    const l = quantizeRtn(new Float32Array(64), 32, 2, { bits: 4, groupSize: 32, symmetric: false });
    expect(Array.from(dequantize(l)).every((v) => v === 0)).toBe(true);
    expect(() => quantizeRtn(new Float32Array(10), 5, 2, { bits: 4, groupSize: 32, symmetric: true })).toThrow(
      ShapeError,
    );
    expect(() => quantizeRtn(new Float32Array(64), 32, 2, { bits: 3 as Bits, groupSize: 32, symmetric: true })).toThrow(
      InvalidArgumentError,
    );
    expect(() =>
      quantizeRtn(Float32Array.of(Number.NaN, 1), 2, 1, { bits: 4, groupSize: -1, symmetric: true }),
    ).toThrow(InvalidArgumentError);
    expect(() => quantizeRtn(new Float32Array(3), 2, 2, { bits: 4, groupSize: -1, symmetric: true })).toThrow(
      ShapeError,
    );
  });
});

describe("quantizeRtn with act-order (g_idx)", () => {
  it("groups rows by g_idx and dequantizes within the bound", () => {
    const rng = new Rng(seed ^ 0xacdc);
    const k = 256;
    const n = 64;
    const w = new Float32Array(k * n);
    rng.fillNormal(w, 0.1);
    const gIdx = Int32Array.from({ length: k }, (_, i) => Math.floor(i / 32));
    for (let i = k - 1; i > 0; i--) {
      const j = rng.int(0, i + 1);
      [gIdx[i], gIdx[j]] = [gIdx[j], gIdx[i]];
    }
    const layer = quantizeRtn(w, k, n, { bits: 4, groupSize: 32, symmetric: false, gIdx });
    expect(layer.gIdx).toEqual(gIdx);
    const deq = dequantize(layer);
    for (let i = 0; i < k; i++) {
      for (let j = 0; j < n; j++) {
        const s = f16BitsToNumber(layer.scales[gIdx[i] * n + j]);
        const err = Math.abs(deq[i * n + j] - w[i * n + j]);
        if (err > (1 + 16 * 2 ** -11) * s + 1e-7) expect.fail(`[${i},${j}] err ${err}`);
      }
    }
    // Same result as quantizing the rows sorted by group with contiguous groups.
    const perm = Array.from({ length: k }, (_, i) => i).sort((a, b) => gIdx[a] - gIdx[b] || a - b);
    const sorted = new Float32Array(k * n);
    perm.forEach((src, dst) => {
      sorted.set(w.subarray(src * n, src * n + n), dst * n);
    });
    const plain = quantizeRtn(sorted, k, n, { bits: 4, groupSize: 32, symmetric: false });
    expect(layer.scales).toEqual(plain.scales);
    expect(layer.zeros).toEqual(plain.zeros);
    perm.forEach((src, dst) => {
      expect(layer.q.subarray(src * n, src * n + n)).toEqual(plain.q.subarray(dst * n, dst * n + n));
    });
  });
});
