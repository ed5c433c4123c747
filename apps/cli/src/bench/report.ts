/** The serving benchmark's JSON report and its text tables (one run, or runs side by side). */
import { execFileSync } from "node:child_process";
import type { DatasetOptions } from "./dataset.js";
import type { RateResult, Slo } from "./load.js";
import type { Dist } from "./stats.js";

export interface ServeReport {
  bench: "serve";
  label: string;
  date: string;
  commit: string;
  /** The server's device, from its /health (name and kind). */
  device: string;
  server: Record<string, unknown> | null;
  model: string;
  baseUrl: string;
  dataset: Omit<DatasetOptions, "seed">;
  seed: number;
  maxConcurrency: number | null;
  slo?: Slo;
  results: RateResult[];
}

/** MARLIN_COMMIT (set on the GPU machine), else git's short HEAD (+ -dirty), else "unknown". */
export function commitId(): string {
  if (process.env.MARLIN_COMMIT) return process.env.MARLIN_COMMIT;
  try {
    const head = execFileSync("git", ["rev-parse", "--short", "HEAD"], { stdio: ["ignore", "pipe", "ignore"] }).toString().trim();
    let dirty = "";
    try {
      execFileSync("git", ["diff", "--quiet", "HEAD"], { stdio: "ignore" });
    } catch {
      dirty = "-dirty";
    }
    return head + dirty;
  } catch {
    return "unknown";
  }
}

const f = (v: number | undefined, digits = 1) => (v === undefined || !Number.isFinite(v) ? "-" : v.toFixed(digits));
const d3 = (d: Dist | undefined) => `${f(d?.mean)} / ${f(d?.p50)} / ${f(d?.p99)}`;

function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(w[i])).join(" | ")} |`;
  return [line(head), `|${w.map((n) => "-".repeat(n + 2)).join("|")}|`, ...rows.map(line)].join("\n");
}

/** One run: a row per request rate. */
export function formatReport(r: ServeReport): string {
  const head = ["rate", "done", "failed", "req/s", "out tok/s", "TTFT ms mean/p50/p99", "TPOT ms mean/p50/p99", "ITL ms p50/p99", "E2EL ms p50/p99", ...(r.slo ? ["goodput req/s"] : [])];
  const rows = r.results.map((x) => [
    String(x.requestRate),
    String(x.completed),
    String(x.failed),
    f(x.requestThroughput, 2),
    f(x.outputThroughput),
    d3(x.ttftMs),
    d3(x.tpotMs),
    `${f(x.itlMs?.p50)} / ${f(x.itlMs?.p99)}`,
    `${f(x.e2elMs?.p50, 0)} / ${f(x.e2elMs?.p99, 0)}`,
    ...(r.slo ? [f(x.goodput?.requestsPerS, 2)] : []),
  ]);
  const ds = r.dataset;
  return `${r.label}: ${r.model} on ${r.device}, ${ds.kind} dataset (${ds.numPrompts} prompts, input ${ds.inputLen}, output ${ds.outputLen}), commit ${r.commit}, ${r.date}\n${table(head, rows)}`;
}

/** Runs side by side (the first is the baseline): throughput, TTFT and TPOT per rate, with ratios. */
export function compareReports(runs: ServeReport[]): string {
  const base = runs[0];
  const rates = [...new Set(runs.flatMap((r) => r.results.map((x) => String(x.requestRate))))];
  const head = ["rate"];
  for (const r of runs) head.push(`${r.label} out tok/s`, `${r.label} TTFT p50 ms`, `${r.label} TPOT p50 ms`);
  for (const r of runs.slice(1)) head.push(`${r.label}/${base.label} tok/s`, `${base.label}/${r.label} TPOT`);
  const rows = rates.map((rate) => {
    const at = (r: ServeReport) => r.results.find((x) => String(x.requestRate) === rate);
    const row = [rate];
    for (const r of runs) {
      const x = at(r);
      row.push(f(x?.outputThroughput), f(x?.ttftMs?.p50), f(x?.tpotMs?.p50, 2));
    }
    const b = at(base);
    for (const r of runs.slice(1)) {
      const x = at(r);
      row.push(b && x ? `${f(x.outputThroughput / b.outputThroughput, 2)}x` : "-", b?.tpotMs && x?.tpotMs ? `${f(b.tpotMs.p50 / x.tpotMs.p50, 2)}x` : "-");
    }
    return row;
  });
  const ds = base.dataset;
  const what = runs.map((r) => `${r.label} = ${r.model}`).join(", ");
  return `${what}; ${base.device}; ${ds.kind} dataset (${ds.numPrompts} prompts, input ${ds.inputLen}, output ${ds.outputLen}); commit ${base.commit}\n${table(head, rows)}`;
}
