// The decode attention op alone (Llama-2-7B heads: 32 x 128, fp16 KV, block size 16), at batches
// 1 / 16 / 64 and contexts 128 / 1024 / 4096 in a cache sized for 4352 positions (the engine
// bench's), for several grid choices in one run: "chunks" (one block per chunk of the longest
// context: the grid before it was bounded), the default bound, and fixed blocks per (row, head); and,
// with --stages, each K/V load path (0: direct loads, 2..4: a cp.async ring of that many passes;
// columns "grid/sN").
// Held timing (each timed batch queues behind a holding kernel), caches rotated past 3x L2.
//   node bench/decode-attention.mjs [--batches 1,16,64] [--contexts 128,1024,4096] [--blocks chunks,default,1,2,4,8] [--stages 0,2,3,4]
import { execSync } from "node:child_process";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { DeviceBuffer, deviceReport, hasGpu, noGpuReason, writePattern } from "@marlin/kernel";
import { makeTimer, writeResults } from "../../kernel/bench/common.mjs";
import { gpuOps } from "../dist/index.js";
import { copyBandwidth } from "./bandwidth.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
if (!hasGpu()) {
  console.log(`decode attention bench skipped: ${noGpuReason()}`);
  process.exit(0);
}
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const list = (s) => s.split(",").filter(Boolean);
const batches = list(opt("batches", "1,16,64")).map(Number);
const contexts = list(opt("contexts", "128,1024,4096")).map(Number);
const grids = list(opt("blocks", "chunks,default,1,2,4,8"));
const stageList = opt("stages") ? list(opt("stages")).map(Number) : [undefined];
const choices = stageList.flatMap((st) => grids.map((b) => ({ blocks: b, stages: st, key: st === undefined ? b : `${b}/s${st}` })));

const heads = 32, kvHeads = 32, D = 128, bs = 16, chunk = 256, maxContext = 4352;
const kvd = kvHeads * D;
const stride = (heads + 2 * kvHeads) * D;
const maxBlocks = maxContext / bs;
const splits = Math.ceil(maxContext / chunk);
const g = gpuOps();

const bw = copyBandwidth();
const time = makeTimer(9, 2000);
const rows = [];
console.log(`copy bandwidth ${(bw / 1e12).toFixed(2)} TB/s; ${heads} heads x ${D}, chunk ${chunk}, cache for ${maxContext} positions (${splits} chunks)`);
console.log(`${"batch".padStart(5)} ${"ctx".padStart(5)} ${"KV read us".padStart(10)}  ${choices.map((c) => c.key.padStart(9)).join(" ")}  (us per launch)`);
for (const batch of batches)
  for (const ctx of contexts) {
    // One cache per copy, each holding the batch's contexts; copies rotate past 3x L2 (60 MiB).
    const tokens = batch * maxBlocks * bs;
    const cacheBytes = tokens * kvd * 2;
    const copies = Math.max(1, Math.min(16, Math.ceil((180 * 2 ** 20) / (2 * batch * ctx * kvd * 2))));
    const tables = Int32Array.from({ length: batch * maxBlocks }, (_, i) => i);
    const pos = new Int32Array(batch).fill(ctx - 1);
    const slots = Int32Array.from({ length: batch }, (_, r) => (r * maxBlocks + Math.floor((ctx - 1) / bs)) * bs + ((ctx - 1) % bs));
    const seqOf = Int32Array.from({ length: batch }, (_, i) => i);
    const half = D / 2;
    const cos = Float32Array.from({ length: maxContext * half }, (_, i) => Math.cos(Math.floor(i / half) * 10000 ** (-(i % half) / half)));
    const sin = Float32Array.from({ length: maxContext * half }, (_, i) => Math.sin(Math.floor(i / half) * 10000 ** (-(i % half) / half)));
    const [tablesD, posD, slotsD, seqD, cosD, sinD] = [tables, pos, slots, seqOf, cos, sin].map((a) => DeviceBuffer.from(a));
    const qkv = DeviceBuffer.alloc(batch * stride * 2);
    writePattern(qkv, 0, (batch * stride * 2) / 4, 7); // timing only: the values do not matter
    const caches = [];
    for (let c = 0; c < copies; c++) {
      const k = DeviceBuffer.alloc(cacheBytes);
      const v = DeviceBuffer.alloc(cacheBytes);
      writePattern(k, 0, cacheBytes / 4, 11 + c);
      writePattern(v, 0, cacheBytes / 4, 31 + c);
      caches.push([k, v]);
    }
    const out = DeviceBuffer.alloc(batch * heads * D * 2);
    const partial = DeviceBuffer.alloc(batch * heads * splits * (D + 2) * 4);
    const counters = DeviceBuffer.alloc(batch * heads * 4);
    counters.fillBytes(0);
    const shape = { rows: batch, qStride: stride, heads, kvHeads, headDim: D, maxBlocks, blockSize: bs, numSeqs: batch, numBlocks: batch * maxBlocks, maxContext, scale: 1 / Math.sqrt(D) };
    const kvUs = ((2 * batch * ctx * kvd * 2) / bw) * 1e6;
    const row = { batch, context: ctx, kvReadUs: kvUs, us: {} };
    for (const choice of choices) {
      const blocks = choice.blocks === "chunks" ? splits : choice.blocks === "default" ? undefined : Number(choice.blocks);
      const decode = { chunk, partial, counters, fuse: 1, cos: cosD, sin: sinD, slots: slotsD, ropeRows: maxContext, blocks, stages: choice.stages };
      const ms = time((i) => g.decodeAttention(qkv, caches[i][0], caches[i][1], tablesD, seqD, posD, out, shape, decode), copies);
      row.us[choice.key] = ms * 1000;
    }
    rows.push(row);
    console.log(`${String(batch).padStart(5)} ${String(ctx).padStart(5)} ${kvUs.toFixed(1).padStart(10)}  ${choices.map((c) => row.us[c.key].toFixed(1).padStart(9)).join(" ")}`);
    for (const x of [tablesD, posD, slotsD, seqD, cosD, sinD, qkv, out, partial, counters, ...caches.flat()]) x.free();
  }
let commit = process.env.MARLIN_COMMIT;
if (!commit)
  try {
    commit = execSync("git rev-parse --short HEAD", { cwd: root }).toString().trim();
  } catch {
    commit = "unknown";
  }
const path = writeResults(root, "decode-attention.json", { device: deviceReport(), commit, date: new Date().toISOString(), timing: "held (behind a 2 ms kernel), caches rotated past 3x L2", copyBandwidth: bw, chunk, maxContext }, rows);
console.log(`wrote ${path}`);
