import { Rng, runSeed } from "@marlin/core";
import { f16BitsToNumber, numberToF16 } from "@marlin/format";
import { describe, expect, it } from "vitest";
import { rint, roundToF16 } from "../src/index.js";

const seed = runSeed();
console.log(`fp16: MARLIN_SEED=${seed}`);

describe("fp16 value rounding", () => {
  it("knows the landmarks", () => {
    expect(roundToF16(1 + 2 ** -11)).toBe(1); // tie to even
    expect(roundToF16(1 + 3 * 2 ** -11)).toBe(1 + 2 ** -9);
    expect(roundToF16(65504)).toBe(65504);
    expect(roundToF16(65520)).toBe(Number.POSITIVE_INFINITY);
    expect(roundToF16(2 ** -24)).toBe(2 ** -24);
    expect(roundToF16(2 ** -26)).toBe(0);
    expect(roundToF16(-0.1)).toBe(-f16BitsToNumber(0x2e66));
    expect([rint(0.5), rint(1.5), rint(2.5), rint(-0.5), rint(-1.5), rint(2.4999)]).toEqual([0, 2, 2, 0, -2, 2]);
  });
  it("rounds random values to the nearest fp16 neighbour", () => {
    const rng = new Rng(seed);
    for (let i = 0; i < 2000; i++) {
      const x = rng.normal() * 2 ** rng.int(-20, 14);
      const r = roundToF16(x);
      expect(Math.abs(r - x)).toBeLessThanOrEqual(Math.abs(x) * 2 ** -11 + 2 ** -25);
      expect(f16BitsToNumber(numberToF16(r))).toBe(r);
    }
  });
});
