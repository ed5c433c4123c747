// Scratch experiment (not part of the package): tiny-llama RTN vs GPTQ on the CPU engine.
import { readFileSync } from "node:fs";
import { Rng } from "@marlin/core";
import { it } from "vitest";
import { CpuLlama } from "../../engine/src/cpu/cpu-model.js";
import { LLM, loadModelDir } from "../../engine/src/llm.js";
import { LINEAR_NAMES, type LinearName, linearToF32 } from "../../engine/src/model/weights.js";
import { perplexity } from "../../engine/src/perplexity.js";
import { gptqQuantize, HessianAccumulator, rtnQuantize, toQuantizedLayer } from "../src/index.js";

const DIR = "/work/shared/models/tiny-llama";
const NS = Number(process.env.NS ?? 64);
const SL = Number(process.env.SL ?? 256);
const EVAL_CHARS = Number(process.env.EVAL_CHARS ?? 1e9);
const log = (...a: unknown[]) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${a.join(" ")}\n`);

function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = w[i * cols + j];
  return out;
}

it("tiny-llama", async () => {
  const evalText = readFileSync(`${DIR}/eval.txt`, "utf8").slice(0, EVAL_CHARS);
  const ppl = async (m: Awaited<ReturnType<typeof loadModelDir>>) => {
    const llm = await LLM.fromLoaded(m, { device: "cpu", maxNumSeqs: 8 });
    return (await perplexity(llm, evalText)).perplexity;
  };
  const base = await loadModelDir(DIR);
  const t0 = performance.now();
  log("fp16 ppl", (await ppl(base)).toFixed(3), ((performance.now() - t0) / 1000).toFixed(1), "s");
  // calibration
  const lines = readFileSync(`${DIR}/calib.txt`, "utf8").split(/\r?\n/).filter((l) => l.length > 0);
  const enc = await base.tokenizer!.encodeBatch(lines, true);
  const ids: number[] = [];
  for (const e of enc) ids.push(...e, 2);
  const rng = new Rng(1234);
  const samples: number[][] = [];
  for (let s = 0; s < NS; s++) {
    const at = rng.int(0, ids.length - SL);
    samples.push(ids.slice(at, at + SL));
  }
  log("calib tokens", ids.length, "samples", NS, "x", SL);
  const configs = [
    { name: "4b g128", bits: 4 as const, groupSize: 128, actOrder: false },
    { name: "4b per-channel", bits: 4 as const, groupSize: -1, actOrder: false },
    { name: "4b g128 act-order", bits: 4 as const, groupSize: 128, actOrder: true },
  ];
  const rows: string[] = [];
  for (const c of configs) {
    // RTN
    const rtn = await loadModelDir(DIR);
    for (const L of rtn.sources.layers) {
      for (const name of LINEAR_NAMES) {
        const src = L.linears[name];
        const w = transpose(linearToF32(src), src.n, src.k); // [k, n]
        L.linears[name] = { kind: "quantized", n: src.n, k: src.k, layer: toQuantizedLayer(rtnQuantize(w, src.k, c)), name: src.name };
      }
    }
    const pr = await ppl(rtn);
    log(c.name, "rtn ppl", pr.toFixed(3));
    // GPTQ, true-sequential on the CPU engine
    const m = await loadModelDir(DIR);
    const model = new CpuLlama(m.config, m.sources, SL);
    const seqLens = samples.map(() => SL);
    let h = model.embedTokens(Int32Array.from(samples.flat()));
    const tq = performance.now();
    const stages: LinearName[][] = [["q_proj", "k_proj", "v_proj"], ["o_proj"], ["gate_proj", "up_proj"], ["down_proj"]];
    for (let li = 0; li < m.config.numLayers; li++) {
      for (const stage of stages) {
        let acc: HessianAccumulator | undefined;
        model.layerForward(li, h, seqLens, (_l, name, x, rowsN, k) => {
          if (name !== stage[0]) return;
          acc ??= new HessianAccumulator(k);
          acc.add(x.subarray(0, rowsN * k), rowsN);
        });
        const H = acc!.snapshot();
        for (const name of stage) {
          const wnk = model.getLinearWeight(li, name);
          const k = acc!.k;
          const n = wnk.length / k;
          const r = gptqQuantize(transpose(wnk, n, k), H, { ...c, percDamp: 0.01 });
          const layer = toQuantizedLayer(r);
          m.sources.layers[li].linears[name] = { kind: "quantized", n, k, layer, name: `${li}.${name}` };
          // dequantized back as W [n, k] for the next passes
          const dq = new Float32Array(k * n);
          for (let i = 0; i < k; i++) {
            const g = r.gIdx[i];
            for (let j = 0; j < n; j++) dq[j * k + i] = (r.q[i * n + j] - r.zeros[g * n + j]) * r.scales[g * n + j];
          }
          model.setLinearWeight(li, name, dq);
        }
      }
      h = model.layerForward(li, h, seqLens);
      log(c.name, "layer", li, "done", ((performance.now() - tq) / 1000).toFixed(1), "s");
    }
    const pg = await ppl(m);
    log(c.name, "gptq ppl", pg.toFixed(3));
    rows.push(`| ${c.name} | ${pr.toFixed(3)} | ${pg.toFixed(3)} |`);
    log(rows.join("\n"));
  }
}, 3_600_000);
