import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InvalidArgumentError, Rng, runSeed, ShapeError } from "@marlin/core";
import { LINEAR_NAMES, loadModelDir } from "@marlin/engine";
import { dequantize as dequantLayer, type QuantizedLayer } from "@marlin/format";
import { asSparse24, hostLayer, unpackSparse24 } from "@marlin/sparse";
import { afterAll, describe, expect, it } from "vitest";
import {
  type Bits,
  dequantize,
  findGroupParams,
  first24CodeViolation,
  first24Violation,
  type GptqOptions,
  gptqQuantize,
  hessianError,
  invertSpd,
  magnitudeMask24,
  maxQ,
  pruneTwoOfFour,
  type QuantResult,
  quantizeModel,
  quantizeValue,
  toQuantizedLayer,
} from "../src/index.js";
import { FIXTURE, hasFixture } from "./fixture.js";
import { randomLayer } from "./helpers.js";

const seed = runSeed();
console.log(`sparsity: MARLIN_SEED=${seed}`);

/** Exactly 2:4 masks, pruned codes at the zero point (dequantizing to exactly 0), kept ones anywhere. */
function check24(r: QuantResult): void {
  expect(r.sparsity).toBe("2:4");
  expect(r.mask).toBeDefined();
  const mask = r.mask!;
  expect(first24Violation(mask, r.k, r.n)).toBeUndefined();
  const dq = dequantize(r);
  let bad = 0;
  for (let i = 0; i < r.k; i++)
    for (let j = 0; j < r.n; j++) {
      const at = i * r.n + j;
      if (!mask[at]) continue;
      if (r.q[at] !== r.zeros[r.gIdx[i] * r.n + j] || dq[at] !== 0 || Object.is(dq[at], -0)) bad++;
    }
  expect(bad).toBe(0);
  expect(first24CodeViolation(toQuantizedLayer(r))).toBeUndefined();
}

/** tr(D^T H_d D) with H_d as GPTQ damps it (dead inputs have H_ii = 1). */
function dampedError(w: ArrayLike<number>, r: QuantResult, h: Float64Array): number {
  const k = r.k;
  const hd = h.slice();
  let mean = 0;
  for (let i = 0; i < k; i++) mean += h[i * k + i];
  mean /= k;
  for (let i = 0; i < k; i++) hd[i * k + i] += r.percDamp * mean;
  return hessianError(w, dequantize(r), hd, k, r.n);
}

/**
 * An independent float64 reference of SparseGPT 2:4 + quantization, written as plain optimal brain
 * surgeon steps on the explicit inverse (no Cholesky factor, no lazy blocks): Hinv = (H + damp I)^-1
 * over the rows not yet quantized; row i's error e = (w_i - q_i) / Hinv_ii updates every later row by
 * -e Hinv_ir, then row i is eliminated from Hinv. A quad's mask uses, for each of its rows, the
 * diagonal that row will have when it is reached (the Schur complement inside the quad). Group
 * params are chosen (no range search) at each group's first row from the updated weights.
 */
function referenceSparseGpt(w: Float32Array, h: Float64Array, k: number, n: number, bits: Bits, groupSize: number, percDamp: number) {
  const W = Float64Array.from(w);
  const hd = h.slice();
  let mean = 0;
  for (let i = 0; i < k; i++) mean += h[i * k + i];
  mean /= k;
  for (let i = 0; i < k; i++) hd[i * k + i] += percDamp * mean;
  const Hinv = invertSpd(hd, k, "reference");
  const grid = { bits, symmetric: true };
  const groups = groupSize > 0 ? k / groupSize : 1;
  const scales = new Float64Array(groups * n);
  const zeros = new Float64Array(groups * n);
  const q = new Uint8Array(k * n);
  const mask = new Uint8Array(k * n);
  if (groupSize <= 0) findGroupParams(W, n, 0, k, grid, scales, zeros, 0);
  for (let i = 0; i < k; i++) {
    const g = groupSize > 0 ? Math.floor(i / groupSize) : 0;
    if (groupSize > 0 && i % groupSize === 0) findGroupParams(W, n, i, i + groupSize, grid, scales, zeros, g * n);
    if (i % 4 === 0) {
      const b = new Float64Array(16);
      for (let a = 0; a < 4; a++) for (let c = 0; c < 4; c++) b[a * 4 + c] = Hinv[(i + a) * k + i + c];
      const diag = new Float64Array(4);
      for (let a = 0; a < 4; a++) {
        diag[a] = b[a * 4 + a];
        for (let x = a + 1; x < 4; x++) for (let y = a + 1; y < 4; y++) b[x * 4 + y] -= (b[x * 4 + a] * b[a * 4 + y]) / b[a * 4 + a];
      }
      for (let j = 0; j < n; j++) {
        const s = [0, 1, 2, 3].map((a) => W[(i + a) * n + j] ** 2 / diag[a]);
        for (const a of pruneTwoOfFour(s[0], s[1], s[2], s[3])) mask[(i + a) * n + j] = 1;
      }
    }
    const d = Hinv[i * k + i];
    const e = new Float64Array(n);
    for (let j = 0; j < n; j++) {
      const x = W[i * n + j];
      const s = scales[g * n + j];
      const z = zeros[g * n + j];
      const code = mask[i * n + j] ? z : quantizeValue(x, s, z, maxQ(bits));
      q[i * n + j] = code;
      e[j] = (x - s * (code - z)) / d;
    }
    for (let r = i + 1; r < k; r++) {
      const u = Hinv[i * k + r];
      for (let j = 0; j < n; j++) W[r * n + j] -= e[j] * u;
    }
    // eliminate row/column i
    for (let r = i + 1; r < k; r++) {
      const f = Hinv[r * k + i] / d;
      if (f === 0) continue;
      for (let c = i + 1; c < k; c++) Hinv[r * k + c] -= f * Hinv[i * k + c];
    }
  }
  return { q, mask };
}

describe("2:4 masks", () => {
  it("pruneTwoOfFour picks the two smallest, ties to the lower index", () => {
    expect(pruneTwoOfFour(4, 1, 3, 2)).toEqual([1, 3]);
    expect(pruneTwoOfFour(0, 0, 0, 0)).toEqual([0, 1]);
    expect(pruneTwoOfFour(5, 1, 1, 1)).toEqual([1, 2]);
    expect(pruneTwoOfFour(1, 2, 1, 0)).toEqual([0, 3]);
  });

  it("magnitude keeps the 2 largest |w| of every quad of each column", () => {
    const rng = new Rng(seed);
    const k = 64;
    const n = 24;
    const w = rng.fillNormal(new Float32Array(k * n)) as Float32Array;
    const mask = magnitudeMask24(w, k, n);
    expect(first24Violation(mask, k, n)).toBeUndefined();
    for (let r = 0; r < k; r += 4)
      for (let j = 0; j < n; j++) {
        const kept: number[] = [];
        const pruned: number[] = [];
        for (let a = 0; a < 4; a++) (mask[(r + a) * n + j] ? pruned : kept).push(Math.abs(w[(r + a) * n + j]));
        expect(Math.min(...kept)).toBeGreaterThanOrEqual(Math.max(...pruned));
      }
    const broken = mask.slice();
    broken[5 * n + 3] ^= 1;
    expect(first24Violation(broken, k, n)).toMatchObject({ row: 4, col: 3 });
  });
});

describe("GPTQ with 2:4 sparsity (float64)", () => {
  const rng = new Rng(seed ^ 0x24);
  const k = 256;
  const n = 64;
  const { w, h } = randomLayer(rng, k, n, 2 * k);
  const configs: GptqOptions[] = [
    { groupSize: 128 },
    { groupSize: -1 },
    { groupSize: 64, symmetric: false },
    { groupSize: 32, bits: 8 },
    { groupSize: 128, percDamp: 0.01, clip: false },
  ];

  for (const cfg of configs) {
    it(`SparseGPT beats magnitude + GPTQ, masks are 2:4 and pruned codes dequantize to 0: ${JSON.stringify(cfg)}`, () => {
      const sp = gptqQuantize(w, h, { ...cfg, sparsity: "2:4" });
      const mg = gptqQuantize(w, h, { ...cfg, sparsity: "2:4", prune: "magnitude" });
      const dense = gptqQuantize(w, h, cfg);
      expect(sp.pruneMethod).toBe("sparsegpt");
      expect(mg.pruneMethod).toBe("magnitude");
      check24(sp);
      check24(mg);
      // The magnitude mask is the one of the original weights.
      expect(Buffer.from(mg.mask!).equals(Buffer.from(magnitudeMask24(w, k, n)))).toBe(true);
      const eSp = hessianError(w, dequantize(sp), h, k, n);
      const eMg = hessianError(w, dequantize(mg), h, k, n);
      const eDense = hessianError(w, dequantize(dense), h, k, n);
      console.log(`${JSON.stringify(cfg)}: Hessian loss sparsegpt ${eSp.toExponential(3)}, magnitude+gptq ${eMg.toExponential(3)} (${(eSp / eMg).toFixed(3)}), dense gptq ${eDense.toExponential(3)}`);
      expect(eSp).toBeLessThan(eMg);
      expect(eDense).toBeLessThan(eSp);
      // SparseGPT's running loss is exactly the damped quadratic form of the whole (prune + round) error.
      expect(Math.abs(sp.lossEstimate - dampedError(w, sp, h)) / sp.lossEstimate).toBeLessThan(1e-8);
    });
  }

  it("matches an independent OBS reference (explicit inverse, no lazy blocks)", () => {
    const kk = 128;
    const nn = 32;
    const r2 = new Rng(seed ^ 0x0b5);
    const l = randomLayer(r2, kk, nn, 2 * kk);
    for (const [bits, gs] of [
      [4, 32],
      [4, -1],
      [8, 64],
    ] as [Bits, number][]) {
      const ref = referenceSparseGpt(l.w, l.h, kk, nn, bits, gs, 0.1);
      const got = gptqQuantize(l.w, l.h, { bits, groupSize: gs, blockSize: 64, percDamp: 0.1, clip: false, sparsity: "2:4" });
      let sameQ = 0;
      let sameM = 0;
      for (let i = 0; i < kk * nn; i++) {
        if (ref.q[i] === got.q[i]) sameQ++;
        if (ref.mask[i] === got.mask![i]) sameM++;
      }
      console.log(`reference ${bits}-bit g${gs}: identical codes ${sameQ}/${kk * nn}, identical mask entries ${sameM}/${kk * nn}`);
      // Float64 summation orders differ; a rare tie may flip.
      expect(sameM / (kk * nn)).toBeGreaterThan(0.998);
      expect(sameQ / (kk * nn)).toBeGreaterThan(0.995);
    }
  });

  it("block size does not change the answer (the quads never straddle blocks)", () => {
    const a = gptqQuantize(w, h, { groupSize: 32, blockSize: 128, sparsity: "2:4" });
    const b = gptqQuantize(w, h, { groupSize: 32, blockSize: 32, sparsity: "2:4" });
    let diff = 0;
    for (let i = 0; i < a.q.length; i++) if (a.q[i] !== b.q[i] || a.mask![i] !== b.mask![i]) diff++;
    expect(diff).toBeLessThanOrEqual(4);
  });

  it("dead inputs stay zero and the mask stays 2:4", () => {
    const hh = h.slice();
    for (const d of [0, 9, 130]) for (let j = 0; j < k; j++) hh[d * k + j] = hh[j * k + d] = 0;
    const r = gptqQuantize(w, hh, { sparsity: "2:4" });
    expect(r.deadInputs).toBe(3);
    check24(r);
    const dq = dequantize(r);
    for (const d of [0, 9, 130]) for (let j = 0; j < n; j++) expect(dq[d * n + j]).toBe(0);
  });

  it("refuses options it cannot honour, with typed errors", () => {
    const small = randomLayer(new Rng(seed), 64, 16, 128);
    expect(() => gptqQuantize(small.w, small.h, { groupSize: 32, prune: "magnitude" })).toThrow(/needs sparsity/);
    expect(() => gptqQuantize(small.w, small.h, { groupSize: 32, prune: "magnitude" })).toThrow(InvalidArgumentError);
    expect(() => gptqQuantize(small.w, small.h, { groupSize: 32, sparsity: "1:4" as "2:4" })).toThrow(InvalidArgumentError);
    expect(() => gptqQuantize(small.w, small.h, { groupSize: 32, sparsity: "2:4", prune: "wanda" as "magnitude" })).toThrow(InvalidArgumentError);
    expect(() => gptqQuantize(small.w, small.h, { groupSize: 32, sparsity: "2:4", actOrder: true })).toThrow(/act-order/);
    expect(() => gptqQuantize(small.w, small.h, { groupSize: 6, blockSize: 60, sparsity: "2:4" })).toThrow(/multiple of 4/);
    expect(() => gptqQuantize(small.w, small.h, { groupSize: -1, blockSize: 30, sparsity: "2:4" })).toThrow(/blockSize/);
    const odd = randomLayer(new Rng(seed), 62, 8, 128);
    expect(() => gptqQuantize(odd.w, odd.h, { groupSize: -1, sparsity: "2:4" })).toThrow(ShapeError);
  });
});

const work = mkdtempSync(join(tmpdir(), "gptq-sparse-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe.skipIf(!hasFixture)("quantizeModel with 2:4 sparsity on tiny-llama", () => {
  // Every quad of a layer's dequantized weights holds at least 2 exact zeros (sampled columns).
  function expectQuadZeros(layer: QuantizedLayer): void {
    expect(first24CodeViolation(layer)).toBeUndefined();
    const dq = dequantLayer(layer);
    for (let i = 0; i < layer.k; i += 4)
      for (let j = 0; j < layer.n; j += 37) {
        let z = 0;
        for (let t = 0; t < 4; t++) if (dq[(i + t) * layer.n + j] === 0) z++;
        expect(z).toBeGreaterThanOrEqual(2);
      }
  }

  it("writes @marlin/sparse's packed 2:4 layout in a Marlin checkpoint; the engine loads it as sparse24 weights", async () => {
    const out = join(work, "sparse");
    const r = await quantizeModel(FIXTURE, out, { calib: join(FIXTURE, "calib.txt"), nsamples: 4, seqlen: 64, seed, sparsity: "2:4", progress: false });
    expect(r.options).toMatchObject({ sparsity: "2:4", prune: "sparsegpt", percDamp: 0.1, clip: true });
    const cfg = JSON.parse(readFileSync(join(out, "config.json"), "utf8")).quantization_config;
    expect(cfg).toMatchObject({ checkpoint_format: "marlin", sparsity: "2:4", prune_method: "sparsegpt", damp_percent: 0.1 });
    const loaded = await loadModelDir(out);
    for (let li = 0; li < 6; li++)
      for (const name of LINEAR_NAMES) {
        const a = loaded.sources.layers[li].linears[name];
        if (a.kind !== "extension" || a.weights.kind !== "sparse24") throw new Error(`${li}.${name} is ${a.kind}, not sparse24`);
        expectQuadZeros(unpackSparse24(hostLayer(asSparse24(a.weights))));
      }
  }, 240_000);

  it("writes dense GPTQ tensors with exact zeros in a GPTQ checkpoint", async () => {
    const out = join(work, "sparse-gptq");
    await quantizeModel(FIXTURE, out, { calib: join(FIXTURE, "calib.txt"), nsamples: 4, seqlen: 64, seed, sparsity: "2:4", format: "gptq", progress: false });
    const loaded = await loadModelDir(out);
    const a = loaded.sources.layers[0].linears.up_proj;
    if (a.kind !== "quantized") throw new Error(`up_proj is ${a.kind}, not quantized`);
    expectQuadZeros(a.layer);
  }, 240_000);

  it("refuses --prune without sparsity and sparsity with act-order before any work", async () => {
    await expect(quantizeModel(FIXTURE, join(work, "x"), { calib: join(FIXTURE, "calib.txt"), prune: "magnitude", progress: false })).rejects.toThrow(/needs sparsity 2:4/);
    await expect(
      quantizeModel(FIXTURE, join(work, "x"), { calib: join(FIXTURE, "calib.txt"), sparsity: "2:4", actOrder: true, format: "gptq", progress: false }),
    ).rejects.toThrow(/act-order/);
  });
});
