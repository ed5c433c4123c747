// Engine benchmark (GPU machine): a Llama-2-7B-shaped model with random weights made on the device
// (never committed), dense fp16 and Marlin 4-bit g128, each linear prepared through the registry.
// Measures, for both side by side: decode at batch 1, 16, 64 (context 128) against the time to
// stream the weights once (the floor); the GPU time of each op of a decode step at batch 1 and 16;
// decode at contexts 1024 and 4096; prefill tokens/s for 512- and 2048-token prompts; an offline
// run of 256 requests (TTFT, TPOT, output tokens/s). With --hf FILE it also runs Hugging Face
// transformers on the same shape (../shared/peers/hf_decode_peer.py) in the same call. Writes
// JSON and an SVG chart under the repo's bench/results/.
//
//   node bench/run.mjs [--layers 32] [--requests 256] [--quick] [--hf path/to/hf_decode_peer.py]
//                      [--sections decode,split,contexts,prefill,offline] [--kinds dense,marlin,sparse24]
//                      [--split-batches 1,16]
// --kinds adds "sparse24" (2:4 sparse 4-bit g128, @marlin/sparse) beside dense and Marlin: its rows
// are printed against Marlin's.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { prepareLinear } from "@marlin/core";
import { DeviceBuffer, deviceReport, gpuTarget, hasGpu, noGpuReason, Stream, writePattern } from "@marlin/kernel";
import { SPARSE24_DEVICE_FORMAT } from "@marlin/sparse";
import { describePlans, GpuModelRunner, gpuOps, LLMEngine, OpTimer } from "../dist/index.js";
import { copyBandwidth } from "./bandwidth.mjs";
import { decodeChart } from "./chart.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../../..");
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const quick = args.includes("--quick");
const hfScript = opt("hf", undefined);
// --sections decode,split,contexts,prefill,offline (default: all)
const sections = new Set((opt("sections", "decode,split,contexts,prefill,offline") ?? "").split(","));
const kinds = opt("kinds", "dense,marlin").split(",");
// Batches that get the per-op times and the graph split (--split-batches 1,16,64).
const splitBatches = new Set(opt("split-batches", "1,16").split(",").map(Number));

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
  numLayers: Number(opt("layers", quick ? 4 : 32)),
  numHeads: 32,
  numKvHeads: 32,
  headDim: 128,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  ropeScaling: null,
  maxPositionEmbeddings: 8192,
  tieWordEmbeddings: false,
  qkvBias: false,
  oBias: false,
  mlpBias: false,
  eosTokenIds: [],
  dtype: "float16",
};
const MAX_LEN = 4352; // context 4096 + decode steps
const MAX_SEQS = 64;
const BUDGET = 2048; // tokens per step (chunked prefill)
let seedCounter = 1;

function randomHalf(count, scale) {
  const b = DeviceBuffer.alloc(count * 2);
  gpuOps().fillUniform(b, count, seedCounter++, -scale, scale);
  return b;
}

/** Random weights made on the device, placed in the layout an implementation reads (no host copy). */
function placedLinear(kind, n, k, owned) {
  if (kind === "dense") {
    const w = randomHalf(n * k, Math.sqrt(3 / k));
    owned.push(w);
    return { kind: "dense", n, k, placed: { format: "fp16-device", data: w } };
  }
  if (kind === "sparse24") {
    // Random codes, every chunk keeping its first two inputs (metadata nibble 0x4: a valid pair).
    const values = DeviceBuffer.alloc((k * n) / 4);
    writePattern(values, 0, (k * n) / 16, seedCounter++);
    const meta = DeviceBuffer.alloc((k * n) / 8);
    meta.fillBytes(0x44);
    const s = 1 / (4.6 * Math.sqrt(k / 2));
    const scales = DeviceBuffer.alloc((k / 128) * n * 2);
    gpuOps().fillUniform(scales, (k / 128) * n, seedCounter++, 0.5 * s, 1.5 * s);
    owned.push(values, meta, scales);
    return { kind: "sparse24", n, k, bits: 4, groupSize: 128, placed: { format: SPARSE24_DEVICE_FORMAT, data: { k, n, groupSize: 128, values, meta, scales } } };
  }
  const qweight = DeviceBuffer.alloc((k * n) / 2);
  writePattern(qweight, 0, (k * n) / 8, seedCounter++); // any nibble is a valid 4-bit weight
  const groups = k / 128;
  // (q - 8) * s with q uniform in 0..15 has std ~4.6 s: aim for std 1/sqrt(k).
  const s = 1 / (4.6 * Math.sqrt(k));
  const scales = DeviceBuffer.alloc(groups * n * 2);
  gpuOps().fillUniform(scales, groups * n, seedCounter++, 0.5 * s, 1.5 * s);
  owned.push(qweight, scales);
  const data = { k, n, bits: 4, groupSize: 128, qweight, scales };
  return { kind: "quantized", n, k, bits: 4, groupSize: 128, symmetric: true, actOrder: false, placed: { format: "marlin-device", data } };
}

function buildRunner(kind) {
  const H = config.hiddenSize;
  const I = config.intermediateSize;
  const stream = new Stream(0);
  const owned = [];
  const device = gpuTarget(0);
  const maxRows = Math.max(BUDGET, MAX_SEQS);
  const lin = (n, k, name) => prepareLinear({ ...placedLinear(kind, n, k, owned), name }, { device, maxRows, stream });
  const ones = () => DeviceBuffer.from(new Float32Array(H).fill(1));
  const layers = [];
  for (let i = 0; i < config.numLayers; i++)
    layers.push({
      inputNorm: ones(),
      postNorm: ones(),
      qkv: lin(3 * H, H, "q_proj+k_proj+v_proj"),
      o: lin(H, H, "o_proj"),
      gateUp: lin(2 * I, H, "gate_proj+up_proj"),
      down: lin(H, I, "down_proj"),
    });
  const weights = { embed: randomHalf(config.vocabSize * H, 1), norm: ones(), lmHead: randomHalf(config.vocabSize * H, Math.sqrt(3 / H)), layers };
  const kernels = describePlans(["qkv", "o", "gateUp", "down"].map((s) => [layers[0][s].name, layers[0][s].plan]));
  const runner = new GpuModelRunner(config, weights, { maxModelLen: MAX_LEN, maxNumSeqs: MAX_SEQS, maxNumBatchedTokens: BUDGET, gpuMemoryFraction: 0.85 }, stream, kernels);
  runner.benchOwned = owned; // the placed device weights: the caller owns them
  return runner;
}

function disposeRunner(runner) {
  runner.dispose();
  for (const b of runner.benchOwned) b.free();
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
  out.engineHostMs = median(samples.map((x) => x.stepMs - x.totalMs));
  out.hostOverheadMs = median(samples.map((x) => x.stepMs - x.gpuMs));
  return out;
}

function newEngine(runner, seed, prefixCaching = false) {
  return new LLMEngine(runner, undefined, { eosTokenIds: [] }, { maxNumSeqs: MAX_SEQS, maxNumBatchedTokens: BUDGET, prefixCaching, seed });
}

/** Decode steps of `batch` sequences at a context of `context` tokens; optional per-op timing of a few steps. */
async function decode(runner, batch, bw, { context = 128, steps = quick ? 24 : 48, opSteps = 0 } = {}) {
  runner.profile = true;
  const engine = newEngine(runner, batch + context);
  const rng = mulberry(batch * 7 + context);
  // Long enough that every sequence is still decoding once the last prompt's chunked prefill is done.
  const maxTokens = steps + opSteps + 8 + Math.ceil((batch * context) / BUDGET) + batch;
  for (let i = 0; i < batch; i++) await engine.addRequest(randPrompt(context, rng), { maxTokens, ignoreEos: true });
  const times = [];
  const samples = [];
  const ops = [];
  let decodeSteps = 0;
  while (engine.hasUnfinished) {
    const pure = engine.scheduler.running.length === batch && engine.scheduler.waiting.length === 0;
    if (opSteps && pure && decodeSteps >= steps && ops.length < opSteps) runner.opTimer ??= new OpTimer(runner.stream);
    const t0 = performance.now();
    await engine.step();
    const dt = performance.now() - t0;
    if (engine.lastStep.numBatchedTokens === batch && engine.lastStep.numScheduled === batch) {
      decodeSteps++;
      if (runner.opTimer) ops.push(runner.opTimer.collect());
      else {
        times.push(dt);
        samples.push({ ...runner.lastTimings, stepMs: dt });
      }
    }
    if (runner.opTimer && ops.length >= opSteps) runner.opTimer = undefined;
  }
  runner.opTimer = undefined;
  const steady = times.slice(4);
  const stepMs = median(steady);
  const floorMs = (runner.weightBytes / bw) * 1000;
  const r = {
    batch,
    context,
    stepMs,
    stepP90Ms: pct(steady, 90),
    tokensPerSecond: (batch * 1000) / stepMs,
    floorMs,
    floorFraction: floorMs / stepMs,
    steps: steady.length,
    breakdown: breakdown(samples.slice(4)),
    cudaGraphs: runner.useGraphs,
    graphFailure: runner.graphFailure,
    leakedBlocks: engine.blocks.numBlocks - engine.blocks.numFreeBlocks,
  };
  if (ops.length) {
    const names = Object.keys(ops[0]);
    r.opGpuMs = Object.fromEntries(names.map((n) => [n, median(ops.map((o) => o[n] ?? 0))]));
    r.opGpuMs.linearTotal = Object.entries(r.opGpuMs).filter(([n]) => n.startsWith("linear ")).reduce((a, [, v]) => a + v, 0);
    r.opGpuMs.otherTotal = Object.entries(r.opGpuMs).filter(([n]) => !n.startsWith("linear ") && !n.endsWith("Total")).reduce((a, [, v]) => a + v, 0);
  }
  return r;
}

/** Prefill throughput: `n` prompts of `len` tokens, one output token each. */
async function prefill(runner, len, n) {
  runner.profile = false;
  const engine = newEngine(runner, len);
  const rng = mulberry(len);
  // warm-up at this shape
  await engine.addRequest(randPrompt(len, rng), { maxTokens: 1, ignoreEos: true });
  while (engine.hasUnfinished) await engine.step();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await engine.addRequest(randPrompt(len, rng), { maxTokens: 1, ignoreEos: true });
  let steps = 0;
  while (engine.hasUnfinished) {
    await engine.step();
    steps++;
  }
  const seconds = (performance.now() - t0) / 1000;
  return { promptTokens: len, requests: n, steps, seconds, tokensPerSecond: (len * n) / seconds };
}

async function offline(runner, n) {
  runner.profile = false;
  const engine = newEngine(runner, 2, true);
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
  const ttft = finals.map((o) => o.metrics.ttftMs);
  const tpot = finals.map((o) => o.metrics.tpotMs).filter((x) => x !== undefined);
  return {
    requests: n,
    completed: finals.length,
    seconds,
    steps,
    promptTokens: finals.reduce((a, o) => a + o.promptTokenIds.length, 0),
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
const kvBytesPerToken = 2 * config.numLayers * config.numKvHeads * config.headDim * 2;
for (const kind of kinds) {
  const t = performance.now();
  const runner = buildRunner(kind);
  console.log(`${kind}: weights ${(runner.weightBytes / 2 ** 30).toFixed(2)} GiB per step, ${runner.numBlocks} KV blocks, kernels ${JSON.stringify(runner.kernels)}, built in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  const run = { weightBytes: runner.weightBytes, kernels: runner.kernels, decode: [], contexts: [], prefill: [] };
  for (const b of sections.has("decode") ? [1, 16, 64] : []) {
    const r = await decode(runner, b, bw, { opSteps: splitBatches.has(b) ? 6 : 0 });
    console.log(`  decode batch ${b}: ${r.stepMs.toFixed(2)} ms/step, ${r.tokensPerSecond.toFixed(0)} tok/s, floor ${r.floorMs.toFixed(2)} ms (${(r.floorFraction * 100).toFixed(0)}% of floor speed)${r.graphFailure ? `, graphs off: ${r.graphFailure}` : ""}`);
    if (r.opGpuMs) console.log(`    GPU per op (eager, ms/step): ${Object.entries(r.opGpuMs).map(([n, v]) => `${n} ${v.toFixed(3)}`).join(", ")}`);
    run.decode.push(r);
  }
  // Graph replays with only the linear layers, and with only the other ops.
  for (const r of run.decode.filter((x) => splitBatches.has(x.batch) && sections.has("split"))) {
    r.gpuSplit = {};
    for (const skip of ["other", "linear"]) {
      runner.setProfileSkip(skip);
      const x = await decode(runner, r.batch, bw, { steps: 20 });
      r.gpuSplit[skip === "other" ? "linearOnlyGpuMs" : "otherOpsGpuMs"] = x.breakdown.gpuMs;
    }
    // What each kind of op adds to the graph's time: the replay without it, subtracted.
    r.gpuSplit.opInGraphMs = {};
    for (const op of ["attention", "addRmsnorm", "siluMul"]) {
      runner.setProfileSkip(op);
      const x = await decode(runner, r.batch, bw, { steps: 20 });
      r.gpuSplit.opInGraphMs[op] = r.breakdown.gpuMs - x.breakdown.gpuMs;
    }
    runner.setProfileSkip(undefined);
    const inGraph = Object.entries(r.gpuSplit.opInGraphMs).map(([n, v]) => `${n} ${v.toFixed(3)}`).join(", ");
    console.log(`  graph GPU time batch ${r.batch}: all ${r.breakdown.gpuMs.toFixed(3)} ms, only linear ${r.gpuSplit.linearOnlyGpuMs.toFixed(3)}, only other ops ${r.gpuSplit.otherOpsGpuMs.toFixed(3)}; in the graph ${inGraph}`);
  }
  for (const context of !sections.has("contexts") ? [] : quick ? [1024] : [1024, 4096])
    for (const b of [1, 16]) {
      const r = await decode(runner, b, bw, { context, steps: 16, opSteps: 4 });
      const kvMs = ((b * (context + 8) * kvBytesPerToken) / bw) * 1000;
      r.attentionKvFloorMs = kvMs;
      console.log(`  decode batch ${b} context ${context}: ${r.stepMs.toFixed(2)} ms/step; attention ${r.opGpuMs?.attention?.toFixed(3)} ms vs ${kvMs.toFixed(3)} ms to read its KV once`);
      run.contexts.push(r);
    }
  for (const len of sections.has("prefill") ? [512, 2048] : []) {
    const r = await prefill(runner, len, quick ? 2 : 8);
    console.log(`  prefill ${r.requests} x ${len} tokens: ${r.tokensPerSecond.toFixed(0)} tok/s (${r.steps} steps, ${r.seconds.toFixed(2)} s)`);
    run.prefill.push(r);
  }
  const off = sections.has("offline") ? await offline(runner, Number(opt("requests", quick ? 64 : 256))) : undefined;
  if (off) console.log(`  offline ${off.requests} requests: ${off.seconds.toFixed(1)} s, ${off.outputTokensPerSecond.toFixed(0)} output tok/s, TTFT p50 ${off.ttftMs.p50.toFixed(0)} ms, TPOT p50 ${off.tpotMs.p50.toFixed(1)} ms, leaked blocks ${off.leakedBlocks}`);
  run.offline = off;
  results.runs[kind] = run;
  disposeRunner(runner);
}

// Hugging Face transformers on the same shape, same call.
if (hfScript && existsSync(hfScript)) {
  const out = process.env.OUT ?? "/tmp";
  console.log(`running ${hfScript} (Hugging Face transformers, same GPU)`);
  const r = spawnSync("python3", [hfScript], { stdio: ["ignore", "inherit", "inherit"], env: { ...process.env, OUT: out }, timeout: 600_000 });
  const f = join(out, "hf_decode_anchor.json");
  if (r.status === 0 && existsSync(f)) results.huggingFace = JSON.parse(readFileSync(f, "utf8"));
  else console.log(`Hugging Face peer failed (status ${r.status})`);
}

const S = results.runs.sparse24;
if (S && results.runs.marlin) {
  const Mk = results.runs.marlin;
  results.sparseOverMarlin = { decode: Object.fromEntries(S.decode.map((x, i) => [`batch${x.batch}`, Mk.decode[i].stepMs / x.stepMs])) };
  console.log(`\n${"".padEnd(34)} ${"Marlin 4-bit".padStart(12)} ${"2:4 sparse".padStart(12)} ${"ratio".padStart(9)}`);
  S.decode.forEach((x, i) =>
    void console.log(`${`decode batch ${x.batch} (ctx 128)`.padEnd(34)} ${Mk.decode[i].stepMs.toFixed(2).padStart(12)} ${x.stepMs.toFixed(2).padStart(12)} ${`${(Mk.decode[i].stepMs / x.stepMs).toFixed(2)}x`.padStart(9)}  ms/step (floor ${Mk.decode[i].floorMs.toFixed(2)} / ${x.floorMs.toFixed(2)})`),
  );
}
const D = results.runs.dense;
const M = results.runs.marlin;
if (!D || !M) {
  const out = join(root, "bench", "results");
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, "engine-bench.json"), JSON.stringify(results, null, 2));
  console.log(`wrote ${join(out, "engine-bench.json")} (no dense / Marlin pair: no table or chart)`);
  process.exit(0);
}
results.speedup = {
  decode: Object.fromEntries(D.decode.map((x, i) => [`batch${x.batch}`, x.stepMs / M.decode[i].stepMs])),
  contexts: Object.fromEntries(D.contexts.map((x, i) => [`batch${x.batch}-ctx${x.context}`, x.stepMs / M.contexts[i].stepMs])),
  prefill: Object.fromEntries(D.prefill.map((x, i) => [`len${x.promptTokens}`, M.prefill[i].tokensPerSecond / x.tokensPerSecond])),
  offlineOutputTokens: M.offline && D.offline ? M.offline.outputTokensPerSecond / D.offline.outputTokensPerSecond : undefined,
};
results.targets = { batch1Ms: 1.3, batch1: 3, batch16: 2.5, batch64: 1.5, otherOpsBatch1Ms: 0.12, offline: 1.5, prefill: 0.9 };

// The table.
const hf = (b) => results.huggingFace?.rows?.find((r) => r.cache === "static" && r.batch === b)?.ms_per_step;
const row = (label, d, m, unit, ratio) => console.log(`${label.padEnd(34)} ${d.padStart(12)} ${m.padStart(12)} ${ratio.padStart(9)}  ${unit}`);
console.log(`\n${"".padEnd(34)} ${"dense fp16".padStart(12)} ${"Marlin 4-bit".padStart(12)} ${"ratio".padStart(9)}`);
D.decode.forEach((x, i) => {
  const h = hf(x.batch);
  row(`decode batch ${x.batch} (ctx 128)`, x.stepMs.toFixed(2), M.decode[i].stepMs.toFixed(2), `ms/step (floor ${x.floorMs.toFixed(2)} / ${M.decode[i].floorMs.toFixed(2)})${h ? `; HF static ${h.toFixed(2)}` : ""}`, `${(x.stepMs / M.decode[i].stepMs).toFixed(2)}x`);
});
D.decode.forEach((x, i) => {
  if (!x.opGpuMs) return;
  row(`  other ops, batch ${x.batch} (eager)`, x.opGpuMs.otherTotal.toFixed(3), M.decode[i].opGpuMs.otherTotal.toFixed(3), "ms GPU per step", "");
});
D.contexts.forEach((x, i) => void row(`decode batch ${x.batch} ctx ${x.context}`, x.stepMs.toFixed(2), M.contexts[i].stepMs.toFixed(2), `ms/step; attention ${M.contexts[i].opGpuMs?.attention?.toFixed(3)} ms vs KV read ${x.attentionKvFloorMs.toFixed(3)}`, `${(x.stepMs / M.contexts[i].stepMs).toFixed(2)}x`));
D.prefill.forEach((x, i) => void row(`prefill ${x.promptTokens}-token prompts`, x.tokensPerSecond.toFixed(0), M.prefill[i].tokensPerSecond.toFixed(0), "tok/s", `${(M.prefill[i].tokensPerSecond / x.tokensPerSecond).toFixed(2)}x`));
if (D.offline) row(`offline ${D.offline.requests} requests`, D.offline.outputTokensPerSecond.toFixed(0), M.offline.outputTokensPerSecond.toFixed(0), `output tok/s; TTFT p50 ${D.offline.ttftMs.p50.toFixed(0)} / ${M.offline.ttftMs.p50.toFixed(0)} ms`, `${results.speedup.offlineOutputTokens.toFixed(2)}x`);

const out = join(root, "bench", "results");
mkdirSync(out, { recursive: true });
writeFileSync(join(out, "engine-bench.json"), JSON.stringify(results, null, 2));
writeFileSync(join(out, "engine-bench.svg"), decodeChart(results));
console.log(`wrote ${join(out, "engine-bench.json")} and engine-bench.svg`);
