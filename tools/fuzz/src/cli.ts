#!/usr/bin/env node
/**
 * marlin-fuzz [--seed N] [--scale F] [--target T] [--parallel P]   a run (prints the counts)
 * marlin-fuzz --target T --seed N --case I                         replays one case in this process
 */
import { fileURLToPath } from "node:url";
import { Rng, runSeed } from "@marlin/core";
import { DEFAULT_CASES } from "./index.js";
import { caseSeed, describeError } from "./outcome.js";
import { formatCounts, runFuzz } from "./runner.js";
import { TARGETS } from "./targets/index.js";

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i], process.argv[i + 1]);
const seed = args.has("--seed") ? Number(args.get("--seed")) : runSeed();
const target = args.get("--target");

if (args.has("--case")) {
  if (!target || !TARGETS[target]) throw new Error(`--case needs --target (one of ${Object.keys(TARGETS).join(", ")})`);
  const i = Number(args.get("--case"));
  try {
    await TARGETS[target].run(new Rng(caseSeed(seed, target, i)), i);
    console.log(`${target} #${i} (seed ${seed}): accepted`);
  } catch (e) {
    console.log(`${target} #${i} (seed ${seed}): ${describeError(e)}`);
    console.log((e as Error).stack);
  }
} else {
  const scale = Number(args.get("--scale") ?? 1);
  const cases = Object.fromEntries(
    Object.entries(DEFAULT_CASES)
      .filter(([t]) => !target || t === target)
      .map(([t, n]) => [t, Math.round(n * scale)]),
  );
  const r = await runFuzz({ seed, cases, workerPath: fileURLToPath(new URL("./worker.js", import.meta.url)), parallel: Number(args.get("--parallel") ?? 2) });
  console.log(formatCounts(r));
  for (const f of r.findings.slice(0, 20)) console.log(`  ${f.outcome} ${f.target} #${f.index}: ${f.detail}`);
  process.exitCode = r.total.untyped + r.total.crash + r.total.hang === 0 ? 0 : 1;
}
