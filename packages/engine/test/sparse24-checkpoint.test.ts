// A 2:4 checkpoint of tiny-llama end to end on the CPU: every linear pruned by magnitude 2:4,
// RTN-quantized (4-bit symmetric, group 128), packed by @marlin/sparse and written as a checkpoint;
// the engine must load it as sparse24 layers served by the sparse CPU path and generate the same greedy
// tokens as the same weights dequantized to dense fp32. A file that says "sparsity": "2:4" but
// holds dense Marlin tensors loads as quantized (dense Marlin) layers.
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { relativeError } from "@marlin/core";
import { type NamedTensor, packMarlin, type QuantizedLayer, quantizeRtn, toMarlinCheckpoint, writeSafetensors } from "@marlin/format";
import { hasGpu, marlinCpu, noGpuReason } from "@marlin/kernel";
import { packSparse24, pruneMagnitude24, sparse24Cpu, sparse24QuantizationConfig, sparse24Tensors } from "@marlin/sparse";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { CpuLlama, LINEAR_NAMES, LLM, type LoadedModel, linearToF32, loadModelDir, perplexity } from "../src/index.js";
import { dequantizedSources, hasTinyLlama, readTensors, tinyLlamaDir } from "./helpers.js";

const gpu = hasGpu();
if (!gpu) console.log(`2:4 engine GPU test skipped: ${noGpuReason()}`);
const PROMPTS = ["The history of the city begins", "She opened the letter and read", "Once upon a time"];

describe.skipIf(!hasTinyLlama())("2:4 sparse checkpoints of tiny-llama", () => {
  const dirs: string[] = [];
  let model: LoadedModel;
  let raw: Map<string, NamedTensor>;
  /** Each linear of the model pruned 2:4 and quantized, by its prefix. */
  const layers = new Map<string, QuantizedLayer>();

  beforeAll(async () => {
    model = await loadModelDir(tinyLlamaDir());
    raw = await readTensors(tinyLlamaDir());
    for (const layer of model.sources.layers)
      for (const name of LINEAR_NAMES) {
        const src = layer.linears[name];
        const nk = linearToF32(src); // W [n, k]
        const kn = new Float32Array(src.k * src.n);
        for (let j = 0; j < src.n; j++) for (let i = 0; i < src.k; i++) kn[i * src.n + j] = nk[j * src.k + i];
        layers.set(src.name, quantizeRtn(pruneMagnitude24(kn, src.k, src.n), src.k, src.n, { bits: 4, groupSize: 128, symmetric: true }));
      }
  });
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  async function writeDir(quant: Record<string, unknown>, tensorsOf: (prefix: string, l: QuantizedLayer) => Record<string, NamedTensor>): Promise<string> {
    const dir = mkdtempSync(join(tmpdir(), "marlin-sparse24-"));
    dirs.push(dir);
    for (const f of ["tokenizer.json", "tokenizer_config.json", "generation_config.json"]) copyFileSync(join(tinyLlamaDir(), f), join(dir, f));
    const base = JSON.parse(readFileSync(join(tinyLlamaDir(), "config.json"), "utf8"));
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...base, quantization_config: quant }));
    const tensors = new Map<string, NamedTensor>();
    for (const [name, t] of raw) if (!/_proj\.weight$/.test(name)) tensors.set(name, t);
    for (const [prefix, l] of layers) for (const [name, t] of Object.entries(tensorsOf(prefix, l))) tensors.set(name, t);
    await writeSafetensors(join(dir, "model.safetensors"), tensors);
    return dir;
  }

  test("loads as sparse24 layers, runs the sparse CPU path, and generates the dequantized model's greedy text", async () => {
    const dir = await writeDir(sparse24QuantizationConfig(128), (prefix, l) => sparse24Tensors(prefix, packSparse24(l)));
    const sparse = await loadModelDir(dir);
    for (const name of LINEAR_NAMES) {
      const src = sparse.sources.layers[0].linears[name];
      expect(src.kind).toBe("extension");
      if (src.kind === "extension") expect(src.weights.kind).toBe("sparse24");
    }
    const dense = dequantizedSources(sparse.sources);
    const sm = new CpuLlama(sparse.config, sparse.sources);
    const dm = new CpuLlama(sparse.config, dense);
    for (const slot of ["qkv", "o", "gateUp", "down"] as const) {
      expect(sm.layers[0][slot].implementationFor(1)).toBe(sparse24Cpu.id);
      expect(sm.layers[0][slot].implementationFor(1024)).toBe(sparse24Cpu.id);
    }
    // the dense reference really is 2:4: half of every linear is zero
    const w = linearToF32(sparse.sources.layers[0].linears.down_proj);
    expect(w.filter((v) => v === 0).length).toBeGreaterThanOrEqual(w.length / 2);

    const tokens = Array.from({ length: 37 }, (_, i) => (i * 97 + 5) % sparse.config.vocabSize);
    const ha = sm.runLayers([tokens]);
    const hb = dm.runLayers([tokens]);
    const el = relativeError(sm.headForward(ha, tokens.length), dm.headForward(hb, tokens.length));
    console.log(`2:4 + 4-bit g128 on the sparse CPU path vs dequantized fp32: logits rel. error ${el.toExponential(2)}`);
    expect(el).toBeLessThan(5e-3);
    expect(el).toBeGreaterThan(0); // really different code paths

    const params = { temperature: 0, maxTokens: 16, ignoreEos: true };
    const a = await LLM.load(dir, { device: "cpu", kvCacheTokens: 2048 });
    const b = await LLM.fromLoaded({ ...sparse, sources: dense }, { device: "cpu", kvCacheTokens: 2048 });
    try {
      const ra = await a.generate(PROMPTS, params);
      const rb = await b.generate(PROMPTS, params);
      for (const [i, r] of ra.entries()) console.log(`2:4 greedy: ${JSON.stringify(PROMPTS[i] + r.text)}`);
      expect(ra.map((r) => r.tokenIds)).toEqual(rb.map((r) => r.tokenIds));
    } finally {
      a.dispose();
      b.dispose();
    }
  });

  test.skipIf(!gpu)("on the GPU (sparse24.cuda): perplexity within 1% of the CPU run, greedy text printed", async () => {
    const dir = await writeDir(sparse24QuantizationConfig(128), (prefix, l) => sparse24Tensors(prefix, packSparse24(l)));
    const text = readFileSync(join(tinyLlamaDir(), "eval.txt"), "utf8").split("\n").slice(0, 200).join("\n");
    const g = await LLM.load(dir, { device: "cuda", kvCacheTokens: 8192 });
    const c = await LLM.load(dir, { device: "cpu", kvCacheTokens: 4096 });
    try {
      const pg = await perplexity(g, text);
      const pc = await perplexity(c, text);
      console.log(`2:4 + 4-bit perplexity on 200 lines: GPU ${pg.perplexity.toFixed(3)}, CPU ${pc.perplexity.toFixed(3)}`);
      expect(Math.abs(pg.perplexity / pc.perplexity - 1)).toBeLessThan(0.01);
      const out = await g.generate(PROMPTS, { temperature: 0, maxTokens: 16 });
      for (const [i, r] of out.entries()) console.log(`2:4 greedy (GPU): ${JSON.stringify(PROMPTS[i] + r.text)}`);
    } finally {
      g.dispose();
      c.dispose();
    }
  });

  test('a file that says "sparsity": "2:4" but holds dense Marlin tensors loads as dense Marlin', async () => {
    const dir = await writeDir(sparse24QuantizationConfig(128), (prefix, l) => {
      const t = toMarlinCheckpoint(packMarlin(l));
      return { [`${prefix}.B`]: t.B, [`${prefix}.s`]: t.s };
    });
    const m = await loadModelDir(dir);
    const src = m.sources.layers[0].linears.q_proj;
    expect(src.kind).toBe("quantized");
    const qm = new CpuLlama(m.config, m.sources);
    expect(qm.layers[0].qkv.implementationFor(1)).toBe(marlinCpu.id);
  });
});
