// What the kernel benches share (this folder's run.mjs and packages/sparse/bench/run.mjs): the
// command line, the layer shapes, random device weights, the timing method (medians of CUDA-event
// batches, each queued behind a holding kernel so that launch latency is not timed), and the
// results' commit/date fields and JSON file under the repo's bench/results/.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { CudaEvent, DeviceBuffer, holdDevice } from "../dist/index.js";

/** The repo root of a bench file (packages/<name>/bench/*.mjs) and its `--name value` options. */
export function benchCli(metaUrl) {
  const root = resolve(dirname(fileURLToPath(metaUrl)), "../../..");
  const args = process.argv.slice(2);
  const opt = (name, dflt) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : dflt;
  };
  return { root, args, opt };
}

/** [k, n] of the linear layers of one transformer block, and one large matrix. */
export const MODELS = {
  "llama2-7b": [
    [4096, 12288],
    [4096, 4096],
    [4096, 22016],
    [11008, 4096],
  ],
  "llama2-13b": [
    [5120, 15360],
    [5120, 5120],
    [5120, 27648],
    [13824, 5120],
  ],
  "llama3-70b": [
    [8192, 10240],
    [8192, 8192],
    [8192, 57344],
    [28672, 8192],
  ],
  "16384x65536": [[16384, 65536]],
};

/** xorshift: random bits, fast enough for a billion nibbles. */
export function xorshift(seed) {
  let x = seed | 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x;
  };
}
export function randomWords(n, seed) {
  const r = xorshift(seed);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = r();
  return out;
}
/** fp16 bit patterns of values in [lo, hi). */
export function randomHalves(n, seed, lo, hi) {
  const r = xorshift(seed);
  const out = new Uint16Array(n);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < n; i++) {
    f[0] = lo + ((r() >>> 8) / 16777216) * (hi - lo);
    const b = u[0];
    const e = ((b >>> 23) & 0xff) - 112;
    out[i] = e <= 0 ? 0 : ((b >>> 16) & 0x8000) | (e << 10) | ((b >>> 13) & 0x3ff);
  }
  return out;
}
/** `copies` device buffers holding `host`, for rotating weights past the L2. */
export function deviceCopies(host, copies) {
  const first = DeviceBuffer.from(host);
  const list = [first];
  for (let c = 1; c < copies; c++) {
    const b = DeviceBuffer.alloc(first.byteLength);
    b.copyFrom(first, 0, 0, first.byteLength);
    list.push(b);
  }
  return list;
}
export function median(v) {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
/**
 * timeIt(fn, copies): the median over `reps` batches of the mean time per call, calls cycling over
 * `copies`; each batch queues behind a kernel holding the GPU `holdUs` (longer than the host takes
 * to queue a batch), so the GPU's work alone is timed, launch latency excluded.
 */
export function makeTimer(reps, holdUs) {
  return (fn, copies) => {
    const e0 = new CudaEvent();
    const e1 = new CudaEvent();
    for (let i = 0; i < 3 * copies; i++) fn(i % copies);
    const per = Math.max(copies, 8);
    const t = [];
    let it = 0;
    for (let r = 0; r < reps; r++) {
      holdDevice(holdUs);
      e0.record();
      for (let i = 0; i < per; i++) fn(it++ % copies);
      e1.record();
      t.push(CudaEvent.elapsedMs(e0, e1) / per);
    }
    return median(t);
  };
}

/**
 * Copy `i` of layer L ({ k, n, q, s }: rotated device copies of its qweight and scales in the Marlin
 * layout) as the registry's "quant.matmul" implementations take it: 4-bit, group 128, symmetric.
 */
export function marlinDeviceLayer(L, i, name) {
  return {
    kind: "quantized",
    n: L.n,
    k: L.k,
    bits: 4,
    groupSize: 128,
    symmetric: true,
    actOrder: false,
    ...(name === undefined ? {} : { name }),
    placed: { format: "marlin-device", data: { k: L.k, n: L.n, bits: 4, groupSize: 128, qweight: L.q[i], scales: L.s[i] } },
  };
}

/** The results' commit ($MARLIN_COMMIT) and date fields. */
export const runStamp = () => ({ commit: process.env.MARLIN_COMMIT ?? "unknown", date: new Date().toISOString() });

/** Writes `{ ...meta, results: rows }` to bench/results/<file> under `root`; returns its path. */
export function writeResults(root, file, meta, rows) {
  const outDir = join(root, "bench", "results");
  mkdirSync(outDir, { recursive: true });
  const path = join(outDir, file);
  writeFileSync(path, `${JSON.stringify({ ...meta, results: rows }, null, 2)}\n`);
  return path;
}
