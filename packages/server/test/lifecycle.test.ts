// Admission back-pressure (429), a dead engine (503 from /health), graceful shutdown, a model
// without a chat template, and the SSE writer's cut-off of a client that stops reading.
import { EventEmitter } from "node:events";
import type { ServerResponse } from "node:http";
import { runSeed } from "@marlin/core";
import { LLM, type LoadedModel, type LoadOptions, loadModelDir } from "@marlin/engine";
import OpenAI from "openai";
import { beforeAll, describe, expect, test } from "vitest";
import { createServer, type MarlinServer, type ServerOptions, SseWriter } from "../src/index.js";
import { calibPrompts, FIXTURE, hasFixture, LogSink, until } from "./fixture.js";

const seed = runSeed();

describe("SseWriter", () => {
  test("a client that reads nothing past the drain deadline is cut off", async () => {
    class FullSocket extends EventEmitter {
      destroyed = false;
      writableEnded = false;
      writeHead() {}
      flushHeaders() {}
      write() {
        return false; // the socket buffer is full
      }
      destroy() {
        this.destroyed = true;
        this.emit("close");
      }
      end() {}
    }
    const res = new FullSocket();
    const sse = new SseWriter(res as unknown as ServerResponse, 50);
    const t0 = Date.now();
    expect(await sse.send({ a: 1 })).toBe(false);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(45);
    expect(res.destroyed).toBe(true);
    expect(sse.closed).toBe(true);
    expect(await sse.send({ a: 2 })).toBe(false);
  });
});

describe.skipIf(!hasFixture)("server lifecycle on tiny-llama (CPU)", () => {
  console.log(`server lifecycle seed ${seed} (MARLIN_SEED replays)`);
  let model: LoadedModel;
  let prompts: string[];
  beforeAll(async () => {
    model = await loadModelDir(FIXTURE);
    prompts = calibPrompts(seed, 6);
  });

  async function start(load: LoadOptions, opts: ServerOptions = {}) {
    const llm = await LLM.fromLoaded(model, { device: "cpu", seed, ...load });
    const logs = new LogSink();
    const server = await createServer(llm, { modelDir: FIXTURE, logger: { stream: logs }, ...opts });
    const base = await server.listen({ port: 0 });
    const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: "none", maxRetries: 0 });
    return { llm, server, base, client, logs };
  }
  const noLeak = async (server: MarlinServer) => {
    await until("idle", () => !server.engine.engine.hasUnfinished && server.engine.numStreams === 0);
    const b = server.engine.engine.blocks;
    expect(b.numFreeBlocks).toBe(b.numBlocks);
  };
  const longStream = (client: OpenAI, prompt: string, maxTokens = 800) =>
    client.completions.create({ model: "tiny-llama", prompt, max_tokens: maxTokens, temperature: 0, stream: true, ignore_eos: true } as OpenAI.CompletionCreateParamsStreaming);

  test("a full waiting queue answers 429 with Retry-After; a request larger than the queue is a 400", async () => {
    const { server, base, client } = await start({ maxNumSeqs: 1 }, { maxQueued: 1 });
    const a = await longStream(client, prompts[0]);
    const ita = a[Symbol.asyncIterator]();
    await ita.next(); // running
    const b = longStream(client, prompts[1]); // waits: the batch holds one sequence
    await until("one waiting", () => server.engine.numQueued === 1);
    const busy = await client.completions.create({ model: "tiny-llama", prompt: prompts[2], max_tokens: 4 }).catch((e) => e);
    expect(busy).toBeInstanceOf(OpenAI.RateLimitError);
    expect(busy.code).toBe("rate_limit_exceeded");
    expect(busy.headers.get("retry-after")).toBe("1");
    const tooMany = await client.completions.create({ model: "tiny-llama", prompt: prompts[2], max_tokens: 4, n: 2 }).catch((e) => e);
    expect([tooMany.status, tooMany.param]).toEqual([400, "n"]);
    a.controller.abort();
    (await b).controller.abort();
    await noLeak(server);
    // With room again, requests are taken.
    const ok = await client.completions.create({ model: "tiny-llama", prompt: prompts[2], max_tokens: 4 });
    expect(ok.choices[0].finish_reason).toBeDefined();
    const m = await (await fetch(`${base}/metrics`)).text();
    expect(m).toMatch(/marlin_http_requests_total\{route="\/v1\/completions",status="429",model_name="tiny-llama"\} 1/);
    await server.shutdown({ deadlineMs: 100 });
  });

  test("an engine that dies answers 503, and /health says so", async () => {
    const { llm, server, base, client } = await start({});
    expect((await fetch(`${base}/health`)).status).toBe(200);
    llm.engine.runner.execute = () => {
      throw new Error("device lost (injected)");
    };
    const err = await client.completions.create({ model: "tiny-llama", prompt: prompts[0], max_tokens: 4 }).catch((e) => e);
    expect([err.status, err.code]).toEqual([503, "engine_dead"]);
    const h = await fetch(`${base}/health`);
    expect(h.status).toBe(503);
    expect(await h.json()).toMatchObject({ status: "dead", error: expect.stringMatching(/device lost/) });
    const again = await client.completions.create({ model: "tiny-llama", prompt: prompts[1], max_tokens: 4 }).catch((e) => e);
    expect([again.status, again.code]).toEqual([503, "engine_dead"]);
    await server.shutdown({ deadlineMs: 100 });
  });

  test("graceful shutdown: stops accepting, lets short work finish, aborts the rest at the deadline", async () => {
    const { server, base, client, logs } = await start({ maxNumSeqs: 4 });
    const short = longStream(client, prompts[0], 6);
    const long = await longStream(client, prompts[1], 900);
    const longIt = long[Symbol.asyncIterator]();
    await longIt.next();
    const done = server.shutdown({ deadlineMs: 400 });
    // New work is refused at once (503 on an open connection, or no listener at all).
    const late = await fetch(`${base}/v1/models`).then(
      (r) => r.status,
      () => "refused",
    );
    expect([503, "refused"]).toContain(late);
    let text = "";
    let finish: string | null = null;
    for await (const c of await short) {
      text += c.choices[0]?.text ?? "";
      finish = c.choices[0]?.finish_reason ?? finish;
    }
    expect(finish).toBe("length");
    const cut = await (async () => {
      for (;;) if ((await longIt.next()).done) return undefined;
    })().catch((e) => e);
    expect(cut).toBeInstanceOf(OpenAI.APIError);
    expect(cut.message).toMatch(/shutting down/);
    await done;
    expect(server.app.server.listening).toBe(false);
    await noLeak(server);
    const msgs = logs.lines.map((l) => l.msg);
    expect(msgs).toContain("shutting down");
    expect(msgs).toContain("shutdown deadline passed: aborting the requests left");
    expect(text.length).toBeGreaterThan(0);
  });

  test("a model without a chat template: chat is a clear 400, completions work", async () => {
    const { server, client } = await start({});
    const err = await client.chat.completions.create({ model: "tiny-llama", messages: [{ role: "user", content: "hi" }] }).catch((e) => e);
    expect([err.status, err.code, err.param]).toEqual([400, "no_chat_template", "messages"]);
    expect(err.message).toMatch(/--chat-template/);
    const ok = await client.completions.create({ model: "tiny-llama", prompt: prompts[3], max_tokens: 3 });
    expect(ok.choices.length).toBe(1);
    await server.shutdown({ deadlineMs: 100 });
  });
});
