/**
 * The CI fuzz run: 10,500 seeded cases over safetensors headers, config.json, tokenizer.json,
 * quantized-checkpoint tensors and native op arguments, each batch in a child process and each case
 * time-limited. Every refusal must be a typed error: untyped errors, crashes and hangs fail the run.
 * Replay a finding with `node tools/fuzz/dist/cli.js --target T --seed S --case I`.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { runSeed } from "@marlin/core";
import { describe, expect, it } from "vitest";
import { DEFAULT_CASES, formatCounts, runFuzz } from "../src/index.js";

const worker = fileURLToPath(new URL("../dist/worker.js", import.meta.url));

describe.skipIf(!existsSync(worker))("fuzz", () => {
  it("10,500 cases: untyped = crashes = hangs = 0", async () => {
    const seed = runSeed();
    console.log(`fuzz seed ${seed} (MARLIN_SEED=${seed} replays this run)`);
    const r = await runFuzz({ seed, cases: DEFAULT_CASES, workerPath: worker });
    console.log(formatCounts(r));
    for (const f of r.findings.slice(0, 30)) console.log(`  ${f.outcome} ${f.target} #${f.index} (seed ${seed}): ${f.detail}`);
    expect(r.total.cases).toBeGreaterThanOrEqual(10_000);
    expect(r.total.typed).toBeGreaterThan(0);
    expect(r.total.accept).toBeGreaterThan(0);
    expect({ untyped: r.total.untyped, crash: r.total.crash, hang: r.total.hang }).toEqual({ untyped: 0, crash: 0, hang: 0 });
  }, 600_000);
});
if (!existsSync(worker)) console.log(`fuzz skipped: ${worker} is not built (pnpm --filter @marlin/fuzz build)`);
