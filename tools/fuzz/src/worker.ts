/**
 * The child process of a fuzz run: receives one batch {target, seed, from, to} over IPC, runs its
 * cases in order and reports each outcome before starting the next (so a crash or hang is pinned
 * on the case that caused it). The parent kills and replaces it when a case takes too long.
 */
import { Rng } from "@marlin/core";
import { caseSeed, classify, describeError } from "./outcome.js";
import { TARGETS } from "./targets/index.js";

export interface Job {
  target: string;
  seed: number;
  from: number;
  to: number;
}

export interface Report {
  i: number;
  outcome: "typed" | "untyped" | "accept";
  detail?: string;
}

function send(msg: unknown): Promise<void> {
  return new Promise((done) => process.send!(msg, () => done()));
}

// A rejection no case awaited (a late failure) ends the worker: the parent counts a crash.
process.on("unhandledRejection", (e) => {
  process.stderr.write(`unhandled rejection: ${describeError(e)}\n`);
  process.exit(3);
});

process.once("message", async (job: Job) => {
  const target = TARGETS[job.target];
  for (let i = job.from; i < job.to; i++) {
    const rng = new Rng(caseSeed(job.seed, job.target, i));
    let report: Report;
    try {
      await target.run(rng, i);
      report = { i, outcome: "accept" };
    } catch (e) {
      const outcome = classify(e);
      report = { i, outcome, ...(outcome === "untyped" ? { detail: describeError(e) } : {}) };
    }
    await send(report);
  }
  await send({ done: true });
  process.disconnect();
});
