import { Rng, relativeError, runSeed } from "@marlin/core";
import { denseCpu, marlinCpu } from "@marlin/kernel";
import { describe, expect, test } from "vitest";
import { CpuLlama, LINEAR_NAMES, type LinearSource, linearToF32, loadModelDir, type ModelSources, quantizeSourcesRtn } from "../src/index.js";
import { dequantizedSources, hasTinyLlama, tinyLlamaDir } from "./helpers.js";

// Quantized layers on the CPU model run packed through the Marlin CPU path (the registry's pick,
// marlinCpu), not as dequantized fp32 copies; the result must match the dequantized model up to
// the fp16 rounding of activations the quantized path does (as the GPU does).
describe.skipIf(!hasTinyLlama())("CpuLlama with quantized layers", () => {
  test("runs the Marlin CPU path with packed weights and matches the dequantized fp32 model", async () => {
    const seed = runSeed();
    console.log(`cpu-quantized seed ${seed} (MARLIN_SEED replays)`);
    const rng = new Rng(seed);
    const m = await loadModelDir(tinyLlamaDir());
    for (const [bits, symmetric] of [
      [4, true],
      [4, false],
      [8, true],
    ] as const) {
      const q = quantizeSourcesRtn(m.sources, { bits, groupSize: 128, symmetric });
      const dense = dequantizedSources(q);
      const qm = new CpuLlama(m.config, q);
      const dm = new CpuLlama(m.config, dense);
      for (const slot of ["qkv", "o", "gateUp", "down"] as const) {
        expect(qm.layers[0][slot].implementationFor(1)).toBe(marlinCpu.id);
        expect(qm.layers[0][slot].implementationFor(4096)).toBe(marlinCpu.id);
        expect(dm.layers[0][slot].implementationFor(1)).toBe(denseCpu.id);
      }
      expect(qm.getLinearWeight(0, "o_proj")).toEqual(linearToF32(q.layers[0].linears.o_proj));

      const lens = [rng.int(1, 41), rng.int(1, 41)];
      const tokens = Int32Array.from({ length: lens[0] + lens[1] }, () => rng.int(0, m.config.vocabSize));
      const ha = qm.runLayers([Array.from(tokens.subarray(0, lens[0])), Array.from(tokens.subarray(lens[0]))]);
      const hb = dm.runLayers([Array.from(tokens.subarray(0, lens[0])), Array.from(tokens.subarray(lens[0]))]);
      const T = lens[0] + lens[1];
      const la = qm.headForward(ha, T);
      const lb = dm.headForward(hb, T);
      const eh = relativeError(ha, hb);
      const el = relativeError(la, lb);
      console.log(`${bits}-bit ${symmetric ? "sym" : "zero points"} g128, ${T} tokens: hidden rel. error ${eh.toExponential(2)}, logits ${el.toExponential(2)}`);
      expect(eh).toBeLessThan(5e-3);
      expect(el).toBeLessThan(5e-3);
      expect(eh).toBeGreaterThan(0); // the two paths are really different code
    }
  });
});
