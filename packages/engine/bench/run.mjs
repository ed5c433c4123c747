// Engine benchmark (GPU machine): a Llama-2-7B-shaped model with random weights made on the device
// (never committed), dense fp16 (cuBLAS) and Marlin 4-bit g128. Measures decode tokens/s at batch
// 1, 16 and 64, each decode step against the time to stream the weights once (the floor), and an
// offline run of 256 requests (time to first token, time per output token). Writes JSON and an SVG
// chart under the repo's bench/results/.
//
//   node bench/run.mjs [--layers 32] [--requests 256] [--quick]
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { CudaEvent, DeviceBuffer, deviceReport, hasGpu, MarlinWorkspace, noGpuReason, writePattern } from "@marlin/kernel";
import { DenseGpuLinear, GpuModelRunner, gpuOps, LLMEngine, MarlinGpuLinear } from "../dist/index.js";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../../..");
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const quick = args.includes("--quick");

if (!hasGpu()) {
  console.log(`engine bench needs a GPU: ${noGpuReason()}`);
  process.exit(0);
}
console.log(deviceReport());

const config = {
  modelType: "llama",
  architectures: ["LlamaForCausalLM"],
  vocabSize: 32000,
  hiddenSize: 4096,
  intermediateSize: 11008,
  numLayers: opt("layers", quick ? 4 : 32),
  numHeads: 32,
  numKvHeads: 32,
  headDim: 128,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  ropeScaling: null,
  maxPositionEmbeddings: 4096,
  tieWordEmbeddings: false,
  qkvBias: false,
  oBias: false,
  mlpBias: false,
  eosTokenIds: [],
  dtype: "float16",
};
const MAX_LEN = 2048;
const MAX_SEQS = 64;
let seedCounter = 1;

function randomHalf(count, scale) {
  const b = DeviceBuffer.alloc(count * 2);
  gpuOps().fillUniform(b, count, seedCounter++, -scale, scale);
  return b;
}

function denseLinear(n, k) {
  return new DenseGpuLinear(randomHalf(n * k, Math.sqrt(3 / k)), n, k);
}

function marlinLinear(n, k, ws) {
  const qweight = DeviceBuffer.alloc((k * n) / 2);
  writePattern(qweight, 0, (k * n) / 8, seedCounter++); // any nibble is a valid 4-bit weight
  const groups = k / 128;
  // (q - 8) * s with q uniform in 0..15 has std ~4.6 s: aim for std 1/sqrt(k).
  const s = 1 / (4.6 * Math.sqrt(k));
  const scales = DeviceBuffer.alloc(groups * n * 2);
  gpuOps().fillUniform(scales, groups * n, seedCounter++, 0.5 * s, 1.5 * s);
  return new MarlinGpuLinear({ k, n, bits: 4, groupSize: 128, qweight, scales }, ws);
}

function buildRunner(kind) {
  const ws = new MarlinWorkspace(0);
  const H = config.hiddenSize;
  const I = config.intermediateSize;
  const lin = (n, k) => (kind === "marlin" ? marlinLinear(n, k, ws) : denseLinear(n, k));
  const ones = () => DeviceBuffer.from(new Float32Array(H).fill(1));
  const layers = [];
  for (let i = 0; i < config.numLayers; i++)
    layers.push({ inputNorm: ones(), postNorm: ones(), qkv: lin(3 * H, H), o: lin(H, H), gateUp: lin(2 * I, H), down: lin(H, I) });
  const weights = { embed: randomHalf(config.vocabSize * H, 1), norm: ones(), lmHead: denseLinear(config.vocabSize, H), layers };
  return new GpuModelRunner(config, weights, { maxModelLen: MAX_LEN, maxNumSeqs: MAX_SEQS, maxNumBatchedTokens: 4096, gpuMemoryFraction: 0.85 }, ws, {
    linear: kind === "marlin" ? "marlin.cuda" : "cublas.fp16",
    lm_head: "cublas.fp16",
  });
}

/** Device copy bandwidth (read + write bytes per second) with a 2 GiB buffer. */
function copyBandwidth() {
  const bytes = 2 ** 31;
  const a = DeviceBuffer.alloc(bytes);
  const b = DeviceBuffer.alloc(bytes);
  const e0 = new CudaEvent();
  const e1 = new CudaEvent();
  b.copyFrom(a, 0, 0, bytes);
  const times = [];
  for (let i = 0; i < 5; i++) {
    e0.record();
    b.copyFrom(a, 0, 0, bytes);
    e1.record();
    times.push(CudaEvent.elapsedMs(e0, e1));
  }
  a.free();
  b.free();
  times.sort((x, y) => x - y);
  return (2 * bytes) / (times[2] / 1000);
}

const randPrompt = (len, rng) => Array.from({ length: len }, () => 3 + Math.floor(rng() * (config.vocabSize - 3)));
function mulberry(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length ? s[Math.floor(s.length / 2)] : Number.NaN;
};
const pct = (a, p) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : Number.NaN;
};

const PHASES = ["prepMs", "launchMs", "gpuMs", "syncMs", "downloadMs", "totalMs"];

/** Medians of the runner's per-step timings plus the engine's host time around execute(). */
function breakdown(samples) {
  const out = {};
  for (const k of [...PHASES, "stepMs"]) out[k] = median(samples.map((x) => x[k]));
  // Host time of the engine outside execute() (scheduler, batch building, output processing).
  out.engineHostMs = median(samples.map((x) => x.stepMs - x.totalMs));
  // Everything in the step that is not the device running the decode graph.
  out.hostOverheadMs = median(samples.map((x) => x.stepMs - x.gpuMs));
  return out;
}

async function decodeThroughput(runner, batch, bw, maxSteps) {
  runner.profile = true;
  const engine = new LLMEngine(runner, undefined, { eosTokenIds: [] }, { maxNumSeqs: MAX_SEQS, maxNumBatchedTokens: 4096, prefixCaching: false, seed: 1 });
  const rng = mulberry(batch);
  const steps = maxSteps ?? (quick ? 24 : 64);
  for (let i = 0; i < batch; i++) await engine.addRequest(randPrompt(128, rng), { maxTokens: steps + 8, ignoreEos: true });
  const times = [];
  const samples = [];
  while (engine.hasUnfinished) {
    const t0 = performance.now();
    await engine.step();
    const dt = performance.now() - t0;
    // Pure decode steps of the full batch, after the first few (graph warm-up and capture).
    if (engine.lastStep.numBatchedTokens === batch && engine.lastStep.numScheduled === batch) {
      times.push(dt);
      samples.push({ ...runner.lastTimings, stepMs: dt });
    }
  }
  const steady = times.slice(4);
  const steadySamples = samples.slice(4);
  const stepMs = median(steady);
  const floorMs = (runner.weightBytes / bw) * 1000;
  return {
    batch,
    stepMs,
    stepP90Ms: pct(steady, 90),
    tokensPerSecond: (batch * 1000) / stepMs,
    floorMs,
    floorFraction: floorMs / stepMs,
    steps: steady.length,
    breakdown: breakdown(steadySamples),
    graphSteps: steadySamples.filter((x) => x.graph).length,
    cudaGraphs: runner.useGraphs,
    graphFailure: runner.graphFailure,
    leakedBlocks: engine.blocks.numBlocks - engine.blocks.numFreeBlocks,
  };
}

async function offline(runner, n) {
  runner.profile = false;
  const engine = new LLMEngine(runner, undefined, { eosTokenIds: [] }, { maxNumSeqs: MAX_SEQS, maxNumBatchedTokens: 2048, prefixCaching: true, seed: 2 });
  const rng = mulberry(7);
  const finals = [];
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const promptLen = 32 + Math.floor(rng() * 480);
    const outLen = 32 + Math.floor(rng() * (quick ? 64 : 224));
    await engine.addRequest(randPrompt(promptLen, rng), { maxTokens: outLen, ignoreEos: true }, { onOutput: (o) => o.finished && finals.push(o) });
  }
  let steps = 0;
  while (engine.hasUnfinished) {
    await engine.step();
    steps++;
  }
  const seconds = (performance.now() - t0) / 1000;
  const outTokens = finals.reduce((a, o) => a + o.tokenIds.length, 0);
  const promptTokens = finals.reduce((a, o) => a + o.promptTokenIds.length, 0);
  const ttft = finals.map((o) => o.metrics.ttftMs);
  const tpot = finals.map((o) => o.metrics.tpotMs).filter((x) => x !== undefined);
  return {
    requests: n,
    completed: finals.length,
    seconds,
    steps,
    promptTokens,
    outputTokens: outTokens,
    outputTokensPerSecond: outTokens / seconds,
    ttftMs: { mean: ttft.reduce((a, b) => a + b, 0) / ttft.length, p50: median(ttft), p90: pct(ttft, 90) },
    tpotMs: { mean: tpot.reduce((a, b) => a + b, 0) / tpot.length, p50: median(tpot), p90: pct(tpot, 90) },
    preemptions: engine.scheduler.numPreemptions,
    leakedBlocks: engine.blocks.numBlocks - engine.blocks.numFreeBlocks,
  };
}

const bw = copyBandwidth();
console.log(`copy bandwidth ${(bw / 1e12).toFixed(2)} TB/s (read + write)`);
const results = { date: new Date().toISOString(), commit: process.env.MARLIN_COMMIT ?? "unknown", device: deviceReport(), copyBandwidthBytesPerSecond: bw, config, runs: {} };
for (const kind of ["dense", "marlin"]) {
  const t = performance.now();
  const runner = buildRunner(kind);
  console.log(`${kind}: weights ${(runner.weightBytes / 2 ** 30).toFixed(2)} GiB streamed per step, ${runner.numBlocks} KV blocks, built in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  const decode = [];
  for (const b of [1, 16, 64]) {
    const r = await decodeThroughput(runner, b, bw);
    console.log(`  decode batch ${b}: ${r.stepMs.toFixed(2)} ms/step, ${r.tokensPerSecond.toFixed(0)} tok/s, floor ${r.floorMs.toFixed(2)} ms (${(r.floorFraction * 100).toFixed(0)}% of floor speed)${r.graphFailure ? `, graphs off: ${r.graphFailure}` : ""}`);
    decode.push(r);
  }
  // Device time of the decode graph with only the linear layers (lm_head included) and with only
  // the other ops (norms, RoPE, KV store, attention, SiLU-mul, embedding, sampling).
  for (const r of decode) {
    if (r.batch > 16) continue;
    r.gpuSplit = {};
    for (const skip of ["other", "linear"]) {
      runner.setProfileSkip(skip);
      const x = await decodeThroughput(runner, r.batch, bw, 24);
      r.gpuSplit[skip === "other" ? "linearOnlyGpuMs" : "otherOpsGpuMs"] = x.breakdown.gpuMs;
    }
    runner.setProfileSkip(undefined);
  }
  for (const r of decode) {
    const b = r.breakdown;
    const split = r.gpuSplit ? `; graph with only linear ${r.gpuSplit.linearOnlyGpuMs.toFixed(2)} ms, only other ops ${r.gpuSplit.otherOpsGpuMs.toFixed(2)} ms` : "";
    console.log(
      `  breakdown batch ${r.batch}: step ${b.stepMs.toFixed(2)} ms = engine host ${b.engineHostMs.toFixed(2)} + execute ${b.totalMs.toFixed(2)} (prep/upload ${b.prepMs.toFixed(2)}, launch ${b.launchMs.toFixed(2)}, sync wait ${b.syncMs.toFixed(2)}, download ${b.downloadMs.toFixed(2)}); GPU ${b.gpuMs.toFixed(2)} ms, host overhead ${b.hostOverheadMs.toFixed(2)} ms${split}`,
    );
  }
  const off = await offline(runner, opt("requests", quick ? 64 : 256));
  console.log(`  offline ${off.requests} requests: ${off.seconds.toFixed(1)} s, ${off.outputTokensPerSecond.toFixed(0)} output tok/s, TTFT p50 ${off.ttftMs.p50.toFixed(0)} ms, TPOT p50 ${off.tpotMs.p50.toFixed(1)} ms, leaked blocks ${off.leakedBlocks}`);
  results.runs[kind] = { weightBytes: runner.weightBytes, decode, offline: off };
  runner.dispose();
}
const d = results.runs.dense.decode;
const m = results.runs.marlin.decode;
results.speedup = Object.fromEntries(d.map((x, i) => [`batch${x.batch}`, x.stepMs / m[i].stepMs]));
results.targets = { batch1: 2.5, batch16: 2.0 };
console.log(`Marlin / dense decode speedup: ${Object.entries(results.speedup).map(([k, v]) => `${k} ${v.toFixed(2)}x`).join(", ")} (targets 2.5x at 1, 2x at 16)`);

function chart() {
  const W = 760;
  const Hh = 340;
  const rows = d.map((x, i) => ({ b: x.batch, dense: x.tokensPerSecond, marlin: m[i].tokensPerSecond, fd: (x.batch * 1000) / x.floorMs, fm: (x.batch * 1000) / m[i].floorMs }));
  const max = Math.max(...rows.flatMap((r) => [r.dense, r.marlin, r.fm]));
  const bar = (x, v, color, label) => {
    const h = (v / max) * 220;
    return `<rect x="${x}" y="${270 - h}" width="44" height="${h}" fill="${color}"/><text x="${x + 22}" y="${265 - h}" font-size="11" text-anchor="middle">${label}</text>`;
  };
  const tick = (x, v) => {
    const y = 270 - (v / max) * 220;
    return `<line x1="${x - 4}" x2="${x + 48}" y1="${y}" y2="${y}" stroke="#444" stroke-dasharray="4 3"/>`;
  };
  let body = "";
  rows.forEach((r, i) => {
    const x = 80 + i * 230;
    body += bar(x, r.dense, "#8899aa", r.dense.toFixed(0)) + bar(x + 56, r.marlin, "#2a7ab8", r.marlin.toFixed(0));
    body += tick(x, r.fd) + tick(x + 56, r.fm);
    body += `<text x="${x + 50}" y="292" font-size="13" text-anchor="middle">batch ${r.b}: Marlin ${(d[i].stepMs / m[i].stepMs).toFixed(2)}x</text>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${Hh}" font-family="sans-serif">
<text x="20" y="24" font-size="15">Llama-2-7B shape (${config.numLayers} layers, random weights): decode tokens/s, dense fp16 (grey) vs Marlin 4-bit g128 (blue)</text>
<text x="20" y="42" font-size="11">dashed: the floor (time to stream the step's weights once at ${(bw / 1e12).toFixed(2)} TB/s copy bandwidth)</text>
${body}
<text x="20" y="325" font-size="11">${results.device.split("\n").slice(-1)[0].slice(0, 110)}</text>
</svg>`;
}

const out = join(root, "bench", "results");
mkdirSync(out, { recursive: true });
writeFileSync(join(out, "engine-bench.json"), JSON.stringify(results, null, 2));
writeFileSync(join(out, "engine-bench.svg"), chart());
console.log(`wrote ${join(out, "engine-bench.json")} and engine-bench.svg`);
