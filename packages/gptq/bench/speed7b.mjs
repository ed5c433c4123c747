#!/usr/bin/env node
// Speed of whole-model GPTQ on one GPU at Llama-2-7B's shape: hidden 4096, intermediate 11008,
// 32 layers, 32 heads, vocabulary 32000; 128 calibration samples x 2048 tokens (262144 tokens);
// 4-bit, group size 128, a Marlin checkpoint written to local disk.
//
// It runs the real pipeline, quantizeModel with device "cuda": the model directory is read from
// disk, the calibration text tokenized and sampled, every layer's linear inputs captured by the
// engine's GPU layer forward (true-sequential passes over all 262144 tokens), the Hessians summed
// on the device, GPTQ run on the GPU, and the checkpoint written. The model (random fp16 weights)
// and the calibration text (random words) are made first, here, in a scratch directory (see
// random-llama.mjs); that step is timed apart and is not part of the pipeline's wall time.
//
//   pnpm --filter @marlin/gptq build && node packages/gptq/bench/speed7b.mjs [--layers 32]
//     [--samples 128] [--seqlen 2048] [--work DIR] [--keep] [--chunk-tokens N]
// Writes bench/results/gptq-speed7b.json (and $OUT/gptq-speed7b.json when $OUT is set).
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { cudaStatus, listDevices, memInfo } from "@marlin/kernel";
import { formatDuration, formatPhases, gptqGpuStatus, quantizeModel } from "../dist/index.js";
import { makeRandomLlama, writeRandomText } from "./random-llama.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../../..");
const argv = process.argv.slice(2);
const arg = (name, d) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : d;
};
const layers = Number(arg("layers", 32));
const samples = Number(arg("samples", 128));
const seqlen = Number(arg("seqlen", 2048));
const keep = argv.includes("--keep");
const tokenizerDir = process.env.MARLIN_FIXTURE_DIR ?? resolve(root, "../shared/models/tiny-llama");

const st = gptqGpuStatus();
if (!st.available) {
  console.error(`speed7b: GPTQ on the GPU is not available here: ${st.reason}`);
  process.exit(2);
}
const work = arg("work") ?? mkdtempSync(join(tmpdir(), "gptq-speed7b-"));
const modelDir = join(work, "llama2-7b-random");
const outDir = join(work, "llama2-7b-random-gptq-marlin");
const calib = join(work, "calib-random.txt");
const dev = listDevices()[0];
const cuda = cudaStatus();
const ver = (v) => (v ? `${Math.floor(v / 1000)}.${(v % 1000) / 10}` : "n/a");

console.log(`speed7b: ${dev.name}, CUDA runtime ${ver(cuda.runtimeVersion)} / driver ${ver(cuda.driverVersion)}; ${layers} layers of Llama-2-7B shape; ${samples} x ${seqlen} calibration tokens; 4-bit g128; work dir ${work}`);
try {
  let t = performance.now();
  const weightBytes = await makeRandomLlama(modelDir, { layers, seed: 7, tokenizerDir });
  writeRandomText(calib, { lines: 8000, seed: 11 });
  const makeSeconds = (performance.now() - t) / 1000;
  console.log(`made the model (${(weightBytes / 2 ** 30).toFixed(2)} GiB fp16) and the calibration text in ${makeSeconds.toFixed(1)} s`);

  // Layer times from the checkpoint writes of each layer's last linear; GPU memory sampled there.
  const layerDone = [];
  let peakUsed = 0;
  const total = memInfo(0).total;
  const onLinear = (r) => {
    peakUsed = Math.max(peakUsed, total - memInfo(0).free);
    if (r.name === "down_proj") layerDone.push(performance.now());
  };
  t = performance.now();
  const r = await quantizeModel(modelDir, outDir, { calib, nsamples: samples, seqlen, bits: 4, groupSize: 128, device: "cuda", seed: 3, onLinear });
  const wall = (performance.now() - t) / 1000;
  const perLayer = layerDone.slice(1).map((x, i) => (x - layerDone[i]) / 1000);
  const ckptBytes = readdirSync(outDir).reduce((a, f) => a + statSync(join(outDir, f)).size, 0);
  const retries = r.linears.filter((l) => l.percDamp !== 0.01).length;
  const meanLayer = perLayer.length ? perLayer.reduce((a, b) => a + b, 0) / perLayer.length : Number.NaN;
  // A short run's 32-layer estimate: the per-layer phases scale with layers, load with the weights.
  const fixed = r.phases.calibration;
  const projected = layers < 32 ? fixed + ((wall - fixed) * 32) / layers : wall;
  const lines = [
    `quantizeModel wall time ${formatDuration(wall)} for ${layers} layer(s)${layers < 32 ? ` (32 layers projected: ${formatDuration(projected)})` : ""}; target < 10 min`,
    formatPhases(r.phases, r.seconds),
    `per layer (after the first): mean ${meanLayer.toFixed(2)} s; GPU memory peak ${(peakUsed / 2 ** 30).toFixed(1)} GiB of ${(total / 2 ** 30).toFixed(0)}; checkpoint ${(ckptBytes / 2 ** 30).toFixed(2)} GiB; damping raised on ${retries} linear(s)`,
  ];
  console.log(lines.join("\n"));
  const result = {
    bench: "gptq-speed7b",
    date: new Date().toISOString(),
    gpu: dev.name,
    cuda: { runtime: ver(cuda.runtimeVersion), driver: ver(cuda.driverVersion) },
    commit: process.env.MARLIN_COMMIT ?? "unknown",
    node: process.version,
    pipeline: "quantizeModel(device cuda): model read from disk, calibration text tokenized, GPU layer forward (engine) over all tokens in true-sequential passes, Hessians on the device, GPTQ on the GPU, Marlin checkpoint written to local disk",
    model: {
      shape: "Llama-2-7B",
      hidden: 4096,
      intermediate: 11008,
      heads: 32,
      vocab: 32000,
      layers,
      weights: "random fp16, uniform with std 0.02 (made on the GPU), norms 1; sharded safetensors",
      weightBytes,
    },
    calibration: { text: "random lowercase words (seeded), tiny-llama tokenizer", samples, seqlen, tokens: samples * seqlen },
    quantization: { bits: 4, groupSize: 128, actOrder: false, symmetric: true, percDamp: 0.01, format: "marlin" },
    makeModelSeconds: makeSeconds,
    wallSeconds: wall,
    projected32LayersSeconds: projected,
    phases: r.phases,
    phasesNote: "forward = GPU layer passes (device time, synchronized per pass) minus the Hessian updates; hessian = device time of the X^T X updates (CUDA events); quantize = GPTQ on the GPU with its host side (layouts, uploads, downloads) and the dequantized fp16 weights sent back to the forward; write = Marlin packing and the safetensors writes",
    perLayerSeconds: perLayer,
    gpuMemoryPeakBytes: peakUsed,
    checkpointBytes: ckptBytes,
    dampingRetries: retries,
  };
  const json = `${JSON.stringify(result, null, 2)}\n`;
  mkdirSync(join(root, "bench/results"), { recursive: true });
  writeFileSync(join(root, "bench/results/gptq-speed7b.json"), json);
  if (process.env.OUT) writeFileSync(join(process.env.OUT, "gptq-speed7b.json"), json);
  console.log("written to bench/results/gptq-speed7b.json");
} finally {
  if (!keep) rmSync(work, { recursive: true, force: true });
}
