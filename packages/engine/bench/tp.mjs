// Tensor-parallel decode benchmark: the sharded part of a decode step (every layer's q/k/v, o_proj +
// all-reduce, gate/up, down_proj + all-reduce, then lm_head + the logits all-gather) with 4-bit
// Marlin weights (g128), one rank per worker thread, at batch 1 and 16 for each tp. Attention, norms
// and sampling are not in it (they do not change with the sharding pattern beyond heads / tp).
// The step runs every layer of the model over `--layers` built layers reused in turn (distinct
// weights, more than L2 holds). Prints ms/step, the collectives' ms and their share.
//
//   node bench/tp.mjs --device cuda --shape 7b|70b [--tp 1,2,4] [--batches 1,16] [--layers 4] [--iters 20]
//   node bench/tp.mjs --device cpu --shape tiny --tp 1,2     (the harness itself, on the CPU communicator)
//
// CUDA: NCCL (libnccl.so.2) between the ranks; run with NCCL_NVLS_ENABLE=0 (tools/gpu/tp.sh does).
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { CPU, prepareLinear } from "@marlin/core";
import { CudaEvent, cudaStatus, DeviceBuffer, gpuTarget, Stream, writePattern } from "@marlin/kernel";
import { createShmState, gpuOps, NcclCommunicator, ShmCommunicator, splitRange } from "../dist/index.js";

const SHAPES = {
  tiny: { H: 384, I: 1024, heads: 6, kvHeads: 2, headDim: 64, V: 4096, layers: 6 },
  "7b": { H: 4096, I: 11008, heads: 32, kvHeads: 32, headDim: 128, V: 32000, layers: 32 },
  "70b": { H: 8192, I: 28672, heads: 64, kvHeads: 8, headDim: 128, V: 128256, layers: 80 },
};

if (isMainThread) await main();
else await rank(workerData);

async function main() {
  const args = process.argv.slice(2);
  const opt = (name, dflt) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : dflt;
  };
  const device = opt("device", "cuda");
  const shapeName = opt("shape", device === "cpu" ? "tiny" : "7b");
  const shape = SHAPES[shapeName];
  if (!shape) throw new Error(`unknown shape ${shapeName} (${Object.keys(SHAPES).join(", ")})`);
  const gpus = device === "cuda" ? cudaStatus().deviceCount : Number.POSITIVE_INFINITY;
  const tps = opt("tp", "1,2,4").split(",").map(Number);
  const batches = opt("batches", "1,16").split(",").map(Number);
  const built = Number(opt("layers", device === "cpu" ? 2 : 4));
  const iters = Number(opt("iters", device === "cpu" ? 5 : 20));
  console.log(`tp bench: ${device}, shape ${shapeName} (${JSON.stringify(shape)}), ${built} layers built, reused over ${shape.layers}; NCCL_NVLS_ENABLE=${process.env.NCCL_NVLS_ENABLE ?? "(unset)"}`);
  const rows = [];
  for (const tp of tps) {
    if (tp > gpus) {
      console.log(`tp ${tp}: skipped, ${gpus} GPUs visible`);
      continue;
    }
    if (shape.heads % tp || shape.kvHeads % tp) {
      console.log(`tp ${tp}: skipped, does not divide ${shape.heads} heads / ${shape.kvHeads} kv heads`);
      continue;
    }
    const common = { tp, device, shape, batches, built, iters };
    if (device === "cpu") common.shm = createShmState(tp, 1 << 20);
    else common.ncclId = NcclCommunicator.uniqueId();
    const workers = Array.from({ length: tp }, (_, r) => new Worker(new URL(import.meta.url), { workerData: { ...common, rank: r } }));
    const results = await Promise.all(workers.map((w) => new Promise((res, rej) => {
          w.once("message", res);
          w.once("error", rej);
        })));
    await Promise.all(workers.map((w) => w.terminate()));
    const failed = results.find((r) => r.error);
    if (failed) throw new Error(`tp ${tp}: rank ${failed.rank}: ${failed.error}`);
    // a step takes as long as its slowest rank
    for (const m of batches) {
      const per = results.map((r) => r.timings.find((t) => t.m === m));
      const slow = per.reduce((a, b) => (b.stepMs > a.stepMs ? b : a));
      rows.push({ tp, m, stepMs: slow.stepMs, allReduceMs: slow.allReduceMs, share: slow.allReduceMs / slow.stepMs, kernels: results[0].kernels });
    }
  }
  console.log("\n| tp | batch | ms/step (linears + collectives) | all-reduce + all-gather ms | share |");
  console.log("|---|---|---|---|---|");
  for (const r of rows) console.log(`| ${r.tp} | ${r.m} | ${r.stepMs.toFixed(3)} | ${r.allReduceMs.toFixed(3)} | ${(100 * r.share).toFixed(1)}% |`);
  if (rows[0]) console.log(`\nkernels (tp ${rows[0].tp}, rank 0): ${JSON.stringify(rows[0].kernels)}`);
  console.log(`JSON ${JSON.stringify({ device, shape: shapeName, rows: rows.map(({ kernels, ...r }) => r) })}`);
}

async function rank(d) {
  try {
    parentPort.postMessage({ rank: d.rank, ...(d.device === "cpu" ? runCpu(d) : runCuda(d)) });
  } catch (e) {
    parentPort.postMessage({ rank: d.rank, error: e.stack ?? String(e) });
  }
}

/** This rank's shard shapes: q/k/v and gate/up column shards, o / down row shards, lm_head rows. */
function shardShapes(d) {
  const { H, I, heads, kvHeads, headDim, V } = d.shape;
  const inter = splitRange(I, d.tp, 128)[d.rank];
  const i = inter.end - inter.start;
  // a row shard cut inside a 128-row group holds whole groups (zero rows), as shard.ts pads it
  const qd = Math.ceil(((heads / d.tp) * headDim) / 128) * 128;
  const kvd = (kvHeads / d.tp) * headDim;
  return { qkv: [(heads / d.tp) * headDim + 2 * kvd, H], o: [H, qd], gateUp: [2 * i, H], down: [H, i], head: [Math.ceil(V / d.tp / 64) * 64, H], H, qd, i };
}

/** The step: layers x (qkv, o + all-reduce, gate/up, down + all-reduce), lm_head + all-gather. */
function step(d, layers, head, buf, m, comm, time) {
  let collective = 0;
  for (let l = 0; l < d.shape.layers; l++) {
    const L = layers[l % layers.length];
    L.qkv.forward(buf.x, buf.qkv, m, buf.stream);
    L.o.forward(buf.attn, buf.h, m, buf.stream);
    collective += time(() => comm.allReduceSum(buf.h, m * buf.H));
    L.gateUp.forward(buf.x, buf.gu, m, buf.stream);
    L.down.forward(buf.act, buf.h, m, buf.stream);
    collective += time(() => comm.allReduceSum(buf.h, m * buf.H));
  }
  head.forward(buf.x, buf.logits, m, buf.stream);
  collective += time(() => comm.allGather(buf.logits, buf.all, m * head.n));
  return collective;
}

function kernelsOf(layers, head) {
  const L = layers[0];
  return Object.fromEntries([...["qkv", "o", "gateUp", "down"].map((s) => [s, L[s].implementationFor(1)]), ["lm_head", head.implementationFor(1)]]);
}

function runCpu(d) {
  const comm = new ShmCommunicator(d.shm, d.rank, { timeoutMs: 60_000 });
  const s = shardShapes(d);
  let seed = 1 + d.rank * 1000;
  const quant = (n, k) => {
    const q = new Uint8Array(k * n);
    for (let j = 0; j < q.length; j++) q[j] = (j * 2654435761 + seed) >>> 28;
    seed++;
    const layer = { k, n, bits: 4, groupSize: 128, symmetric: true, q, scales: new Uint16Array((k / 128) * n).fill(0x1c00) };
    return prepareLinear({ kind: "quantized", n, k, bits: 4, groupSize: 128, symmetric: true, actOrder: false, layer }, { device: CPU, maxRows: 16 });
  };
  const layers = Array.from({ length: d.built }, () => ({ qkv: quant(...s.qkv), o: quant(...s.o), gateUp: quant(...s.gateUp), down: quant(...s.down) }));
  const head = prepareLinear({ kind: "dense", n: s.head[0], k: s.H, data: new Float32Array(s.head[0] * s.H).fill(0.01) }, { device: CPU, maxRows: 16 });
  const M = Math.max(...d.batches);
  const f = (n) => new Float32Array(M * n).fill(0.5);
  const buf = { H: s.H, x: f(s.H), qkv: f(s.qkv[0]), attn: f(s.qd), h: f(s.H), gu: f(s.gateUp[0]), act: f(s.i), logits: f(s.head[0]), all: f(s.head[0] * d.tp) };
  const timings = [];
  for (const m of d.batches) {
    const time = (fn) => {
      const t0 = performance.now();
      fn();
      return performance.now() - t0;
    };
    step(d, layers, head, buf, m, comm, time); // warm up
    let total = 0;
    let coll = 0;
    for (let it = 0; it < d.iters; it++) {
      const t0 = performance.now();
      coll += step(d, layers, head, buf, m, comm, time);
      total += performance.now() - t0;
    }
    timings.push({ m, stepMs: total / d.iters, allReduceMs: coll / d.iters });
  }
  return { timings, kernels: kernelsOf(layers, head) };
}

function runCuda(d) {
  const dev = d.rank;
  const stream = new Stream(dev);
  const comm = NcclCommunicator.initRank(d.ncclId, d.tp, d.rank, dev, { stream });
  const target = gpuTarget(dev);
  const s = shardShapes(d);
  const owned = [];
  let seed = 1 + d.rank * 1000;
  const alloc = (bytes) => {
    const b = DeviceBuffer.alloc(bytes, dev);
    owned.push(b);
    return b;
  };
  const uniform = (count, lo, hi) => {
    const b = alloc(count * 2);
    gpuOps().fillUniform(b, count, seed++, lo, hi, stream);
    return b;
  };
  const quant = (n, k) => {
    const qweight = alloc((k * n) / 2);
    writePattern(qweight, 0, (k * n) / 8, seed++, stream);
    const sc = 1 / (4.6 * Math.sqrt(k));
    const scales = uniform((k / 128) * n, 0.5 * sc, 1.5 * sc);
    const data = { k, n, bits: 4, groupSize: 128, qweight, scales };
    const w = { kind: "quantized", n, k, bits: 4, groupSize: 128, symmetric: true, actOrder: false, placed: { format: "marlin-device", data } };
    return prepareLinear(w, { device: target, maxRows: 16, stream });
  };
  const layers = Array.from({ length: d.built }, () => ({ qkv: quant(...s.qkv), o: quant(...s.o), gateUp: quant(...s.gateUp), down: quant(...s.down) }));
  const headW = uniform(s.head[0] * s.H, -0.02, 0.02);
  const head = prepareLinear({ kind: "dense", n: s.head[0], k: s.H, placed: { format: "fp16-device", data: headW } }, { device: target, maxRows: 16, stream });
  const M = Math.max(...d.batches);
  const b = (n) => uniform(M * n, -1, 1);
  const buf = { H: s.H, stream, x: b(s.H), qkv: b(s.qkv[0]), attn: b(s.qd), h: b(s.H), gu: b(s.gateUp[0]), act: b(s.i), logits: b(s.head[0]), all: b(s.head[0] * d.tp) };
  const pool = [];
  let used = 0;
  const ev = () => {
    if (used === pool.length) pool.push(new CudaEvent());
    return pool[used++];
  };
  const marks = [];
  const time = (fn) => {
    const a = ev();
    const z = ev();
    a.record(stream);
    fn();
    z.record(stream);
    marks.push([a, z]);
    return 0;
  };
  const timings = [];
  for (const m of d.batches) {
    used = 0;
    step(d, layers, head, buf, m, comm, time);
    stream.synchronize();
    const steps = [];
    const colls = [];
    for (let it = 0; it < d.iters; it++) {
      used = 0;
      marks.length = 0;
      const e0 = ev();
      const e1 = ev();
      e0.record(stream);
      step(d, layers, head, buf, m, comm, time);
      e1.record(stream);
      stream.synchronize();
      steps.push(CudaEvent.elapsedMs(e0, e1));
      colls.push(marks.reduce((acc, [a, z]) => acc + CudaEvent.elapsedMs(a, z), 0));
    }
    const med = (xs) => xs.slice().sort((p, q) => p - q)[xs.length >> 1];
    timings.push({ m, stepMs: med(steps), allReduceMs: med(colls) });
  }
  const kernels = kernelsOf(layers, head);
  for (const L of layers) for (const l of Object.values(L)) l.dispose();
  head.dispose();
  comm.dispose();
  for (const x of owned) x.free();
  return { timings, kernels };
}
