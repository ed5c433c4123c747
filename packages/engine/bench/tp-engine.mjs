// The whole engine at tensor-parallel sizes side by side: a random Marlin 4-bit (g128) checkpoint of
// the Llama-2-7B or a Llama-3-70B shape (random-model.ts, drawn on the GPU, written under /tmp and
// never committed), loaded with LLM.load at each tp (GpuTpRunner for tp > 1, NCCL between GPUs),
// decode ms/step at batch 1 and 16 (context 128) through the engine's scheduler, all in one call.
// Also rank 0's GPU time of a step (CUDA events around the graph replay or the launches).
// --shared puts every rank on GPU 0 (host-staged communicator, no graphs): a functional run on one
// GPU, not a speed figure. Writes bench/results/tp-engine.json.
//
//   node bench/tp-engine.mjs [--shape 7b|70b] [--layers N] [--tp 1,2,4] [--batches 1,16] [--steps 48] [--shared]
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { cudaStatus, deviceReport, hasGpu, noGpuReason } from "@marlin/kernel";
import { LLM, makeRandomLlama } from "../dist/index.js";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../../..");
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
if (!hasGpu()) {
  console.log(`tp engine bench needs a GPU: ${noGpuReason()}`);
  process.exit(0);
}
const SHAPES = {
  "7b": { layers: 32, hiddenSize: 4096, intermediateSize: 11008, heads: 32, kvHeads: 32, vocabSize: 32000 },
  "70b": { layers: 80, hiddenSize: 8192, intermediateSize: 28672, heads: 64, kvHeads: 8, vocabSize: 128256 },
};
const shapeName = opt("shape", "7b");
const shape = { ...SHAPES[shapeName] };
if (!SHAPES[shapeName]) throw new Error(`unknown shape ${shapeName} (${Object.keys(SHAPES).join(", ")})`);
if (opt("layers")) shape.layers = Number(opt("layers"));
const tps = opt("tp", "1,2,4").split(",").map(Number);
const batches = opt("batches", "1,16").split(",").map(Number);
const steps = Number(opt("steps", 48));
const shared = args.includes("--shared");
const gpus = cudaStatus().deviceCount;
const CONTEXT = 128;
console.log(deviceReport());
console.log(`tp engine bench: shape ${shapeName} ${JSON.stringify(shape)}, Marlin 4-bit g128, context ${CONTEXT}, ${steps} decode steps; ${shared ? "every rank on GPU 0 (host-staged)" : `${gpus} GPUs, NCCL`}; NCCL_NVLS_ENABLE=${process.env.NCCL_NVLS_ENABLE ?? "(unset)"}`);

const dir = join(process.env.TMPDIR ?? "/tmp", `marlin-tp-${shapeName}-${shape.layers}`);
if (!existsSync(join(dir, "config.json"))) {
  rmSync(dir, { recursive: true, force: true });
  const t = performance.now();
  const bytes = await makeRandomLlama(dir, { ...shape, maxPositions: 4096, format: "marlin", seed: 1 });
  console.log(`wrote ${dir} (${(bytes / 2 ** 30).toFixed(1)} GiB) in ${((performance.now() - t) / 1000).toFixed(0)} s`);
}

const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length ? s[Math.floor(s.length / 2)] : Number.NaN;
};

/** Median step time of pure decode steps of `batch` sequences at context 128. */
async function decode(llm, batch) {
  const engine = llm.engine;
  const runner = engine.runner.rank0 ?? engine.runner;
  runner.profile = true;
  let seed = batch * 7919;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  const V = llm.config.vocabSize;
  for (let i = 0; i < batch; i++) await engine.addRequest(Array.from({ length: CONTEXT }, () => 3 + Math.floor(rand() * (V - 3))), { maxTokens: steps + 8 + batch, ignoreEos: true });
  const times = [];
  const gpu = [];
  while (engine.hasUnfinished) {
    const t0 = performance.now();
    await engine.step();
    const dt = performance.now() - t0;
    if (engine.lastStep.numBatchedTokens === batch && engine.lastStep.numScheduled === batch) {
      times.push(dt);
      gpu.push(runner.lastTimings.gpuMs);
    }
  }
  runner.profile = false;
  const s = times.slice(4);
  return { batch, context: CONTEXT, stepMs: median(s), rank0GpuMs: median(gpu.slice(4)), steps: s.length, cudaGraphs: runner.useGraphs, leakedBlocks: engine.blocks.numBlocks - engine.blocks.numFreeBlocks };
}

const results = { date: new Date().toISOString(), commit: process.env.MARLIN_COMMIT ?? "unknown", device: deviceReport(), cudaDevices: gpus, shape: shapeName, config: shape, shared, rows: [] };
for (const tp of tps) {
  if (!shared && tp > gpus) {
    console.log(`tp ${tp}: skipped, ${gpus} GPUs visible`);
    continue;
  }
  if (shape.heads % tp || shape.kvHeads % tp) {
    console.log(`tp ${tp}: skipped, does not divide ${shape.heads} heads / ${shape.kvHeads} kv heads`);
    continue;
  }
  const t = performance.now();
  const llm = await LLM.load(dir, {
    device: "cuda",
    tensorParallelSize: tp,
    ...(shared && tp > 1 ? { tensorParallelDevices: Array(tp).fill(0) } : {}),
    maxNumSeqs: Math.max(...batches),
    maxNumBatchedTokens: 2048,
    kvCacheTokens: Math.max(...batches) * (CONTEXT + steps + 64) + 4096,
  });
  console.log(`tp ${tp}: loaded in ${((performance.now() - t) / 1000).toFixed(0)} s; kernels ${JSON.stringify(llm.engine.runner.kernels)}`);
  try {
    for (const b of batches) {
      const r = { tp, ...(await decode(llm, b)) };
      results.rows.push(r);
      console.log(`tp ${tp} batch ${b}: ${r.stepMs.toFixed(2)} ms/step (rank 0 GPU ${r.rank0GpuMs.toFixed(2)} ms; ${r.steps} steps; graphs ${r.cudaGraphs})`);
    }
  } finally {
    llm.dispose();
  }
}

console.log(`\n${"tp".padEnd(4)} ${"batch".padStart(6)} ${"ms/step".padStart(9)} ${"rank 0 GPU".padStart(11)} ${"vs tp 1".padStart(8)}`);
for (const r of results.rows) {
  const one = results.rows.find((x) => x.tp === 1 && x.batch === r.batch);
  console.log(`${String(r.tp).padEnd(4)} ${String(r.batch).padStart(6)} ${r.stepMs.toFixed(2).padStart(9)} ${r.rank0GpuMs.toFixed(2).padStart(11)} ${(one ? `${(one.stepMs / r.stepMs).toFixed(2)}x` : "").padStart(8)}`);
}
const out = join(root, "bench", "results");
mkdirSync(out, { recursive: true });
const file = join(out, `tp-engine-${shapeName}${shared ? "-shared" : ""}.json`);
writeFileSync(file, JSON.stringify(results, null, 2));
console.log(`wrote ${file}`);
