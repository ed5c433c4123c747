// The commands end to end on tiny-llama (CPU): `marlin serve` in a child process (API key, SIGTERM
// ends it cleanly), `marlin bench serve` and `bench compare` against it, `generate`, `bench
// random-model`, and `quantize` interrupted by SIGTERM (moved here with the command from @marlin/gptq).
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runSeed } from "@marlin/core";
import { LLM } from "@marlin/engine";
import OpenAI from "openai";
import { afterAll, describe, expect, test } from "vitest";
import type { ServeReport } from "../src/index.js";
import { FIXTURE, hasBin, hasFixture, run, spawnMarlin } from "./helpers.js";

const seed = runSeed();
const work = mkdtempSync(join(tmpdir(), "marlin-cli-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe.skipIf(!hasFixture || !hasBin)("marlin serve + bench serve (child process)", () => {
  test("serves with an API key, is benchmarked, and stops on SIGTERM with exit 0", async () => {
    console.log(`cli seed ${seed} (MARLIN_SEED replays)`);
    const m = spawnMarlin(["serve", FIXTURE, "--port", "0", "--device", "cpu", "--max-num-seqs", "8", "--api-key", "sekrit", "--shutdown-timeout", "5"]);
    try {
      const [, url] = await m.waitFor(/listening on (http:\/\/\S+)/);
      const denied = await new OpenAI({ baseURL: `${url}/v1`, apiKey: "wrong", maxRetries: 0 }).models.list().catch((e) => e);
      expect(denied.status).toBe(401);
      const r = await new OpenAI({ baseURL: `${url}/v1`, apiKey: "sekrit", maxRetries: 0 }).completions.create({ model: "tiny-llama", prompt: "Once upon a time", max_tokens: 4 });
      expect(r.usage?.completion_tokens).toBeGreaterThan(0);
      const common = ["bench", "serve", "--base-url", url, "--api-key", "sekrit", "--num-prompts", "6", "--dataset", "fixed", "--input-len", "24", "--output-len", "8", "--seed", String(seed), "--result-dir", work];
      const a = await run([...common, "--request-rate", "inf,20", "--label", "first", "--goodput", "ttft:600000,tpot:600000"]);
      expect(a.err).not.toMatch(/failed/);
      expect(a.code).toBe(0);
      const report: ServeReport = JSON.parse(readFileSync(join(work, "serve-first.json"), "utf8"));
      expect(report).toMatchObject({ bench: "serve", label: "first", model: "tiny-llama", dataset: { kind: "fixed", numPrompts: 6, inputLen: 24, outputLen: 8 } });
      expect(report.device).toMatch(/\(cpu\)$/);
      expect(report.commit).toBeTruthy();
      expect(report.results.map((x) => x.requestRate)).toEqual(["inf", 20]);
      for (const x of report.results) {
        expect(x.completed).toBe(6);
        expect(x.totalInputTokens).toBe(6 * 24);
        expect(x.totalOutputTokens).toBe(6 * 8); // fixed: ignore_eos, every output runs to length
        expect(x.itlMs!.n).toBe(6 * 7); // one chunk per token
        for (const d of [x.ttftMs!, x.tpotMs!, x.itlMs!, x.e2elMs!]) {
          expect(d.p50).toBeLessThanOrEqual(d.p90);
          expect(d.p90).toBeLessThanOrEqual(d.p99);
          expect(d.p99).toBeLessThanOrEqual(d.max + 1e-9);
        }
        expect(x.ttftMs!.max).toBeLessThanOrEqual(x.e2elMs!.max);
        expect(x.goodput?.goodRequests).toBe(6);
      }
      expect(readFileSync(join(work, "serve-first.svg"), "utf8")).toMatch(/^<svg/);
      expect(a.out).toMatch(/\| inf +\| 6 +\| 0 /);
      const b = await run([...common, "--request-rate", "inf", "--label", "second"]);
      expect(b.code).toBe(0);
      const cmp = await run(["bench", "compare", join(work, "serve-first.json"), join(work, "serve-second.json")]);
      expect(cmp.code).toBe(0);
      expect(cmp.out).toMatch(/second\/first tok\/s/);
      expect(existsSync(join(work, "serve-compare-first-vs-second.svg"))).toBe(true);
    } finally {
      m.child.kill("SIGTERM");
    }
    expect(await m.exit).toBe(0);
    expect(m.stderr()).toMatch(/shutting down[\s\S]*stopped/);
  });
});

describe.skipIf(!hasFixture)("marlin generate and bench random-model", () => {
  test("generate streams the engine's greedy text", async () => {
    const prompt = "The little dog ran to the";
    const llm = await LLM.load(FIXTURE, { device: "cpu" });
    const [want] = await llm.generate([prompt], { maxTokens: 6, ignoreEos: true });
    llm.dispose();
    const r = await run(["generate", FIXTURE, prompt, "--max-tokens", "6", "--temperature", "0", "--device", "cpu", "--ignore-eos"]);
    expect(r.code).toBe(0);
    expect(r.out).toBe(`${want.text}\n`);
    expect(r.err).toMatch(/6 output tokens on cpu, finish length/);
  });

  test("bench random-model writes a servable model of the asked shape", async () => {
    const dir = join(work, "random");
    const r = await run(["bench", "random-model", dir, "--layers", "2", "--hidden-size", "128", "--intermediate-size", "256", "--heads", "2", "--kv-heads", "1", "--vocab-size", "4096", "--tokenizer-from", FIXTURE, "--device", "cpu", "--seed", "3"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(readFileSync(join(dir, "config.json"), "utf8"))).toMatchObject({ hidden_size: 128, num_hidden_layers: 2, num_key_value_heads: 1 });
    const g = await run(["generate", dir, "hello", "--max-tokens", "3", "--ignore-eos", "--device", "cpu"]);
    expect(g.code).toBe(0);
    expect((await run(["bench", "random-model", dir, "--layers", "2"])).err).toMatch(/not empty/);
  });
});

describe.skipIf(!hasFixture || !hasBin)("the built marlin quantize", () => {
  test("removes its partial output on SIGTERM and exits 130", async () => {
    const out = join(work, "killed");
    const leftovers = () => readdirSync(work).filter((f) => f === "killed" || f.startsWith(".killed.partial-"));
    const m = spawnMarlin(["quantize", FIXTURE, "--out", out, "--calib", join(FIXTURE, "calib.txt"), "--samples", "32", "--seqlen", "128"]);
    // The first progress line comes after the partial directory was created.
    await m.waitFor(/layer 1\/6/);
    expect(leftovers().length).toBe(1);
    m.child.kill("SIGTERM");
    expect(await m.exit).toBe(130);
    expect(m.stderr()).toMatch(/SIGTERM/);
    expect(leftovers()).toEqual([]);
  });
});
