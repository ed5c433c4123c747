// Three contenders on the linear layers of one transformer block (Llama-2-7B, Llama-2-13B,
// Llama-3-70B) and a 16384 x 65536 matrix, 4-bit, group 128, m = 1 .. 4096 (decode to prefill):
// cuBLAS FP16, the reference Marlin (../shared/peers, timed by its Python helper in the same call
// with the same method), and each of our implementations the registry can pick for the layer,
// beside the registry's own pick per m (marlinMs). Weights rotate over enough copies to exceed 3x
// the L2; times are medians of CUDA-event batches, each queued behind a holding kernel so that
// launch latency is not timed. Prints speedups and percent of the HBM floor (bytes that must move
// / measured copy bandwidth), and writes JSON and an SVG chart under the repo's bench/results/.
//   node bench/run.mjs [--m 1,16,64] [--shapes llama2-7b,...] [--reps 15] [--hold-us 2000]
//                      [--reference DIR]   (DIR holds kernel_peer_bench.py and a built marlin-reference/)
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { registry } from "@marlin/core";
import { cublasStatus, cudaStatus, DeviceBuffer, denseMatmul, gpuTarget, hasGpu, listDevices, noGpuReason, QUANT_MATMUL_OP } from "../dist/index.js";
import { speedupChart } from "./chart.mjs";
import { benchCli, deviceCopies, MODELS, makeTimer, marlinDeviceLayer, randomHalves, randomWords, runStamp, writeResults } from "./common.mjs";

const { root, opt } = benchCli(import.meta.url);
const MS = opt("m", "1,2,4,8,16,32,64,128,256,1024,4096").split(",").map(Number);
const REFERENCE = opt("reference", undefined);
const REPS = Number(opt("reps", "15"));
// Each timed batch queues behind a kernel holding the GPU this long (longer than the host takes to
// queue a batch), so both libraries are timed on the GPU's work alone, launch latency excluded.
const HOLD_US = Number(opt("hold-us", "2000"));
// The reference helper's names for the same blocks.
const PEER_NAMES = { "llama2-7b": "Llama-2-7B", "llama2-13b": "Llama-2-13B", "llama3-70b": "Llama-3-70B", "16384x65536": "large" };
const pick = opt("shapes", Object.keys(MODELS).join(",")).split(",");

if (!hasGpu()) {
  console.log(`no GPU: ${noGpuReason()}`);
  process.exit(0);
}
const dev = listDevices()[0];
const blas = cublasStatus();
if (!blas.available) console.log(`cuBLAS unavailable (${blas.reason}); Marlin times only`);

// Median over REPS batches of the mean time per call, calls cycling over `copies`.
const timeIt = makeTimer(REPS, HOLD_US);

// HBM floor: a 1 GiB device-to-device copy, bytes read + written.
const copyBytes = 1 << 30;
const ca = DeviceBuffer.alloc(copyBytes);
const cb = DeviceBuffer.alloc(copyBytes);
ca.fillBytes(1);
const copyMs = timeIt(() => cb.copyFrom(ca, 0, 0, copyBytes), 1);
const bw = (2 * copyBytes) / (copyMs * 1e-3);
ca.free();
cb.free();
console.log(`device: ${dev.name}, ${dev.smCount} SMs, L2 ${(dev.l2CacheSize / 2 ** 20).toFixed(0)} MiB, copy bandwidth ${(bw / 1e12).toFixed(2)} TB/s`);

const device = gpuTarget(0);
const ids = registry
  .list(QUANT_MATMUL_OP)
  .filter((i) => i.devices.kind === "cuda")
  .map((i) => i.id);
/** Prepared copies of a layer for m rows: the registry's pick, or one implementation alone. */
function prepared(L, m, only) {
  const disabled = only ? ids.filter((x) => x !== only) : undefined;
  const out = [];
  try {
    for (let i = 0; i < L.q.length; i++) out.push(registry.prepareLinear(marlinDeviceLayer(L, i, `${L.k}x${L.n}`), { device, maxRows: m, disabled }));
  } catch (e) {
    for (const p of out) p.dispose();
    if (only) return undefined; // this implementation does not take the layer at this m
    throw e;
  }
  return out;
}

const rows = [];
console.log(`our implementations: ${ids.join(", ")}`);
console.log(`${"shapes".padEnd(12)} ${"m".padStart(5)} ${"cublas ms".padStart(10)} ${"pick ms".padStart(10)} ${"speedup".padStart(8)} ${"% floor".padStart(8)}  pick / each implementation`);
for (const name of pick) {
  const layers = MODELS[name];
  if (!layers) continue;
  const qbytes = layers.reduce((s, [k, n]) => s + (k * n) / 2, 0);
  const dbytes = layers.reduce((s, [k, n]) => s + k * n * 2, 0);
  const copies = Math.min(16, Math.floor((3 * dev.l2CacheSize) / qbytes) + 1);
  const dcopies = Math.min(16, Math.floor((3 * dev.l2CacheSize) / dbytes) + 1);
  const preparedLayers = layers.map(([k, n], li) => {
    const q = deviceCopies(randomWords((k * n) / 8, 17 + li), copies);
    const s = deviceCopies(randomHalves((k / 128) * n, 29 + li, 0.001, 0.003), copies);
    const w = blas.available ? deviceCopies(randomHalves(k * n, 31 + li, -0.05, 0.05), dcopies) : [];
    return { k, n, q, s, w };
  });
  for (const m of MS) {
    let tm = 0;
    let tb = 0;
    let floor = 0;
    const each = Object.fromEntries(ids.map((id) => [id, 0]));
    const picks = [];
    for (const L of preparedLayers) {
      const x = DeviceBuffer.from(randomHalves(m * L.k, 7 + m, -1, 1));
      const out = DeviceBuffer.alloc(m * L.n * 2);
      const run = (p) => timeIt((i) => p[i].forward(x, out, m), copies);
      const best = prepared(L, m);
      picks.push(best[0].implementationFor(m));
      tm += run(best);
      for (const p of best) p.dispose();
      for (const id of ids) {
        if (each[id] === null) continue;
        const p = prepared(L, m, id);
        if (!p) {
          each[id] = null;
          continue;
        }
        each[id] += run(p);
        for (const x of p) x.dispose();
      }
      if (blas.available) tb += timeIt((i) => denseMatmul({ x, w: L.w[i], out, m, k: L.k, n: L.n, wLayout: "nk" }), dcopies);
      floor += ((L.k * L.n) / 2 + (L.k / 128) * L.n * 2 + m * (L.k + L.n) * 2) / bw;
      x.free();
      out.free();
    }
    const row = {
      shapes: name,
      m,
      cublasMs: tb,
      referenceMs: null,
      marlinMs: tm,
      pick: [...new Set(picks)].join("+"),
      implMs: each,
      speedup: tb ? tb / tm : null,
      floorMs: floor * 1e3,
      pctFloor: ((floor * 1e3) / tm) * 100,
    };
    rows.push(row);
    const eachText = ids.map((id) => `${id} ${each[id] === null ? "-" : each[id].toFixed(4)}`).join(", ");
    console.log(
      `${name.padEnd(12)} ${String(m).padStart(5)} ${tb.toFixed(4).padStart(10)} ${tm.toFixed(4).padStart(10)} ${(row.speedup ?? 0).toFixed(2).padStart(8)} ${row.pctFloor.toFixed(1).padStart(7)}%  ${row.pick} / ${eachText}`,
    );
  }
  for (const L of preparedLayers) for (const b of [...L.q, ...L.s, ...L.w]) b.free();
}

// The reference Marlin, timed the same way (held batches, rotated weights) by its Python helper,
// in this same call; its cuBLAS (torch.matmul) column is kept beside ours.
let reference;
if (REFERENCE) {
  const script = join(REFERENCE, "kernel_peer_bench.py");
  const out = mkdtempSync(join(tmpdir(), "marlin-ref-"));
  if (!existsSync(script)) console.log(`no ${script}: the reference is not timed`);
  else {
    console.log(`timing the reference Marlin (${script})`);
    const r = spawnSync("python3", [script], {
      stdio: ["ignore", "inherit", "inherit"],
      env: { ...process.env, OUT: out, BATCHES: MS.join(","), PYTHONPATH: join(REFERENCE, "marlin-reference") },
      timeout: 900_000,
    });
    const f = join(out, "kernel_anchor.json");
    if (r.status === 0 && existsSync(f)) reference = JSON.parse(readFileSync(f, "utf8"));
    else console.log(`the reference helper failed (status ${r.status})`);
  }
}
if (reference) {
  for (const row of rows) {
    const peer = reference.rows.find((x) => x.model === PEER_NAMES[row.shapes] && x.m === row.m);
    if (!peer) continue;
    row.referenceMs = peer.marlin || null;
    row.torchFp16Ms = peer.fp16;
    row.vsReference = row.referenceMs ? row.referenceMs / row.marlinMs : null;
  }
  console.log(`\n${"shapes".padEnd(12)} ${"m".padStart(5)} ${"cuBLAS".padStart(9)} ${"reference".padStart(10)} ${"ours".padStart(9)} ${"vs cuBLAS".padStart(10)} ${"vs ref".padStart(8)} ${"% floor".padStart(8)}`);
  for (const r of rows)
    console.log(
      `${r.shapes.padEnd(12)} ${String(r.m).padStart(5)} ${r.cublasMs.toFixed(4).padStart(9)} ${(r.referenceMs ?? Number.NaN).toFixed(4).padStart(10)} ${r.marlinMs.toFixed(4).padStart(9)} ${(r.speedup ?? 0).toFixed(2).padStart(10)} ${(r.vsReference ?? Number.NaN).toFixed(2).padStart(8)} ${r.pctFloor.toFixed(1).padStart(7)}%`,
    );
}

// Results: JSON + an SVG chart of speedup over cuBLAS against m.
const cuda = cudaStatus();
const meta = {
  device: dev.name,
  smCount: dev.smCount,
  l2Bytes: dev.l2CacheSize,
  copyBandwidth: bw,
  cudaRuntime: cuda.runtimeVersion,
  cudaDriver: cuda.driverVersion,
  ...runStamp(),
  groupSize: 128,
  bits: 4,
  timing: `median of ${REPS} CUDA-event batches, each behind a ${HOLD_US} us holding kernel (the reference: its helper's median of held batches, same rotation)`,
  reference: reference ? { gpu: reference.gpu, copyBandwidth: reference.copy_bw } : null,
};
const jsonPath = writeResults(root, "kernel-bench.json", meta, rows);
writeFileSync(join(dirname(jsonPath), "kernel-bench.svg"), speedupChart({ ...meta, results: rows }));
console.log(`wrote ${jsonPath} and kernel-bench.svg`);
