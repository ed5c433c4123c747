// A third-party linear implementation, written in plain TypeScript and registered at run time:
// the engine's CPU model must run it for the layers it accepts, generate the same greedy text as
// the reference (the same quantized weights dequantized to fp32), and fall back to the next fit
// when MARLIN_DISABLE names it. This file is the example in packages/core/README.md.
import {
  DISABLE_ENV,
  FITS,
  type LinearImplementation,
  type PreparedLinear,
  type QuantizedLinearWeights,
  refuse,
  registry,
} from "@marlin/core";
import { dequantize } from "@marlin/format";
import { marlinCpu } from "@marlin/kernel";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { CpuLlama, LINEAR_NAMES, type LinearSource, LLM, type LoadedModel, linearToF32, loadModelDir, type ModelSources, quantizeSourcesRtn } from "../src/index.js";
import { dequantizedSources, hasTinyLlama, tinyLlamaDir } from "./helpers.js";

/** y = x W with W dequantized once to fp32 [k, n]; plain loops, fp64 accumulation. */
const dequantTs: LinearImplementation<Float32Array> = {
  id: "example.dequant-ts",
  op: "quant.matmul",
  priority: 50, // above marlin.cpu (10): picked wherever it fits
  devices: { kind: "cpu" },
  description: "plain TypeScript: dequantize once, multiply in fp64",
  canImplement: (q) => (q.weight?.bits === 4 ? FITS : refuse("4-bit weights only")),
  prepare(weights): PreparedLinear<Float32Array> {
    const { layer, bias, n, k } = weights as QuantizedLinearWeights;
    if (!layer) throw new Error("needs unpacked values");
    const w = dequantize(layer as Parameters<typeof dequantize>[0]); // [k, n]
    return {
      n,
      k,
      weightBytes: w.byteLength,
      apply(x, out, m) {
        for (let r = 0; r < m; r++)
          for (let j = 0; j < n; j++) {
            let s = bias ? bias[j] : 0;
            for (let i = 0; i < k; i++) s += x[r * k + i] * w[i * n + j];
            out[r * n + j] = s;
          }
      },
      dispose() {},
    };
  },
};

const PROMPTS = ["The history of the city begins", "She opened the letter and read"];

async function greedy(m: LoadedModel, sources: ModelSources): Promise<string[]> {
  const llm = await LLM.fromLoaded({ ...m, sources }, { device: "cpu", kvCacheTokens: 2048 });
  try {
    return (await llm.generate(PROMPTS, { temperature: 0, maxTokens: 12 })).map((r) => r.text);
  } finally {
    llm.dispose();
  }
}

describe.skipIf(!hasTinyLlama())("a third-party implementation through the registry", () => {
  let m: LoadedModel;
  let q: ModelSources;
  let reference: string[];
  beforeAll(async () => {
    m = await loadModelDir(tinyLlamaDir());
    q = quantizeSourcesRtn(m.sources, { bits: 4, groupSize: 128, symmetric: true });
    // The reference: the same quantized weights, dequantized to fp32 dense layers.
    const dense = dequantizedSources(q);
    reference = await greedy(m, dense);
    registry.register(dequantTs);
  });
  afterAll(() => {
    registry.unregister(dequantTs.id);
  });

  test("the engine's CPU model runs it and generates the reference text", async () => {
    const model = new CpuLlama(m.config, q, 64);
    for (const slot of ["qkv", "o", "gateUp", "down"] as const) expect(model.layers[0][slot].implementationFor(1)).toBe(dequantTs.id);
    expect(model.kernels["q_proj+k_proj+v_proj"]).toBe(dequantTs.id);
    const text = await greedy(m, q);
    console.log(`third-party implementation: ${JSON.stringify(text)}`);
    expect(text).toEqual(reference);
  });

  test("MARLIN_DISABLE falls back to the next fit", () => {
    const before = process.env[DISABLE_ENV];
    process.env[DISABLE_ENV] = dequantTs.id;
    try {
      const model = new CpuLlama(m.config, q, 64);
      expect(model.layers[0].qkv.implementationFor(1)).toBe(marlinCpu.id);
      expect(model.layers[0].qkv.plan[0].others.join("\n")).toContain(`${dequantTs.id}: disabled by ${DISABLE_ENV}`);
    } finally {
      if (before === undefined) delete process.env[DISABLE_ENV];
      else process.env[DISABLE_ENV] = before;
    }
  });
});
