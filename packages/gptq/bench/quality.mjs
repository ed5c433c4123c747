#!/usr/bin/env node
// Quality of GPTQ vs round-to-nearest on the tiny-llama fixture: every quantized model is written
// as a checkpoint by quantizeModel, loaded back by the engine (CPU) and scored with the engine's
// perplexity tool on eval.txt (256-token windows). Prints a table and writes
// bench/results/gptq-quality.json at the repository root.
//
//   pnpm --filter @marlin/gptq build && node packages/gptq/bench/quality.mjs [--samples 128]
//     [--seqlen 256] [--seed 1234] [--damp 0.01] [--eval-chars N] [--configs g128,pc,g128-act]
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { quantizeModel } from "../dist/index.js";
import { arg, calib, evalText, log, modelDir, ppl, samples, seed, seqlen, writeResult } from "./common.mjs";

const damp = Number(arg("damp", 0.01));
const which = arg("configs", "g128,pc,g128-act").split(",");

const CONFIGS = {
  g128: { name: "4-bit g128", bits: 4, groupSize: 128, actOrder: false },
  pc: { name: "4-bit per-channel", bits: 4, groupSize: -1, actOrder: false },
  // Dynamic act-order groups need g_idx: written in GPTQ format (the engine reads it).
  "g128-act": { name: "4-bit g128 act-order", bits: 4, groupSize: 128, actOrder: true, format: "gptq" },
};

const work = mkdtempSync(join(tmpdir(), "gptq-quality-"));
const t0 = performance.now();
const rows = [];
try {
  log(`model ${modelDir}, calibration ${samples} x ${seqlen} tokens (seed ${seed}), damp ${damp}, eval ${evalText.length} chars`);
  const fp16 = await ppl(modelDir);
  log(`fp16 ppl ${fp16.ppl.toFixed(3)} (${fp16.seconds.toFixed(0)} s)`);
  const rtnCache = new Map();
  for (const key of which) {
    const c = CONFIGS[key];
    if (!c) throw new Error(`unknown config ${key}`);
    const opts = { bits: c.bits, groupSize: c.groupSize, actOrder: c.actOrder, format: c.format ?? "marlin", percDamp: damp };
    // RTN ignores act-order (no Hessian order): the same layers as without it.
    const rtnKey = `${c.bits}/${c.groupSize}`;
    let rtn = rtnCache.get(rtnKey);
    if (!rtn) {
      const out = join(work, `rtn-${key}`);
      const q = await quantizeModel(modelDir, out, { ...opts, actOrder: false, format: "marlin", method: "rtn", progress: false });
      rtn = { ...(await ppl(out)), quantizeSeconds: q.seconds };
      rtnCache.set(rtnKey, rtn);
      rmSync(out, { recursive: true, force: true });
      log(`${c.name} rtn ppl ${rtn.ppl.toFixed(3)}`);
    }
    const out = join(work, `gptq-${key}`);
    const q = await quantizeModel(modelDir, out, { ...opts, method: "gptq", calib, nsamples: samples, seqlen, seed });
    const g = { ...(await ppl(out)), quantizeSeconds: q.seconds, phases: q.phases };
    rmSync(out, { recursive: true, force: true });
    log(`${c.name} gptq ppl ${g.ppl.toFixed(3)} (quantize ${q.seconds.toFixed(0)} s)`);
    rows.push({ config: c.name, bits: c.bits, groupSize: c.groupSize, actOrder: c.actOrder, format: opts.format, rtn, gptq: g, gptqBeatsRtn: g.ppl < rtn.ppl });
  }
  const result = {
    bench: "gptq-quality",
    date: new Date().toISOString(),
    model: "tiny-llama",
    calibration: { file: "calib.txt", samples, seqlen, seed },
    percDamp: damp,
    eval: { file: "eval.txt", chars: evalText.length, window: 256, scoredTokens: fp16.scoredTokens },
    fp16: fp16.ppl,
    rows,
    seconds: (performance.now() - t0) / 1000,
    note: "checkpoints written by quantizeModel (marlin format; act-order row in gptq format) and loaded by the engine (CPU); RTN rows ignore act-order",
  };
  writeResult("gptq-quality.json", result);
  const lines = [
    `tiny-llama, eval.txt perplexity (calibration ${samples} x ${seqlen} tokens of calib.txt, seed ${seed}, damp ${damp})`,
    "| config | RTN | GPTQ | GPTQ recovers |",
    "|---|---|---|---|",
    `| fp16 | ${fp16.ppl.toFixed(3)} | | |`,
    ...rows.map((r) => `| ${r.config} | ${r.rtn.ppl.toFixed(3)} | **${r.gptq.ppl.toFixed(3)}** | ${(((r.rtn.ppl - r.gptq.ppl) / (r.rtn.ppl - fp16.ppl)) * 100).toFixed(0)}% |`),
    `total ${((performance.now() - t0) / 1000).toFixed(0)} s; written to bench/results/gptq-quality.json`,
  ];
  console.log(lines.join("\n"));
  if (rows.some((r) => !r.gptqBeatsRtn)) process.exitCode = 1;
} finally {
  rmSync(work, { recursive: true, force: true });
}
