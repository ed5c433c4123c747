// The soak, shortened for CI (the full one: bench/soak.mjs, 1000 requests at concurrency 64):
// streaming requests with 30% of the clients hanging up at random points, against a server whose
// queue is smaller than the load, then: nothing lost, no KV block leaked, queue bounded, memory flat.
import { runSeed } from "@marlin/core";
import { LLM, loadModelDir } from "@marlin/engine";
import { describe, expect, test } from "vitest";
import { createServer } from "../src/index.js";
import { runSoak } from "../src/soak.js";
import { calibPrompts, FIXTURE, hasFixture } from "./fixture.js";

const seed = runSeed();

describe.skipIf(!hasFixture)("soak (short) on tiny-llama (CPU)", () => {
  test("200 streaming requests at concurrency 32, 30% hang-ups", async () => {
    console.log(`soak seed ${seed} (MARLIN_SEED replays)`);
    // A KV cache the warm-up cycles through: its pages are committed as blocks are first used (see bench/soak.mjs).
    const llm = await LLM.fromLoaded(await loadModelDir(FIXTURE), { device: "cpu", seed, maxNumSeqs: 8, kvCacheTokens: 2048 });
    const maxQueued = 12;
    const server = await createServer(llm, { modelDir: FIXTURE, maxQueued, logger: false });
    const baseUrl = await server.listen({ port: 0 });
    try {
      const report = await runSoak({
        baseUrl,
        prompts: calibPrompts(seed, 64),
        requests: 200,
        concurrency: 32,
        disconnectFraction: 0.3,
        maxTokens: [4, 32],
        seed,
        maxQueued,
        warmup: 50,
        deadlineMs: 240_000,
      });
      console.log(JSON.stringify(report));
      expect(report.failures).toEqual([]);
      expect(report.ok).toBe(true);
      expect(report.completed + report.disconnected).toBe(200);
      expect(report.disconnected).toBeGreaterThan(20);
      expect(report.rejected429).toBeGreaterThan(0); // the load is larger than the queue
      expect(report.maxWaitingSeen).toBeLessThanOrEqual(maxQueued);
      expect(report.kvBlocksFreeAtEnd).toBe(report.kvBlocksTotal);
    } finally {
      await server.shutdown({ deadlineMs: 1000 });
    }
  });
});
