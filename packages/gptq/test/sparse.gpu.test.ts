// GPU GPTQ: the range search (clip) and 2:4 pruning (SparseGPT in the column loop, magnitude with a
// host mask) against the float64 reference. Skips, saying why, where there is no GPU path.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InvalidArgumentError, Rng, runSeed } from "@marlin/core";
import { LINEAR_NAMES, loadModelDir } from "@marlin/engine";
import { asSparse24, hostLayer, unpackSparse24 } from "@marlin/sparse";
import { afterAll, describe, expect, it } from "vitest";
import {
  dequantize,
  first24CodeViolation,
  first24Violation,
  type GptqOptions,
  gptqGpuStatus,
  gptqQuantize,
  gptqQuantizeGpu,
  hessianError,
  magnitudeMask24,
  type QuantResult,
  quantizeModel,
  toQuantizedLayer,
} from "../src/index.js";
import { FIXTURE, hasFixture } from "./fixture.js";
import { randomLayer } from "./helpers.js";

const seed = runSeed();
const gpu = gptqGpuStatus();
console.log(`sparse.gpu: MARLIN_SEED=${seed}`);
if (!gpu.available) console.log(`skipping GPU range search / 2:4 pruning tests: ${gpu.reason}`);

function agreement(a: Uint8Array, b: Uint8Array): number {
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
  return same / a.length;
}

function checkPruned(r: QuantResult): void {
  expect(r.sparsity).toBe("2:4");
  expect(first24Violation(r.mask!, r.k, r.n)).toBeUndefined();
  const dq = dequantize(r);
  let bad = 0;
  for (let i = 0; i < r.k * r.n; i++) if (r.mask![i] && dq[i] !== 0) bad++;
  expect(bad).toBe(0);
  expect(first24CodeViolation(toQuantizedLayer(r))).toBeUndefined();
}

describe.skipIf(!gpu.available)("GPU range search and 2:4 pruning agree with the float64 reference", () => {
  const clipCases: [string, number, number, GptqOptions][] = [
    ["clip 4-bit g128", 512, 256, { groupSize: 128, clip: true }],
    ["clip 4-bit per-channel", 384, 192, { groupSize: -1, clip: true }],
    ["clip 4-bit g128 act-order static groups", 256, 320, { groupSize: 128, actOrder: true, staticGroups: true, clip: true }],
    ["clip 4-bit asymmetric g64 act-order", 512, 128, { groupSize: 64, symmetric: false, actOrder: true, clip: { grid: 50, maxShrink: 0.5 } }],
  ];
  for (const [name, k, n, opts] of clipCases) {
    it(`${name} (k ${k}, n ${n})`, () => {
      const rng = new Rng(seed + k + n);
      const { w, h } = randomLayer(rng, k, n, 2 * k);
      const ref = gptqQuantize(w, h, opts);
      const out = gptqQuantizeGpu(w, h, opts);
      const plain = gptqQuantizeGpu(w, h, { ...opts, clip: false });
      const eRef = hessianError(w, dequantize(ref), h, k, n);
      const eGpu = hessianError(w, dequantize(out), h, k, n);
      const ePlain = hessianError(w, dequantize(plain), h, k, n);
      const same = agreement(out.q, ref.q);
      console.log(`${name}: identical codes ${(100 * same).toFixed(3)}%, Hessian error gpu/ref ${(eGpu / eRef).toFixed(5)}, clipped/unclipped gpu ${(eGpu / ePlain).toFixed(4)}`);
      expect(same).toBeGreaterThan(0.98);
      expect(Math.abs(eGpu / eRef - 1)).toBeLessThan(0.02);
      expect(eGpu).toBeLessThan(ePlain);
    });
  }

  const sparseCases: [string, number, number, GptqOptions][] = [
    ["SparseGPT 4-bit g128", 512, 256, { groupSize: 128, sparsity: "2:4" }],
    ["SparseGPT 4-bit per-channel no clip", 384, 160, { groupSize: -1, sparsity: "2:4", clip: false }],
    ["SparseGPT 8-bit asymmetric g32", 256, 128, { bits: 8, groupSize: 32, symmetric: false, sparsity: "2:4" }],
    ["magnitude 4-bit g128", 512, 256, { groupSize: 128, sparsity: "2:4", prune: "magnitude" }],
    ["magnitude 4-bit g64 asymmetric", 256, 96, { groupSize: 64, symmetric: false, sparsity: "2:4", prune: "magnitude" }],
  ];
  for (const [name, k, n, opts] of sparseCases) {
    it(`${name} (k ${k}, n ${n})`, () => {
      const rng = new Rng(seed ^ (k * 31 + n));
      const { w, h } = randomLayer(rng, k, n, 2 * k);
      const ref = gptqQuantize(w, h, opts);
      const out = gptqQuantizeGpu(w, h, opts);
      checkPruned(out);
      if (opts.prune === "magnitude") expect(Buffer.from(out.mask!).equals(Buffer.from(magnitudeMask24(w, k, n)))).toBe(true);
      const eRef = hessianError(w, dequantize(ref), h, k, n);
      const eGpu = hessianError(w, dequantize(out), h, k, n);
      const sameQ = agreement(out.q, ref.q);
      const sameM = agreement(out.mask!, ref.mask!);
      console.log(`${name}: identical codes ${(100 * sameQ).toFixed(3)}%, mask ${(100 * sameM).toFixed(3)}%, Hessian error gpu/ref ${(eGpu / eRef).toFixed(5)}`);
      expect(sameM).toBeGreaterThan(0.98);
      expect(sameQ).toBeGreaterThan(0.97);
      expect(Math.abs(eGpu / eRef - 1)).toBeLessThan(0.03);
    });
  }

  it("SparseGPT beats magnitude + GPTQ on the GPU too", () => {
    const rng = new Rng(seed);
    const { w, h } = randomLayer(rng, 512, 256, 1024);
    const sp = gptqQuantizeGpu(w, h, { sparsity: "2:4" });
    const mg = gptqQuantizeGpu(w, h, { sparsity: "2:4", prune: "magnitude" });
    const eSp = hessianError(w, dequantize(sp), h, 512, 256);
    const eMg = hessianError(w, dequantize(mg), h, 512, 256);
    console.log(`gpu: sparsegpt / magnitude Hessian loss ${(eSp / eMg).toFixed(3)}`);
    expect(eSp).toBeLessThan(eMg);
  });

  it('refuses what the GPU path does not implement (clip score "full", act-order with 2:4)', () => {
    const rng = new Rng(seed);
    const { w, h } = randomLayer(rng, 128, 64, 256);
    expect(() => gptqQuantizeGpu(w, h, { clip: { score: "full" } })).toThrow(InvalidArgumentError);
    expect(() => gptqQuantizeGpu(w, h, { sparsity: "2:4", actOrder: true })).toThrow(/act-order/);
  });
});

const work = mkdtempSync(join(tmpdir(), "gptq-sparse-gpu-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe.skipIf(!gpu.available || !hasFixture)("quantizeModel --device cuda with 2:4 SparseGPT and the default recipe", () => {
  it("writes a 2:4 checkpoint the engine loads", async () => {
    const out = join(work, "sparse-cuda");
    const r = await quantizeModel(FIXTURE, out, { calib: join(FIXTURE, "calib.txt"), nsamples: 16, seqlen: 128, seed, device: "cuda", sparsity: "2:4", progress: false });
    expect(r.options).toMatchObject({ device: "cuda", clip: true, percDamp: 0.1, sparsity: "2:4", prune: "sparsegpt" });
    expect(JSON.parse(readFileSync(join(out, "config.json"), "utf8")).quantization_config).toMatchObject({ sparsity: "2:4", prune_method: "sparsegpt" });
    const loaded = await loadModelDir(out);
    for (const name of LINEAR_NAMES) {
      const a = loaded.sources.layers[3].linears[name];
      // A Marlin-format 2:4 checkpoint holds @marlin/sparse's packed layout: the engine loads sparse24 weights.
      if (a.kind !== "extension" || a.weights.kind !== "sparse24") throw new Error(`${name} is ${a.kind}, not sparse24`);
      expect(first24CodeViolation(unpackSparse24(hostLayer(asSparse24(a.weights))))).toBeUndefined();
    }
  }, 240_000);
});
