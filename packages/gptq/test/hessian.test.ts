import { InvalidArgumentError, Rng, runSeed, ShapeError } from "@marlin/core";
import { describe, expect, it } from "vitest";
import { HessianAccumulator } from "../src/index.js";
import { correlatedInputs, directHessian, relErr } from "./helpers.js";

const seed = runSeed();
console.log(`hessian: MARLIN_SEED=${seed}`);

describe("HessianAccumulator", () => {
  const rng = new Rng(seed);
  it("equals 2/N X^T X over batches of any size (running rescale)", () => {
    for (const k of [5, 67, 256]) {
      const tokens = 300 + rng.int(0, 200);
      const x = correlatedInputs(rng, tokens, k);
      const acc = new HessianAccumulator(k);
      let t = 0;
      while (t < tokens) {
        const b = Math.min(tokens - t, rng.int(1, 260));
        // alternate float32 and float64 batches; the reference sees the same float32 rounding
        if (b % 2) {
          const f = Float32Array.from(x.subarray(t * k, (t + b) * k));
          x.set(f, t * k);
          acc.add(f);
        } else {
          acc.add(x.subarray(t * k, (t + b) * k), b);
        }
        t += b;
      }
      expect(acc.count).toBe(tokens);
      const ref = directHessian(x, tokens, k);
      expect(relErr(acc.matrix, ref)).toBeLessThan(1e-12);
      const h = acc.snapshot();
      for (let i = 0; i < k; i++) for (let j = 0; j < i; j++) expect(h[i * k + j]).toBe(h[j * k + i]);
    }
  });

  it("refuses bad shapes and non-finite inputs", () => {
    const acc = new HessianAccumulator(4);
    expect(() => acc.add(new Float32Array(6))).toThrow(ShapeError);
    expect(() => acc.add(Float32Array.from([1, 2, Number.NaN, 4]))).toThrow(InvalidArgumentError);
    expect(acc.count).toBe(0);
    expect(() => new HessianAccumulator(0)).toThrow(InvalidArgumentError);
  });
});
