/**
 * SVG chart of serving benchmarks: output throughput, TTFT and TPOT against the request rate,
 * one line per run (e.g. dense vs Marlin); p50 solid, p99 dashed. Drawn from the JSON alone.
 */
import type { RateResult } from "./load.js";

export interface ChartRun {
  label: string;
  results: RateResult[];
}

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"];
/** A round tick step near `x` (1, 2 or 5 times a power of ten). */
function niceStep(x: number): number {
  const e = 10 ** Math.floor(Math.log10(x));
  const f = x / e;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * e;
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

interface Panel {
  title: string;
  unit: string;
  series: (r: RateResult) => [number | undefined, number | undefined]; // solid, dashed
}

const PANELS: Panel[] = [
  { title: "output throughput", unit: "tok/s", series: (r) => [r.outputThroughput, undefined] },
  { title: "time to first token", unit: "ms (p50, p99 dashed)", series: (r) => [r.ttftMs?.p50, r.ttftMs?.p99] },
  { title: "time per output token", unit: "ms (p50, p99 dashed)", series: (r) => [r.tpotMs?.p50, r.tpotMs?.p99] },
];

export function serveChart(runs: ChartRun[], caption: string): string {
  const rates = [...new Set(runs.flatMap((r) => r.results.map((x) => String(x.requestRate))))];
  const W = 300;
  const H = 260;
  const pad = { l: 52, r: 12, t: 44, b: 36 };
  let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W * PANELS.length}" height="${H + 30}" font-family="sans-serif" font-size="11">`;
  svg += `<text x="${(W * PANELS.length) / 2}" y="16" text-anchor="middle" font-size="12">${esc(caption)}</text>`;
  PANELS.forEach((panel, pi) => {
    const x0 = pi * W;
    const vals = runs.flatMap((run) => run.results.flatMap((r) => panel.series(r))).filter((v): v is number => v !== undefined && Number.isFinite(v));
    const step = niceStep(Math.max(1e-9, ...vals) / 4);
    const maxY = Math.ceil(Math.max(1e-9, ...vals) / step) * step;
    const xs = (i: number) => x0 + pad.l + (rates.length === 1 ? 0.5 : i / (rates.length - 1)) * (W - pad.l - pad.r);
    const ys = (v: number) => pad.t + (1 - v / maxY) * (H - pad.t - pad.b);
    svg += `<text x="${x0 + W / 2}" y="34" text-anchor="middle">${esc(panel.title)} (${esc(panel.unit)})</text>`;
    svg += `<line x1="${x0 + pad.l}" y1="${ys(0)}" x2="${x0 + W - pad.r}" y2="${ys(0)}" stroke="#999"/>`;
    svg += `<line x1="${x0 + pad.l}" y1="${pad.t}" x2="${x0 + pad.l}" y2="${ys(0)}" stroke="#999"/>`;
    for (let v = 0; v <= maxY + step / 2; v += step) {
      svg += `<text x="${x0 + pad.l - 4}" y="${ys(v) + 4}" text-anchor="end">${Number(v.toPrecision(6))}</text>`;
    }
    rates.forEach((r, i) => {
      svg += `<text x="${xs(i)}" y="${H - pad.b + 14}" text-anchor="middle">${esc(r)}</text>`;
    });
    svg += `<text x="${x0 + W / 2}" y="${H - 6}" text-anchor="middle">request rate (req/s)</text>`;
    runs.forEach((run, ri) => {
      const color = COLORS[ri % COLORS.length];
      for (const which of [0, 1] as const) {
        const pts = rates
          .map((rate, i) => {
            const r = run.results.find((x) => String(x.requestRate) === rate);
            const v = r && panel.series(r)[which];
            return v === undefined || !Number.isFinite(v) ? undefined : `${xs(i).toFixed(1)},${ys(v).toFixed(1)}`;
          })
          .filter((p): p is string => p !== undefined);
        if (pts.length === 0) continue;
        const dash = which === 1 ? ` stroke-dasharray="4 3"` : "";
        svg += `<polyline fill="none" stroke="${color}" stroke-width="2"${dash} points="${pts.join(" ")}"/>`;
        for (const p of pts) svg += `<circle cx="${p.split(",")[0]}" cy="${p.split(",")[1]}" r="2.5" fill="${color}"/>`;
      }
    });
  });
  runs.forEach((run, ri) => {
    svg += `<text x="${12 + ri * 160}" y="${H + 22}" fill="${COLORS[ri % COLORS.length]}">■ ${esc(run.label)}</text>`;
  });
  return `${svg}</svg>\n`;
}
