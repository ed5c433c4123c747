import { Rng, runSeed } from "@marlin/core";
import type { LinearSource } from "@marlin/engine";
import { f16ToF32, f32ToF16 } from "@marlin/format";
import { describe, expect, it } from "vitest";
import { dequantF16Nk, dequantize, gptqQuantize, HessianAccumulator, rtnQuantize, weightKn } from "../src/index.js";
import { correlatedInputs } from "./helpers.js";

// The GPU pipeline's host layouts: W [n, k] (engine) <-> [k, n] (GPTQ), and the dequantized
// weights handed back to the GPU forward as fp16 [n, k].
const seed = runSeed();
console.log(`weights-host: MARLIN_SEED=${seed}`);

describe("host weight layouts", () => {
  it("weightKn transposes fp16 and fp32 sources exactly (shapes not multiples of the tile)", () => {
    const rng = new Rng(seed);
    const n = 70 + rng.int(0, 60);
    const k = 130 + rng.int(0, 60);
    const w = f16ToF32(f32ToF16(rng.fillNormal(new Float32Array(n * k)) as Float32Array));
    const f16: LinearSource = { kind: "dense", n, k, weight: { dtype: "float16", shape: [n, k], data: f32ToF16(w) }, name: "a" };
    const f32: LinearSource = { kind: "dense", n, k, weight: { dtype: "float32", shape: [n, k], data: w }, name: "b" };
    for (const src of [f16, f32]) {
      const kn = weightKn(src);
      let bad = 0;
      for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) if (kn[i * n + j] !== w[j * k + i]) bad++;
      expect(bad).toBe(0);
    }
  });

  it("dequantF16Nk is the fp16 rounding of the dequantized layer, transposed (4-bit g32, 8-bit per-channel, act-order)", () => {
    const rng = new Rng(seed + 1);
    const k = 192;
    const n = 72;
    const x = correlatedInputs(rng, 256, k);
    const acc = new HessianAccumulator(k);
    acc.add(x, 256);
    const w = rng.fillNormal(new Float32Array(k * n)) as Float32Array;
    for (let i = 0; i < w.length; i++) w[i] *= 0.05;
    const results = [
      gptqQuantize(w, acc.matrix, { bits: 4, groupSize: 32 }),
      gptqQuantize(w, acc.matrix, { bits: 4, groupSize: 64, actOrder: true, symmetric: false }),
      rtnQuantize(w, k, { bits: 8, groupSize: -1, symmetric: false }),
    ];
    for (const r of results) {
      const dq = dequantize(r); // [k, n] float64
      const ref = new Float32Array(n * k);
      for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) ref[j * k + i] = dq[i * n + j];
      const got = dequantF16Nk(r);
      expect(Array.from(got)).toEqual(Array.from(f32ToF16(ref)));
      expect(got.some((v) => v !== 0)).toBe(true);
    }
  });
});
