// The official `openai` client against a real server on a loopback port (tiny-llama on the CPU):
// completions, chat, streaming, usage, n, seeds, stop strings, the error bodies and statuses, and
// a client that hangs up (its KV blocks come back).
import { runSeed } from "@marlin/core";
import { LLM, type LoadedModel, loadModelDir } from "@marlin/engine";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createServer, type MarlinServer } from "../src/index.js";
import { metricValue, parseMetrics } from "../src/soak.js";
import { CHAT_TEMPLATE, calibPrompts, FIXTURE, hasFixture, LogSink, until } from "./fixture.js";

const seed = runSeed();
const KEY = "test-key";

describe.skipIf(!hasFixture)("OpenAI API on tiny-llama (CPU)", () => {
  console.log(`server api seed ${seed} (MARLIN_SEED replays)`);
  let model: LoadedModel;
  let ref: LLM;
  let server: MarlinServer;
  let client: OpenAI;
  let base: string;
  const logs = new LogSink();
  let prompts: string[];

  beforeAll(async () => {
    model = await loadModelDir(FIXTURE);
    ref = await LLM.fromLoaded(model, { device: "cpu", seed });
    const llm = await LLM.fromLoaded(model, { device: "cpu", seed, maxNumSeqs: 16 });
    server = await createServer(llm, { modelDir: FIXTURE, apiKey: KEY, chatTemplate: CHAT_TEMPLATE, logger: { stream: logs } });
    base = await server.listen({ host: "127.0.0.1", port: 0 });
    client = new OpenAI({ baseURL: `${base}/v1`, apiKey: KEY, maxRetries: 0 });
    prompts = calibPrompts(seed, 8);
  });
  afterAll(async () => {
    await server?.shutdown({ deadlineMs: 1000 });
  });

  const greedy = async (ids: number[], maxTokens: number) => (await ref.generate([ids], { maxTokens, ignoreEos: true }))[0];
  const encode = (text: string, special = true) => ref.tokenizer!.encode(text, special);
  const idle = async () => {
    await until("the engine to go idle", () => !server.engine.engine.hasUnfinished && server.engine.numStreams === 0);
    const b = server.engine.engine.blocks;
    expect(b.numFreeBlocks).toBe(b.numBlocks);
  };

  // The official client's calls, with the vLLM-style extras (ignore_eos, top_k) it passes through.
  type Extra = { ignore_eos?: boolean; top_k?: number };
  type C = Omit<OpenAI.CompletionCreateParamsNonStreaming, "model"> & Extra & { model?: string };
  type Ch = Omit<OpenAI.ChatCompletionCreateParamsNonStreaming, "model"> & Extra & { model?: string };
  const complete = (b: C, o?: { signal: AbortSignal }) => client.completions.create({ model: "tiny-llama", ...b } as OpenAI.CompletionCreateParamsNonStreaming, o);
  const completeStream = (b: C) => client.completions.create({ model: "tiny-llama", ...b, stream: true } as OpenAI.CompletionCreateParamsStreaming);
  const chat = (b: Ch) => client.chat.completions.create({ model: "tiny-llama", ...b } as OpenAI.ChatCompletionCreateParamsNonStreaming);
  const chatStream = (b: Ch) => client.chat.completions.create({ model: "tiny-llama", ...b, stream: true } as OpenAI.ChatCompletionCreateParamsStreaming);

  type ApiErr = InstanceType<typeof OpenAI.APIError>;
  const failure = (p: Promise<unknown>): Promise<ApiErr> =>
    p.then(
      () => {
        throw new Error("expected the request to fail");
      },
      (e) => e as ApiErr,
    );
  const json = async (r: Response): Promise<any> => r.json();

  test("lists the model", async () => {
    const list = await client.models.list();
    expect(list.data.map((m) => m.id)).toEqual(["tiny-llama"]);
    expect((await client.models.retrieve("tiny-llama")).id).toBe("tiny-llama");
  });

  test("completions: greedy text and usage match the engine; streaming gives the same text, then usage and [DONE]", async () => {
    const ids = await encode(prompts[0]);
    const want = await greedy(ids, 12);
    const r = await complete({ prompt: prompts[0], max_tokens: 12, temperature: 0, ignore_eos: true });
    expect(r.object).toBe("text_completion");
    expect(r.choices[0].text).toBe(want.text);
    expect(r.choices[0].finish_reason).toBe("length");
    expect(r.usage).toEqual({ prompt_tokens: ids.length, completion_tokens: 12, total_tokens: ids.length + 12 });
    const stream = await client.completions.create({
      model: "tiny-llama",
      prompt: prompts[0],
      max_tokens: 12,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
      ignore_eos: true,
    } as OpenAI.CompletionCreateParamsStreaming);
    let text = "";
    const finishes: (string | null)[] = [];
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      if (chunk.choices.length === 0) usage = chunk.usage;
      else expect(chunk.usage).toBeNull();
      for (const c of chunk.choices) {
        text += c.text;
        finishes.push(c.finish_reason);
      }
    }
    expect(text).toBe(want.text);
    expect(finishes.at(-1)).toBe("length");
    expect(finishes.slice(0, -1).every((f) => f === null)).toBe(true);
    expect(usage).toEqual(r.usage);
    // Token-id prompts, and several prompts in one request.
    const batch = await complete({ prompt: [ids, await encode(prompts[1])], max_tokens: 5, temperature: 0, ignore_eos: true });
    expect(batch.choices.map((c) => c.index)).toEqual([0, 1]);
    expect(batch.choices[0].text).toBe((await greedy(ids, 5)).text);
    await idle();
  });

  test("chat: the template renders the messages; streamed deltas add up to the message", async () => {
    const messages: OpenAI.ChatCompletionMessageParam[] = [
      { role: "system", content: "You tell stories." },
      { role: "user", content: prompts[2] },
    ];
    const rendered = `<s><<SYS>> You tell stories. <</SYS>>\n[INST] ${prompts[2]} [/INST]`;
    const ids = await encode(rendered, false);
    const want = await greedy(ids, 10);
    const r = await chat({ messages, max_tokens: 10, temperature: 0, ignore_eos: true });
    expect(r.object).toBe("chat.completion");
    expect(r.choices[0].message).toMatchObject({ role: "assistant", content: want.text });
    expect(r.usage?.prompt_tokens).toBe(ids.length);
    const stream = await chatStream({ messages, max_tokens: 10, temperature: 0, ignore_eos: true });
    let content = "";
    let role: string | undefined;
    let finish: string | null = null;
    for await (const chunk of stream) {
      expect(chunk.object).toBe("chat.completion.chunk");
      role ??= chunk.choices[0].delta.role;
      content += chunk.choices[0].delta.content ?? "";
      finish = chunk.choices[0].finish_reason ?? finish;
    }
    expect(role).toBe("assistant");
    expect(content).toBe(want.text);
    expect(finish).toBe("length");
    // Without max_tokens, chat may use the rest of the context; EOS then ends it (or the length).
    const open = await chat({ messages: [{ role: "user", content: [{ type: "text", text: prompts[3] }] }], temperature: 0 });
    expect(["stop", "length"]).toContain(open.choices[0].finish_reason);
    await idle();
  });

  test("n choices, seeds reproduce sampled output, top_k / top_p pass through", async () => {
    const req: C = { prompt: prompts[4], max_tokens: 8, temperature: 0.9, top_p: 0.95, top_k: 40, n: 3, seed: 1234, ignore_eos: true };
    const a = await complete(req);
    const b = await complete(req);
    expect(a.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(b.choices.map((c) => c.text)).toEqual(a.choices.map((c) => c.text));
    expect(new Set(a.choices.map((c) => c.text)).size).toBeGreaterThan(1); // seed + i per choice
    expect(a.usage?.completion_tokens).toBe(24);
    const s = await completeStream(req);
    const texts = ["", "", ""];
    for await (const chunk of s) for (const c of chunk.choices) texts[c.index] += c.text;
    expect(texts).toEqual(a.choices.map((c) => c.text));
    await idle();
  });

  test("stop strings cut the text before the match, streamed or not", async () => {
    const ids = await encode(prompts[5]);
    const full = (await greedy(ids, 24)).text;
    const words = full.split(" ").filter((w) => w.length >= 2);
    const stop = words[Math.min(2, words.length - 1)];
    const cut = full.slice(0, full.indexOf(stop));
    const r = await complete({ prompt: prompts[5], max_tokens: 24, temperature: 0, stop, ignore_eos: true });
    expect(r.choices[0].text).toBe(cut);
    expect(r.choices[0].finish_reason).toBe("stop");
    expect((r.choices[0] as unknown as { stop_reason: string }).stop_reason).toBe(stop);
    const s = await completeStream({ prompt: prompts[5], max_tokens: 24, temperature: 0, stop: [stop, "\u0000never"], ignore_eos: true });
    let text = "";
    for await (const chunk of s) text += chunk.choices[0]?.text ?? "";
    expect(text).toBe(cut);
    await idle();
  });

  test("errors: OpenAI bodies with the right status, param and code", async () => {
    const cases: [string, Record<string, unknown>, number, string | null, string | null][] = [
      ["negative temperature", { prompt: "a", temperature: -1 }, 400, "temperature", "invalid_value"],
      ["top_p of 0", { prompt: "a", top_p: 0 }, 400, "top_p", "invalid_value"],
      ["a penalty the engine lacks", { prompt: "a", presence_penalty: 0.5 }, 400, "presence_penalty", "unsupported_parameter"],
      ["frequency penalty", { prompt: "a", frequency_penalty: 1 }, 400, "frequency_penalty", "unsupported_parameter"],
      ["an unknown field", { prompt: "a", bogus: 1 }, 400, "bogus", "unsupported_parameter"],
      ["logprobs", { prompt: "a", logprobs: 2 }, 400, "logprobs", "unsupported_parameter"],
      ["n of 0", { prompt: "a", n: 0 }, 400, "n", "invalid_value"],
      ["a string max_tokens", { prompt: "a", max_tokens: "9" }, 400, "max_tokens", "invalid_type"],
      ["no prompt", {}, 400, "prompt", "missing_required_parameter"],
      ["an empty stop string", { prompt: "a", stop: [""] }, 400, "stop", "invalid_type"],
      ["stream_options without stream", { prompt: "a", stream_options: { include_usage: true } }, 400, "stream_options", "invalid_value"],
      ["token ids past the vocabulary", { prompt: [1, 99999] }, 400, "prompt", "invalid_value"],
      ["an unknown model", { model: "gpt-9", prompt: "a" }, 404, "model", "model_not_found"],
      ["a prompt past the context", { prompt: new Array(1024).fill(5) }, 400, "prompt", "context_length_exceeded"],
      ["prompt + max_tokens past the context", { prompt: "a", max_tokens: 1024 }, 400, "max_tokens", "context_length_exceeded"],
    ];
    for (const [what, body, status, param, code] of cases) {
      const err = await client.completions.create({ model: "tiny-llama", ...body } as unknown as OpenAI.CompletionCreateParamsNonStreaming).then(
        () => undefined,
        (e) => e,
      );
      expect(err, what).toBeInstanceOf(OpenAI.APIError);
      expect({ what, status: err.status, param: err.param, code: err.code }).toEqual({ what, status, param, code });
      expect(typeof err.error.message, what).toBe("string");
      expect(err.error.type, what).toBe(status === 404 || status === 400 ? "invalid_request_error" : err.error.type);
    }
    const chatBad = await failure(chat({ messages: [{ role: "assistant", content: "hi" }] }));
    expect([chatBad.status, chatBad.param]).toEqual([400, "messages"]);
    expect(chatBad.message).toMatch(/must not be the assistant/);
    const tools = await failure(chat({ messages: [{ role: "user", content: "x" }], tools: [{ type: "function", function: { name: "f" } }] }));
    expect([tools.status, tools.param]).toEqual([400, "tools"]);
    const noKey = await failure(new OpenAI({ baseURL: `${base}/v1`, apiKey: "wrong", maxRetries: 0 }).models.list());
    expect(noKey).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(noKey.code).toBe("invalid_api_key");
    // What the client library cannot send: broken JSON, a body past the limit, an unknown route.
    const post = (body: string) => fetch(`${base}/v1/completions`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${KEY}` }, body });
    const broken = await post("{not json");
    expect(broken.status).toBe(400);
    expect((await json(broken)).error.code).toBe("invalid_json");
    const huge = await post(JSON.stringify({ prompt: "x".repeat(2 << 20) }));
    expect(huge.status).toBe(413);
    expect((await json(huge)).error).toMatchObject({ code: "request_too_large", type: "invalid_request_error" });
    const nowhere = await fetch(`${base}/v1/nowhere`, { headers: { authorization: `Bearer ${KEY}` } });
    expect(nowhere.status).toBe(404);
    expect((await json(nowhere)).error.code).toBe("not_found");
    await idle();
  });

  test("a client that hangs up aborts its request and its KV blocks come back", async () => {
    const blocks = server.engine.engine.blocks;
    const stream = await completeStream({ prompt: prompts[6], max_tokens: 600, temperature: 0, ignore_eos: true });
    let chunks = 0;
    for await (const _ of stream) {
      if (++chunks === 3) {
        expect(blocks.numFreeBlocks).toBeLessThan(blocks.numBlocks);
        stream.controller.abort();
        break;
      }
    }
    await idle();
    // A non-streaming request whose client leaves mid-way.
    const ac = new AbortController();
    const pending = complete({ prompt: prompts[7], max_tokens: 600, temperature: 0, ignore_eos: true }, { signal: ac.signal });
    await until("the request to start", () => server.engine.engine.numRunning > 0);
    ac.abort();
    await expect(pending).rejects.toThrow();
    await idle();
    const hungUp = logs.requests().filter((l) => l.status === 499);
    expect(hungUp.length).toBe(2);
    expect(hungUp.every((l) => l.clientAborted === true && (l.finishReasons as string[])[0] === "abort")).toBe(true);
  });

  test("/metrics parses as Prometheus text and counts what happened; /health is ok", async () => {
    const res = await fetch(`${base}/metrics`);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    const m = parseMetrics(await res.text());
    for (const name of [
      "marlin_requests_running",
      "marlin_requests_waiting",
      "marlin_kv_cache_usage_ratio",
      "marlin_prefix_cache_hit_ratio",
      "marlin_time_to_first_token_seconds_count",
      "marlin_time_per_output_token_seconds_count",
      "marlin_e2e_request_latency_seconds_count",
      "marlin_prompt_tokens_total",
      "marlin_generation_tokens_total",
      "process_resident_memory_bytes",
    ])
      expect(metricValue(m, name), name).toBeTypeOf("number");
    expect(metricValue(m, "marlin_kv_blocks_free")).toBe(metricValue(m, "marlin_kv_blocks_total"));
    expect(metricValue(m, "marlin_kv_cache_usage_ratio")).toBe(0);
    expect(metricValue(m, "marlin_e2e_request_latency_seconds_count")!).toBeGreaterThan(10);
    expect(metricValue(m, "marlin_generation_tokens_total")!).toBeGreaterThan(100);
    expect(m.get('marlin_requests_finished_total{finished_reason="abort",model_name="tiny-llama"}')).toBeGreaterThanOrEqual(2);
    expect(metricValue(m, "marlin_prefix_cache_hit_ratio")!).toBeGreaterThan(0); // the same prompts came twice
    const h = await fetch(`${base}/health`);
    expect(h.status).toBe(200);
    expect(await json(h)).toMatchObject({ status: "ok", model: "tiny-llama", device: "cpu" });
  });

  test("one structured log line per request", () => {
    const lines = logs.requests();
    expect(lines.length).toBeGreaterThan(20);
    const ok = lines.find((l) => l.url === "/v1/completions" && l.status === 200 && l.stream === false)!;
    expect(ok).toMatchObject({ method: "POST", level: 30 });
    expect(ok.reqId).toBeDefined();
    expect(ok.promptTokens).toBeGreaterThan(0);
    expect(ok.completionTokens).toBeGreaterThan(0);
    expect(typeof ok.ms).toBe("number");
    expect(lines.some((l) => l.status === 400 && l.url === "/v1/completions")).toBe(true);
    expect(lines.some((l) => l.status === 401)).toBe(true);
  });
});
