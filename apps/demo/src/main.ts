/**
 * The main job: what this machine has, one real layer through the Marlin kernel, and text from the
 * model through the engine (GPU when present, CPU otherwise).
 *
 *   pnpm demo [model-dir] [--device auto|cpu|cuda] [--max-tokens N]
 */
import { parseArgs } from "node:util";
import { InvalidArgumentError, MarlinError } from "@marlin/core";
import { LLM, loadModelDir } from "@marlin/engine";
import { deviceReport } from "@marlin/kernel";
import { kernelDemo } from "./kernel-demo.js";
import { findModelDir } from "./model-dir.js";

const PROMPTS = [
  "The history of the city begins",
  "She opened the letter and read",
  "In the morning the farmers",
  "The committee decided that the new school",
];

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { device: { type: "string", default: "auto" }, "max-tokens": { type: "string", default: "40" } },
  });
  const device = values.device as "auto" | "cpu" | "cuda";
  const maxTokens = Number(values["max-tokens"]);
  const dir = findModelDir(positionals[0]);
  const log = (s: string) => console.log(s);

  log("== Devices");
  log(deviceReport());

  log(`\n== Model: ${dir}`);
  const t0 = performance.now();
  const model = await loadModelDir(dir);
  if (!model.tokenizer) throw new InvalidArgumentError(`${dir} has no tokenizer.json`);
  const quant = model.config.quantization;
  log(`${model.config.numLayers} layers, hidden ${model.config.hiddenSize}, ${quant ? `quantized (${quant.bits}-bit, group ${quant.groupSize})` : model.config.dtype} weights, read in ${((performance.now() - t0) / 1000).toFixed(2)} s`);

  log("\n== One layer through the Marlin kernel (layer 0 up_proj, prompt embeddings)");
  const ids = await model.tokenizer.encode(PROMPTS.join(" "));
  const r = await kernelDemo(model.sources, ids.slice(0, 16), log);
  log(`${r.impl}: [${r.m} x ${r.k}] x [${r.k} x ${r.n}] in ${r.ms.toFixed(3)} ms, relative error vs fp64 ${r.relError.toExponential(2)}`);

  log(`\n== Greedy generation (${PROMPTS.length} prompts at once, up to ${maxTokens} tokens)`);
  const t1 = performance.now();
  const llm = await LLM.fromLoaded(model, { device });
  log(`engine ready on ${llm.device} in ${((performance.now() - t1) / 1000).toFixed(2)} s`);
  try {
    const t2 = performance.now();
    const results = await llm.generate(PROMPTS, { temperature: 0, maxTokens });
    const secs = (performance.now() - t2) / 1000;
    let tokens = 0;
    for (const res of results) {
      tokens += res.tokenIds.length;
      log(`\n> ${res.prompt}${res.text}`);
      log(
        `  [${res.tokenIds.length} tokens, ${res.finishReason}, ttft ${res.metrics.ttftMs?.toFixed(1)} ms, ${res.metrics.tpotMs?.toFixed(2)} ms/token]`,
      );
    }
    log(`\n${tokens} tokens in ${secs.toFixed(2)} s (${(tokens / secs).toFixed(1)} tokens/s over the batch)`);
  } finally {
    llm.dispose();
  }
}

main().catch((err) => {
  if (err instanceof MarlinError) console.error(`error (${err.code}): ${err.message}`);
  else console.error(err);
  process.exitCode = 1;
});
