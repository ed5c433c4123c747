// SVG chart of the engine benchmark: decode tokens/s, dense fp16 vs Marlin 4-bit, per batch. Kept
// apart from run.mjs so the chart can be redrawn from a saved JSON (the GPU machine returns few
// files):  node bench/chart.mjs [bench/results/engine-bench.json]
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export function decodeChart(results) {
  const D = results.runs.dense;
  const M = results.runs.marlin;
  const bw = results.copyBandwidthBytesPerSecond;
  const W = 760;
  const Hh = 340;
  const rows = D.decode.map((x, i) => ({ b: x.batch, dense: x.tokensPerSecond, marlin: M.decode[i].tokensPerSecond, fd: (x.batch * 1000) / x.floorMs, fm: (x.batch * 1000) / M.decode[i].floorMs }));
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
    body += `<text x="${x + 50}" y="292" font-size="13" text-anchor="middle">batch ${r.b}: Marlin ${(D.decode[i].stepMs / M.decode[i].stepMs).toFixed(2)}x</text>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${Hh}" font-family="sans-serif">
<text x="20" y="24" font-size="15">Llama-2-7B shape (${results.config.numLayers} layers, random weights): decode tokens/s, dense fp16 (grey) vs Marlin 4-bit g128 (blue)</text>
<text x="20" y="42" font-size="11">dashed: the floor (time to stream the step's weights once at ${(bw / 1e12).toFixed(2)} TB/s copy bandwidth); commit ${results.commit}, ${results.date.slice(0, 10)}</text>
${body}
<text x="20" y="325" font-size="11">${results.device.split("\n").slice(-1)[0].slice(0, 110)}</text>
</svg>`;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
  const file = process.argv[2] ?? join(root, "bench", "results", "engine-bench.json");
  const svg = join(dirname(file), "engine-bench.svg");
  writeFileSync(svg, decodeChart(JSON.parse(readFileSync(file, "utf8"))));
  console.log(`wrote ${svg}`);
}
