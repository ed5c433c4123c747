// AsyncEngine admission, aborts and abandoned streams (issue 14, item 3): one test per defect found
// by the hostile-input probe, each against the real engine on tiny-llama (CPU).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Rng, runSeed } from "@marlin/core";
import { beforeAll, describe, expect, test } from "vitest";
import {
  AsyncEngine,
  EngineDeadError,
  LLM,
  type LoadedModel,
  loadModelDir,
  RequestAbortedError,
  type RequestOutput,
  StreamReclaimedError,
} from "../src/index.js";
import { hasTinyLlama, tinyLlamaDir } from "./helpers.js";

const seed = runSeed();

async function until(what: string, cond: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function expectNoLeak(llm: LLM) {
  const b = llm.engine.blocks;
  expect(llm.engine.hasUnfinished).toBe(false);
  expect(b.numFreeBlocks).toBe(b.numBlocks);
}

describe.skipIf(!hasTinyLlama())("AsyncEngine on tiny-llama (CPU)", () => {
  console.log(`async-engine seed ${seed} (MARLIN_SEED replays)`);
  let model: LoadedModel;
  let prompts: string[];
  const make = () => LLM.fromLoaded(model, { device: "cpu", seed });

  beforeAll(async () => {
    model = await loadModelDir(tinyLlamaDir());
    const rng = new Rng(seed);
    const lines = readFileSync(join(tinyLlamaDir(), "calib.txt"), "utf8").split("\n").filter((l) => l.length > 20);
    prompts = Array.from({ length: 40 }, () => lines[rng.int(0, lines.length)]);
  });

  test("maxQueued limits text prompts (tokenized after the check) as it limits token ids", async () => {
    const llm = await make();
    const ae = new AsyncEngine(llm.engine, { maxQueued: 4 });
    const params = { maxTokens: 4, ignoreEos: true };
    for (const kind of ["text", "token ids"]) {
      const inputs = kind === "text" ? prompts : await Promise.all(prompts.map((p) => llm.tokenizer!.encode(p)));
      const settled = await Promise.allSettled(inputs.map((p) => ae.add(p, params)));
      const accepted = settled.filter((s) => s.status === "fulfilled");
      const refused = settled.filter((s) => s.status === "rejected");
      expect(accepted.length, kind).toBe(4);
      expect(refused.length, kind).toBe(36);
      for (const r of refused) expect((r as PromiseRejectedResult).reason).toMatchObject({ code: "ERR_MARLIN_ENGINE_BUSY" });
      // The accepted ones run to the end.
      for (const a of accepted) {
        const outs: RequestOutput[] = [];
        for await (const o of (a as PromiseFulfilledResult<AsyncIterable<RequestOutput>>).value) outs.push(o);
        expect(outs.at(-1)!.finishReason).toBe("length");
      }
      await ae.idle();
      expectNoLeak(llm);
    }
  });

  test("an abort during tokenization is honoured (signal or id): the request never runs", async () => {
    const llm = await make();
    const ae = new AsyncEngine(llm.engine);
    const queries = llm.engine.blocks.stats.queries;
    const ac = new AbortController();
    const pending = ae.add(prompts[0], { maxTokens: 50, ignoreEos: true }, { signal: ac.signal });
    ac.abort(); // the prompt is still in the tokenizer
    await expect(pending).rejects.toBeInstanceOf(RequestAbortedError);
    const byId = ae.add(prompts[1], { maxTokens: 50, ignoreEos: true }, { requestId: "tok-abort" });
    expect(ae.abort("tok-abort")).toBe(true);
    await expect(byId).rejects.toBeInstanceOf(RequestAbortedError);
    // generate() turns the same abort into an empty stream.
    const ac2 = new AbortController();
    const gen = ae.generate(prompts[2], { maxTokens: 50, ignoreEos: true }, { signal: ac2.signal });
    const first = gen.next();
    ac2.abort();
    expect(await first).toEqual({ done: true, value: undefined });
    await ae.idle();
    expect(llm.engine.blocks.stats.queries).toBe(queries); // nothing was ever admitted
    expect(ae.numQueued).toBe(0);
    expectNoLeak(llm);
  });

  test("a stream the consumer stops reading is reclaimed after the idle deadline; its blocks return", async () => {
    const llm = await make();
    const idleTimeoutMs = 300;
    const ae = new AsyncEngine(llm.engine, { highWaterMark: 4, idleTimeoutMs });
    const abandoned = await ae.add(prompts[3], { maxTokens: 400, ignoreEos: true });
    const first = await abandoned.next();
    expect(first.done).toBe(false);
    const neverRead = await ae.add(prompts[4], { maxTokens: 400, ignoreEos: true });
    // Both hold blocks now; neither is read again nor returned.
    await until("the sequences to start", () => llm.engine.numRunning === 2);
    expect(llm.engine.blocks.numFreeBlocks).toBeLessThan(llm.engine.blocks.numBlocks);
    const t0 = Date.now();
    await until("reclaim", () => !llm.engine.hasUnfinished && ae.numStreams === 0);
    expect(Date.now() - t0).toBeLessThan(idleTimeoutMs + 10_000);
    await ae.idle();
    expectNoLeak(llm);
    await expect(abandoned.next()).rejects.toBeInstanceOf(StreamReclaimedError);
    await expect(neverRead.next()).rejects.toBeInstanceOf(StreamReclaimedError);
    // A consumer that keeps reading (waiting in next() while the engine works) is never idle.
    const busyReader = new AsyncEngine(llm.engine, { idleTimeoutMs: 20 });
    const outs: RequestOutput[] = [];
    for await (const o of busyReader.generate(prompts[5], { maxTokens: 24, ignoreEos: true })) outs.push(o);
    expect(outs.length).toBe(24);
    expect(outs.at(-1)!.finishReason).toBe("length");
    await busyReader.idle();
    expectNoLeak(llm);
  });

  test("a failed engine loop ends every stream with EngineDeadError and refuses new requests", async () => {
    const llm = await make();
    const ae = new AsyncEngine(llm.engine);
    const runner = llm.engine.runner;
    const execute = runner.execute.bind(runner);
    let calls = 0;
    runner.execute = (b) => {
      if (++calls > 2) throw new Error("device lost (injected)");
      return execute(b);
    };
    const s = await ae.add(prompts[6], { maxTokens: 50, ignoreEos: true });
    const read = (async () => {
      for await (const _ of s);
    })();
    await expect(read).rejects.toBeInstanceOf(EngineDeadError);
    expect(ae.error).toBeInstanceOf(Error);
    await expect(ae.add(prompts[7], { maxTokens: 5 })).rejects.toMatchObject({ code: "ERR_MARLIN_ENGINE_DEAD" });
  });

  test("bad options and parameters are refused before any work", async () => {
    const llm = await make();
    expect(() => new AsyncEngine(llm.engine, { idleTimeoutMs: 0 })).toThrow(/idleTimeoutMs/);
    expect(() => new AsyncEngine(llm.engine, { highWaterMark: 0 })).toThrow(/highWaterMark/);
    const ae = new AsyncEngine(llm.engine);
    await expect(ae.add(prompts[0], { temperature: -1 })).rejects.toMatchObject({ code: "ERR_MARLIN_INVALID_ARGUMENT" });
    expect(ae.numQueued).toBe(0);
    expectNoLeak(llm);
  });
});
