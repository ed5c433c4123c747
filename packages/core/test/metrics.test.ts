import { describe, expect, it } from "vitest";
import { Rng, relativeError, runSeed } from "../src/index.js";

describe("relativeError", () => {
  it("is ||out - ref|| / ||ref|| and never passes a NaN", () => {
    const seed = runSeed();
    console.log(`seed ${seed}`);
    const ref = new Rng(seed).fillNormal(new Float64Array(1000));
    const out = ref.map((v) => v * 1.001);
    expect(relativeError(out, ref)).toBeCloseTo(1e-3, 9);
    expect(relativeError(ref, ref)).toBe(0);
    out[7] = Number.NaN;
    expect(relativeError(out, ref) < 1).toBe(false);
    expect(() => relativeError(new Float64Array(3), ref)).toThrow(RangeError);
  });
});
