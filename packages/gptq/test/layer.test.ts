import { Rng, runSeed } from "@marlin/core";
import { dequantize as formatDequantize, packMarlin, quantizeRtn, unpackMarlin } from "@marlin/format";
import { describe, expect, it } from "vitest";
import { type Bits, dequantize, gptqQuantize, HessianAccumulator, rtnQuantize, toQuantizedLayer } from "../src/index.js";
import { correlatedInputs } from "./helpers.js";

const seed = runSeed();
console.log(`layer: MARLIN_SEED=${seed}`);

describe("results as @marlin/format QuantizedLayers", () => {
  const rng = new Rng(seed);
  const k = 256;
  const n = 128;
  const acc = new HessianAccumulator(k);
  acc.add(correlatedInputs(rng, 2 * k, k));
  const h = acc.snapshot();
  const w = rng.fillNormal(new Float32Array(k * n), 0.05) as Float32Array;

  const cases: Array<{ bits: Bits; groupSize: number; symmetric: boolean; actOrder: boolean }> = [
    { bits: 4, groupSize: 128, symmetric: true, actOrder: false },
    { bits: 4, groupSize: -1, symmetric: true, actOrder: false },
    { bits: 4, groupSize: 128, symmetric: true, actOrder: true },
    { bits: 4, groupSize: 64, symmetric: false, actOrder: true },
    { bits: 8, groupSize: 32, symmetric: true, actOrder: false },
  ];
  it.each(cases)("bits=$bits g=$groupSize sym=$symmetric act=$actOrder: same values, packs for Marlin", (c) => {
    const r = gptqQuantize(w, h, c);
    const layer = toQuantizedLayer(r);
    expect(layer.zeros === undefined).toBe(c.symmetric);
    expect(layer.gIdx === undefined).toBe(!c.actOrder);
    const mine = dequantize(r);
    const theirs = formatDequantize(layer);
    let mismatches = 0;
    for (let i = 0; i < mine.length; i++) if (Math.fround(mine[i]) !== theirs[i]) mismatches++;
    expect(mismatches).toBe(0);
    if (c.bits === 4) {
      const back = unpackMarlin(packMarlin(layer));
      expect(Buffer.from(back.q).equals(Buffer.from(layer.q))).toBe(true);
      expect(Buffer.from(back.scales.buffer).equals(Buffer.from(layer.scales.buffer))).toBe(true);
    }
  });

  it("our RTN matches @marlin/format's quantizeRtn code for code", () => {
    for (const c of cases.filter((x) => !x.actOrder).concat([{ bits: 4, groupSize: 32, symmetric: false, actOrder: false }])) {
      const mine = toQuantizedLayer(rtnQuantize(w, k, c));
      const theirs = quantizeRtn(w, k, n, c);
      expect(Buffer.from(mine.q).equals(Buffer.from(theirs.q))).toBe(true);
      expect(Array.from(mine.scales)).toEqual(Array.from(theirs.scales));
      expect(mine.zeros && Array.from(mine.zeros)).toEqual(theirs.zeros && Array.from(theirs.zeros));
    }
  });
});
