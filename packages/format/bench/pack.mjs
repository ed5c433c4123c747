// Packing benchmark: Marlin packing of large layers on the CPU.
// Run: pnpm --filter @marlin/format bench   (builds, then runs this file against dist/)
// Options: --shapes 8192x28672,4096x4096  --reps 3
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Rng, runSeed } from "@marlin/core";
import { packMarlin, unpackMarlin } from "../dist/index.js";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const shapes = opt("shapes", "8192x28672,28672x8192,4096x4096").split(",").map((s) => s.split("x").map(Number));
const reps = Number(opt("reps", "3"));
const seed = runSeed();
console.log(`seed ${seed}`);
const rng = new Rng(seed);

function randomLayer(k, n, bits, groupSize, symmetric, actOrder) {
  const groups = groupSize === -1 ? 1 : k / groupSize;
  const q = new Uint8Array(k * n);
  // Fill with a cheap xorshift over 32-bit words: random bits, masked to the width.
  const words = new Uint32Array(q.buffer, 0, (k * n) >> 2);
  let x = rng.nextU32() | 1;
  const mask = bits === 4 ? 0x0f0f0f0f : 0xffffffff;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x & mask;
  }
  const scales = new Uint16Array(groups * n).fill(0x2c00);
  const layer = { k, n, bits, groupSize, symmetric, q, scales };
  if (!symmetric) layer.zeros = new Uint8Array(groups * n).fill(bits === 4 ? 7 : 100);
  if (actOrder) {
    const g = new Int32Array(k);
    for (let i = 0; i < k; i++) g[i] = Math.floor(i / groupSize);
    for (let i = k - 1; i > 0; i--) {
      const j = rng.int(0, i + 1);
      const t = g[i];
      g[i] = g[j];
      g[j] = t;
    }
    layer.gIdx = g;
  }
  return layer;
}

const variants = [
  { name: "4-bit sym g128", bits: 4, groupSize: 128, symmetric: true, actOrder: false },
  { name: "4-bit sym per-channel", bits: 4, groupSize: -1, symmetric: true, actOrder: false },
  { name: "4-bit asym g128", bits: 4, groupSize: 128, symmetric: false, actOrder: false },
  { name: "4-bit sym g128 act-order", bits: 4, groupSize: 128, symmetric: true, actOrder: true },
  { name: "8-bit sym g128", bits: 8, groupSize: 128, symmetric: true, actOrder: false },
];

const rows = [];
for (const [k, n] of shapes) {
  for (const v of variants) {
    // Only the headline shape gets every variant; others get the reference one.
    if ((k !== shapes[0][0] || n !== shapes[0][1]) && v !== variants[0]) continue;
    const layer = randomLayer(k, n, v.bits, v.groupSize, v.symmetric, v.actOrder);
    const times = [];
    let packed;
    global.gc?.();
    const rss0 = process.memoryUsage().rss;
    let peak = rss0;
    for (let r = 0; r < reps; r++) {
      packed = undefined;
      const t0 = performance.now();
      packed = packMarlin(layer);
      times.push(performance.now() - t0);
      peak = Math.max(peak, process.memoryUsage().rss);
    }
    const t0 = performance.now();
    const back = unpackMarlin(packed);
    const unpackMs = performance.now() - t0;
    let same = back.q.length === layer.q.length;
    for (let i = 0; same && i < layer.q.length; i += 4099) same = back.q[i] === layer.q[i];
    times.sort((a, b) => a - b);
    const row = {
      shape: `${k}x${n}`,
      variant: v.name,
      packMsMedian: Number(times[Math.floor(times.length / 2)].toFixed(1)),
      packMsMin: Number(times[0].toFixed(1)),
      unpackMs: Number(unpackMs.toFixed(1)),
      inputMiB: Number(((k * n) / 2 ** 20).toFixed(1)),
      outputMiB: Number((packed.qweight.byteLength / 2 ** 20).toFixed(1)),
      rssGrowthMiB: Number(((peak - rss0) / 2 ** 20).toFixed(1)),
      roundTripSpotCheck: same,
    };
    rows.push(row);
    console.log(
      `${row.shape.padEnd(12)} ${row.variant.padEnd(26)} pack ${String(row.packMsMedian).padStart(8)} ms (min ${row.packMsMin})` +
        `  unpack ${String(row.unpackMs).padStart(8)} ms  q ${row.inputMiB} MiB -> ${row.outputMiB} MiB  rss +${row.rssGrowthMiB} MiB`,
    );
  }
}

const out = resolve(here, "../../../bench/results/format-pack.json");
mkdirSync(dirname(out), { recursive: true });
const cpus = (await import("node:os")).cpus();
writeFileSync(
  out,
  `${JSON.stringify(
    {
      benchmark: "@marlin/format packMarlin",
      date: new Date().toISOString(),
      node: process.version,
      cpu: cpus[0]?.model,
      cpus: cpus.length,
      seed,
      reps,
      results: rows,
    },
    null,
    2,
  )}\n`,
);
console.log(`wrote ${out}`);
