#!/usr/bin/env node
// Speed of GPTQ on a Llama-2-7B-shaped model on one GPU: hidden 4096, intermediate 11008,
// 32 layers, 32 heads, 128 calibration samples x 2048 tokens (262144 tokens).
//
// What is timed, per decoder layer, in the order the pipeline runs it:
//   hessian   X^T X on tensor cores (HessianGpu) of the attention input, the o_proj input, the
//             MLP input (k 4096) and the down_proj input (k 11008), in chunks of 8 sequences
//   factor    U = chol((H + damp I)^-1) through cuSOLVER (fp64), once per GPTQ call
//   loop      the GPTQ column loop + lazy GEMM updates (fp32)
//   host      host side of gptqQuantizeGpu (checks, act-order permutation, uploads)
//   download  codes / scales back to the host, un-permuted
//   pack      packMarlin + the Marlin checkpoint tensors (B, s)
//   write     safetensors through the streaming writer (temp dir, removed afterwards)
//   forward*  the linear-layer GEMMs of the 5 true-sequential layer passes (fp16 cuBLAS over all
//             262144 tokens), a proxy for the forward passes
// q/k/v (n 12288) and gate/up (n 22016) are quantized as one call each: their columns share the
// Hessian and groups, so this is the same result as separate calls.
//
// NOTE: the engine exposes no single-decoder-layer GPU forward on device buffers, so the
// calibration activations are RANDOM fp16 values of the right shapes made on the GPU, not the
// outputs of real forward passes; "forward*" times only the GEMMs of those passes (attention,
// norms and activations excluded). Weights are random too.
//
//   pnpm --filter @marlin/gptq build && node packages/gptq/bench/speed7b.mjs [--layers N]
//     [--samples 128] [--seqlen 2048] [--group-size 128] [--act-order] [--no-write] [--no-forward]
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Rng } from "@marlin/core";
import { gpuOps } from "@marlin/engine";
import { packMarlin, SafetensorsWriter, toMarlinCheckpoint } from "@marlin/format";
import { DeviceBuffer } from "@marlin/kernel";
import { formatDuration, gptqGpuStatus, gptqQuantizeGpu, HessianGpu, Progress, toQuantizedLayer } from "../dist/index.js";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../../..");
const argv = process.argv.slice(2);
const arg = (name, d) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : d;
};
const flag = (name) => argv.includes(`--${name}`);
const H = arg("hidden", 4096);
const I = arg("inter", 11008);
const L = arg("layers", 32);
const heads = arg("heads", 32);
const samples = arg("samples", 128);
const seqlen = arg("seqlen", 2048);
const groupSize = arg("group-size", 128);
const actOrder = flag("act-order");
const write = !flag("no-write");
const forward = !flag("no-forward");
const T = samples * seqlen;
const CHUNK = 8 * seqlen; // tokens per Hessian GEMM / forward GEMM

const st = gptqGpuStatus();
if (!st.available) {
  console.error(`speed7b: GPTQ on the GPU is not available here: ${st.reason}`);
  process.exit(2);
}
const ops = gpuOps();
const phases = { "forward*": 0, hessian: 0, factor: 0, loop: 0, host: 0, download: 0, pack: 0, write: 0 };
const sync = (buf) => buf.download(new Uint8Array(2)); // waits for queued device work
const time = (phase, f) => {
  const t = performance.now();
  const r = f();
  phases[phase] += (performance.now() - t) / 1000;
  return r;
};

console.log(`speed7b: ${L} layers, hidden ${H}, intermediate ${I}, ${heads} heads; ${samples} x ${seqlen} = ${T} calibration tokens; 4-bit g${groupSize}${actOrder ? " act-order" : ""}`);
console.log("NOTE: random calibration activations of the right shapes (no engine single-layer GPU forward); forward* = GEMMs of the 5 passes only");

// Activations: one fp16 buffer per input width, filled once (the timing does not depend on values).
const xH = DeviceBuffer.alloc(T * H * 2);
const xI = DeviceBuffer.alloc(T * I * 2);
ops.fillUniform(xH, T * H, 1, -1, 1);
ops.fillUniform(xI, T * I, 2, -1, 1);
// Weights: random host values reused across layers (GPTQ's cost does not depend on them).
const rng = new Rng(1234);
const wHost = new Float32Array(Math.max(H * (3 * H), H * 2 * I, I * H));
for (let i = 0; i < wHost.length; i++) wHost[i] = rng.normal() * 0.02;
const groups = [
  { name: "q,k,v", k: H, n: 3 * H, x: xH },
  { name: "o", k: H, n: H, x: xH },
  { name: "gate,up", k: H, n: 2 * I, x: xH },
  { name: "down", k: I, n: H, x: xI },
];
// Forward proxy: the fp16 weights [n, k] of the four GEMM shapes and an output buffer.
const fw = forward ? groups.map((g) => ({ ...g, w: DeviceBuffer.alloc(g.n * g.k * 2) })) : [];
for (const g of fw) ops.fillUniform(g.w, g.n * g.k, 3, -0.02, 0.02);
const fout = forward ? DeviceBuffer.alloc(CHUNK * 2 * I * 2) : undefined;
const passGemms = [[], [0], [0, 1], [0, 1, 2], [0, 1, 2, 3]]; // per true-sequential pass

const outDir = write ? mkdtempSync(join(tmpdir(), "gptq-speed7b-")) : undefined;
let writer;
if (write) {
  const specs = [];
  for (let li = 0; li < L; li++)
    for (const g of groups) {
      const gr = groupSize > 0 ? g.k / groupSize : 1;
      specs.push({ name: `model.layers.${li}.${g.name}.B`, dtype: "int32", shape: [g.k / 16, 2 * g.n] });
      specs.push({ name: `model.layers.${li}.${g.name}.s`, dtype: "float16", shape: [gr, g.n] });
    }
  writer = await SafetensorsWriter.create(join(outDir, "model.safetensors"), specs, { format: "pt" });
}

const t0 = performance.now();
const progress = new Progress(L, { label: "speed7b", minIntervalMs: 0 });
const perLayer = [];
try {
  for (let li = 0; li < L; li++) {
    const tl = performance.now();
    for (let pass = 0; pass < 5; pass++) {
      if (forward)
        time("forward*", () => {
          for (const gi of passGemms[pass]) {
            const g = fw[gi];
            for (let t = 0; t < T; t += CHUNK) ops.denseGemm([g.x, t * g.k * 2], g.w, fout, Math.min(CHUNK, T - t), g.n, g.k);
          }
          sync(fout);
        });
      if (pass === 4) break;
      const g = groups[pass];
      const hg = time("hessian", () => {
        const acc = new HessianGpu(g.k);
        for (let t = 0; t < T; t += CHUNK) acc.add(g.x, Math.min(CHUNK, T - t), t * g.k * 2);
        sync(acc.buffer);
        return acc;
      });
      const timings = {};
      const r = gptqQuantizeGpu(wHost.subarray(0, g.k * g.n), hg, { bits: 4, groupSize, actOrder, percDamp: 0.01 }, timings);
      hg.free();
      for (const [k, v] of Object.entries(timings)) phases[k] += v;
      const tensors = time("pack", () => toMarlinCheckpoint(packMarlin(toQuantizedLayer(r))));
      if (writer) {
        const tw = performance.now();
        await writer.write(`model.layers.${li}.${g.name}.B`, tensors.B.data);
        await writer.write(`model.layers.${li}.${g.name}.s`, tensors.s.data);
        phases.write += (performance.now() - tw) / 1000;
      }
    }
    perLayer.push((performance.now() - tl) / 1000);
    progress.tick(1, `layer ${li + 1}/${L}`);
  }
  if (writer) {
    const tw = performance.now();
    await writer.close();
    phases.write += (performance.now() - tw) / 1000;
  }
} finally {
  if (outDir) rmSync(outDir, { recursive: true, force: true });
}
const total = (performance.now() - t0) / 1000;
const projected = (total / L) * 32;
const lines = [
  `total ${formatDuration(total)} for ${L} layer(s) (${(total / L).toFixed(1)} s per layer; 32 layers projected: ${formatDuration(projected)}, target < 10 min)`,
  ...Object.entries(phases).map(([k, v]) => `  ${k.padEnd(9)} ${v.toFixed(1).padStart(7)} s  ${((100 * v) / total).toFixed(1).padStart(5)}%`),
];
console.log(lines.join("\n"));
const result = {
  bench: "gptq-speed7b",
  date: new Date().toISOString(),
  shape: { hidden: H, intermediate: I, layers: L, heads, samples, seqlen, tokens: T, groupSize, actOrder },
  randomActivations: true,
  forwardProxy: forward ? "cuBLAS fp16 GEMMs of the 5 true-sequential passes (attention, norms excluded)" : "off",
  totalSeconds: total,
  projected32LayersSeconds: projected,
  phases,
  perLayerSeconds: perLayer,
};
mkdirSync(join(root, "bench/results"), { recursive: true });
writeFileSync(join(root, "bench/results/gptq-speed7b.json"), `${JSON.stringify(result, null, 2)}\n`);
if (process.env.OUT) writeFileSync(join(process.env.OUT, "gptq-speed7b.json"), `${JSON.stringify(result, null, 2)}\n`);
console.log("written to bench/results/gptq-speed7b.json");
