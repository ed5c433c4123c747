/**
 * The parent of a fuzz run: splits each target's cases into batches, runs each batch in a child
 * process (at most `parallel` at once) and watches it. A case that reports nothing within
 * `caseTimeoutMs` is a hang (the child is killed); a child that dies mid-batch crashed on the case
 * after its last report. Either way a fresh child resumes the batch at the next case.
 */
import { fork } from "node:child_process";
import { type Counts, emptyCounts, type Outcome } from "./outcome.js";
import type { Report } from "./worker.js";

export interface FuzzOptions {
  seed: number;
  /** Cases per target name. */
  cases: Record<string, number>;
  /** Path of the built worker (dist/worker.js). */
  workerPath: string;
  batchSize?: number;
  parallel?: number;
  /** Longest a case may run before it counts as a hang (default 10 s: CI machines are slow). */
  caseTimeoutMs?: number;
  /** Longest a fresh child may take to load the packages and report its first case (default 60 s). */
  startTimeoutMs?: number;
}

export interface Finding {
  target: string;
  index: number;
  outcome: Outcome;
  detail: string;
}

export interface FuzzResult {
  seed: number;
  total: Counts;
  byTarget: Record<string, Counts>;
  /** Every untyped error, crash and hang (replay one with `marlin-fuzz --target T --seed S --case I`). */
  findings: Finding[];
  seconds: number;
}

interface Batch {
  target: string;
  from: number;
  to: number;
}

function runBatch(b: Batch, o: Required<FuzzOptions>, record: (outcome: Outcome, index: number, detail?: string) => void): Promise<void> {
  return new Promise((finish) => {
    let next = b.from;
    const start = () => {
      if (next >= b.to) return finish();
      const child = fork(o.workerPath, [], { stdio: ["ignore", "ignore", "pipe", "ipc"] });
      let stderr = "";
      child.stderr?.on("data", (d: Buffer) => {
        stderr = (stderr + d.toString()).slice(-2000);
      });
      let over = false;
      let timer: NodeJS.Timeout;
      const arm = (ms: number) => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          over = true;
          record("hang", next, `no report within ${ms} ms`);
          next++;
          child.kill("SIGKILL");
        }, ms);
      };
      arm(o.startTimeoutMs);
      child.on("message", (m: Report | { done: true }) => {
        if ("done" in m) return;
        record(m.outcome, m.i, m.detail);
        next = m.i + 1;
        arm(o.caseTimeoutMs);
      });
      child.on("exit", (code, signal) => {
        clearTimeout(timer);
        if (!over && next < b.to) {
          record("crash", next, `worker exited (${signal ?? `code ${code}`}): ${stderr.trim().split("\n").slice(-3).join(" | ")}`);
          next++;
        }
        start();
      });
      child.send({ target: b.target, seed: o.seed, from: next, to: b.to });
    };
    start();
  });
}

/** Runs every case of every target; resolves with the counts and the findings. */
export async function runFuzz(opts: FuzzOptions): Promise<FuzzResult> {
  const o: Required<FuzzOptions> = { batchSize: 500, parallel: 2, caseTimeoutMs: 10_000, startTimeoutMs: 60_000, ...opts };
  const t0 = performance.now();
  const total = emptyCounts();
  const byTarget: Record<string, Counts> = {};
  const findings: Finding[] = [];
  const queue: Batch[] = [];
  for (const [target, n] of Object.entries(o.cases)) {
    byTarget[target] = emptyCounts();
    for (let from = 0; from < n; from += o.batchSize) queue.push({ target, from, to: Math.min(n, from + o.batchSize) });
  }
  const record = (target: string) => (outcome: Outcome, index: number, detail?: string) => {
    for (const c of [total, byTarget[target]]) {
      c.cases++;
      c[outcome]++;
    }
    if (outcome !== "typed" && outcome !== "accept") findings.push({ target, index, outcome, detail: detail ?? "" });
  };
  const lanes = Array.from({ length: o.parallel }, async () => {
    for (let b = queue.shift(); b; b = queue.shift()) await runBatch(b, o, record(b.target));
  });
  await Promise.all(lanes);
  return { seed: o.seed, total, byTarget, findings, seconds: (performance.now() - t0) / 1000 };
}

/** The counts as a table: one row per target and a total. */
export function formatCounts(r: FuzzResult): string {
  const cols = ["cases", "typed", "untyped", "crash", "hang", "accept"] as const;
  const row = (name: string, c: Counts) => `${name.padEnd(12)}${cols.map((k) => String(c[k]).padStart(9)).join("")}`;
  return [
    `fuzz seed ${r.seed}, ${r.seconds.toFixed(1)} s`,
    `${"target".padEnd(12)}${cols.map((k) => k.padStart(9)).join("")}`,
    ...Object.entries(r.byTarget).map(([t, c]) => row(t, c)),
    row("total", r.total),
  ].join("\n");
}
