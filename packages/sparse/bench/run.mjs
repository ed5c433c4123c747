// 2:4 sparse vs dense Marlin on the linear layers of one transformer block (Llama-2-7B, 13B,
// Llama-3-70B) and a 16384 x 65536 matrix, 4-bit, group 128: for each m, the registry's pick for
// the dense layer ("quant.matmul": marlinMs) and for the same shapes 2:4 sparse ("sparse24.matmul":
// sparseMs), timed as packages/kernel/bench/run.mjs times its rows: weights rotated over enough
// copies to exceed 3x the L2, medians of CUDA-event batches each queued behind a holding kernel (so
// launch latency is not timed). Writes JSON under the repo's bench/results/sparse-bench.json.
//   node bench/run.mjs [--m 1,16,64] [--shapes llama2-7b,...] [--reps 15] [--hold-us 2000]
import { registry } from "@marlin/core";
import { cudaStatus, DeviceBuffer, gpuTarget, hasGpu, listDevices, noGpuReason } from "@marlin/kernel";
// The kernel bench's machinery (not part of @marlin/kernel's package): the same timing and results.
import { benchCli, deviceCopies, MODELS, makeTimer, marlinDeviceLayer, randomHalves, randomWords, runStamp, writeResults, xorshift } from "../../kernel/bench/common.mjs";
import { SPARSE24_DEVICE_FORMAT } from "../dist/index.js";

const { root, opt } = benchCli(import.meta.url);
const MS = opt("m", "1,2,4,8,16,32,64,128,256,1024").split(",").map(Number);
const REPS = Number(opt("reps", "15"));
const HOLD_US = Number(opt("hold-us", "2000"));
const pick = opt("shapes", Object.keys(MODELS).join(",")).split(",");

if (!hasGpu()) {
  console.log(`no GPU: ${noGpuReason()}`);
  process.exit(0);
}
const dev = listDevices()[0];
const device = gpuTarget(0);

/** Metadata words whose every nibble is a valid pair of ascending indices. */
const randomMeta = (n, seed) => {
  const pairs = [0x4, 0x8, 0xc, 0x9, 0xd, 0xe];
  const r = xorshift(seed);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let w = 0;
    let x = r() >>> 0;
    for (let c = 0; c < 8; c++, x = Math.floor(x / 6)) w |= pairs[x % 6] << (4 * c);
    out[i] = w;
  }
  return out;
};
const timeIt = makeTimer(REPS, HOLD_US);

const sparse = (L, i) => ({
  kind: "sparse24",
  n: L.n,
  k: L.k,
  bits: 4,
  groupSize: 128,
  placed: { format: SPARSE24_DEVICE_FORMAT, data: { k: L.k, n: L.n, groupSize: 128, values: L.v[i], meta: L.e[i], scales: L.s[i] } },
});

const rows = [];
console.log(`device: ${dev.name}, ${dev.smCount} SMs, L2 ${(dev.l2CacheSize / 2 ** 20).toFixed(0)} MiB`);
console.log(`${"shapes".padEnd(12)} ${"m".padStart(5)} ${"marlin ms".padStart(10)} ${"sparse ms".padStart(10)} ${"speedup".padStart(8)}  picks`);
for (const name of pick) {
  const layers = MODELS[name];
  if (!layers) continue;
  const qbytes = layers.reduce((s, [k, n]) => s + (k * n) / 2, 0);
  const copies = Math.min(16, Math.floor((3 * dev.l2CacheSize) / ((qbytes * 3) / 4)) + 1);
  const prepared = layers.map(([k, n], li) => ({
    k,
    n,
    q: deviceCopies(randomWords((k * n) / 8, 17 + li), copies),
    v: deviceCopies(randomWords((k * n) / 16, 19 + li), copies),
    e: deviceCopies(randomMeta((k * n) / 32, 23 + li), copies),
    s: deviceCopies(randomHalves((k / 128) * n, 29 + li, 0.001, 0.003), copies),
  }));
  for (const m of MS) {
    let tm = 0;
    let ts = 0;
    const picks = new Set();
    for (const L of prepared) {
      const x = DeviceBuffer.from(randomHalves(m * L.k, 7 + m, -1, 1));
      const out = DeviceBuffer.alloc(m * L.n * 2);
      for (const [make, add] of [
        [marlinDeviceLayer, (t) => (tm += t)],
        [sparse, (t) => (ts += t)],
      ]) {
        const lins = L.q.map((_, i) => registry.prepareLinear(make(L, i), { device, maxRows: m }));
        picks.add(lins[0].implementationFor(m));
        add(timeIt((i) => lins[i].forward(x, out, m), copies));
        for (const l of lins) l.dispose();
      }
      x.free();
      out.free();
    }
    const row = { shapes: name, m, marlinMs: tm, sparseMs: ts, sparseSpeedup: tm / ts, picks: [...picks].join("+") };
    rows.push(row);
    console.log(`${name.padEnd(12)} ${String(m).padStart(5)} ${tm.toFixed(4).padStart(10)} ${ts.toFixed(4).padStart(10)} ${row.sparseSpeedup.toFixed(2).padStart(8)}  ${row.picks}`);
  }
  for (const L of prepared) for (const b of [...L.q, ...L.v, ...L.e, ...L.s]) b.free();
}

const cuda = cudaStatus();
const meta = {
  device: dev.name,
  smCount: dev.smCount,
  cudaRuntime: cuda.runtimeVersion,
  ...runStamp(),
  groupSize: 128,
  bits: 4,
  timing: `median of ${REPS} CUDA-event batches, each behind a ${HOLD_US} us holding kernel (as packages/kernel/bench/run.mjs)`,
};
console.log(`wrote ${writeResults(root, "sparse-bench.json", meta, rows)}`);
