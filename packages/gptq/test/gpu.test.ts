import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Rng, runSeed } from "@marlin/core";
import { LLM, perplexity } from "@marlin/engine";
import { f16ToF32, f32ToF16 } from "@marlin/format";
import { describe, expect, it } from "vitest";
import { dequantize, type GptqOptions, gptqGpuStatus, gptqQuantize, gptqQuantizeGpu, HessianAccumulator, HessianGpu, hessianError, NotPositiveDefiniteError, quantizeModel } from "../src/index.js";
import { FIXTURE, hasFixture } from "./fixture.js";
import { correlatedInputs, randomLayer, relErr } from "./helpers.js";

const seed = runSeed();
const gpu = gptqGpuStatus();
console.log(`gpu: MARLIN_SEED=${seed}`);
if (!gpu.available) console.log(`skipping GPU GPTQ tests: ${gpu.reason}`);

function damped(h: Float64Array, k: number, percDamp: number): Float64Array {
  const out = h.slice();
  let mean = 0;
  for (let i = 0; i < k; i++) mean += h[i * k + i] === 0 ? 1 : h[i * k + i];
  mean /= k;
  for (let i = 0; i < k; i++) {
    if (out[i * k + i] === 0) out[i * k + i] = 1;
    out[i * k + i] += percDamp * mean;
  }
  return out;
}

describe.skipIf(!gpu.available)("GPTQ on the GPU agrees with the float64 reference", () => {
  const cases: [string, number, number, GptqOptions][] = [
    ["4-bit g128", 512, 256, { bits: 4, groupSize: 128 }],
    ["4-bit per-channel", 384, 192, { bits: 4, groupSize: -1 }],
    ["4-bit g64 act-order", 512, 128, { bits: 4, groupSize: 64, actOrder: true }],
    ["4-bit g128 act-order static groups", 256, 320, { bits: 4, groupSize: 128, actOrder: true, staticGroups: true }],
    ["8-bit asymmetric g32", 256, 128, { bits: 8, groupSize: 32, symmetric: false }],
    ["4-bit asymmetric g128 act-order", 1024, 128, { bits: 4, groupSize: 128, symmetric: false, actOrder: true }],
  ];
  for (const [name, k, n, opts] of cases) {
    it(`${name} (k ${k}, n ${n})`, () => {
      const rng = new Rng(seed + k + n);
      const { w, h } = randomLayer(rng, k, n, 2 * k);
      // The core loop against the reference with the classic recipe (range search: sparse.gpu.test.ts).
      const o: GptqOptions = { percDamp: 0.01, clip: false, ...opts };
      const ref = gptqQuantize(w, h, o);
      const out = gptqQuantizeGpu(w, h, o);
      expect(Array.from(out.gIdx)).toEqual(Array.from(ref.gIdx));
      expect(out.perm && Array.from(out.perm)).toEqual(ref.perm && Array.from(ref.perm));
      let same = 0;
      for (let i = 0; i < k * n; i++) if (out.q[i] === ref.q[i]) same++;
      const eRef = hessianError(w, dequantize(ref), h, k, n);
      const eGpu = hessianError(w, dequantize(out), h, k, n);
      const hd = damped(h, k, out.percDamp);
      const trace = hessianError(w, dequantize(out), hd, k, n);
      console.log(`${name}: identical codes ${((100 * same) / (k * n)).toFixed(3)}%, Hessian error gpu/ref ${(eGpu / eRef).toFixed(5)}, lossEstimate/tr(D^T H_d D) ${(out.lossEstimate / trace).toFixed(6)}`);
      expect(same / (k * n)).toBeGreaterThan(0.99);
      expect(Math.abs(eGpu / eRef - 1)).toBeLessThan(0.01);
      expect(Math.abs(out.lossEstimate / trace - 1)).toBeLessThan(2e-3);
      // every scale is an fp16 value, every code in range
      const s16 = f16ToF32(f32ToF16(out.scales));
      expect(Array.from(s16)).toEqual(Array.from(out.scales));
      expect(out.q.every((v) => v <= (1 << (opts.bits ?? 4)) - 1)).toBe(true);
    });
  }

  it("accumulates the Hessian on tensor cores like the host (fp16 inputs)", () => {
    const rng = new Rng(seed);
    const k = 384;
    const x = correlatedInputs(rng, 700, k);
    const x16 = f16ToF32(f32ToF16(Float32Array.from(x)));
    const acc = new HessianAccumulator(k);
    acc.add(x16.subarray(0, 300 * k), 300);
    acc.add(x16.subarray(300 * k), 400);
    const hg = new HessianGpu(k);
    try {
      hg.addHost(x16.subarray(0, 300 * k), 300);
      hg.addHost(x16.subarray(300 * k), 400);
      expect(hg.count).toBe(700);
      const err = relErr(hg.download(), acc.matrix);
      console.log(`HessianGpu vs float64: relative error ${err.toExponential(2)}`);
      expect(err).toBeLessThan(1e-4);
      // and GPTQ straight from the device Hessian
      const w = new Float32Array(k * 128);
      for (let i = 0; i < w.length; i++) w[i] = rng.normal() * 0.05;
      const a = gptqQuantizeGpu(w, hg, { groupSize: 128 });
      const b = gptqQuantizeGpu(w, acc.matrix, { groupSize: 128 });
      let same = 0;
      for (let i = 0; i < a.q.length; i++) if (a.q[i] === b.q[i]) same++;
      expect(same / a.q.length).toBeGreaterThan(0.97);
    } finally {
      hg.free();
    }
  });

  it("zeroes dead inputs and refuses a Hessian no damping fixes", () => {
    const rng = new Rng(seed + 1);
    const k = 256;
    const n = 128;
    const { w, h } = randomLayer(rng, k, n, 512);
    for (const d of [5, 77]) for (let j = 0; j < k; j++) h[d * k + j] = h[j * k + d] = 0;
    const r = gptqQuantizeGpu(w, h, { groupSize: 128 });
    expect(r.deadInputs).toBe(2);
    const dq = dequantize(r);
    for (let j = 0; j < n; j++) expect(dq[77 * n + j]).toBe(0);
    const neg = new Float64Array(k * k);
    for (let i = 0; i < k; i++) neg[i * k + i] = -1;
    expect(() => gptqQuantizeGpu(w, neg, { groupSize: 128 })).toThrow(NotPositiveDefiniteError);
  });
});

describe.skipIf(!gpu.available || !hasFixture)("tiny-llama quantized with the GPU path, run by the GPU engine", () => {
  it("GPTQ (device cuda: GPU layer forward + GPU GPTQ) beats RTN per linear, matches the CPU run's perplexity; the checkpoint loads and generates on the GPU and the CPU", async () => {
    const work = mkdtempSync(join(tmpdir(), "gptq-gpu-model-"));
    try {
      const out = join(work, "q");
      const calib = { calib: join(FIXTURE, "calib.txt"), nsamples: 16, seqlen: 128, seed, progress: false as const };
      const r = await quantizeModel(FIXTURE, out, { ...calib, device: "cuda", compareRtn: true });
      const worse = r.linears.filter((l) => !(l.loss < l.rtnLoss!));
      const ratio = r.linears.reduce((a, l) => a + l.loss, 0) / r.linears.reduce((a, l) => a + l.rtnLoss!, 0);
      console.log(`GPU GPTQ: ${r.linears.length - worse.length}/${r.linears.length} linears below RTN (GPTQ/RTN loss summed ${ratio.toFixed(3)}); phases ${JSON.stringify(r.phases)}`);
      expect(worse.length).toBe(0);
      // The reference: the same windows through the CPU model (fp32) and float64 GPTQ.
      const outCpu = join(work, "q-cpu");
      await quantizeModel(FIXTURE, outCpu, { ...calib, device: "cpu" });
      const text = readFileSync(join(FIXTURE, "eval.txt"), "utf8").slice(0, 20000);
      const ppl: Record<string, number> = {};
      for (const [label, dir, device] of [["cuda-run", out, "cuda"], ["cuda-run", out, "cpu"], ["cpu-run", outCpu, "cuda"]] as const) {
        const llm = await LLM.load(dir, { device });
        try {
          expect(llm.device).toBe(device);
          const [g] = await llm.generate(["Once upon a time"], { maxTokens: 32, temperature: 0 });
          const p = (await perplexity(llm, text)).perplexity;
          console.log(`${label} checkpoint on ${device}: ppl ${p.toFixed(3)} greedy ${JSON.stringify(g.text)}`);
          ppl[`${label}/${device}`] = p;
          expect(p).toBeLessThan(70);
          expect(/[a-z]+ [a-z]+ [a-z]+/i.test(g.text)).toBe(true);
        } finally {
          llm.dispose();
        }
      }
      const rel = ppl["cuda-run/cuda"] / ppl["cpu-run/cuda"] - 1;
      console.log(`perplexity, GPU-forward run vs CPU-forward run (both scored on the GPU): ${(100 * rel).toFixed(2)}%`);
      expect(Math.abs(rel)).toBeLessThan(0.03);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, 600_000);
});
