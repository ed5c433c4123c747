import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Rng, relativeError, runSeed } from "@marlin/core";
import { f16ToF32, f32ToF16 } from "@marlin/format";
import { DeviceBuffer, hasGpu, noGpuReason } from "@marlin/kernel";
import { beforeAll, describe, expect, test } from "vitest";
import { CpuLlama, GpuLayerForward, LINEAR_NAMES, type LinearName, type LoadedModel, loadModelDir } from "../src/index.js";
import { hasTinyLlama, tinyLlamaDir } from "./helpers.js";

// The GPU single-layer forward (what GPTQ's passes run) against the CPU model's fp32 layerForward.
const gpu = hasGpu();
const fixture = hasTinyLlama();
if (!gpu) console.log(`GPU layer forward tests skipped: ${noGpuReason()}`);
else if (!fixture) console.log(`GPU layer forward tests skipped: no tiny-llama fixture at ${tinyLlamaDir()} (set MARLIN_FIXTURE_DIR)`);
const seed = runSeed();

/** fp16 rounding, as the device holds activations. */
const half = (a: Float32Array) => f16ToF32(f32ToF16(a));
const poisoned = (bytes: number) => {
  const b = DeviceBuffer.alloc(bytes);
  b.fillBytes(0xff); // NaN in fp16
  return b;
};
const back = (b: DeviceBuffer, n: number) => f16ToF32(b.download(new Uint16Array(n)));

/** Linear inputs seen by a hook, reassembled over the whole batch (chunks land at their row0). */
function gpuCapture(T: number) {
  const seen = new Map<LinearName, Float32Array>();
  const order: string[] = [];
  const hook = (name: LinearName, x: { buffer: DeviceBuffer; byteOffset: number; rows: number; k: number; row0: number }) => {
    order.push(name);
    const all = seen.get(name) ?? new Float32Array(T * x.k).fill(Number.NaN);
    seen.set(name, all);
    all.set(f16ToF32(x.buffer.download(new Uint16Array(x.rows * x.k), x.byteOffset)), x.row0 * x.k);
  };
  return { seen, order, hook };
}

describe.skipIf(!gpu || !fixture)("GpuLayerForward on tiny-llama against CpuLlama.layerForward", () => {
  let m: LoadedModel;
  let cpu: CpuLlama;
  let tokens: Int32Array;
  let lens: number[];
  beforeAll(async () => {
    console.log(`layer-forward: MARLIN_SEED=${seed}`);
    m = await loadModelDir(tinyLlamaDir());
    cpu = new CpuLlama(m.config, m.sources, 512);
    // Windows of real text at seeded offsets; one is longer than a chunk (it gets a chunk alone).
    const text = readFileSync(join(tinyLlamaDir(), "eval.txt"), "utf8").slice(0, 40000);
    const stream = await m.tokenizer!.encode(text, true);
    const rng = new Rng(seed);
    lens = [rng.int(20, 120), rng.int(20, 120), 300, rng.int(1, 10), rng.int(20, 120)];
    const parts = lens.map((len) => {
      const at = rng.int(0, stream.length - len);
      return stream.slice(at, at + len);
    });
    tokens = Int32Array.from(parts.flat());
    console.log(`layer-forward: sequence lengths ${lens.join(", ")}`);
  });

  test("embedding, every layer's output and every linear's captured input match the fp32 CPU path", () => {
    const c = m.config;
    const H = c.hiddenSize;
    const T = tokens.length;
    const fwd = new GpuLayerForward(c, m.sources, { maxSeqLen: 512, chunkTokens: 256 });
    try {
      const h0 = fwd.embed(tokens);
      expect(Array.from(back(h0, T * H))).toEqual(Array.from(half(cpu.embedTokens(tokens))));
      h0.free();
      let hIn = half(cpu.embedTokens(tokens));
      for (let li = 0; li < c.numLayers; li++) {
        // Both sides start from the same fp16 input, so the error is this layer's alone.
        const refSeen = new Map<LinearName, Float32Array>();
        const ref = cpu.layerForward(li, hIn, lens, (_l, name, x, rows, k) => refSeen.set(name, x.slice(0, rows * k)));
        fwd.loadLayer(li);
        const dIn = DeviceBuffer.from(f32ToF16(hIn));
        const dOut = poisoned(T * H * 2);
        const cap = gpuCapture(T);
        fwd.forward(dIn, lens, { out: dOut, hook: cap.hook });
        const out = back(dOut, T * H);
        const delta = (a: Float32Array) => a.map((v, i) => v - hIn[i]);
        const eOut = relativeError(out, ref);
        const eDelta = relativeError(delta(out), delta(ref));
        const eIn = LINEAR_NAMES.map((n) => relativeError(cap.seen.get(n)!, refSeen.get(n)!));
        console.log(`layer ${li}: output rel err ${eOut.toExponential(2)}, layer update (out - in) ${eDelta.toExponential(2)}; inputs ${LINEAR_NAMES.map((n, i) => `${n} ${eIn[i].toExponential(2)}`).join(", ")}`);
        expect(out.every(Number.isFinite)).toBe(true);
        expect(eOut).toBeLessThan(3e-3);
        expect(eDelta).toBeLessThan(1e-2);
        for (const e of eIn) expect(e).toBeLessThan(5e-3);
        // three chunks (256 tokens a chunk, whole sequences), each showing the 7 inputs in order
        expect(cap.order.length).toBe(3 * 7);
        expect(cap.order.slice(0, 7)).toEqual([...LINEAR_NAMES]);
        dIn.free();
        dOut.free();
        hIn = half(ref);
      }
    } finally {
      fwd.dispose();
    }
  });

  test("stopping early, replaced weights, in-place output and kept intermediates", () => {
    const c = m.config;
    const H = c.hiddenSize;
    const T = tokens.length;
    const li = 2;
    const hIn = half(cpu.embedTokens(tokens).map((v, i) => v + Math.sin(i) * 0.05));
    const plain = new GpuLayerForward(c, m.sources, { maxSeqLen: 512, chunkTokens: 200 });
    const kept = new GpuLayerForward(c, m.sources, { maxSeqLen: 512, chunkTokens: 200, keepIntermediates: true });
    const dIn = DeviceBuffer.from(f32ToF16(hIn));
    const original = new Map(LINEAR_NAMES.map((n) => [n, cpu.getLinearWeight(li, n)]));
    try {
      plain.loadLayer(li);
      kept.loadLayer(li);
      // A pass that stops at o_proj's input shows only q/k/v/o and leaves out alone.
      const dOut = poisoned(T * H * 2);
      const cap = gpuCapture(T);
      plain.forward(dIn, lens, { out: dOut, hook: cap.hook, stopAfter: "o_proj" });
      expect([...new Set(cap.order)]).toEqual(["q_proj", "k_proj", "v_proj", "o_proj"]);
      expect(back(dOut, T * H).every(Number.isNaN)).toBe(true);

      // GPTQ's sequence of passes: replace each stage's weights (fp16-rounded values) on the CPU,
      // the plain forward and the kept-intermediates forward alike, then compare the final outputs.
      const rng = new Rng(seed + 7);
      const stages: LinearName[][] = [["q_proj", "k_proj", "v_proj"], ["o_proj"], ["gate_proj", "up_proj"], ["down_proj"]];
      for (const stage of stages) {
        const capK = gpuCapture(T);
        kept.forward(dIn, lens, { hook: capK.hook, stopAfter: stage[0] });
        const capP = gpuCapture(T);
        plain.forward(dIn, lens, { hook: capP.hook, stopAfter: stage[0] });
        expect(relativeError(capK.seen.get(stage[0])!, capP.seen.get(stage[0])!)).toBeLessThan(1e-3);
        for (const name of stage) {
          const w = cpu.getLinearWeight(li, name);
          expect(Array.from(plain.getLinearWeight(name))).toEqual(Array.from(half(w)));
          const w2 = half(w.map((v) => v * (1 + 0.2 * (rng.next() - 0.5))));
          cpu.setLinearWeight(li, name, w2);
          plain.setLinearWeight(name, w2);
          kept.setLinearWeight(name, f32ToF16(w2));
        }
      }
      const ref = cpu.layerForward(li, hIn, lens);
      const outK = poisoned(T * H * 2);
      kept.forward(dIn, lens, { out: outK });
      plain.forward(dIn, lens, { out: dIn }); // in place
      const eK = relativeError(back(outK, T * H), ref);
      const eP = relativeError(back(dIn, T * H), ref);
      console.log(`replaced weights: rel err kept-intermediates ${eK.toExponential(2)}, plain in-place ${eP.toExponential(2)}`);
      expect(eK).toBeLessThan(3e-3);
      expect(eP).toBeLessThan(3e-3);
      outK.free();
      dOut.free();
    } finally {
      for (const [name, w] of original) cpu.setLinearWeight(li, name, w); // the CPU model is shared
      dIn.free();
      plain.dispose();
      kept.dispose();
    }
  });

  test("refuses bad arguments before any launch", () => {
    const fwd = new GpuLayerForward(m.config, m.sources, { maxSeqLen: 64 });
    try {
      const h = DeviceBuffer.alloc(16 * m.config.hiddenSize * 2);
      expect(() => fwd.forward(h, [16], { stopAfter: "q_proj" })).toThrow(/loadLayer/);
      fwd.loadLayer(0);
      expect(() => fwd.forward(h, [16])).toThrow(/output buffer/);
      expect(() => fwd.forward(h, [65], { stopAfter: "q_proj" })).toThrow(/not in \[1, 64\]/);
      expect(() => fwd.forward(h, [32], { stopAfter: "q_proj" })).toThrow(/needs 32x/);
      expect(() => fwd.setLinearWeight("o_proj", new Float32Array(5))).toThrow(/o_proj weight needs/);
      expect(() => fwd.embed(Int32Array.from([0, m.config.vocabSize]))).toThrow(/outside the vocabulary/);
      h.free();
    } finally {
      fwd.dispose();
    }
    expect(() => new GpuLayerForward(m.config, m.sources, { maxSeqLen: m.config.maxPositionEmbeddings + 1 })).toThrow(/exceeds/);
  });
});
