// SVG chart of the kernel benchmark: speedup over cuBLAS FP16 against m, one line per shape set.
// Kept apart from run.mjs so a chart can be redrawn from a saved JSON (the GPU machine returns
// few files):  node bench/chart.mjs [bench/results/kernel-bench.json]
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export function speedupChart(report) {
  const rows = report.results;
  const names = [...new Set(rows.map((r) => r.shapes))];
  const ms = [...new Set(rows.map((r) => r.m))].sort((a, b) => a - b);
  const W = 640;
  const H = 360;
  const pad = 48;
  const xs = (m) => pad + (Math.log2(m) / Math.log2(Math.max(2, ...ms))) * (W - 2 * pad);
  const maxY = Math.max(1, ...rows.map((r) => r.speedup ?? 0)) * 1.1;
  const ys = (v) => H - pad - (v / maxY) * (H - 2 * pad);
  const colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"];
  let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`;
  svg += `<text x="${W / 2}" y="16" text-anchor="middle">Marlin 4-bit (g128) speedup over cuBLAS FP16, ${report.device} (${report.commit})</text>`;
  svg += `<line x1="${pad}" y1="${ys(1)}" x2="${W - pad}" y2="${ys(1)}" stroke="#999" stroke-dasharray="4"/>`;
  for (const m of ms) svg += `<text x="${xs(m)}" y="${H - pad + 14}" text-anchor="middle">${m}</text>`;
  for (let v = 0; v <= maxY; v += 0.5) svg += `<text x="${pad - 6}" y="${ys(v) + 4}" text-anchor="end">${v.toFixed(1)}</text>`;
  names.forEach((name, i) => {
    const pts = rows.filter((r) => r.shapes === name && r.speedup);
    if (!pts.length) return;
    svg += `<polyline fill="none" stroke="${colors[i % 4]}" stroke-width="2" points="${pts.map((r) => `${xs(r.m)},${ys(r.speedup)}`).join(" ")}"/>`;
    svg += `<text x="${W - pad - 90}" y="${40 + 14 * i}" fill="${colors[i % 4]}">${name}</text>`;
  });
  return `${svg}<text x="${W / 2}" y="${H - 8}" text-anchor="middle">m (batch rows)</text></svg>\n`;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
  const src = resolve(process.argv[2] ?? join(root, "bench/results/kernel-bench.json"));
  const out = src.replace(/\.json$/, ".svg");
  writeFileSync(out, speedupChart(JSON.parse(readFileSync(src, "utf8"))));
  console.log(`wrote ${out}`);
}
