import { InvalidArgumentError, Rng, runSeed, ShapeError } from "@marlin/core";
import { describe, expect, it } from "vitest";
import {
  type Bits,
  dequantize,
  gptqQuantize,
  HessianAccumulator,
  hessianError,
  NotPositiveDefiniteError,
  type QuantResult,
  quantizeValue,
  roundToF16,
  rtnQuantize,
} from "../src/index.js";
import { correlatedInputs, randomLayer } from "./helpers.js";

const seed = runSeed();
console.log(`gptq: MARLIN_SEED=${seed}`);

/** The classic GPTQ recipe (the defaults before damping 0.1 + range search). */
const CLASSIC = { percDamp: 0.01, clip: false } as const;

/**
 * Codes in range, fp16-exact positive scales, zeros in range (2^(bits-1) when symmetric), groups
 * in range, and each code is what rounding its own dequantized value (q - z) * s gives back.
 * Violations are counted and checked once: an expect per element is too slow.
 */
function checkRepresentable(r: QuantResult): void {
  const maxq = (1 << r.bits) - 1;
  const { k, n } = r;
  const groups = r.groupSize > 0 ? Math.ceil(k / r.groupSize) : 1;
  expect(r.q.length).toBe(k * n);
  expect(r.scales.length).toBe(groups * n);
  expect(r.zeros.length).toBe(groups * n);
  expect(r.gIdx.length).toBe(k);
  const bad = { scale: 0, zero: 0, group: 0, code: 0, dequant: 0, requant: 0 };
  for (let i = 0; i < r.scales.length; i++) {
    const s = r.scales[i];
    if (!(s > 0 && roundToF16(s) === s)) bad.scale++;
    if (r.symmetric ? r.zeros[i] !== (maxq + 1) / 2 : r.zeros[i] > maxq) bad.zero++;
  }
  const dq = dequantize(r);
  for (let i = 0; i < k; i++) {
    const g = r.gIdx[i];
    if (!(g >= 0 && g < groups)) {
      bad.group++;
      continue;
    }
    for (let j = 0; j < n; j++) {
      const q = r.q[i * n + j];
      if (q > maxq) bad.code++;
      const s = r.scales[g * n + j];
      const z = r.zeros[g * n + j];
      if (dq[i * n + j] !== (q - z) * s) bad.dequant++;
      if (quantizeValue(dq[i * n + j], s, z, maxq) !== q) bad.requant++;
    }
  }
  expect(bad).toEqual({ scale: 0, zero: 0, group: 0, code: 0, dequant: 0, requant: 0 });
}

function dampedError(w: Float32Array, r: QuantResult, h: Float64Array): number {
  const k = r.k;
  const hd = h.slice();
  let mean = 0;
  for (let i = 0; i < k; i++) mean += h[i * k + i];
  mean /= k;
  for (let i = 0; i < k; i++) {
    if (hd[i * k + i] === 0) hd[i * k + i] = 1;
    hd[i * k + i] += r.percDamp * mean;
  }
  return hessianError(w, dequantize(r), hd, k, r.n);
}

describe("GPTQ beats RTN on the Hessian-weighted error", () => {
  const rng = new Rng(seed);
  const k = 256;
  const n = 64 + 16 * rng.int(0, 5);
  const { w, h } = randomLayer(rng, k, n, 2 * k);
  const configs: Array<{ bits: Bits; groupSize: number; symmetric: boolean; actOrder: boolean; staticGroups: boolean }> = [];
  for (const bits of [4, 8] as Bits[])
    for (const groupSize of [-1, 32, 64, 128])
      for (const symmetric of [true, false])
        for (const [actOrder, staticGroups] of [
          [false, false],
          [true, false],
          [true, true],
        ]) {
          if (staticGroups && groupSize < 0) continue;
          configs.push({ bits, groupSize, symmetric, actOrder, staticGroups });
        }
  it.each(configs)("bits=$bits g=$groupSize sym=$symmetric act=$actOrder static=$staticGroups", (c) => {
    const g = gptqQuantize(w, h, { ...c, ...CLASSIC });
    const r = rtnQuantize(w, k, { ...c, hessian: h });
    checkRepresentable(g);
    checkRepresentable(r);
    const eg = hessianError(w, dequantize(g), h, k, n);
    const er = r.lossEstimate;
    console.log(`${JSON.stringify(c)} n=${n}: gptq/rtn = ${(eg / er).toFixed(3)}`);
    expect(eg).toBeLessThan(er);
    // GPTQ's own running loss is exactly the damped quadratic form of the final error
    expect(Math.abs(g.lossEstimate - dampedError(w, g, h)) / g.lossEstimate).toBeLessThan(1e-8);
    expect(g.percDamp).toBe(0.01);
    expect(g.deadInputs).toBe(0);
  });
});

describe("GPTQ details", () => {
  const rng = new Rng(seed ^ 0x5bd1e995);
  const k = 256;
  const n = 96;

  it("act-order: g_idx is non-monotone with exactly groupSize rows per group, following the permutation", () => {
    const { w, h } = randomLayer(rng, k, n, 2 * k);
    for (const gs of [32, 64, 128]) {
      const r = gptqQuantize(w, h, { groupSize: gs, actOrder: true });
      const perm = r.perm!;
      expect(Array.from(perm).sort((a, b) => a - b)).toEqual(Array.from({ length: k }, (_, i) => i));
      for (let t = 1; t < k; t++) expect(h[perm[t] * k + perm[t]]).toBeLessThanOrEqual(h[perm[t - 1] * k + perm[t - 1]]);
      const counts = new Array(k / gs).fill(0);
      for (let i = 0; i < k; i++) counts[r.gIdx[i]]++;
      expect(counts.every((c) => c === gs)).toBe(true);
      for (let t = 0; t < k; t++) expect(r.gIdx[perm[t]]).toBe(Math.floor(t / gs));
      let monotone = true;
      for (let i = 1; i < k; i++) if (r.gIdx[i] < r.gIdx[i - 1]) monotone = false;
      expect(monotone).toBe(false);
      const s = gptqQuantize(w, h, { groupSize: gs, actOrder: true, staticGroups: true });
      for (let i = 0; i < k; i++) expect(s.gIdx[i]).toBe(Math.floor(i / gs));
    }
  });

  it("dead inputs: zeroed rows, no NaN, still beats RTN", () => {
    const x = correlatedInputs(rng, 2 * k, k);
    const deadRows = [0, 5, 77, 128, 255];
    for (let t = 0; t < 2 * k; t++) for (const d of deadRows) x[t * k + d] = 0;
    const acc = new HessianAccumulator(k);
    acc.add(x);
    const h = acc.snapshot();
    const w = rng.fillNormal(new Float32Array(k * n), 0.05) as Float32Array;
    for (const cfg of [{}, { actOrder: true }, { symmetric: false, groupSize: 64 }, { groupSize: -1, bits: 8 as Bits }]) {
      const r = gptqQuantize(w, h, cfg);
      expect(r.deadInputs).toBe(deadRows.length);
      expect(Number.isFinite(r.lossEstimate)).toBe(true);
      checkRepresentable(r);
      const dq = dequantize(r);
      for (const d of deadRows) for (let j = 0; j < n; j++) expect(dq[d * n + j]).toBe(0);
      const rt = rtnQuantize(w, k, { ...cfg, hessian: h });
      expect(hessianError(w, dq, h, k, n)).toBeLessThan(rt.lossEstimate);
    }
  });

  it("range search (diag and full scores) improves GPTQ, which stays ahead of plain RTN", () => {
    const { w, h } = randomLayer(rng, k, n, 2 * k);
    for (const score of ["diag", "full"] as const) {
      const cfgs = [{ groupSize: 128 }, { groupSize: 64, symmetric: false, actOrder: true }];
      // "full" falls back to "diag" for groups over FULL_SCORE_MAX_ROWS rows, so per-channel only once
      if (score === "diag") cfgs.push({ groupSize: -1 });
      for (const cfg of cfgs) {
        const plain = gptqQuantize(w, h, { ...cfg, clip: false });
        const g = gptqQuantize(w, h, { ...cfg, clip: { score } });
        const r = rtnQuantize(w, k, { ...cfg, clip: { score }, hessian: h });
        const r0 = rtnQuantize(w, k, { ...cfg, hessian: h });
        checkRepresentable(g);
        const eg = hessianError(w, dequantize(g), h, k, n);
        const ep = hessianError(w, dequantize(plain), h, k, n);
        console.log(
          `clip ${score} ${JSON.stringify(cfg)}: gptq ${(eg / ep).toFixed(3)} of unclipped, ${(eg / r.lossEstimate).toFixed(3)} of clipped rtn; rtn ${(r.lossEstimate / r0.lossEstimate).toFixed(3)} of unclipped`,
        );
        // Not a theorem (GPTQ's updates move weights after a group's range is fixed) but wide margins
        // on every seed tried; GPTQ with clipping vs RTN with clipping is close on some seeds, so only logged.
        expect(eg).toBeLessThan(ep);
        expect(eg).toBeLessThan(r0.lossEstimate);
        // RTN's search includes the unclipped range and scores exactly its objective with "full"
        expect(r.lossEstimate).toBeLessThanOrEqual(r0.lossEstimate * (score === "full" ? 1 + 1e-12 : 1.05));
      }
    }
  });

  it("defaults to the best recipe (damping 0.1 + diag range search); the classic one stays reachable", () => {
    const { w, h } = randomLayer(rng, 128, 64, 256);
    const d = gptqQuantize(w, h, { groupSize: 32 });
    const best = gptqQuantize(w, h, { groupSize: 32, percDamp: 0.1, clip: true });
    const classic = gptqQuantize(w, h, { groupSize: 32, ...CLASSIC });
    expect(d.percDamp).toBe(0.1);
    expect(Array.from(d.q)).toEqual(Array.from(best.q));
    expect(Array.from(d.scales)).toEqual(Array.from(best.scales));
    expect(classic.percDamp).toBe(0.01);
    expect(Array.from(d.scales)).not.toEqual(Array.from(classic.scales));
  });

  it("blocks of any size multiple give the same answer (lazy updates are exact)", () => {
    const { w, h } = randomLayer(rng, 128, 64, 256);
    const a = gptqQuantize(w, h, { groupSize: 32, blockSize: 128 });
    const b = gptqQuantize(w, h, { groupSize: 32, blockSize: 32 });
    let diff = 0;
    for (let i = 0; i < a.q.length; i++) if (a.q[i] !== b.q[i]) diff++;
    // float64 summation order differs, so a rare code may flip on a rounding tie
    expect(diff).toBeLessThanOrEqual(2);
    expect(Math.abs(a.lossEstimate - b.lossEstimate) / a.lossEstimate).toBeLessThan(1e-3);
  });

  it("retries with more damping when the Hessian is not positive definite", () => {
    const kk = 64;
    const x = correlatedInputs(rng, 16, kk); // rank 16 < 64
    const acc = new HessianAccumulator(kk);
    acc.add(x);
    const h = acc.snapshot();
    for (let i = 0; i < kk; i++) h[i * kk + i] -= 1e-6 * h[i * kk + i]; // slightly indefinite
    const w = rng.fillNormal(new Float32Array(kk * 32), 0.05) as Float32Array;
    expect(() => gptqQuantize(w, h, { groupSize: 32, percDamp: 0, dampRetries: 0 })).toThrow(NotPositiveDefiniteError);
    const r = gptqQuantize(w, h, { groupSize: 32, percDamp: 0 });
    expect(r.percDamp).toBe(0.01);
    checkRepresentable(r);
  });

  it("refuses impossible options and bad shapes before any work", () => {
    const { w, h } = randomLayer(rng, 64, 32, 128);
    expect(() => gptqQuantize(w, h, { bits: 3 as Bits })).toThrow(InvalidArgumentError);
    expect(() => gptqQuantize(w, h, { groupSize: 0 })).toThrow(InvalidArgumentError);
    expect(() => gptqQuantize(w, h, { groupSize: 128 })).toThrow(/larger than k/);
    expect(() => gptqQuantize(w, h, { groupSize: 64, blockSize: 96 })).toThrow(/multiple/);
    expect(() => gptqQuantize(w, h, { percDamp: -1 })).toThrow(InvalidArgumentError);
    expect(() => gptqQuantize(w.subarray(1), h, { groupSize: 32 })).toThrow(ShapeError);
    expect(() => gptqQuantize(w, h.subarray(1), { groupSize: 32 })).toThrow(ShapeError);
    const bad = w.slice();
    bad[7] = Number.NaN;
    expect(() => gptqQuantize(bad, h, { groupSize: 32 })).toThrow(InvalidArgumentError);
    expect(() => rtnQuantize(w, 60, {})).toThrow(ShapeError);
  });
});
